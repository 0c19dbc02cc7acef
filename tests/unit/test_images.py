"""Screenshots in the conversation: a tool message names its picture; models that take images get the newest
ones attached as image_url parts of a user message after the turn's tool results, older ones are left out,
and the prompt's token count includes what is attached."""

from __future__ import annotations

import base64
import struct
import zlib
from pathlib import Path

import pytest

from branchwise.agent.models import images
from branchwise.agent.models.scripted import ScriptedModel, load_script
from tests.conftest import write_script


def png(path: Path, width: int, height: int) -> Path:
    """A real (tiny-content) PNG of the given size."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) +
                     chunk(b"IEND", b""))  # fmt: skip
    return path


def turn(call_id: str, picture: Path | None, *, also: str | None = None) -> list[dict]:
    calls = [{"id": call_id, "type": "function", "function": {"name": "browser_screenshot", "arguments": "{}"}}]
    if also:
        calls.append({"id": also, "type": "function", "function": {"name": "browser_snapshot", "arguments": "{}"}})
    out: list[dict] = [{"role": "assistant", "content": None, "tool_calls": calls}]
    shot = {"role": "tool", "tool_call_id": call_id, "name": "browser_screenshot", "content": f"saved to {picture}"}
    if picture is not None:
        shot["image"] = str(picture)
    out.append(shot)
    if also:
        out.append({"role": "tool", "tool_call_id": also, "name": "browser_snapshot", "content": "- heading"})
    return out


def image_urls(messages: list[dict]) -> list[str]:
    return [p["image_url"]["url"] for m in messages if isinstance(m.get("content"), list)
            for p in m["content"] if p.get("type") == "image_url"]  # fmt: skip


def test_the_newest_picture_goes_in_a_user_message_after_the_turns_tool_results(tmp_path: Path) -> None:
    old, new = png(tmp_path / "old.png", 40, 30), png(tmp_path / "new.png", 20, 10)
    messages = [{"role": "user", "content": "look"}, *turn("c1", old), *turn("c2", new, also="c3"),
                {"role": "user", "content": "go on"}]  # fmt: skip
    sent = images.with_images(messages, keep=1)
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "assistant", "tool", "tool", "user", "user"]
    assert sent[6]["content"][0]["text"] == "The picture from browser_screenshot (call c2):"
    assert image_urls(sent) == ["data:image/png;base64," + base64.b64encode(new.read_bytes()).decode()]
    assert all("image" not in m for m in sent) and "image" in messages[2]  # the conversation itself is unchanged
    assert len(image_urls(images.with_images(messages, keep=2))) == 2
    assert images.with_images(messages, keep=0) == images.strip(messages)
    assert images.with_images(messages[:3], keep=1)[-1]["role"] == "user"  # a picture in the last turn too


def test_a_picture_that_cannot_be_sent_is_a_note(tmp_path: Path) -> None:
    (tmp_path / "fake.png").write_text("<svg/>")
    for path, why in [(tmp_path / "gone.png", "cannot be read"), (tmp_path / "fake.png", "not a PNG or JPEG"),
                      (png(tmp_path / "tall.png", 10, 9000), "too large")]:  # fmt: skip
        sent = images.with_images(turn("c1", path), keep=1)
        assert image_urls(sent) == [] and why in sent[-1]["content"]


def test_token_counts_include_the_attached_picture_only(tmp_path: Path) -> None:
    small, big = png(tmp_path / "s.png", 150, 100), png(tmp_path / "b.png", 2400, 1600)
    assert images.image_tokens(small) == 20  # 150*100/750
    assert images.image_tokens(png(tmp_path / "v.png", 1280, 800)) == 1366  # the browser's viewport
    assert images.image_tokens(big) == images.MAX_IMAGE_TOKENS  # 5120 by area, capped where providers scale down
    messages = [*turn("c1", big), *turn("c2", small)]
    assert images.attached_tokens(messages, keep=1) == 20
    assert images.attached_tokens(messages, keep=2) == 20 + images.MAX_IMAGE_TOKENS
    text_only = images.count(lambda m, t: len(str(m)), images.strip(messages), [], keep=1)
    assert images.count(lambda m, t: len(str(m)), messages, [], keep=1) == text_only + 20


def test_jpeg_dimensions_are_read_from_its_frame_header() -> None:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00" + b"\x00" * 9
    sof = b"\xff\xc0" + struct.pack(">HBHH", 11, 8, 200, 320) + b"\x00" * 6
    assert images.dimensions(b"\xff\xd8" + app0 + sof) == (320, 200)


@pytest.mark.parametrize("declared", [True, False])
def test_scripted_model_declares_images_in_its_reply_file(tmp_path: Path, declared: bool) -> None:
    script = write_script(tmp_path / "r.yaml", [{"content": "ok"}])
    if declared:
        script.write_text(script.read_text() + "supports_images: true\n")
    model = ScriptedModel.from_file(script)
    assert model.supports_images is declared and len(load_script(script)) == 1
    shot = png(tmp_path / "s.png", 150, 100)
    messages = [{"role": "user", "content": "look"}, *turn("c1", shot)]
    reply = model.query(messages, [])[0]
    assert len(image_urls(model.last_prompt)) == (1 if declared else 0)
    assert all("image" not in m for m in model.last_prompt)
    assert reply.usage.prompt == model.count_tokens(images.strip(messages), []) + (20 if declared else 0)
