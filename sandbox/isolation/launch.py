"""Starting one sandboxed command: the launcher in front of bwrap, its descriptors, and its teardown."""

from __future__ import annotations

import contextlib
import json
import os
import select
import shlex
import signal
from pathlib import Path

from branchwise.sandbox.settings import LimitSettings

# Runs before bwrap: joins the cgroups named before `--` (writing 0 moves the writer; only needed
# on cgroup v2) and sets the rlimits, which bwrap and everything it starts inherit. Any failure
# refuses to run the command.
_LAUNCH = (
    'while [ "$1" != -- ]; do echo 0 > "$1" || exit 125; shift; done; shift; '
    '{limits} || {{ echo "branchwise sandbox: cannot set limits" >&2; exit 125; }}; exec "$@"'
)


# The fd on which an externally started command line finds its seccomp program (see `launcher_argv`).
EXTERNAL_SECCOMP_FD = 9  # dash redirects only fds 0-9

# Runs inside the sandbox in front of a command that may leave processes behind (`server &`). When the
# command exits it reports "<exit code> <1 if other processes remain>" on the status fd (its number is
# the first argument; bash, since dash takes no fd above 9). While others remain in the pid namespace it
# stays alive as its pid 2, so that bwrap's init (pid 1) does not end the namespace. The scan uses
# builtins only, so no fork of its own is counted.
WAITER = (
    'fd=$1; shift; "$@"; st=$?; bg=0; '
    "for p in /proc/[0-9]*; do case ${p#/proc/} in 1|$$) ;; *) bg=1;; esac; done; "
    'echo "$st $bg" >&"$fd"; eval "exec $fd>&-"; [ $bg = 1 ] || exit $st; '
    "while :; do bg=0; for p in /proc/[0-9]*; do case ${p#/proc/} in 1|$$) ;; *) bg=1;; esac; done; "
    "[ $bg = 1 ] || exit $st; sleep 0.5; done"
)
WAITER_ARGV = ["/bin/bash", "--noprofile", "--norc", "-c", WAITER, "branchwise-wait"]


def launcher_argv(
    limits: LimitSettings,
    *,
    cgroup_procs: list[Path],
    prefix: list[str],
    bwrap: str,
    seccomp_file: Path | None = None,
) -> list[str]:
    """`sh -c <launch> ... -- [nsenter ...] bwrap`: the part of every command line before bwrap's flags.

    With `seccomp_file` the program is opened on EXTERNAL_SECCOMP_FD, for command lines that someone
    else starts (they cannot inherit our pipe)."""
    # dash and bash-as-sh both count ulimit -f in 512-byte blocks (POSIX).
    rlimits = [f"ulimit -t {limits.cpu_seconds}", f"ulimit -f {limits.file_size_mb * 2048}"]
    rlimits += [f"ulimit -n {limits.open_files}", "ulimit -c 0"]
    if os.geteuid() != 0:
        # RLIMIT_NPROC does nothing for uid 0; for others it backs up a missing pids cgroup.
        # bash calls it -u, dash -p (bash's -p is the pipe size, which cannot be set: no mix-up).
        rlimits.append(f"{{ ulimit -u {limits.pids_max} 2>/dev/null || ulimit -p {limits.pids_max}; }}")
    if seccomp_file is not None:
        rlimits.append(f"exec {EXTERNAL_SECCOMP_FD}<{shlex.quote(str(seccomp_file))}")
    script = _LAUNCH.format(limits=" && ".join(rlimits))
    return ["/bin/sh", "-c", script, "branchwise-launch", *map(str, cgroup_procs), "--", *prefix, bwrap]


class Launch:
    """Descriptors for one bwrap start: the seccomp program, and the pipe bwrap reports its child on."""

    def __init__(self, bpf: bytes, *, status: bool = False) -> None:
        # A fresh pipe per command: bwrap reads the program to its end, so a shared fd would be empty.
        self._seccomp_r, seccomp_w = os.pipe()
        with os.fdopen(seccomp_w, "wb") as w:
            w.write(bpf)
        self._info_r, self._info_w = os.pipe()
        self._child: tuple[int, int] | None = None
        # The WAITER's status pipe, when the command may leave background processes.
        self.status_r, self.status_w = os.pipe() if status else (-1, -1)

    @property
    def bwrap_args(self) -> list[str]:
        return ["--seccomp", str(self._seccomp_r), "--info-fd", str(self._info_w)]

    @property
    def pass_fds(self) -> tuple[int, ...]:
        fds = (self._seccomp_r, self._info_w)
        return (*fds, self.status_w) if self.status_w >= 0 else fds

    def started(self) -> None:
        """Drop the parent's copies of what only bwrap needs, once bwrap has been started."""
        for fd in (self._seccomp_r, self._info_w, self.status_w):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._seccomp_r = self._info_w = self.status_w = -1

    def kill_tree(self, wait_s: float = 2.0) -> None:
        """SIGKILL the sandbox's pid 1, which takes its whole pid namespace along, and wait for it.

        bwrap's --die-with-parent normally does this when bwrap itself is killed, but the child sets it
        up only after starting, so a kill during start-up could leave an orphan sandbox behind.
        """
        child = self._child_info()
        if child is None:
            return
        pid, pid_ns = child
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            return
        try:
            # The pidfd pins the process; the namespace check proves the pid was not reused before that.
            if Path(f"/proc/{pid}/ns/pid").stat().st_ino != pid_ns:
                return
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            select.select([pidfd], [], [], wait_s)
        except FileNotFoundError:
            return
        finally:
            os.close(pidfd)

    def _child_info(self) -> tuple[int, int] | None:
        if self._child is None and self._info_r >= 0:
            os.set_blocking(self._info_r, False)
            data = b""
            with contextlib.suppress(BlockingIOError):
                while chunk := os.read(self._info_r, 4096):
                    data += chunk
            with contextlib.suppress(ValueError, KeyError, TypeError):
                info = json.loads(data)
                self._child = int(info["child-pid"]), int(info["pid-namespace"])
        return self._child

    def close(self) -> None:
        self.started()
        self._child_info()  # read before the pipe goes: kill_tree may still need it
        for name in ("_info_r", "status_r"):
            fd = getattr(self, name)
            if fd >= 0:
                os.close(fd)
                setattr(self, name, -1)
