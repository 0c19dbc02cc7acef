"""`branchwise undo [RUN]` and `branchwise diff [RUN]`: a run's changes, from its shadow snapshots.

Both read the run's record (.branchwise/runs/<id>/events.jsonl): `run_started.start_snapshot` and, when
the run recorded it, `run_finished.end_snapshot`. The snapshots cover everything the run changed, shell
commands included, and nothing that is ignored (.gitignore, node_modules, virtualenvs).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from branchwise.agent.errors import BranchwiseError, UsageError
from branchwise.cli.render.output import Output
from branchwise.sandbox.base import SandboxError


@dataclass(frozen=True)
class RunSnapshots:
    """The snapshots one run recorded."""

    run_id: str
    start: str
    end: str | None


def find_run(workspace: Path, run_id: str | None) -> RunSnapshots:
    """The named run (default: the latest one that recorded a start snapshot)."""
    from branchwise.agent.record.events import RunFinished, RunStarted
    from branchwise.agent.record.trajectory import read_events, runs_dir

    base = runs_dir(workspace)
    if run_id:
        names = [run_id]
    else:
        names = sorted((p.name for p in base.iterdir() if p.is_dir()), reverse=True) if base.is_dir() else []
    for name in names:
        path = base / name / "events.jsonl"
        if not path.is_file():
            if run_id:
                raise UsageError(f"no run {run_id!r} in {workspace} (see `branchwise runs`)")
            continue
        events = read_events(path)
        start = next((e.start_snapshot for e in events if isinstance(e, RunStarted) and e.start_snapshot), None)
        if start is None:
            if run_id:
                raise UsageError(f"run {run_id} recorded no start snapshot")
            continue
        end = next((getattr(e, "end_snapshot", None) for e in reversed(events) if isinstance(e, RunFinished)), None)
        return RunSnapshots(name, start, end)
    raise UsageError(f"no run with snapshots in {workspace} (see `branchwise runs`)")


def undo_command(run_id: str | None, *, to: str | None, force: bool, cd: Path | None, out: Output | None = None) -> int:
    """Put the working tree back as it was before the run (or at snapshot `to`)."""
    out = out or Output()
    try:
        return _undo(run_id, to=to, force=force, cd=cd, out=out)
    except BranchwiseError as err:
        out.error(str(err))
        return err.exit_code
    except SandboxError as err:
        out.error(f"cannot restore: {err}")
        return 4


def _undo(run_id: str | None, *, to: str | None, force: bool, cd: Path | None, out: Output) -> int:
    from branchwise.cli.common import workspace_for
    from branchwise.sandbox.workspace.snapshots import ShadowGitWorkspace

    workspace = workspace_for(cd)
    run = None if to else find_run(workspace, run_id)
    target = to or run.start  # type: ignore[union-attr]
    snaps = ShadowGitWorkspace(workspace, session=f"undo-{os.getpid()}")
    snaps.info(target)  # fails cleanly when the snapshot is gone
    if run is not None and run.end is not None and not force:
        later = snaps.changed_paths(run.end)
        if later:
            shown = ", ".join(later[:5]) + (" …" if len(later) > 5 else "")
            raise BranchwiseError(
                f"{len(later)} file(s) changed after run {run.run_id} ended ({shown}); undo would discard that "
                "too: use --force (the current state is kept as a snapshot either way)"
            )
    before = snaps.snapshot(f"before undo of {run.run_id if run else target[:12]}")
    changed = snaps.changed_paths(target, before)
    snaps.restore(target)
    snaps.keep_only([before])  # the ref keeps the pre-undo state restorable
    what = f"before run {run.run_id}" if run else f"at snapshot {target[:12]}"
    out.info(f"restored the working tree to how it was {what}: {len(changed)} file(s) put back")
    out.info(f"the state before this undo is snapshot {before}; to return to it: branchwise undo --to {before}")
    staged = _staged(workspace, set(changed))
    if staged:
        shown = " ".join(staged[:5]) + (" …" if len(staged) > 5 else "")
        out.warn(f"git's index still stages changes to {len(staged)} of these file(s) (git add or git mv by the run?): "
                 f"git restore --staged {shown}")  # fmt: skip
    return 0


def _staged(workspace: Path, paths: set[str]) -> list[str]:
    """Which of `paths` the index stages differently from HEAD (snapshots restore files, not the index)."""
    import git

    from branchwise.tools.git.isolation import GitError, open_repo

    try:
        with open_repo(workspace) as repo:
            raw = repo.git.execute(
                ["git", "diff", "--cached", "--name-only", "-z", "--no-renames"], stdout_as_string=False
            )
    except (GitError, git.GitCommandError, OSError):  # not a repository, no commits yet: nothing to say
        return []
    return sorted(p for p in raw.decode("utf-8", "surrogateescape").split("\0") if p in paths)


def diff_command(run_id: str | None, *, stat: bool, cd: Path | None, out: Output | None = None) -> int:
    """Print what a run changed: a patch, or with `stat` the changed files."""
    out = out or Output()
    try:
        return _diff(run_id, stat=stat, cd=cd, out=out)
    except BranchwiseError as err:
        out.error(str(err))
        return err.exit_code
    except SandboxError as err:
        out.error(f"cannot diff: {err}")
        return 4


def _diff(run_id: str | None, *, stat: bool, cd: Path | None, out: Output) -> int:
    from branchwise.cli.common import workspace_for
    from branchwise.sandbox.workspace.snapshots import ShadowGitWorkspace

    workspace = workspace_for(cd)
    run = find_run(workspace, run_id)
    snaps = ShadowGitWorkspace(workspace, session=f"diff-{os.getpid()}")
    try:
        if run.end is None:
            out.warn(f"run {run.run_id} recorded no end snapshot: showing its start against the files as they are now")
        diff = snaps.diff(run.start, run.end)
    finally:
        snaps.drop()
    for warning in diff.warnings:
        out.warn(warning)
    if diff.is_empty:
        out.info(f"run {run.run_id} changed nothing")
        return 0
    if stat:
        for change in diff.files:
            out.info(f"{change.status:13} {change.path}")
        for d in diff.empty_dirs_added:
            out.info(f"{'added':13} {d}/ (empty directory)")
        for d in diff.empty_dirs_removed:
            out.info(f"{'deleted':13} {d}/ (empty directory)")
        return 0
    out.out.write(diff.patch)
    return 0
