"""Long-term memory at the two ends of a run: what earlier runs taught goes into the prompt and the tools at the
start; what a verified run teaches is reflected on at the end (see agent/memory)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from branchwise.agent.errors import BranchwiseError
from branchwise.agent.memory.base import Memory
from branchwise.agent.memory.retrieve import TokenCounter
from branchwise.agent.memory.shortcuts import ActorCalls
from branchwise.agent.models.base import Model
from branchwise.agent.record.events import CheckResult, EventBus, Warning
from branchwise.agent.record.trajectory import read_events
from branchwise.agent.run.actor import Actor
from branchwise.agent.run.gate import PolicyGate
from branchwise.sandbox.base import SandboxError
from branchwise.sandbox.workspace.snapshots import Workspace
from branchwise.tools import ToolBox, ToolContext


class Learning:
    """One run's use of memory: recall at the start, feedback and reflection at the end."""

    def __init__(self, memory: Memory, model: Model, toolbox: ToolBox, ctx: ToolContext, bus: EventBus,
                 gate: PolicyGate, snapshots: Workspace) -> None:  # fmt: skip
        self.memory, self.model, self.toolbox, self.ctx, self.bus = memory, model, toolbox, ctx, bus
        self.gate, self.snapshots = gate, snapshots
        self.notes = ""

    def calls(self, *, recorded: bool = True) -> ActorCalls:
        """Shortcut steps run as the model's own calls would: validated, gated, sandboxed, and recorded in the
        trajectory unless they only validate a new shortcut (a replay of the run must not see those)."""
        return ActorCalls(Actor(self.toolbox, self.ctx, self.bus if recorded else EventBus(), self.gate))

    def recall(self, task: str) -> str:
        """The notes block for the task (also untrusted text for taint), with its shortcuts added as tools."""
        counter = self._counter()
        recall = self.memory.recall(task, purpose="act", count=counter)
        self.notes = recall.text
        if recall.text:
            self.gate.untrusted(recall.text, "memory")
        for tool in self.memory.shortcut_tools(recall, self.calls(), self.snapshots):
            if tool.name not in self.toolbox.tools:
                self.toolbox.add(tool)
        return recall.text

    def _counter(self) -> TokenCounter:
        return lambda text: self.model.count_tokens([{"role": "user", "content": text}], [])

    def learn(self, run_dir: Path, status: str, checks: list[CheckResult]) -> dict[str, list[Any]]:
        """Feedback on what was retrieved, then reflection if the run's checks passed; the final JSON's part."""
        from branchwise.agent.memory.service import run_summary

        verification = "checks" if status == "completed" and checks and all(c.passed for c in checks) else "none"
        try:
            events = read_events(run_dir / "events.jsonl")
            self.memory.feedback(events, verification)
            if verification != "none":
                self.memory.reflect(events, verification=verification, calls=self.calls(recorded=False),
                                    snapshots=self.snapshots, ctx=self.ctx, model=self.model)  # fmt: skip
            return run_summary(read_events(run_dir / "events.jsonl"))
        except (OSError, sqlite3.Error, SandboxError, BranchwiseError) as exc:  # a help, never why a run fails
            self.bus.emit(Warning(message=f"memory: could not learn from this run: {exc}"))
            return {}
