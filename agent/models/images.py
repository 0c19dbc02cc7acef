"""Pictures in the conversation: a tool result may name a picture file (a browser screenshot), which the model
attaches at query time, for models that take images.

The conversation keeps only the file's path (the message's `image` key), so trajectories and search trees stay
small and a prompt carries no picture the model will not see. When the prompt is sent, the newest `keep`
pictures become OpenAI-style content parts (`image_url` with a data: URI) of a user message placed right after
the tool results of that turn: OpenAI accepts images only in user messages, and a user message may not come
between an assistant's tool calls and their results. Older pictures are left out, so the prompt stays bounded.
"""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

from branchwise.agent.models.base import Message

IMAGE_KEY = "image"
MAX_IMAGE_BYTES = 4 * 1024 * 1024  # under every provider's limit (Anthropic's is 5 MB a picture)
MAX_SIDE = 8000  # Anthropic refuses pictures larger than this on a side
MAX_IMAGE_TOKENS = 1600  # providers scale big pictures down: Anthropic to ~1.15 megapixels, OpenAI to 768 px tiles
_MAGIC = {b"\x89PNG\r\n\x1a\n": "image/png", b"\xff\xd8\xff": "image/jpeg"}


def strip(messages: list[Message]) -> list[Message]:
    """The messages without picture paths (what a model that takes no images is sent)."""
    return [{k: v for k, v in m.items() if k != IMAGE_KEY} if IMAGE_KEY in m else m for m in messages]


def newest(messages: list[Message], keep: int) -> set[int]:
    """Indexes of the messages whose pictures are attached: the newest `keep` that name one."""
    found = [i for i, m in enumerate(messages) if isinstance(m.get(IMAGE_KEY), str)]
    return set(found[-keep:]) if keep > 0 else set()


def with_images(messages: list[Message], keep: int) -> list[Message]:
    """The messages as sent to a model that takes images: picture paths removed, the newest `keep` pictures
    attached in user messages after their turn's tool results."""
    chosen = newest(messages, keep)
    out: list[Message] = []
    waiting: list[Message] = []
    for index, message in enumerate(messages):
        if waiting and message.get("role") != "tool":
            out.extend(waiting)
            waiting = []
        if index in chosen:
            part = picture_part(Path(message[IMAGE_KEY]))
            name = message.get("name") or "tool"
            text = f"The picture from {name} (call {message.get('tool_call_id', '?')}):"
            if isinstance(part, str):
                waiting.append({"role": "user", "content": f"{text} not attached, {part}."})
            else:
                waiting.append({"role": "user", "content": [{"type": "text", "text": text}, part]})
        out.append({k: v for k, v in message.items() if k != IMAGE_KEY} if IMAGE_KEY in message else message)
    return out + waiting


def picture_part(path: Path) -> dict[str, object] | str:
    """The content part of a PNG or JPEG file, or why it cannot be attached."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_IMAGE_BYTES + 1)
    except OSError as exc:
        return f"it cannot be read ({exc.strerror or exc})"
    mime = next((m for magic, m in _MAGIC.items() if data.startswith(magic)), None)
    if mime is None:
        return "it is not a PNG or JPEG file"
    size = dimensions(data)
    if len(data) > MAX_IMAGE_BYTES or (size is not None and max(size) > MAX_SIDE):
        return "it is too large (take a screenshot of the visible part instead of the full page)"
    return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{base64.b64encode(data).decode()}"}}


def dimensions(data: bytes) -> tuple[int, int] | None:
    """Width and height of a PNG (its IHDR) or a JPEG (its first SOF marker)."""
    if data.startswith(b"\x89PNG") and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    i = 2
    while i + 9 < len(data) and data[i] == 0xFF:
        marker, length = data[i + 1], int.from_bytes(data[i + 2 : i + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return int(width), int(height)
        i += 2 + length
    return None


def image_tokens(path: Path) -> int:
    """What one attached picture costs in prompt tokens, roughly: width × height / 750 (Anthropic's rule; OpenAI's
    tiles come out close), capped where providers scale pictures down; nothing for one that is not attached."""
    try:
        with path.open("rb") as f:
            head = f.read(64 * 1024)
        big = path.stat().st_size > MAX_IMAGE_BYTES
    except OSError:
        return 0
    size = dimensions(head)
    if big or size is None or max(size) > MAX_SIDE:
        return 0
    return max(1, min(MAX_IMAGE_TOKENS, math.ceil(size[0] * size[1] / 750)))


def attached_tokens(messages: list[Message], keep: int) -> int:
    """Prompt tokens of the pictures `with_images` would attach."""
    return sum(image_tokens(Path(messages[i][IMAGE_KEY])) for i in newest(messages, keep))


def count(counter: Callable[[list[Message], list[dict[str, Any]]], int], messages: list[Message],
          tools: list[dict[str, Any]], keep: int) -> int:  # fmt: skip
    """A prompt's tokens: its text by `counter` (a picture's path is a few tokens) plus the attached pictures."""
    return counter(strip(messages), tools) + (attached_tokens(messages, keep) if keep > 0 else 0)
