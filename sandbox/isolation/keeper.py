"""The session keeper: a small helper process that holds the session's network namespace and, when
the session ends or the agent dies, kills whatever is left in the session's cgroups.

Network: bwrap's own `--unshare-net` gives every command a fresh namespace, so a server started in
the background could never be reached by a later command. Instead the keeper creates one namespace
with only `lo` up, and every command joins it. As root the namespace belongs to the initial user
namespace and the session's spawner thread joins it with setns() (network namespaces are per
thread), so commands it forks are born inside at no cost. Without root, the keeper creates a user
namespace too, which a multi-threaded process cannot enter; each command then joins both with
`nsenter --user --net`, and bwrap nests its own user namespace inside, so the sandbox still has no
capability over the network.

Cleanup: the keeper reads its stdin until end of file, which comes when the session closes or when
the agent dies in any way (even SIGKILL). It then SIGKILLs every process still in the session's
cgroups. This backs up bwrap's --die-with-parent, which has a window during sandbox start-up where
the parent's death goes unnoticed and the sandbox runs on as an orphan.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
from pathlib import Path

from branchwise.sandbox.base import SandboxUnavailable

_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)

# argv: net|nonet, the session directory, then cgroup.procs files to empty at the end. Brings `lo`
# up (SIOCGIFFLAGS / SIOCSIFFLAGS) in a new namespace, reports, waits for end of file, then kills
# what is left and removes the session directory.
_KEEPER = """
import fcntl, os, shutil, signal, socket, struct, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
agent = os.getppid()
if sys.argv[1] == "net":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    flags = struct.unpack("16sH", fcntl.ioctl(s, 0x8913, struct.pack("16sH", b"lo", 0))[:18])[1]
    fcntl.ioctl(s, 0x8914, struct.pack("16sH", b"lo", flags | 1))
    s.close()
print("ready", flush=True)
sys.stdin.buffer.read()
deadline = time.monotonic() + 5
while time.monotonic() < deadline:
    pids = set()
    for path in sys.argv[3:]:
        try:
            pids.update(int(p) for p in open(path).read().split())
        except OSError:
            pass
    pids -= {agent, os.getpid()}
    if not pids:
        break
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    time.sleep(0.02)
shutil.rmtree(sys.argv[2], ignore_errors=True)
"""


class SessionKeeper:
    """Starts the keeper (`wait_ready` waits for it); with `private_net`, commands join its network
    (`join_thread`, `prefix`)."""

    def __init__(self, *, private_net: bool, cgroup_procs: list[Path], session_dir: Path) -> None:
        unshare, nsenter = shutil.which("unshare"), shutil.which("nsenter")
        if private_net and (unshare is None or nsenter is None):
            raise SandboxUnavailable("unshare/nsenter not found: apt-get install util-linux")
        self.private_net = private_net
        self.rootless = os.geteuid() != 0
        self.prefix: list[str] = []
        argv = [
            sys.executable or "/usr/bin/python3",
            "-I",
            "-S",
            "-c",
            _KEEPER,
            "net" if private_net else "nonet",
        ]
        argv += [str(session_dir), *map(str, cgroup_procs)]
        if private_net:
            userns = ["--user", "--map-root-user"] if self.rootless else []
            argv = [str(unshare), *userns, "--net", "--", *argv]
        # Its own session keeps a terminal's Ctrl-C away from it. While it is our unreaped child its pid
        # cannot be reused, so /proc/<pid>/ns/net names our namespace; if it dies, the path vanishes
        # and commands fail instead of running in another namespace.
        try:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env={},
                start_new_session=True,
            )
        except OSError as exc:
            raise SandboxUnavailable(f"cannot start the session keeper: {exc}") from None
        self._ready = False
        self._nsenter = str(nsenter) if nsenter else None
        if private_net and self.rootless:
            ns_paths = (f"--{ns}=/proc/{self._proc.pid}/ns/{ns}" for ns in ("user", "net"))
            self.prefix = [str(nsenter), *ns_paths, "--preserve-credentials", "--"]

    def wait_ready(self) -> None:
        """Wait for the keeper to report (its start overlaps the rest of a session's set-up); SandboxUnavailable
        when it did not start. The namespace and the cleanup exist only once this has returned."""
        if self._ready:
            return
        assert self._proc.stdout is not None
        if self._proc.stdout.readline() != b"ready\n":
            err = self._stop()
            raise SandboxUnavailable(f"cannot start the session keeper: {err or 'no reason given'}")
        self._ready = True

    def external_prefix(self) -> list[str]:
        """What a process we did not fork (so not born in the namespace) runs in front of bwrap to join it."""
        if not self.private_net or self._nsenter is None:
            return []
        if self.rootless:
            return self.prefix
        return [self._nsenter, f"--net=/proc/{self._proc.pid}/ns/net", "--"]

    @property
    def pid(self) -> int:
        return self._proc.pid

    def join_thread(self) -> None:
        """As root: move the calling thread into the namespace (without root, commands use `prefix`)."""
        if not self.private_net or self.rootless:
            return
        self.wait_ready()  # before that, /proc/<pid>/ns/net may still be ours, not the new namespace
        fd = os.open(f"/proc/{self._proc.pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            if _libc.setns(fd, _CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise SandboxUnavailable(f"cannot join the session network namespace: {os.strerror(err)}")
        finally:
            os.close(fd)

    def _stop(self) -> str:
        proc = self._proc
        if proc.stdin is not None:
            proc.stdin.close()
        err = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        proc.wait()
        return err

    def close(self) -> None:
        """Release the keeper: it kills what is left in the session's cgroups and exits."""
        if self._proc.returncode is None:
            self._stop()
