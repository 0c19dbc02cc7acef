"""One cgroup per sandbox session: a pids and a memory limit shared by all its commands.

Works on cgroup v1 (pids and memory controllers, as on these hybrid machines) and on a v2 hierarchy
where the controllers are delegated to our cgroup. Moving a process between cgroups is slow (the
kernel waits for an RCU grace period, several ms on a busy machine), so on v1 the session's spawner
*thread* joins the cgroups once (v1 allows single threads in `tasks`) and every command it forks is
born inside them. v2 has no per-thread membership outside threaded subtrees, so there each command's
launcher joins by writing `0` to `cgroup.procs` (`launcher_procs`).

A thread of ours in the memory cgroup does not make the agent an OOM victim: the OOM killer walks
thread-group leaders only, and the agent's leader stays outside.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

_PREFIX = "branchwise-"
_RMDIR_WAIT_S = 2.0


@dataclass
class CgroupMounts:
    """Where this process's cgroups are: v1 controller directories and the v2 directory."""

    v1: dict[str, Path] = field(default_factory=dict)
    v2: Path | None = None


def own_cgroups(mountinfo: str | None = None, proc_cgroup: str | None = None) -> CgroupMounts:
    """Locate this process's cgroup directories from /proc/self/{mountinfo,cgroup}."""
    mountinfo = mountinfo if mountinfo is not None else Path("/proc/self/mountinfo").read_text()
    proc_cgroup = proc_cgroup if proc_cgroup is not None else Path("/proc/self/cgroup").read_text()
    v1_mounts: dict[str, Path] = {}
    v2_mount: Path | None = None
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        fstype, _, superopts = [*right.split(" "), "", "", ""][:3]
        mountpoint = Path(left.split(" ")[4])
        if fstype == "cgroup2":
            v2_mount = mountpoint
        elif fstype == "cgroup":
            for opt in superopts.split(","):
                if opt in ("pids", "memory"):
                    v1_mounts[opt] = mountpoint
    found = CgroupMounts()
    for line in proc_cgroup.splitlines():
        _, controllers, path = line.split(":", 2)
        rel = path.lstrip("/")
        if controllers == "" and v2_mount is not None:
            found.v2 = v2_mount / rel
        for ctl in controllers.split(","):
            if ctl in v1_mounts:
                found.v1[ctl] = v1_mounts[ctl] / rel
    return found


