"""One interactive session's conversation: what each task asked and how it ended, carried into the next task.

Each task is its own run (its own trajectory, budget and snapshots); what the next one is told about the
earlier ones is this condensed record, in the system prompt. Older turns shrink to one line, as the
planner's working memory condenses old steps, and the whole stays under a fixed size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_CARRY_CHARS = 6000
FULL_TURNS = 3
"""The newest turns keep their detail (summary, files, the model's last words); older ones are one line."""


@dataclass
class Turn:
    task: str
    status: str
    summary: str = ""
    changed_files: list[str] = field(default_factory=list)
    run_id: str = ""
    reply: str = ""

    def line(self) -> str:
        return f"- {_one(self.task, 160)} → {self.status}" + (f": {_one(self.summary, 200)}" if self.summary else "")

    def detail(self) -> str:
        parts = [f"- task: {self.task.strip()[:1500]}", f"  result: {self.status}" + (
            f": {self.summary.strip()[:800]}" if self.summary else "")]  # fmt: skip
        if self.changed_files:
            parts.append(f"  changed files: {', '.join(self.changed_files[:30])}")
        if self.reply.strip():
            parts.append(f"  your last words: {self.reply.strip()[:600]}")
        return "\n".join(parts)


@dataclass
class Conversation:
    turns: list[Turn] = field(default_factory=list)
    compacted: int = 0
    """Turns before this index are kept as one line each (/compact)."""

    def add(self, task: str, finished: Any, reply: str = "") -> None:
        self.turns.append(Turn(task, finished.status, finished.summary or "", list(finished.changed_files),
                               finished.run_id, reply))  # fmt: skip

    def carry(self) -> str:
        """The system prompt's note about earlier tasks ("" before the first)."""
        if not self.turns:
            return ""
        full_from = max(self.compacted, len(self.turns) - FULL_TURNS)
        body = [t.line() if i < full_from else t.detail() for i, t in enumerate(self.turns)]
        while len("\n".join(body)) > MAX_CARRY_CHARS and len(body) > 1:
            body.pop(0)
        head = ("Earlier in this interactive session the user gave you these tasks (oldest first); the "
                "workspace already holds their results. The new task may refer to them.")  # fmt: skip
        return head + "\n" + "\n".join(body)

    def compact(self) -> tuple[int, int]:
        """Condense every turn to one line; returns the carry's size before and after."""
        before = len(self.carry())
        self.compacted = len(self.turns)
        return before, len(self.carry())

    def clear(self) -> None:
        self.turns.clear()
        self.compacted = 0

    def resume(self, workspace: Path, run_id: str | None) -> Turn:
        """Continue from a saved run: its task, ending and the model's last reply become the first turn."""
        from branchwise.agent.errors import UsageError
        from branchwise.agent.record.trajectory import list_runs, read_events, runs_dir

        runs = list_runs(workspace)
        if not runs:
            raise UsageError("there are no runs to resume in this repository (see /runs)")
        if run_id is None:
            run_id = runs[-1].run_id
        matches = [r for r in runs if r.run_id == run_id] or [r for r in runs if r.run_id.startswith(run_id)]
        if len(matches) != 1:
            raise UsageError(f"no single run matches {run_id!r} (see /runs)")
        info = matches[0]
        events = read_events(runs_dir(workspace) / info.run_id / "events.jsonl")
        end = next((e for e in reversed(events) if e.type == "run_finished"), None)
        reply = next((e.content for e in reversed(events) if e.type == "model_reply" and e.content), "") or ""
        turn = Turn(info.task, info.status, end.summary if end else "", list(end.changed_files) if end else [],
                    info.run_id, reply)  # fmt: skip
        self.turns.append(turn)
        return turn


def _one(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
