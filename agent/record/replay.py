"""Replay: re-run a recorded run with its recorded model replies, in a scratch copy, and compare observations.

A recording is untrusted input (a repository can ship one): the sandbox and the policy come from the user's
configuration and flags, never from the recording; what the recording contributes (checks, limits, search
and planner settings) may only narrow the user's tool limits. The scratch copy is made without following
links or reading special files, keeps sparse files sparse, and is removed afterwards unless kept.
"""

from __future__ import annotations

import difflib
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from branchwise.agent.config.layers import LoadedConfig
from branchwise.agent.config.schema import Config
from branchwise.agent.errors import UsageError
from branchwise.agent.models.base import Reply
from branchwise.agent.models.scripted import ScriptedModel
from branchwise.agent.record.events import EventBus, ModelReply, RunStarted, ToolResult
from branchwise.agent.record.normalise import normalise
from branchwise.agent.record.scratch import copy_workspace
from branchwise.agent.record.trajectory import is_real_runs_dir, read_events, runs_dir
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


# What a recording's config may contribute; everything else (sandbox, policy, model, llm) is the user's.
RECORDED_SECTIONS = ("checks", "limits", "search", "planner", "tools")


@dataclass
class ReplayReport:
    run_id: str
    scratch: Path
    steps: list[StepReport] = field(default_factory=list)
    status: str = ""
    recorded_status: str = ""
    kept: bool = False

    @property
    def all_match(self) -> bool:
        return bool(self.steps) and all(s.matches for s in self.steps) and self.status == self.recorded_status

    def summary(self) -> str:
        where = f"in {self.scratch}" if self.kept else "in a scratch copy (removed; --keep keeps it)"
        lines = [f"replayed run {self.run_id} {where}"]
        for s in self.steps:
            lines.append(f"  step {s.step:>3} {s.tool:<12} {'match' if s.matches else 'DIFFERS'}{s.detail}")
        same = sum(s.matches for s in self.steps)
        lines.append(
            f"{same} of {len(self.steps)} observations match; status {self.status} (recorded: {self.recorded_status})"
        )
        return "\n".join(lines)


def load_recording(workspace: Path, run_id: str) -> tuple[RunStarted, list[Reply], list[ToolResult], str]:
    path = runs_dir(workspace) / run_id / "events.jsonl"
    if "/" in run_id or run_id in ("", ".", "..") or not is_real_runs_dir(workspace) or not path.is_file():
        raise UsageError(f"no run {run_id!r} in {workspace} (see `branchwise runs`)")
    try:
        events = read_events(path)
    except (OSError, SandboxError, ValueError) as exc:  # ValueError: bad JSON, UTF-8 or event
        raise UsageError(f"run {run_id}: cannot read its recording ({str(exc).splitlines()[0][:200]})") from None
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
    skipped = copy_workspace(workspace, scratch, skip=[Path(".branchwise") / "runs"])
    if skipped:
        notify(f"warning: not copied into the replay: {', '.join(skipped[:5])} (not regular files, links or folders)")
    if start.start_snapshot:
        shadow = None
        try:
            shadow = ShadowGitWorkspace(scratch, git_dir=default_git_dir(workspace), session="replay")
            shadow.restore(start.start_snapshot)
            return scratch
        except SandboxError as exc:
            notify(f"warning: cannot restore the recorded start state ({exc}); replaying on the current files")
        finally:
            if shadow is not None:
                shadow.drop()
    else:
        notify("warning: the run recorded no start snapshot; replaying on the current files")
    return scratch


def replay_config(user: Config, recorded: Any, notify: Callable[[str], None]) -> Config:
    """The user's configuration, with the recording's checks, limits and search settings where they are valid
    and do not raise the user's output limit; never the recording's sandbox, policy, model or llm settings."""
    sections = {k: recorded[k] for k in RECORDED_SECTIONS if isinstance(recorded, dict) and k in recorded}
    try:
        merged = Config.model_validate({**user.model_dump(), **sections})
    except ValidationError:
        notify("warning: the recording's settings are not valid; replaying with yours")
        return user
    limit = min(merged.tools.output_limit_bytes, user.tools.output_limit_bytes)
    return merged.model_copy(update={"tools": merged.tools.model_copy(update={"output_limit_bytes": limit})})


def replay_run(
    workspace: Path,
    run_id: str,
    *,
    loaded: LoadedConfig,
    full_access: bool = False,
    keep: bool = False,
    notify: Callable[[str], None] = print,
) -> ReplayReport:
    """Re-execute the run in a scratch copy and compare each tool result with the recorded one.

    `loaded` is the user's configuration (with the repository's narrowing) and `full_access` the user's own
    --dangerously-full-access: the recording decides neither. The scratch copy is removed unless `keep`."""
    from branchwise.agent.run.session import Session
    from branchwise.agent.run.wiring import make_sandbox_for

    start, replies, recorded, recorded_status = load_recording(workspace, run_id)
    config = replay_config(loaded.config, start.config, notify)
    scratch = prepare_scratch(workspace, start, notify)
    try:
        replayed: list[ToolResult] = []
        bus = EventBus()
        bus.subscribe(lambda e: replayed.append(e) if isinstance(e, ToolResult) else None)
        model = ScriptedModel(replies, name=f"replay:{run_id}")
        sandbox = make_sandbox_for(config, scratch, full_access=full_access)
        session_config = LoadedConfig(config=config, sources=loaded.sources)
        with Session(loaded=session_config, workspace=scratch, sandbox=sandbox, model=model, bus=bus) as session:
            finished = session.run(start.task)
    finally:
        if not keep:
            remove_scratch(scratch)
    report = ReplayReport(run_id, scratch, status=finished.status, recorded_status=recorded_status, kept=keep)
    for index, old in enumerate(recorded):
        new = replayed[index] if index < len(replayed) else None
        report.steps.append(_compare(index, old, new, workspace, scratch))
    for index in range(len(recorded), len(replayed)):
        report.steps.append(
            StepReport(index, replayed[index].step, replayed[index].name, False, "  (not in the recording)")
        )
    return report


def remove_scratch(scratch: Path) -> None:
    """Delete a replay's scratch copy and the snapshots its session kept of it."""
    shutil.rmtree(default_git_dir(scratch), ignore_errors=True)
    shutil.rmtree(scratch.parent, ignore_errors=True)


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
