"""Trajectories: every event appended to .branchwise/runs/<run_id>/events.jsonl as it happens."""

from __future__ import annotations

import json
import os
import secrets
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from branchwise.agent.errors import UsageError
from branchwise.agent.record.events import EVENT_ADAPTER, TRANSIENT_TYPES, RunFinished, RunStarted
from branchwise.sandbox.base import SandboxError
from branchwise.sandbox.workspace.safefs import read_regular

MAX_EVENTS_BYTES = 512 * 1024 * 1024
# Events after which the file is fsync'ed: the end of a step and the end of the run.
_SYNC_TYPES = frozenset({"step_finished", "run_finished"})


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def runs_dir(workspace: Path) -> Path:
    return workspace / ".branchwise" / "runs"


def prepare_runs_dir(workspace: Path) -> Path:
    """Create .branchwise/runs, keeping run logs out of the user's git status.

    Both must be real directories of the workspace: a `.branchwise` or `runs` that is a link (a repository can
    commit one) would make the host write run logs wherever it points, so it is refused, never followed."""
    path = runs_dir(workspace)
    for directory in (path.parent, path):
        _real_directory(directory)
    # Everything here (this file too) stays out of git status, except a project config worth committing.
    text = b"# written by branchwise: run logs stay out of git; config.toml may be committed\n*\n!config.toml\n"
    try:  # O_EXCL | O_NOFOLLOW: never through a link, never over an existing file
        fd = os.open(path.parent / ".gitignore", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileExistsError:
        return path
    with os.fdopen(fd, "wb") as f:
        f.write(text)
    return path


def is_real_runs_dir(workspace: Path) -> bool:
    """Whether .branchwise/runs exists as real directories (no link on the way out of the workspace)."""
    path = runs_dir(workspace)
    try:
        return all(stat.S_ISDIR(os.lstat(d).st_mode) for d in (path.parent, path))
    except OSError:
        return False


def _real_directory(path: Path) -> None:
    """Make `path` a directory unless it is one; a link or anything else there is refused."""
    try:
        path.mkdir()
    except FileExistsError:
        pass
    except OSError as exc:
        raise UsageError(f"cannot create {path}: {exc.strerror}") from None
    if not stat.S_ISDIR(os.lstat(path).st_mode):
        raise UsageError(f"{path} is a link or a file, not a directory: branchwise keeps its run logs there; "
                         "remove it or move it away")  # fmt: skip


class TrajectoryWriter:
    """An event subscriber: one JSON line per event, written with a single write() each."""

    def __init__(self, run_dir: Path) -> None:
        _real_directory(run_dir)
        self.path = run_dir / "events.jsonl"
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW
        self._fd: int | None = os.open(self.path, flags, 0o644)

    def __call__(self, event: Any) -> None:
        if self._fd is None or event.type in TRANSIENT_TYPES:
            return
        os.write(self._fd, (event.model_dump_json() + "\n").encode("utf-8"))
        if event.type in _SYNC_TYPES:
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def read_events(path: Path) -> list[Any]:
    """Parse events.jsonl; a line cut short by a crash at the very end is skipped. Only a regular file (not a
    link) of at most MAX_EVENTS_BYTES is read: a recording can come with a repository."""
    events = []
    lines = read_regular(path, limit=MAX_EVENTS_BYTES, follow_symlinks=False).decode("utf-8").split("\n")
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
    if not is_real_runs_dir(workspace):
        return out
    for run_dir in sorted(p for p in base.iterdir() if (p / "events.jsonl").is_file()):
        try:
            events = read_events(run_dir / "events.jsonl")
        except (ValidationError, json.JSONDecodeError, OSError, SandboxError, UnicodeDecodeError):
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
