"""Run a process with a wall-clock timeout and an output budget, and kill its whole tree when done."""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from branchwise.sandbox.base import ExecResult, KillReason, OutputLimits

# After the command exits, how long to keep reading output that a straggling child still writes.
_DRAIN_GRACE_S = 0.2


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
) -> ExecResult:
    """Run argv in its own session; combined stdout+stderr is capped; the process group dies at the end.

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
    try:
        if stdin is not None and proc.stdin is not None:
            _write_stdin(proc.stdin, stdin)
        buffer = _CappedBuffer(limits)
        killed = _pump(proc, buffer, deadline=started + timeout, read_limit=limits.read_limit)
    finally:
        kill_group(proc.pid)
        if proc.stdout is not None:
            proc.stdout.close()
    returncode = proc.wait()
    return ExecResult(
        exit_code=exit_code_of(returncode),
        output=buffer.text(),
        truncated=buffer.truncated or killed == "output_limit",
        killed=killed,
        duration_s=time.monotonic() - started,
    )


def _write_stdin(pipe: IO[bytes], data: bytes) -> None:
    with contextlib.suppress(BrokenPipeError):
        pipe.write(data)
    with contextlib.suppress(BrokenPipeError):
        pipe.close()


def _pump(
    proc: subprocess.Popen[bytes], buffer: _CappedBuffer, *, deadline: float, read_limit: int
) -> KillReason | None:
    """Read output until the process has exited and its output is closed; return why it was cut short."""
    assert proc.stdout is not None
    out_fd = proc.stdout.fileno()
    os.set_blocking(out_fd, False)
    pidfd = os.pidfd_open(proc.pid)
    out_open, exited_at = True, None
    with selectors.DefaultSelector() as sel:
        sel.register(out_fd, selectors.EVENT_READ, "out")
        sel.register(pidfd, selectors.EVENT_READ, "exit")
        try:
            while out_open or exited_at is None:
                # Before exit the deadline rules; after it, a short grace for output a straggler still holds.
                wait_until = deadline if exited_at is None else exited_at + _DRAIN_GRACE_S
                remaining = wait_until - time.monotonic()
                if remaining <= 0:
                    return "timeout" if exited_at is None else None
                for key, _ in sel.select(remaining):
                    if key.data == "exit":
                        sel.unregister(pidfd)
                        exited_at = time.monotonic()
                        continue
                    chunk = _read(out_fd)
                    if chunk == b"":
                        sel.unregister(out_fd)
                        out_open = False
                    elif chunk:
                        buffer.feed(chunk)
                        if buffer.total > read_limit:
                            return "output_limit"
            return None
        finally:
            os.close(pidfd)


def _read(fd: int) -> bytes | None:
    try:
        return os.read(fd, 65536)
    except BlockingIOError:
        return None
