"""Run a process with a wall-clock timeout and an output budget, and kill its whole tree when done."""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from branchwise.sandbox.base import BackgroundProcess, ExecResult, KillReason, OutputLimits

# After the command exits, how long to keep reading output that a straggling child still writes.
_DRAIN_GRACE_S = 0.2
# After the foreground part reported its status while background processes go on: output still in flight.
_DETACH_GRACE_S = 0.1
# How often a running command looks at `stop_requested`.
_STOP_POLL_S = 0.25


# Process groups of the commands run_capped is waiting for, so another thread can stop them (kill_running).
_running: set[int] = set()
_running_lock = threading.Lock()


def _never() -> bool:
    return False


stop_requested: Callable[[], bool] = _never
"""Set by the agent (agent/cancel.py): while it returns True, a command that starts or runs is killed (closes
the gap between a stop request and a command that was just being started)."""


def kill_running() -> None:
    """Kill every command that is running in the foreground now (an interrupt from another thread, e.g. the
    REPL's Ctrl-C); each returns as a command killed by SIGKILL."""
    with _running_lock:
        groups = list(_running)
    for pid in groups:
        kill_group(pid)


@dataclass
class Detach:
    """How a command may leave processes running: they are adopted as background processes of the session.

    In a sandbox the command runs under a waiter that writes "<exit code> <1 if others remain>" to
    `status_fd` when its foreground part ends (the pid namespace must outlive it while they run); on the
    host, the command's process group is looked at once it exits (`group_left`).
    """

    adopt: Callable[[subprocess.Popen[Any], int], BackgroundProcess]
    """Takes over the still-running process (its stdout pipe open) given the foreground exit code."""
    status_fd: int | None = None
    group_left: Callable[[int], bool] | None = None


class _CappedBuffer:
    """Keeps the first and last bytes of a stream and counts the rest."""

    def __init__(self, limits: OutputLimits) -> None:
        self.limits = limits
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.limits.keep_head - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk and self.limits.keep_tail > 0:
            self.tail += chunk
            if len(self.tail) > self.limits.keep_tail:
                del self.tail[: len(self.tail) - self.limits.keep_tail]

    @property
    def truncated(self) -> bool:
        return self.total > len(self.head) + len(self.tail)

    def text(self) -> str:
        if not self.truncated:
            return (bytes(self.head) + bytes(self.tail)).decode("utf-8", errors="replace")
        omitted = self.total - len(self.head) - len(self.tail)
        marker = f"\n[... {omitted} bytes of output omitted ...]\n"
        return self.head.decode("utf-8", errors="replace") + marker + self.tail.decode("utf-8", "replace")


def kill_group(pid: int) -> None:
    """SIGKILL a process group; a group that is already gone is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def exit_code_of(returncode: int) -> int:
    """Shell convention: a process killed by signal N exits with 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def run_capped(
    argv: Sequence[str],
    *,
    cwd: Path | None,
    env: Mapping[str, str] | None,
    timeout: float,
    stdin: bytes | None = None,
    limits: OutputLimits | None = None,
    pass_fds: Sequence[int] = (),
    popen: Callable[..., subprocess.Popen[Any]] = subprocess.Popen,
    detach: Detach | None = None,
) -> ExecResult:
    """Run argv in its own session; combined stdout+stderr is capped; the process group dies at the end,
    unless `detach` says how processes the command left running become background processes.

    `popen` replaces subprocess.Popen, e.g. to start the process from a thread that has joined a
    namespace or cgroup; it takes Popen's arguments.
    """
    limits = limits or OutputLimits()
    started = time.monotonic()
    proc = popen(
        list(argv),
        cwd=cwd,
        env=dict(env) if env is not None else None,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        pass_fds=tuple(pass_fds),
        close_fds=True,
    )
    adopted: BackgroundProcess | None = None
    with _running_lock:
        _running.add(proc.pid)
    try:
        if stdin is not None and proc.stdin is not None:
            _write_stdin(proc.stdin, stdin)
        buffer = _CappedBuffer(limits)
        pump = _Pump(proc, buffer, status_fd=detach.status_fd if detach else None)
        killed = pump.run(deadline=started + timeout, read_limit=limits.read_limit)
        status = pump.status
        if detach is not None and killed is None:
            left = pump.detached or (detach.group_left is not None and detach.group_left(proc.pid))
            if left:
                code = status if status is not None else exit_code_of(proc.returncode or 0)
                adopted = detach.adopt(proc, code)
    finally:
        with _running_lock:
            _running.discard(proc.pid)
        if adopted is None:
            kill_group(proc.pid)
            if proc.stdout is not None:
                proc.stdout.close()
    if adopted is not None:
        exit_code = status if status is not None else exit_code_of(proc.returncode or 0)
    else:
        returncode = proc.wait()
        exit_code = status if status is not None and killed is None else exit_code_of(returncode)
    return ExecResult(
        exit_code=exit_code,
        output=buffer.text(),
        truncated=buffer.truncated or killed == "output_limit",
        killed=killed,
        duration_s=time.monotonic() - started,
        background=(adopted,) if adopted is not None else (),
    )


