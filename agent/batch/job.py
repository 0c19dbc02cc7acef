"""One task of a batch, run where a worker is: its own copy of the repository, `branchwise run` on it, the
optional evaluation score, and one result object. Nothing here raises for a failing task; the result says it.

The run is a child process (its signals, memory and output are its own), tied to the worker with
PR_SET_PDEATHSIG: a worker that is cancelled or killed takes its run with it.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from branchwise.agent.batch.tasks import Score, Task
from branchwise.agent.errors import EXIT_ENVIRONMENT, EXIT_INTERRUPTED
from branchwise.tools.git.isolation import git_environment

PR_SET_PDEATHSIG = 1
STOP_GRACE_S = 30.0
MAX_TEST_OUTPUT = 2000


@dataclass
class Job:
    """What a worker needs to run one task (it is pickled to the worker)."""

    task: Task
    out_dir: Path
    flags: list[str] = field(default_factory=list)
    """Command-line options for `branchwise run` (the batch's --model, --search, ...)."""
    env: dict[str, str] | None = None
    attempt: int = 1

    @property
    def workdir(self) -> Path:
        return self.out_dir / "work" / self.task.slug

    @property
    def log(self) -> Path:
        return self.out_dir / "logs" / f"{self.task.slug}.log"


def run_job(job: Job) -> dict[str, Any]:
    """Copy, run, score; always returns the task's result object (a failure of the environment is exit 4)."""
    started = time.monotonic()
    job.log.parent.mkdir(parents=True, exist_ok=True)
    try:
        prepare_copy(job.task, job.workdir)
    except (OSError, subprocess.SubprocessError, CopyError) as exc:
        return _result(job, _environment(f"cannot prepare a copy of {job.task.repo}: {exc}"), started)
    final = _run(job)
    if job.task.score is not None and final.get("exit_code") in (0, 1):
        final["score"] = score(job, job.task.score)
    return _result(job, final, started)


class CopyError(Exception):
    """git could not clone or check out the task's repository."""


def prepare_copy(task: Task, dest: Path) -> None:
    """A fresh copy of the task's repository at dest (an earlier attempt's is removed first)."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    assert task.repo is not None
    if task.copy_dir:
        shutil.copytree(task.repo, dest, symlinks=True, ignore=shutil.ignore_patterns(".branchwise", ".git"))
        _git(dest, "init", "-q", "-b", "main")
        _git(dest, "add", "-A")
        _git(dest, "commit", "-q", "--allow-empty", "-m", f"batch copy of {task.repo}")
    else:
        # --no-hardlinks: the copy's objects are its own, so nothing done in it can reach the original's.
        _git(dest.parent, "clone", "-q", "--no-hardlinks", str(task.repo), str(dest))
        if task.ref:
            _git(dest, "checkout", "-q", "-B", "branchwise-batch-base", task.ref)
    if task.inline:
        _write_task_file(task, dest)


def task_file_of(task: Task, workdir: Path) -> Path:
    """The task file `branchwise run -f` gets: the original one, or for an inline task the one written for it."""
    return workdir.parent.parent / "tasks" / f"{task.slug}.toml" if task.inline else task.source


def _write_task_file(task: Task, workdir: Path) -> None:
    import tomli_w

    data = {k: v for k, v in task.data.items() if k not in ("repo", "ref", "model", "id") and v is not None}
    path = task_file_of(task, workdir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tomli_w.dumps(data), encoding="utf-8")


def host_git(cwd: Path, *args: str) -> None:
    """git on the host with the isolated environment of tools/git (no user or system config, no hooks, no
    helpers); a failure raises CopyError with git's last line."""
    with tempfile.TemporaryDirectory(prefix="branchwise-git-") as scratch:
        # Only local repositories are copied: the file transport, and no other, is allowed.
        env = git_environment(Path(scratch), author=("branchwise", "branchwise@localhost"),
                              extra_config=(("protocol.file.allow", "always"),))  # fmt: skip
        res = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True, env=env, timeout=600,
                             check=False)  # fmt: skip
    if res.returncode != 0:
        raise CopyError((res.stderr.strip().splitlines() or [f"git {args[0]} failed"])[-1])


_git = host_git


def branchwise_command() -> list[str]:
    """This installation's CLI, run by the same Python."""
    return [sys.executable, "-m", "branchwise.cli.main"]


