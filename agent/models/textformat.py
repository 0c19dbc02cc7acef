"""Tool calls written in plain text, for models or servers without native tool calling.

The model writes one block per call (the format many open models are trained on)::

    <tool_call>
    {"name": "shell", "arguments": {"command": "ls"}}
    </tool_call>
"""

from __future__ import annotations

import json
import re
from typing import Any

from branchwise.agent.models.base import Message
from branchwise.agent.record.events import ToolCallRecord

_BLOCK = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)
_NAME = re.compile(r'"name"\s*:\s*"([^"]+)"')


def instructions(tools: list[dict[str, Any]]) -> str:
    """The part of the system prompt that teaches the format and lists the tools."""
    specs = "\n".join(json.dumps(t["function"], ensure_ascii=False) for t in tools)
    return (
        "\n\nTools are called by writing blocks in your reply, exactly like this (one block per call):\n"
        '<tool_call>\n{"name": "TOOL_NAME", "arguments": {...}}\n</tool_call>\n'
        "The arguments must be a JSON object matching the tool's parameters. After your reply the results come "
        f"back in the next message. Available tools (JSON schemas):\n{specs}"
    )


def parse(text: str, *, id_prefix: str = "call") -> tuple[str, list[ToolCallRecord]]:
    """Split a reply into its prose and its tool calls; unparsable calls keep their raw text."""
    calls = []
    for index, match in enumerate(_BLOCK.finditer(text)):
        body = match.group(1).strip()
        fenced = _FENCE.match(body)
        if fenced:
            body = fenced.group(1)
        call_id = f"{id_prefix}_{index}"
        try:
            data = json.loads(body)
        except json.JSONDecodeError:
            name = _NAME.search(body)
            calls.append(ToolCallRecord(id=call_id, name=name.group(1) if name else "?", raw_arguments=body))
            continue
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            calls.append(ToolCallRecord(id=call_id, name="?", raw_arguments=body))
            continue
        arguments = data.get("arguments", {})
        if isinstance(arguments, str):
            calls.append(ToolCallRecord(id=call_id, name=data["name"], raw_arguments=arguments))
        else:
            calls.append(ToolCallRecord(id=call_id, name=data["name"], arguments=arguments))
    prose = _BLOCK.sub("", text).strip()
    return prose, calls


def render_call(call: dict[str, Any]) -> str:
    """An OpenAI-style assistant tool call written back as a text block (for the conversation history)."""
    function = call["function"]
    try:
        arguments: Any = json.loads(function.get("arguments") or "{}")
    except json.JSONDecodeError:
        arguments = function.get("arguments")
    return "<tool_call>\n" + json.dumps({"name": function["name"], "arguments": arguments}) + "\n</tool_call>"


def to_text_messages(messages: list[Message], tools: list[dict[str, Any]]) -> list[Message]:
    """Rewrite a tool-calling conversation into plain system/user/assistant messages."""
    out: list[Message] = []
    for message in messages:
        role = message["role"]
        if role == "system":
            out.append({"role": "system", "content": (message.get("content") or "") + instructions(tools)})
        elif role == "assistant":
            parts = [message.get("content") or ""] + [render_call(c) for c in message.get("tool_calls", [])]
            out.append({"role": "assistant", "content": "\n".join(p for p in parts if p)})
        elif role == "tool":
            text = f'<tool_result name="{message.get("name", "")}">\n{message.get("content", "")}\n</tool_result>'
            _append_user(out, text)
        else:
            _append_user(out, message.get("content") or "")
    return out


def _append_user(out: list[Message], text: str) -> None:
    """Consecutive results become one user message, since many chat templates require alternating roles."""
    if out and out[-1]["role"] == "user":
        out[-1] = {"role": "user", "content": out[-1]["content"] + "\n\n" + text}
    else:
        out.append({"role": "user", "content": text})
