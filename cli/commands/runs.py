"""`branchwise runs` and `branchwise replay`."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from branchwise.agent.errors import BranchwiseError
from branchwise.agent.record.trajectory import list_runs
from branchwise.agent.run.session import find_workspace
from branchwise.cli.render.output import Output


def list_command(*, as_json: bool, cd: Path | None, out: Output | None = None) -> int:
    out = out or Output()
    workspace = find_workspace((cd or Path.cwd()).resolve())
    runs = list_runs(workspace)
    if as_json:
        out.data([dataclasses.asdict(r) for r in runs])
        return 0
    if not runs:
        out.info(f"no runs yet in {workspace}")
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("run", "started", "status", "steps", "cost", "model", "task"):
        table.add_column(column, no_wrap=column != "task", overflow="ellipsis")
    for r in runs:
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.started)) if r.started else "?"
        task = r.task.strip().splitlines()[0][:60] if r.task.strip() else ""
        table.add_row(r.run_id, started, r.status, str(r.steps), f"${r.cost_usd:.4f}", r.model[-40:], task)
    Console(file=out.out, width=160).print(table)
    return 0


def replay_command(run_id: str, *, cd: Path | None, out: Output | None = None) -> int:
    out = out or Output()
    try:
        from branchwise.agent.record.replay import replay_run

        workspace = find_workspace((cd or Path.cwd()).resolve())
        report = replay_run(workspace, run_id, notify=out.info)
    except BranchwiseError as err:
        out.error(str(err))
        return err.exit_code
    out.info(report.summary())
    return 0 if report.all_match else 1