def _run(job: Job) -> dict[str, Any]:
    task = job.task
    args = ["run", "-f", str(task_file_of(task, job.workdir)), "-C", str(job.workdir), "-o", "json"]
    for name, value in task.params.items():
        args += ["--param", f"{name}={value}"]
    model = task.data.get("model") if task.inline else None
    flags = list(job.flags)
    if isinstance(model, str) and "--model" not in flags:
        if model.startswith("scripted:") and not Path(model[9:]).is_absolute():
            model = f"scripted:{(task.source.parent / model[9:]).resolve()}"
        flags += ["--model", model]
    with open(job.log, "wb") as log, tempfile.TemporaryFile() as stdout:
        log.write(f"attempt {job.attempt}: branchwise {' '.join(args + flags)}\n".encode())
        log.flush()
        code = run_tied([*branchwise_command(), *args, *flags], stdout=stdout, stderr=log, env=job.env,
                        cwd=job.workdir)  # fmt: skip
        stdout.seek(0)
        final = _last_object(stdout.read().decode("utf-8", "replace"))
    if final is None:
        return _environment(f"branchwise run ended with {_describe_exit(code)} and no result; see {job.log}")
    return final


def run_tied(args: list[str], *, stdout: Any, stderr: Any, env: dict[str, str] | None, cwd: Path) -> int:
    """Run a child that ends when this worker does: PR_SET_PDEATHSIG covers the worker's death, and the worker's
    own parent (Ray's raylet, or the batch) going away stops it too, since a worker can outlive its raylet for a
    while. Stopping is SIGTERM, so the run records that it was interrupted; SIGKILL after a grace period."""
    parent = os.getppid()
    proc = subprocess.Popen(args, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL, env=env, cwd=cwd,
                            preexec_fn=_die_with(os.getpid()))  # fmt: skip
    while True:
        try:
            return proc.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            if os.getppid() != parent:
                proc.terminate()
                try:
                    return proc.wait(timeout=STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    return proc.wait()


def _die_with(worker: int) -> Callable[[], None]:
    def tie() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != worker:  # the worker died before the tie was made
            os._exit(EXIT_INTERRUPTED)

    return tie


def _last_object(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.splitlines()):
        with contextlib.suppress(json.JSONDecodeError):
            obj = json.loads(line)
            if isinstance(obj, dict) and "exit_code" in obj:
                return obj
    return None


def _describe_exit(code: int) -> str:
    return f"signal {-code}" if code < 0 else f"exit code {code}"


def _environment(message: str) -> dict[str, Any]:
    return {"status": "error", "exit_code": EXIT_ENVIRONMENT, "error": message}


def score(job: Job, spec: Score) -> dict[str, Any]:
    """Apply the hidden files and patch, run each test command in the sandbox; passed = every test passed."""
    workdir = job.workdir
    try:
        for name, text in spec.files.items():
            target = workdir / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        if spec.patch:
            patch = job.out_dir / "tasks" / f"{job.task.slug}.patch"
            patch.parent.mkdir(parents=True, exist_ok=True)
            patch.write_text(spec.patch, encoding="utf-8")
            _git(workdir, "apply", "--whitespace=nowarn", str(patch))
    except (OSError, CopyError) as exc:
        return {"passed": False, "error": f"cannot apply the tests: {exc}", "tests": []}
    results = []
    for group, name, command in spec.tests:
        args = ["sandbox", "run", "-C", str(workdir), "--timeout", str(spec.timeout_s), "--", "sh", "-c", command]
        if "--dangerously-full-access" in job.flags:
            args.insert(2, "--dangerously-full-access")
        with tempfile.TemporaryFile() as output:
            code = run_tied([*branchwise_command(), *args], stdout=output, stderr=subprocess.STDOUT, env=job.env,
                            cwd=workdir)  # fmt: skip
            output.seek(max(0, output.seek(0, os.SEEK_END) - MAX_TEST_OUTPUT))
            tail = output.read().decode("utf-8", "replace")
        results.append({"group": group, "name": name, "passed": code == 0, "exit_code": code, "output": tail})
    return {"passed": bool(results) and all(r["passed"] for r in results), "tests": results}


def _result(job: Job, final: dict[str, Any], started: float) -> dict[str, Any]:
    score_ = final.get("score")
    passed = final.get("exit_code") == 0 and (score_ is None or bool(score_.get("passed")))
    return {
        "task_id": job.task.id,
        **final,
        "passed": passed,
        "attempt": job.attempt,
        "workdir": str(job.workdir),
        "log": str(job.log),
        "task_wall_s": round(time.monotonic() - started, 3),
    }


def malformed_result(task: Task) -> dict[str, Any]:
    """The result of a task that could not be read or filled: never run, exit 2."""
    return {"task_id": task.id, "status": "invalid", "exit_code": 2, "error": task.error, "passed": False,
            "source": str(task.source)}  # fmt: skip


def keep_env() -> dict[str, str]:
    """The environment a local batch's runs get: this process's own."""
    return dict(os.environ)
