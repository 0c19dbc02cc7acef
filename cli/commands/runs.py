"""`branchwise runs`, `branchwise runs prune` and `branchwise replay`."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from branchwise.agent.record.trajectory import list_runs
from branchwise.cli.common import workspace_for
from branchwise.cli.render.inert import inert
from branchwise.cli.render.output import Output
from branchwise.cli.render.tables import print_table


def list_command(*, as_json: bool, cd: Path | None, out: Output | None = None) -> int:
    out = out or Output()
    workspace = workspace_for(cd)
    runs = list_runs(workspace)
    if as_json:
        out.data([dataclasses.asdict(r) for r in runs])
        return 0
    if not runs:
        out.info(f"no runs yet in {workspace}")
        return 0
    rows = []
    for r in runs:
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.started)) if r.started else "?"
        task = r.task.strip().splitlines()[0][:60] if r.task.strip() else ""
        rows.append([r.run_id, started, r.status, str(r.steps), f"${r.cost_usd:.4f}", r.model[-40:], task])
    print_table(out.out, ["run", "started", "status", "steps", "cost", "model", "task"], rows, wrap=["task"])
    return 0


def replay_command(
    run_id: str, *, cd: Path | None, out: Output | None = None, keep: bool = False, full_access: bool = False
) -> int:
    out = out or Output()
    from branchwise.agent.config.layers import load_config
    from branchwise.agent.record.replay import replay_run

    workspace = workspace_for(cd)
    loaded = load_config(workspace)  # the user's sandbox and policy: never the recording's
    report = replay_run(workspace, run_id, loaded=loaded, full_access=full_access, keep=keep,
                        notify=lambda text: out.info(inert(text)))  # fmt: skip
    out.info(inert(report.summary()))  # tool names and output lines come from the recording and the replay
    return 0 if report.all_match else 1


def prune_command(*, keep: int | None, dry_run: bool, cd: Path | None, out: Output | None = None) -> int:
    import shutil

    from branchwise.agent.record.trajectory import is_real_runs_dir, runs_dir
    from branchwise.sandbox.workspace.gc import collect, remove_orphans
    from branchwise.sandbox.workspace.shadowgit import default_git_dir

    out = out or Output()
    workspace = workspace_for(cd)
    base = runs_dir(workspace)
    runs = list_runs(workspace)
    doomed = runs[: max(0, len(runs) - keep)] if keep is not None else []
    verb = "would delete" if dry_run else "deleted"
    if doomed and is_real_runs_dir(workspace):
        for run in doomed:
            if not dry_run:
                shutil.rmtree(base / run.run_id, ignore_errors=True)
        out.info(f"{verb} {len(doomed)} run log{'s' if len(doomed) != 1 else ''} (kept the newest {keep})")
    git_dir = default_git_dir(workspace)
    if (git_dir / "HEAD").is_file() and not dry_run:
        live = {p.name for p in base.iterdir() if p.is_dir()} if is_real_runs_dir(workspace) else set()
        before, after = collect(git_dir, live_sessions=live)
        out.info(f"shadow repository {git_dir}: {before / 1e6:.1f} MB -> {after / 1e6:.1f} MB")
    orphans = remove_orphans(dry_run=dry_run)
    for repo in orphans:
        out.info(f"{verb} {repo.git_dir} ({repo.size_bytes / 1e6:.1f} MB): its workspace {repo.workspace} is gone")
    if not (doomed or orphans or (git_dir / "HEAD").is_file()):
        out.info(f"nothing to prune for {workspace}")
    return 0
