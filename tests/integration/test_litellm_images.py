"""Screenshots reach a model that takes images through the real litellm path: the request to an OpenAI-compatible
server on 127.0.0.1 carries the newest screenshot as an image_url part of a user message, and only that one."""

from __future__ import annotations

import base64

import pytest

from branchwise.agent.config.schema import LLMSettings
from branchwise.agent.models.litellm_model import LiteLLMModel
from tests.conftest import make_repo
from tests.support.browser_pages import PAGES, PORT
from tests.support.openai_server import FakeOpenAI, reply
from tests.unit.test_images import image_urls, png, turn


@pytest.fixture
def server():
    with FakeOpenAI() as srv:
        yield srv


def model(server: FakeOpenAI, name: str) -> LiteLLMModel:
    m = LiteLLMModel(name, LLMSettings(api_base=server.base_url, retry_backoff_s=0.05))
    m.preflight()
    return m


def test_a_vision_model_is_sent_the_newest_screenshot_only(server, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    old, new = png(tmp_path / "old.png", 64, 40), png(tmp_path / "new.png", 32, 20)
    messages = [{"role": "user", "content": "look"}, *turn("c1", old), *turn("c2", new)]
    vision = model(server, "openai/gpt-4o-mini")
    assert vision.supports_images  # litellm's supports_vision
    server.script(reply("seen"))
    assert vision.query(messages, [])[0].content == "seen"
    sent = server.chat_requests[0]["body"]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "assistant", "tool", "user"]
    assert image_urls(sent) == ["data:image/png;base64," + base64.b64encode(new.read_bytes()).decode()]
    assert all("image" not in m for m in sent)
    assert vision.count_tokens(messages, []) > vision.count_tokens([{**m, "image": None} for m in messages], [])


def test_a_model_without_vision_gets_text_only(server, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    messages = [{"role": "user", "content": "look"}, *turn("c1", png(tmp_path / "s.png", 32, 20))]
    text = model(server, "openai/gpt-3.5-turbo")
    assert not text.supports_images
    server.script(reply("ok"))
    text.query(messages, [])
    sent = server.chat_requests[0]["body"]["messages"]
    assert image_urls(sent) == [] and len(sent) == 3 and all("image" not in m for m in sent)


@pytest.mark.slow
@pytest.mark.timeout(270)  # the run's own 240 s limit fires first
def test_a_run_attaches_browser_screenshots_for_a_vision_model(cli, tmp_path, server) -> None:
    """browser_screenshot in a real run: the actor names the picture, the session keeps one (browser.keep_images)."""
    config = "[planner]\nenabled = false\n[memory]\nenabled = false\n"
    repo = make_repo(
        tmp_path / "repo", {f"site/{n}": t for n, t in PAGES.items()} | {".branchwise/config.toml": config}
    )
    index = f"http://127.0.0.1:{PORT}/index.html"
    step = lambda *calls: reply(tool_calls=list(calls))  # noqa: E731
    server.script(
        step(
            {
                "name": "shell",
                "arguments": {"command": f"python3 -m http.server {PORT} --directory site", "background": True},
            }
        ),
        step({"name": "browser_navigate", "arguments": {"url": index}}),
        step({"name": "browser_screenshot", "arguments": {}}),
        step({"name": "browser_screenshot", "arguments": {}}),
        step({"name": "finish", "arguments": {"summary": "looked"}}),
    )
    env = {"BRANCHWISE_LLM_API_BASE": server.base_url, "NO_PROXY": "127.0.0.1,localhost"}
    res = cli("run", "look at the page", "-m", "openai/gpt-4o-mini", "-o", "json", cwd=repo, env=env, timeout=240)
    assert res.returncode == 0, res.stderr
    bodies = [r["body"]["messages"] for r in server.chat_requests]
    assert [len(image_urls(b)) for b in bodies] == [0, 0, 0, 1, 1]
    shots = [m["tool_call_id"] for m in bodies[4] if m.get("name") == "browser_screenshot"]
    shown = [m["content"][0]["text"] for m in bodies[4] if isinstance(m.get("content"), list)]
    assert len(shots) == 2 and shown == [f"The picture from browser_screenshot (call {shots[1]}):"]  # the newer one
    picture = {"type": "image_url", "image_url": {"url": image_urls(bodies[4])[0]}}
    assert bodies[4][-1] == {"role": "user", "content": [{"type": "text", "text": shown[0]}, picture]}
    assert image_urls(bodies[4])[0].startswith("data:image/png;base64,iVBORw0KGgo")
