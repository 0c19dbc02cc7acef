"""From MCP's types to branchwise's: tool names, effects from annotations, results as text the model reads."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from branchwise.tools.base import Effect, OutputSource

_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]")
MAX_TOOL_NAME = 64  # what OpenAI-style function calling accepts


def tool_name(server: str, tool: str) -> str:
    """`mcp__SERVER__TOOL`, made a valid function name: other characters become `_`, a long name gets a hash."""
    name = f"mcp__{server}__{_NAME_CHARS.sub('_', tool)}"
    if len(name) <= MAX_TOOL_NAME:
        return name
    digest = hashlib.sha256(tool.encode()).hexdigest()[:8]
    return f"{name[: MAX_TOOL_NAME - 9]}_{digest}"


def effect_of(annotations: Any, *, contained: bool) -> Effect:
    """A tool's effect from its annotations: read-only is `read`; destructive or open-world is `external`, and so
    is everything a server outside the sandbox does (a host process or a remote service); the rest is `exec`.

    Only hints the server states count (the spec's defaults for missing ones would make every tool external)."""
    if annotations is not None and annotations.read_only_hint is True:
        return "read"
    if not contained:
        return "external"
    if annotations is not None and (annotations.destructive_hint is True or annotations.open_world_hint is True):
        return "external"
    return "exec"


def output_source_of(annotations: Any) -> OutputSource:
    """Open-world tools bring in content from the web; every other result is tool output (untrusted either way)."""
    return "web" if annotations is not None and annotations.open_world_hint is True else "tool_output"


def describe(server: str, description: str | None, limit: int) -> str:
    """The description the model reads: whose tool it is, then the server's text, cut to the limit."""
    text = " ".join((description or "").split()) or "(the server gives no description)"
    if len(text) > limit:
        text = text[: limit - 3].rstrip() + "..."
    return f"[MCP server {server}] {text}"


def input_schema(schema: dict[str, Any] | None) -> dict[str, Any]:
    """The tool's JSON Schema as function-calling parameters: an object schema, `$schema` left out."""
    params = {k: v for k, v in (schema or {}).items() if k != "$schema"}
    if params.get("type") != "object":
        params = {"type": "object", "properties": {}, **{k: v for k, v in params.items() if k != "type"}}
    params.setdefault("properties", {})
    return params


def render_content(blocks: list[Any], structured: Any) -> str:
    """The text of a result's content blocks; binary content is described, not inlined."""
    parts = [_block_text(block) for block in blocks]
    text = "\n".join(p for p in parts if p)
    if not text and structured is not None:
        text = json.dumps(structured, ensure_ascii=False, indent=1)
    return text


def _block_text(block: Any) -> str:
    kind = getattr(block, "type", None)
    if kind == "text":
        return str(block.text)
    if kind in ("image", "audio"):
        return f"[{kind} content: {block.mime_type}, {len(block.data) * 3 // 4} bytes, not shown]"
    if kind == "resource_link":
        return f"[resource: {block.uri}{' (' + block.name + ')' if block.name else ''}]"
    if kind == "resource":
        res = block.resource
        if getattr(res, "text", None) is not None:
            return f"[resource {res.uri}]\n{res.text}"
        return f"[resource {res.uri}: binary, {res.mime_type or 'unknown type'}, not shown]"
    return f"[{kind or 'unknown'} content, not shown]"


def cap(text: str, limit: int) -> str:
    """Keep the head and the tail of a long text, saying how much was left out."""
    data = text.encode()
    if len(data) <= limit:
        return text
    half = limit // 2
    head = data[:half].decode("utf-8", "ignore")
    tail = data[-half:].decode("utf-8", "ignore")
    return f"{head}\n[... {len(data) - 2 * half} bytes of the result left out ...]\n{tail}"
