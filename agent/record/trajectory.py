"""Trajectories: every event appended to .branchwise/runs/<run_id>/events.jsonl as it happens."""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from branchwise.agent.record.events import EVENT_ADAPTER, RunFinished, RunStarted

# Events after which the file is fsync'ed: the end of a step and the end of the run.
_SYNC_TYPES = frozenset({"step_finished", "run_finished"})


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def runs_dir(workspace: Path) -> Path:
    return workspace / ".branchwise" / "runs"


def prepare_runs_dir(workspace: Path) -> Path:
    """Create .branchwise/runs, keeping run logs out of the user's git status."""
    path = runs_dir(workspace)
    path.mkdir(parents=True, exist_ok=True)
    ignore = path.parent / ".gitignore"
    if not ignore.exists():
        # Everything here (this file too) stays out of git status, except a project config worth committing.
        ignore.write_text(
            "# written by branchwise: run logs stay out of git; config.toml may be committed\n*\n!config.toml\n"
        )
    return path


class TrajectoryWriter:
    """An event subscriber: one JSON line per event, written with a single write() each."""

    def __init__(self, run_dir: Path) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        self.path = run_dir / "events.jsonl"
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)

    def __call__(self, event: Any) -> None:
        if self._fd is None:
            return
        os.write(self._fd, (event.model_dump_json() + "\n").encode("utf-8"))
        if event.type in _SYNC_TYPES:
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def read_events(path: Path) -> list[Any]:
    """Parse events.jsonl; a line cut short by a crash at the very end is skipped."""
    events = []
    lines = path.read_text(encoding="utf-8").split("\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            events.append(EVENT_ADAPTER.validate_json(line))
        except ValidationError:
            if number >= len(lines) - 1:
                break  # the last line may be half-written if the process was killed
            raise
    return events


@dataclass
class RunInfo:
    """One past run, as `branchwise runs` lists it."""

    run_id: str
    started: float
    task: str
    model: str
    status: str
    steps: int
    cost_usd: float


def list_runs(workspace: Path) -> list[RunInfo]:
    """Past runs of a workspace, oldest first; a run without run_finished shows as 'incomplete'."""
    out: list[RunInfo] = []
    base = runs_dir(workspace)
    if not base.is_dir():
        return out
    for run_dir in sorted(p for p in base.iterdir() if (p / "events.jsonl").is_file()):
        try:
            events = read_events(run_dir / "events.jsonl")
        except (ValidationError, json.JSONDecodeError, OSError):
            continue
        start = next((e for e in events if isinstance(e, RunStarted)), None)
        end = next((e for e in reversed(events) if isinstance(e, RunFinished)), None)
        steps = max((e.step for e in events), default=0)
        out.append(
            RunInfo(
                run_id=run_dir.name,
                started=start.ts if start else 0.0,
                task=start.task if start else "",
                model=start.model if start else "",
                status=end.status if end else "incomplete",
                steps=end.steps if end else steps,
                cost_usd=end.cost_usd if end else 0.0,
            )
        )
    return out
