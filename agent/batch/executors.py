"""Where a batch's jobs run. Ray is the batch's engine (local, started for the batch and shut down after it, or
an existing cluster by its address); the process pool and the in-process executor are the baselines the
benchmark measures Ray against.

A local Ray node is bound to 127.0.0.1 with no dashboard and no usage reporting. With a cluster, the task
repositories and the batch's output directory must be on a filesystem every node sees.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import multiprocessing
import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from branchwise.agent.batch.job import Job, run_job
from branchwise.agent.errors import EnvironmentProblem


class Executor(Protocol):
    """Runs jobs concurrently; handles are opaque."""

    def submit(self, job: Job) -> Any: ...

    def wait(self, handles: list[Any], timeout: float) -> list[Any]:
        """The handles that are done (at least one unless the timeout passed)."""
        ...

    def result(self, handle: Any) -> dict[str, Any]:
        """The job's result; raises when the worker died."""
        ...

    def cancel(self, handles: list[Any]) -> None: ...

    def close(self) -> None: ...


class RayExecutor:
    """Jobs as Ray tasks, one CPU each."""

    def __init__(self, concurrency: int, address: str | None = None, log: Path | None = None) -> None:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        self.log = log
        try:
            import ray
        except ImportError:
            raise EnvironmentProblem("batch runs on Ray, which is missing: pip install 'branchwise[ray]'") from None
        self.ray = ray
        self.temp: str | None = None
        self._token_env = False
        address = address or os.environ.get("RAY_ADDRESS") or None
        quiet: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False, "include_dashboard": False}
        try:
            with _stderr_to(self.log):
                self._init(ray, address, concurrency, quiet)
        except (ConnectionError, RuntimeError, ValueError, OSError, ray.exceptions.RayError) as exc:
            self._remove_temp()
            where = f"the Ray cluster at {address}" if address else "a local Ray node"
            hint = " (is it running? a cluster with token authentication needs RAY_AUTH_MODE=token)" if address else ""
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise EnvironmentProblem(f"cannot start {where}: {first}{hint}") from None
        self.remote = ray.remote(num_cpus=1, max_retries=0)(run_job)

    def _init(self, ray: Any, address: str | None, concurrency: int, quiet: dict[str, Any]) -> None:
        if address:
            ray.init(address=address, **quiet)
        else:
            # A short path: Ray's sockets live under it, and a socket path is limited to 107 bytes.
            sweep_stale_temps()
            self.temp = tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=TEMP_ROOT)
            Path(self.temp, OWNER_FILE).write_text(str(os.getpid()))
            self._own_token()
            ray.init(address="local", num_cpus=max(1, concurrency), _node_ip_address="127.0.0.1",
                     _temp_dir=self.temp, **quiet)  # fmt: skip

    def _own_token(self) -> None:
        """A local Ray authenticates with a token; give it one of its own, in its session directory, so that
        nothing is written to ~/.ray (unless the user chose a token)."""
        if self.temp is None or "RAY_AUTH_TOKEN" in os.environ or "RAY_AUTH_TOKEN_PATH" in os.environ:
            return
        path = Path(self.temp, "auth_token")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
        os.environ["RAY_AUTH_TOKEN_PATH"] = str(path)
        self._token_env = True

    def submit(self, job: Job) -> Any:
        return self.remote.remote(job)

    def wait(self, handles: list[Any], timeout: float) -> list[Any]:
        ready, _ = self.ray.wait(handles, num_returns=1, timeout=timeout)
        if ready:
            ready, _ = self.ray.wait(handles, num_returns=len(handles), timeout=0)
        return list(ready)

    def result(self, handle: Any) -> dict[str, Any]:
        value: dict[str, Any] = self.ray.get(handle)
        return value

    def cancel(self, handles: list[Any]) -> None:
        for handle in handles:
            try:
                self.ray.cancel(handle, force=True)
            except (ValueError, TypeError, self.ray.exceptions.RayError):
                pass  # already finished

    def close(self) -> None:
        with _stderr_to(self.log):
            self.ray.shutdown()
        self._remove_temp()

    def _remove_temp(self) -> None:
        if self._token_env:
            os.environ.pop("RAY_AUTH_TOKEN_PATH", None)
            self._token_env = False
        if self.temp:
            shutil.rmtree(self.temp, ignore_errors=True)


TEMP_ROOT, TEMP_PREFIX, OWNER_FILE = "/tmp", "bw-ray-", "branchwise.pid"


def sweep_stale_temps(root: str = TEMP_ROOT) -> None:
    """Remove the session directories of local Rays whose batch is gone (a batch killed with SIGKILL cannot)."""
    for directory in Path(root).glob(f"{TEMP_PREFIX}*"):
        try:
            if directory.stat().st_uid != os.getuid():
                continue
            pid = int((directory / OWNER_FILE).read_text().strip())
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(directory, ignore_errors=True)
        except (OSError, ValueError):
            continue  # not ours, or its owner is alive (or we may not signal it)


@contextlib.contextmanager
def _stderr_to(log: Path | None) -> Iterator[None]:
    """Ray's own start-up and shutdown chatter (written by its C++ core straight to file descriptor 2) goes to
    the batch's log instead of the user's terminal."""
    if log is None:
        yield
        return
    log.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(log, "ab") as f:
            os.dup2(f.fileno(), 2)
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


class PoolExecutor:
    """Jobs in a plain process pool (the benchmark's baseline for Ray's overhead)."""

    def __init__(self, concurrency: int) -> None:
        context = multiprocessing.get_context("forkserver")
        self.pool = concurrent.futures.ProcessPoolExecutor(max_workers=max(1, concurrency), mp_context=context)

    def submit(self, job: Job) -> Any:
        return self.pool.submit(run_job, job)

    def wait(self, handles: list[Any], timeout: float) -> list[Any]:
        done, _ = concurrent.futures.wait(handles, timeout=timeout, return_when=concurrent.futures.FIRST_COMPLETED)
        return list(done)

    def result(self, handle: Any) -> dict[str, Any]:
        value: dict[str, Any] = handle.result()
        return value

    def cancel(self, handles: list[Any]) -> None:
        for handle in handles:
            handle.cancel()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class InlineExecutor:
    """Jobs one after another in this process (the sequential baseline)."""

    def submit(self, job: Job) -> Any:
        return _Done(run_job(job))

    def wait(self, handles: list[Any], timeout: float) -> list[Any]:
        return list(handles)

    def result(self, handle: Any) -> dict[str, Any]:
        value: dict[str, Any] = handle.value
        return value

    def cancel(self, handles: list[Any]) -> None:
        pass

    def close(self) -> None:
        pass


class _Done:
    """A finished job's result as a handle (handles are dictionary keys)."""

    def __init__(self, value: dict[str, Any]) -> None:
        self.value = value
