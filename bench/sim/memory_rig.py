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
from branchwise.agent.memory.base import NoMemory
from branchwise.agent.memory.service import LongTermMemory
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


@dataclass
class RunResult:
    finished: RunFinished
    events: list[Any]
    run_dir: Path
    retrieved: list[str] = field(default_factory=list)
    feedback: list[Any] = field(default_factory=list)
    """The run's `memory_written` events with op feedback (reason: helped, hurt, not followed)."""
    reflector_calls: int = 0


def run_task(
    repo: Path,
    task: str,
    checks: list[str],
    model: Model,
    memory: LongTermMemory | None,
    *,
    env: dict[str, str] | None = None,
    flags: dict[str, Any] | None = None,
) -> RunResult:
    """Run one task headless on `repo` (planner off) through the real run path, which recalls from `memory` at
    the start and gives feedback and reflects at the end."""
    all_flags = {"planner.enabled": False, "checks": checks, "policy.rules": [SHORTCUT_RULE], **(flags or {})}
    loaded = load_config(repo, flags=all_flags, env=env)
    bus = EventBus()
    if memory is not None:
        memory.bus = bus
    session = Session(loaded=loaded, workspace=repo, sandbox=make_sandbox_for(loaded.config, repo), model=model,
                      workdir=repo, bus=bus, memory=memory or NoMemory())  # fmt: skip
    try:
        with session:
            finished = session.run(task)
    finally:
        if memory is not None:
            memory.bus = None
    events = read_events(session.run_dir / "events.jsonl")
    retrieved = next((e.ids for e in events if e.type == "memory_retrieved" and e.purpose == "act"), [])
    feedback = [e for e in events if e.type == "memory_written" and e.op == "feedback"]
    reflected = sum(1 for e in events if e.type == "model_reply" and e.purpose == "reflect")
    return RunResult(finished, events, session.run_dir, retrieved, feedback, reflected)


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
