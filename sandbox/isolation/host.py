"""HostSandbox: runs commands directly on the host, with no isolation (explicit opt-out only)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from branchwise.sandbox.base import BackgroundError, BackgroundProcess, ExecResult, OutputLimits
from branchwise.sandbox.isolation.process import kill_group, run_capped

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
        record = BackgroundProcess(id=proc_id, argv=list(argv), pid=popen.pid, log_path=log_path, cwd=cwd)
        self._procs[proc_id] = (record, popen)
        return record

    def running(self) -> list[BackgroundProcess]:
        return [rec for rec, popen in self._procs.values() if popen.poll() is None]

    def stop(self, process_id: str | None = None) -> None:
        if process_id is not None and process_id not in self._procs:
            raise BackgroundError(f"no background process {process_id!r}")
        ids = [process_id] if process_id is not None else list(self._procs)
        for pid_key in ids:
            _, popen = self._procs.pop(pid_key)
            kill_group(popen.pid)
            popen.wait()


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
    ) -> ExecResult:
        return run_capped(
            argv,
            cwd=cwd or self.workspace,
            env=scrubbed_environ(env),
            timeout=timeout,
            stdin=stdin,
            limits=limits,
        )

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