class SessionCgroups:
    """Creates the session's cgroups with their limits, and removes them (killing what is left) at close."""

    def __init__(self, *, pids_max: int, memory_mb: int, mounts: CgroupMounts | None = None) -> None:
        self.name = f"{_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.dirs: list[Path] = []
        self.degraded: list[str] = []
        self.v2_dir: Path | None = None
        mounts = mounts or own_cgroups()
        limited = self._setup_v1(mounts, pids_max, memory_mb)
        self._setup_v2(mounts, pids_max, memory_mb, limited)
        for ctl in ("pids", "memory"):
            if ctl not in limited:
                self.degraded.append(f"no {ctl} limit: cgroup {ctl} controller not writable")

    @property
    def launcher_procs(self) -> list[Path]:
        """cgroup.procs files each command's launcher must join (v2 only)."""
        return [self.v2_dir / "cgroup.procs"] if self.v2_dir else []

    def join_thread(self) -> None:
        """Move the calling thread (not its process) into the v1 cgroups; its children are born there."""
        tid = str(threading.get_native_id())
        for d in self.dirs:
            if d != self.v2_dir:
                _write(d / "tasks", tid)

    def _make(self, parent: Path, limits: dict[str, str]) -> Path | None:
        """Create our cgroup under `parent` and write `limits` into it; None when that is not allowed."""
        _reap_stale(parent)
        path = parent / self.name
        try:
            path.mkdir()
        except OSError:
            return None
        try:
            for name, value in limits.items():
                if (path / name).exists():
                    _write(path / name, value)
        except OSError:
            path.rmdir()
            return None
        self.dirs.append(path)
        return path

    def _setup_v1(self, mounts: CgroupMounts, pids_max: int, memory_mb: int) -> set[str]:
        limited: set[str] = set()
        if "pids" in mounts.v1 and self._make(mounts.v1["pids"], {"pids.max": str(pids_max)}):
            limited.add("pids")
        limit = str(memory_mb * 1024 * 1024)
        # With swap accounting, memory+swap gets the same cap so a bomb cannot spill into swap.
        memory = {"memory.limit_in_bytes": limit, "memory.memsw.limit_in_bytes": limit}
        if "memory" in mounts.v1 and self._make(mounts.v1["memory"], memory):
            limited.add("memory")
        return limited

    def _setup_v2(self, mounts: CgroupMounts, pids_max: int, memory_mb: int, limited: set[str]) -> None:
        # Only worth a per-command join when v1 left a limit unset and v2 delegates that controller.
        if mounts.v2 is None or limited >= {"pids", "memory"}:
            return
        delegated = _read(mounts.v2 / "cgroup.subtree_control").split()
        wanted = {}
        if "pids" not in limited and "pids" in delegated:
            wanted["pids.max"] = str(pids_max)
        if "memory" not in limited and "memory" in delegated:
            wanted.update({"memory.max": str(memory_mb * 1024 * 1024), "memory.swap.max": "0"})
        if wanted and (d := self._make(mounts.v2, wanted)):
            self.v2_dir = d
            limited.update(ctl for ctl in ("pids", "memory") if (d / f"{ctl}.max").exists())

    def pids(self) -> set[int]:
        """Every process in the session's cgroups but our own (whose spawner thread sits there)."""
        found: set[int] = set()
        for d in self.dirs:
            found.update(int(p) for p in _read(d / "cgroup.procs").split())
        found.discard(os.getpid())
        return found

    def events(self) -> dict[str, int]:
        """How often the limits bit: forks refused at pids.max, processes killed by the OOM killer."""
        counts = {"pids_limit_hits": 0, "oom_kills": 0}
        for d in self.dirs:
            for name, key, label_wanted in (
                ("pids.events", "pids_limit_hits", "max"),
                ("memory.oom_control", "oom_kills", "oom_kill"),
                ("memory.events", "oom_kills", "oom_kill"),
            ):
                for line in _read(d / name).splitlines():
                    label, _, value = line.partition(" ")
                    if label == label_wanted and value.strip().isdigit():
                        counts[key] += int(value)
        return counts

    def kill_all(self) -> None:
        """SIGKILL every process of the session and wait until the cgroups are empty."""
        deadline = time.monotonic() + _RMDIR_WAIT_S
        while (pids := self.pids()) and time.monotonic() < deadline:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.01)

    def close(self) -> None:
        """Kill what is left and remove the cgroups."""
        self.kill_all()
        for d in reversed(self.dirs):
            _rmdir_when_empty(d)
        self.dirs.clear()


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _rmdir_when_empty(path: Path) -> None:
    # A killed process leaves its cgroup a moment after it is reaped. A cgroup still busy after the
    # wait is left for _reap_stale of a later session rather than failing close().
    deadline = time.monotonic() + _RMDIR_WAIT_S
    while True:
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                return
            time.sleep(0.01)


def _reap_stale(parent: Path) -> None:
    """Clear out cgroups left by sessions whose agent died (and whose keeper could not clean up)."""
    with contextlib.suppress(OSError):
        for entry in parent.glob(f"{_PREFIX}*"):
            pid = entry.name[len(_PREFIX) :].split("-", 1)[0]
            if not pid.isdigit() or Path(f"/proc/{pid}").exists():
                continue  # a live owner (or a reused pid: then leave it, the safe way round)
            for orphan in _read(entry / "cgroup.procs").split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(orphan), signal.SIGKILL)
            with contextlib.suppress(OSError):
                entry.rmdir()  # still busy while the orphans die: a later session retries
