"""One run with long-term memory wired in the way the run path is meant to wire it (see agent/memory/service.py):
recall before the run (notes in the system prompt, shortcuts as tools, the notes marked as untrusted content
for taint), feedback and reflection after it with a replay runner over the session's gate and sandbox.

The benchmark and the integration tests use it until the run path does this itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from branchwise.agent.config.layers import load_config
from branchwise.agent.memory.service import LearnReport, LongTermMemory
from branchwise.agent.memory.shortcuts import ActorCalls
from branchwise.agent.models.base import Model
from branchwise.agent.record.events import EventBus, RunFinished
from branchwise.agent.record.trajectory import read_events
from branchwise.agent.run.actor import Actor
from branchwise.agent.run.session import Session
from branchwise.agent.run.wiring import make_gate, make_sandbox_for
from branchwise.sandbox.workspace.safefs import WorkspaceFS
from branchwise.sandbox.workspace.snapshots import ShadowGitWorkspace
from branchwise.tools import ToolBox, ToolContext, default_tools

# Each step of a shortcut goes through the policy on its own; the macro call itself needs no question.
SHORTCUT_RULE = {
    "name": "shortcut-steps-are-gated",
    "tool": "shortcut_*",
    "decision": "allow",
    "justification": "a shortcut's steps are each checked by the policy",
}


class MemorySession(Session):
    """A session whose system prompt carries the notes block."""

    notes: str = ""

    def system_prompt(self) -> str:
        base = super().system_prompt()
        return f"{base}\n{self.notes}\n" if self.notes else base


@dataclass
class RunResult:
    finished: RunFinished
    events: list[Any]
    run_dir: Path
    learned: LearnReport | None = None
    retrieved: list[str] = field(default_factory=list)
    feedback: list[Any] = field(default_factory=list)


def run_task(
    repo: Path,
    task: str,
    checks: list[str],
    model: Model,
    memory: LongTermMemory | None,
    *,
    env: dict[str, str] | None = None,
    flags: dict[str, Any] | None = None,
    learn: bool = True,
) -> RunResult:
    """Run one task headless on `repo` (planner off), with memory retrieved and written around it."""
    all_flags = {"planner.enabled": False, "checks": checks, "policy.rules": [SHORTCUT_RULE], **(flags or {})}
    loaded = load_config(repo, flags=all_flags, env=env)
    session = MemorySession(
        loaded=loaded, workspace=repo, sandbox=make_sandbox_for(loaded.config, repo), model=model, workdir=repo
    )
    retrieved: list[str] = []
    with session:
        calls = ActorCalls(Actor(session.toolbox, session.ctx, session.bus, session.gate))
        if memory is not None:
            memory.bus = session.bus
            recall = memory.recall(task)
            retrieved = recall.ids
            session.notes = recall.text
            session.gate.untrusted(recall.text, "memory")
            for tool in memory.shortcut_tools(recall, calls, session.snapshots):
                session.toolbox.add(tool)
        finished = session.run(task)
        events = read_events(session.run_dir / "events.jsonl")
        result = RunResult(finished, events, session.run_dir, retrieved=retrieved)
        if memory is not None:
            result.feedback = memory.feedback(events)
            if learn:
                result.learned = memory.reflect(events, calls=calls, snapshots=session.snapshots, ctx=session.ctx)
            memory.bus = None
    return result


@contextmanager
def replay_tools(
    repo: Path, *, env: dict[str, str] | None = None, session: str = "memory-replay"
) -> Iterator[tuple[ActorCalls, ShadowGitWorkspace, ToolContext]]:
    """What reflecting on a finished run (made elsewhere, e.g. by `branchwise run`) needs to replay shortcuts:
    a runner through a fresh policy gate and sandbox for the workspace, and its snapshots."""
    loaded = load_config(repo, env=env)
    sandbox = make_sandbox_for(loaded.config, repo)
    tools = loaded.config.tools
    ctx = ToolContext(
        sandbox=sandbox,
        fs=WorkspaceFS(repo),
        shell_timeout_s=tools.shell_timeout_s,
        output_limit_bytes=tools.output_limit_bytes,
    )
    bus = EventBus()
    gate = make_gate(loaded.config, repo, bus, approver=None)
    snapshots = ShadowGitWorkspace(repo, session=session)
    try:
        yield ActorCalls(Actor(ToolBox(default_tools()), ctx, bus, gate)), snapshots, ctx
    finally:
        sandbox.close()
        snapshots.drop()