def _write_stdin(pipe: IO[bytes], data: bytes) -> None:
    with contextlib.suppress(BrokenPipeError):
        pipe.write(data)
    with contextlib.suppress(BrokenPipeError):
        pipe.close()


class _Pump:
    """Reads a command's output until it has exited and its output is closed, or until its foreground part
    reported that it is done while processes it started go on (`detached`)."""

    def __init__(self, proc: subprocess.Popen[bytes], buffer: _CappedBuffer, *, status_fd: int | None) -> None:
        self.proc, self.buffer, self.status_fd = proc, buffer, status_fd
        self.status: int | None = None
        self.detached = False
        self._status_text = b""
        self._others = False

    def run(self, *, deadline: float, read_limit: int) -> KillReason | None:
        """Pump until done; return why the command was cut short, if it was."""
        proc = self.proc
        assert proc.stdout is not None
        out_fd = proc.stdout.fileno()
        os.set_blocking(out_fd, False)
        pidfd = os.pidfd_open(proc.pid)
        out_open, exited_at, done_at = True, None, None
        with selectors.DefaultSelector() as sel:
            sel.register(out_fd, selectors.EVENT_READ, "out")
            sel.register(pidfd, selectors.EVENT_READ, "exit")
            if self.status_fd is not None:
                os.set_blocking(self.status_fd, False)
                sel.register(self.status_fd, selectors.EVENT_READ, "status")
            try:
                stopping = False
                while out_open or exited_at is None:
                    if not stopping and exited_at is None and stop_requested():
                        stopping = True
                        kill_group(proc.pid)
                    if exited_at is not None:
                        wait_until = exited_at + _DRAIN_GRACE_S
                    elif done_at is not None:
                        wait_until = done_at + _DETACH_GRACE_S
                    else:
                        wait_until = deadline
                    remaining = wait_until - time.monotonic()
                    if remaining <= 0:
                        if exited_at is None and done_at is None:
                            return "timeout"
                        self.detached = exited_at is None
                        return None
                    for key, _ in sel.select(min(remaining, _STOP_POLL_S)):
                        if key.data == "exit":
                            sel.unregister(pidfd)
                            exited_at = time.monotonic()
                        elif key.data == "status":
                            if self._read_status():
                                sel.unregister(key.fileobj)
                                done_at = time.monotonic() if self._others else None
                        else:
                            chunk = _read(out_fd)
                            if chunk == b"":
                                sel.unregister(out_fd)
                                out_open = False
                            elif chunk:
                                self.buffer.feed(chunk)
                                if self.buffer.total > read_limit:
                                    return "output_limit"
                return None
            finally:
                os.close(pidfd)

    def _read_status(self) -> bool:
        """Read the waiter's status line; True once it is complete (or the pipe closed)."""
        assert self.status_fd is not None
        chunk = _read(self.status_fd)
        if chunk:
            self._status_text += chunk
        if chunk == b"" or self._status_text.endswith(b"\n"):
            parts = self._status_text.split()
            if parts and parts[0].isdigit():
                self.status = int(parts[0])
                self._others = len(parts) > 1 and parts[1] == b"1"
            return True
        return False


def _read(fd: int) -> bytes | None:
    try:
        return os.read(fd, 65536)
    except BlockingIOError:
        return None
