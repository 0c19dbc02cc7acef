"""Replay: re-run a recorded run with its recorded model replies, in a scratch copy, and compare observations."""

from __future__ import annotations

import difflib
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from branchwise.agent.config.layers import LoadedConfig
from branchwise.agent.config.schema import Config
from branchwise.agent.errors import UsageError
from branchwise.agent.models.base import Reply
from branchwise.agent.models.scripted import ScriptedModel
from branchwise.agent.record.events import EventBus, ModelReply, RunStarted, ToolResult
from branchwise.agent.record.normalise import normalise
from branchwise.agent.record.trajectory import read_events, runs_dir
from branchwise.sandbox.base import SandboxError
from branchwise.sandbox.workspace.shadowgit import default_git_dir
from branchwise.sandbox.workspace.snapshots import ShadowGitWorkspace


@dataclass
class StepReport:
    """One tool result, recorded versus replayed."""

    index: int
    step: int
    tool: str
    matches: bool
    detail: str = ""


@dataclass
class ReplayReport:
    run_id: str
    scratch: Path
    steps: list[StepReport] = field(default_factory=list)
    status: str = ""
    recorded_status: str = ""

    @property
    def all_match(self) -> bool:
        return bool(self.steps) and all(s.matches for s in self.steps) and self.status == self.recorded_status

    def summary(self) -> str:
        lines = [f"replayed run {self.run_id} in {self.scratch}"]
        for s in self.steps:
            lines.append(f"  step {s.step:>3} {s.tool:<12} {'match' if s.matches else 'DIFFERS'}{s.detail}")
        same = sum(s.matches for s in self.steps)
        lines.append(
            f"{same} of {len(self.steps)} observations match; status {self.status} (recorded: {self.recorded_status})"
        )
        return "\n".join(lines)


def load_recording(workspace: Path, run_id: str) -> tuple[RunStarted, list[Reply], list[ToolResult], str]:
    path = runs_dir(workspace) / run_id / "events.jsonl"
    if not path.is_file():
        raise UsageError(f"no run {run_id!r} in {workspace} (see `branchwise runs`)")
    events = read_events(path)
    start = next((e for e in events if isinstance(e, RunStarted)), None)
    if start is None:
        raise UsageError(f"run {run_id} has no run_started event; nothing to replay")
    replies = [
        Reply(content=e.content, tool_calls=e.tool_calls, usage=e.usage, cost_usd=e.cost_usd)
        for e in events
        if isinstance(e, ModelReply)
    ]
    results = [e for e in events if isinstance(e, ToolResult)]
    status = next((e.status for e in reversed(events) if e.type == "run_finished"), "incomplete")
    return start, replies, results, status


def prepare_scratch(workspace: Path, start: RunStarted, notify: Callable[[str], None]) -> Path:
    """A copy of the workspace, put back into the state recorded when the run started."""
    scratch = Path(tempfile.mkdtemp(prefix="branchwise-replay-")) / workspace.name
    shutil.copytree(workspace, scratch, symlinks=True, ignore=shutil.ignore_patterns("runs"))
    if start.start_snapshot:
        try:
            shadow = ShadowGitWorkspace(scratch, git_dir=default_git_dir(workspace), session="replay")
            shadow.restore(start.start_snapshot)
            return scratch
        except SandboxError as exc:
            notify(f"warning: cannot restore the recorded start state ({exc}); replaying on the current files")
    else:
        notify("warning: the run recorded no start snapshot; replaying on the current files")
    return scratch


def replay_run(workspace: Path, run_id: str, *, notify: Callable[[str], None] = print) -> ReplayReport:
    """Re-execute the run in a scratch copy and compare each tool result with the recorded one."""
    from branchwise.agent.run.session import Session
    from branchwise.agent.run.wiring import make_sandbox_for

    start, replies, recorded, recorded_status = load_recording(workspace, run_id)
    scratch = prepare_scratch(workspace, start, notify)
    config = Config.model_validate(start.config)
    loaded = LoadedConfig(config=config, sources={})
    replayed: list[ToolResult] = []
    bus = EventBus()
    bus.subscribe(lambda e: replayed.append(e) if isinstance(e, ToolResult) else None)
    model = ScriptedModel(replies, name=f"replay:{run_id}")
    # A run made with --dangerously-full-access replays the same way; everything else is sandboxed.
    sandbox = make_sandbox_for(config, scratch, full_access=start.sandbox.get("kind") == "host")
    with Session(loaded=loaded, workspace=scratch, sandbox=sandbox, model=model, bus=bus) as session:
        finished = session.run(start.task)
    report = ReplayReport(run_id=run_id, scratch=scratch, status=finished.status, recorded_status=recorded_status)
    for index, old in enumerate(recorded):
        new = replayed[index] if index < len(replayed) else None
        report.steps.append(_compare(index, old, new, workspace, scratch))
    for index in range(len(recorded), len(replayed)):
        report.steps.append(
            StepReport(index, replayed[index].step, replayed[index].name, False, "  (not in the recording)")
        )
    return report


def _compare(index: int, old: ToolResult, new: ToolResult | None, workspace: Path, scratch: Path) -> StepReport:
    if new is None:
        return StepReport(index, old.step, old.name, False, "  (the replay stopped before this step)")
    a, b = normalise(old.output, str(workspace)), normalise(new.output, str(scratch))
    if a == b and old.is_error == new.is_error:
        return StepReport(index, old.step, old.name, True)
    diff = list(difflib.unified_diff(a.splitlines(), b.splitlines(), lineterm="", n=0))[2:]
    changes = [d for d in diff if d[:1] in "+-"]
    first = [next((d for d in changes if d[0] == sign), "") for sign in "-+"]
    return StepReport(index, old.step, old.name, False, "  " + " | ".join(d[:100] for d in first if d))
