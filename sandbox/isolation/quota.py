"""`sandbox.limits.workspace_mb`: how much disk the workspace and the writable roots may gain in one session.

There is no kernel quota to lean on for an arbitrary folder, so a watchdog thread checks: every
CHECK_INTERVAL_S it asks the filesystems how much free space they lost since the session began (one
statvfs each, nearly free); only when that exceeds the quota does it add up the disk blocks under the
roots, and when those grew past the quota and are still growing it stops every process of the session.
A single file is held to the quota by RLIMIT_FSIZE before it is written. Writing faster than the check
can overshoot by what is written in one interval; each command is checked once more as it ends, so one that
fills the disk between two checks is still reported and its session's processes stopped. Another process
freeing space on the same filesystem at the same time can hide growth from the free-space test.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path

CHECK_INTERVAL_S = 0.2


class WorkspaceQuota:
    """Watches the disk use under `roots`; calls `on_exceeded` when it grows by more than `limit_mb`."""

    def __init__(self, roots: list[Path], limit_mb: int, on_exceeded: Callable[[], None]) -> None:
        self.roots, self.limit = roots, limit_mb * 1024 * 1024
        self.on_exceeded = on_exceeded
        self.baseline = usage(roots)
        # The usage at the last check that found the filesystems past the quota; None when the one before
        # found them under it (then anything past the quota is new growth).
        self._last: int | None = self.baseline
        self._free = {root: _free_bytes(root) for root in roots}
        self.trips = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="branchwise-quota", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(CHECK_INTERVAL_S):
            self.check()

    def _lost(self) -> int:
        return sum(max(0, self._free[root] - _free_bytes(root)) for root in self.roots)

    def settle(self) -> None:
        """Before a command starts: what is there now is not its growth (a workspace over the quota may still
        run the commands that delete files)."""
        with self._lock:
            self._last = usage(self.roots) if self._lost() > self.limit else None

    def check(self) -> bool:
        """One check; True when the quota was exceeded (and the session's processes were stopped)."""
        with self._lock:
            return self._check()

    def _check(self) -> bool:
        if self._lost() <= self.limit:
            self._last = None
            return False
        now = usage(self.roots)
        growing, self._last = self._last is None or now > self._last, now
        if now - self.baseline <= self.limit or not growing:
            return False  # other writers on the same filesystem, or the agent is deleting files
        self.trips += 1
        self.on_exceeded()
        return True

    def gained_mb(self) -> float:
        return (usage(self.roots) - self.baseline) / (1024 * 1024)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def usage(roots: list[Path]) -> int:
    """Bytes of disk the files under `roots` occupy (allocated blocks: sparse files count what they use)."""
    total, seen = 0, set()
    stack = list(roots)
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                stack.append(Path(entry.path))
            elif (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))  # a hard link's blocks count once
                total += st.st_blocks * 512
    return total


def _free_bytes(root: Path) -> int:
    try:
        info = os.statvfs(root)
    except OSError:
        return 0
    return info.f_bfree * info.f_frsize
