"""Telling replies apart and describing them: keys for dedupe and loop detection, one-line summaries."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from branchwise.agent.models.base import Reply
from branchwise.agent.record.events import ToolCallRecord
from branchwise.agent.record.normalise import normalise
from branchwise.agent.search.tree import Node, SearchTree
from branchwise.tools import Observation


def action_key(calls: list[ToolCallRecord]) -> str:
    """A short hash of a reply's calls, equal for replies that would do the same thing."""
    return hashlib.sha256(json.dumps([(c.name, c.args_key()) for c in calls]).encode()).hexdigest()[:16]


def summarize(reply: Reply) -> str:
    """One line per reply: its tool calls with their most telling argument."""
    if not reply.tool_calls:
        return "(no tool call)"
    parts = []
    for call in reply.tool_calls:
        args = call.arguments or {}
        detail = args.get("command") or args.get("path") or args.get("pattern") or args.get("summary") or ""
        detail = " ".join(str(detail).split())
        parts.append(f"{call.name}: {detail[:80]}" if detail else call.name)
    return "; ".join(parts)


def short_outcome(node: Node) -> str:
    for message in reversed(node.messages):
        if message.get("role") == "tool":
            text = " ".join(str(message.get("content", "")).split())
            return text[:200]
    return ""


def alternatives_note(replies: list[Reply]) -> str:
    listed = "\n".join(f"- {summarize(r)}" for r in replies)
    return f"Propose a different next action than these alternatives already proposed:\n{listed}"


def path_observations(tree: SearchTree, node: Node) -> set[tuple[str, str, str]]:
    """(tool, arguments, normalised output) of every call on the path to `node`, for loop detection."""
    seen = set()
    for ancestor in tree.path(node.parent or 0):
        calls: dict[str, ToolCallRecord] = {}
        for message in ancestor.messages:
            for raw in message.get("tool_calls") or []:
                fn = raw["function"]
                calls[raw["id"]] = ToolCallRecord(id=raw["id"], name=fn["name"], raw_arguments=fn["arguments"])
            if message.get("role") == "tool" and message.get("tool_call_id") in calls:
                call = calls[message["tool_call_id"]]
                seen.add((call.name, call.args_key(), normalise(message.get("content", ""))))
    return seen


def page_seen(results: list[tuple[ToolCallRecord, Observation]], run_dir: Path | None) -> tuple[str | None, str | None]:
    """The URL the step's last browser call ended on, and its newest picture relative to `run_dir` (for the tree)."""
    url = picture = None
    for call, obs in results:
        if not call.name.startswith("browser_") or obs.is_error:
            continue
        url = obs.data.get("url") if isinstance(obs.data.get("url"), str) else url
        for key in ("image", "thumbnail"):  # the model's own screenshot first
            path = obs.data.get(key)
            if isinstance(path, str) and run_dir is not None and Path(path).is_relative_to(run_dir):
                picture = Path(path).relative_to(run_dir).as_posix()
                break
    return url, picture
