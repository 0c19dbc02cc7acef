"""HostSandbox: runs commands directly on the host, with no isolation (explicit opt-out only)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from branchwise.sandbox.base import BackgroundError, BackgroundProcess, ExecResult, OutputLimits
from branchwise.sandbox.isolation.process import Detach, kill_group, run_capped

# A background process's log stops growing past this size (its output is still read, so it never blocks).
MAX_LOG_BYTES = 16 * 1024 * 1024

# Variables that look like credentials are not handed to model-chosen commands.
_SECRET_NAME = re.compile(r"(KEY|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|_AUTH)", re.IGNORECASE)


def scrubbed_environ(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The host environment without credential-looking variables, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not _SECRET_NAME.search(k)}
    env.update(extra or {})
    return env


class BackgroundSet:
    """Background processes of one session: each in its own process group, output in a log file."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._procs: dict[str, tuple[BackgroundProcess, subprocess.Popen[bytes]]] = {}

    def start(
        self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], pass_fds: Sequence[int] = ()
    ) -> BackgroundProcess:
        proc_id = f"bg-{uuid.uuid4().hex[:6]}"
        log_path = self.log_dir / f"{proc_id}.log"
        try:
            with open(log_path, "wb") as log:
                popen = subprocess.Popen(
                    list(argv),
                    cwd=cwd,
                    env=dict(env),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    pass_fds=tuple(pass_fds),
                )
        except OSError as exc:
            raise BackgroundError(f"cannot start {argv[0]}: {exc.strerror}") from exc
        record = BackgroundProcess(
            id=proc_id, argv=list(argv), pid=popen.pid, log_path=log_path, cwd=cwd, started=time.time()
        )
        self._procs[proc_id] = (record, popen)
        return record

    def adopt(self, popen: subprocess.Popen[Any], argv: Sequence[str], cwd: Path) -> BackgroundProcess:
        """Take over a command that left processes running: its further output goes to a log file."""
        proc_id = f"bg-{uuid.uuid4().hex[:6]}"
        log_path = self.log_dir / f"{proc_id}.log"
        log_path.touch()
        assert popen.stdout is not None
        threading.Thread(target=_copy_to_log, args=(popen.stdout, log_path), daemon=True).start()
        record = BackgroundProcess(
            id=proc_id, argv=list(argv), pid=popen.pid, log_path=log_path, cwd=cwd, started=time.time()
        )
        self._procs[proc_id] = (record, popen)
        return record

    def get(self, process_id: str) -> BackgroundProcess:
        """A process of this set, running or not; BackgroundError when the id is unknown."""
        if process_id not in self._procs:
            raise BackgroundError(f"no background process {process_id!r}")
        return self._procs[process_id][0]

    def exit_code(self, process_id: str) -> int | None:
        """None while it runs, else its exit code."""
        return self._procs[process_id][1].poll()

    def running(self) -> list[BackgroundProcess]:
        return [rec for rec, popen in self._procs.values() if popen.poll() is None]

    def all(self) -> list[BackgroundProcess]:
        """Every process started in this session and not stopped, running or exited."""
        return [rec for rec, _ in self._procs.values()]

    def stop(self, process_id: str | None = None) -> None:
        if process_id is not None and process_id not in self._procs:
            raise BackgroundError(f"no background process {process_id!r}")
        ids = [process_id] if process_id is not None else list(self._procs)
        for pid_key in ids:
            _, popen = self._procs.pop(pid_key)
            kill_group(popen.pid)
            popen.wait()
            if popen.stdout is not None:
                with contextlib.suppress(OSError):
                    popen.stdout.close()


def _copy_to_log(pipe: Any, log_path: Path) -> None:
    """Copy a pipe into a log file until every writer has gone, keeping at most MAX_LOG_BYTES."""
    written = 0
    with contextlib.suppress(OSError, ValueError), open(log_path, "ab") as log:
        os.set_blocking(pipe.fileno(), True)
        while chunk := os.read(pipe.fileno(), 65536):
            if written < MAX_LOG_BYTES:
                log.write(chunk[: MAX_LOG_BYTES - written])
                log.flush()
                written += len(chunk)


def group_left(pgid: int) -> bool:
    """Whether a process of this group other than its (exited, maybe unreaped) leader is still alive."""
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == pgid:
            continue
        try:
            stat = Path("/proc", name, "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses, so split after the last ")".
        fields = stat.rpartition(")")[2].split()
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
            return True
    return False


class HostSandbox:
    """No isolation at all: commands see the host filesystem, network and processes."""

    def __init__(self, workspace: Path) -> None:
        self.workspace = workspace.resolve()
        self._tmp = Path(tempfile.mkdtemp(prefix="branchwise-host-"))
        self._bg = BackgroundSet(self._tmp)

    def run(
        self,
        argv: Sequence[str],
        *,
        cwd: Path | None = None,
        timeout: float = 120.0,
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
        limits: OutputLimits | None = None,
        keep_background: bool = False,
    ) -> ExecResult:
        workdir = cwd or self.workspace
        detach = None
        if keep_background:
            detach = Detach(adopt=lambda proc, _code: self._bg.adopt(proc, argv, workdir), group_left=group_left)
        return run_capped(
            argv,
            cwd=workdir,
            env=scrubbed_environ(env),
            timeout=timeout,
            stdin=stdin,
            limits=limits,
            detach=detach,
        )

    def command_line(
        self, argv: Sequence[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None
    ) -> list[str]:
        workdir = str(cwd or self.workspace)
        pairs = [f"{k}={v}" for k, v in scrubbed_environ(env).items()]
        return ["/usr/bin/env", "-i", "-C", workdir, *pairs, *argv]

    def start_background(
        self, argv: Sequence[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None
    ) -> BackgroundProcess:
        return self._bg.start(argv, cwd=cwd or self.workspace, env=scrubbed_environ(env))

    def background(self) -> list[BackgroundProcess]:
        return self._bg.running()

    def stop_background(self, process_id: str | None = None) -> None:
        self._bg.stop(process_id)

    def describe(self) -> dict[str, object]:
        return {"kind": "host", "isolated": False, "mode": "full-access", "network": "on"}

    def close(self) -> None:
        self._bg.stop()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> HostSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
