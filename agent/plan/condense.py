"""Working memory: what the model sees stays within its context budget, without losing what matters.

Two mechanisms (HiAgent): when a subgoal is done, its actions and observations are replaced by a summary; and
within a subgoal, when the prompt grows past the budget, old observations are elided, then old steps dropped.
Pinned, never dropped: the system prompt (task, plan, project instructions), the task, the current subgoal,
and the latest observation. Every condensation is a `condense` event saying what went.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from branchwise.agent.models.base import Message, Model
from branchwise.agent.record.events import Condense, EventBus

TokenCounter = Callable[[list[Message]], int]
DEFAULT_CONTEXT_TOKENS = 32_000
CONTEXT_SHARE = 0.6  # of the model's window, leaving room for the reply
ELIDE_MIN_CHARS = 400
PINNED = ["system prompt (task, plan, project instructions)", "task", "current subgoal", "latest observation"]


def make_counter(model: Model, tools: list[dict[str, Any]]) -> TokenCounter:
    """The prompt's tokens as the model counts them, tool schemas included (they are sent with every call)."""
    return lambda messages: model.count_tokens(messages, tools)


def context_budget(model: Model, configured: int) -> int:
    """The prompt budget: the configured one, else a share of the model's input window."""
    if configured:
        return configured
    window = model.context_window()
    return int(window * CONTEXT_SHARE) if window else DEFAULT_CONTEXT_TOKENS


def step_groups(messages: list[Message], start: int) -> list[tuple[int, int]]:
    """[begin, end) ranges of steps after `start`: an assistant message and the messages answering it."""
    groups: list[tuple[int, int]] = []
    for i in range(start, len(messages)):
        if messages[i]["role"] == "assistant" or not groups:
            groups.append((i, i + 1))
        else:
            groups[-1] = (groups[-1][0], i + 1)
    return groups


class WorkingMemory:
    """Keeps one conversation within a token budget and reports every condensation."""

    def __init__(self, counter: TokenCounter, budget: int, bus: EventBus, *, enabled: bool = True) -> None:
        self.counter, self.budget, self.bus, self.enabled = counter, budget, bus, enabled

    def fit(self, messages: list[Message], pinned: int) -> None:
        """Condense `messages` in place when over budget; the first `pinned` and the last step are kept."""
        if not self.enabled:
            return
        before_tokens, before_count = self.counter(messages), len(messages)
        if before_tokens <= self.budget:
            return
        groups = step_groups(messages, pinned)
        dropped = self._elide(messages, groups[:-1], before_tokens)
        if self.counter(messages) > self.budget:
            dropped += self._drop(messages, pinned)
        if dropped:
            self.bus.emit(
                Condense(
                    reason=f"over the context budget of {self.budget} tokens",
                    dropped=dropped,
                    kept=PINNED,
                    messages_before=before_count,
                    messages_after=len(messages),
                    tokens_before=before_tokens,
                    tokens_after=self.counter(messages),
                )
            )

    def _elide(self, messages: list[Message], groups: list[tuple[int, int]], tokens: int) -> list[str]:
        """Replace old tool outputs, oldest first, by a note until the estimate fits."""
        dropped = []
        for begin, end in groups:
            for i in range(begin, end):
                message = messages[i]
                text = message.get("content")
                if message["role"] != "tool" or not isinstance(text, str) or len(text) < ELIDE_MIN_CHARS:
                    continue
                note = f"[output elided to fit the context budget: {len(text)} characters; run it again if needed]"
                messages[i] = {**message, "content": note}
                tokens -= (len(text) - len(note)) // 4
                dropped.append(f"output of {message.get('name', 'a tool')} call {message.get('tool_call_id', '')}")
                if tokens <= self.budget:
                    return dropped
        return dropped

    def _drop(self, messages: list[Message], pinned: int) -> list[str]:
        """Remove whole old steps (a call and its results together) until the prompt fits."""
        dropped = []
        while self.counter(messages) > self.budget:
            groups = step_groups(messages, pinned)
            if len(groups) <= 1:
                break  # only the latest step is left, and it is pinned
            begin, end = groups[0]
            dropped.append(f"step: {describe_step(messages[begin:end])}")
            del messages[begin:end]
        return dropped

    def replace_subgoal(self, old: list[Message], new: list[Message], *, index: int, title: str, steps: int) -> None:
        """Report that a finished subgoal's steps were replaced by its summary in the next subgoal's prompt."""
        self.bus.emit(
            Condense(
                reason=f"subgoal {index + 1} done: its steps are replaced by a summary",
                dropped=[f"{steps} steps ({len(old)} messages) of subgoal {index + 1}: {title}"],
                kept=PINNED,
                messages_before=len(old),
                messages_after=len(new),
                tokens_before=self.counter(old),
                tokens_after=self.counter(new),
            )
        )


def describe_step(messages: list[Message]) -> str:
    """One line: the calls an assistant message made."""
    calls = [c for m in messages for c in m.get("tool_calls") or []]
    if not calls:
        return (str(messages[0].get("content") or "")[:80]) or "(no tool call)"
    parts = []
    for call in calls:
        fn = call.get("function", {})
        parts.append(f"{fn.get('name')} {_brief(fn.get('arguments'))}")
    return "; ".join(parts)


def _brief(arguments: Any) -> str:
    try:
        data = json.loads(arguments) if isinstance(arguments, str) else arguments or {}
    except json.JSONDecodeError:
        return str(arguments)[:60]
    if not isinstance(data, dict):  # valid JSON that is not an object: the model's mistake, shown as sent
        return str(arguments)[:60]
    value = data.get("command") or data.get("path") or data.get("summary") or ""
    return " ".join(str(value).split())[:80]


def summarize_subgoal(index: int, title: str, messages: list[Message], checks: str) -> str:
    """A deterministic summary of a finished subgoal: each step's calls and the first line of each result."""
    lines = [f"Subgoal {index + 1} is done: {title}"]
    for begin, end in step_groups(messages, 0):
        group = messages[begin:end]
        if group[0]["role"] != "assistant":
            continue
        results = [str(m.get("content") or "").strip().splitlines() for m in group if m["role"] == "tool"]
        first = next((r[0][:100] for r in results if r), "")
        lines.append(f"- {describe_step(group)}" + (f" -> {first}" if first else ""))
    if checks:
        lines.append(checks)
    return "\n".join(lines[:30])
