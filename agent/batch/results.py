"""The results JSONL of a batch: one line per finished task (the run's final JSON plus `task_id`).

Each line is written with one `write` on an O_APPEND descriptor and fsync-ed before the next task is looked
at, so a batch killed at any moment (even SIGKILL) loses no finished result; a line cut short by a crash is
dropped when the file is opened again. A rerun with the same file skips the tasks it already holds.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from branchwise.agent.errors import EXIT_ENVIRONMENT, EXIT_INTERRUPTED

# Results a rerun tries again: the environment failed, the task was interrupted, or it could not be read.
RERUN_EXITS = frozenset({EXIT_ENVIRONMENT, EXIT_INTERRUPTED})


class ResultsFile:
    """Append-only, crash-safe; the last line of a task id wins."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.previous: dict[str, dict[str, Any]] = {}
        self._drop_partial_tail()
        if path.is_file():
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(obj, dict) and isinstance(obj.get("task_id"), str):
                    self.previous[obj["task_id"]] = obj
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self.written: dict[str, dict[str, Any]] = {}

    def _drop_partial_tail(self) -> None:
        if not self.path.is_file():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            os.truncate(self.path, data.rfind(b"\n") + 1)

    def finished(self, task_id: str) -> bool:
        """Whether an earlier run of the batch already finished this task (so it is skipped)."""
        old = self.previous.get(task_id)
        return old is not None and old.get("exit_code") not in RERUN_EXITS and old.get("status") != "invalid"

    def append(self, result: dict[str, Any]) -> None:
        line = (json.dumps(result, ensure_ascii=False, sort_keys=False) + "\n").encode("utf-8")
        os.write(self._fd, line)
        os.fsync(self._fd)
        self.written[result["task_id"]] = result

    def all(self) -> dict[str, dict[str, Any]]:
        """Every task's latest result: earlier runs' and this one's."""
        return {**self.previous, **self.written}

    def close(self) -> None:
        os.close(self._fd)
