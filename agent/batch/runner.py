"""Running a batch: submit the tasks that are not finished yet, at most `concurrency` at a time, record each
result as it arrives, retry failures of the environment (exit 4) only, and stop at the batch's budget or on
Ctrl-C, keeping every result that finished.

Exit codes: 0 every task passed; 1 some failed (a malformed task counts as failed); 3 the batch's budget ran
out before every task ran; 4 a task still failed for its environment after its retries; 130 interrupted.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from branchwise.agent.batch.executors import Executor
from branchwise.agent.batch.job import Job, malformed_result
from branchwise.agent.batch.results import ResultsFile
from branchwise.agent.batch.tasks import Task
from branchwise.agent.errors import EXIT_BUDGET, EXIT_ENVIRONMENT, EXIT_INTERRUPTED, EXIT_NOT_COMPLETED, EXIT_OK

Notify = Callable[[str, Task, dict[str, Any] | None], None]
"""Progress: ("skipped" | "started" | "finished" | "retry", task, result)."""


@dataclass
class BatchOptions:
    concurrency: int = 2
    max_cost_usd: float | None = None
    """The whole batch's budget in dollars (finished results of earlier runs of it count)."""
    max_wall_s: float | None = None
    """This invocation's wall-time budget; running tasks are cancelled when it is spent."""
    retries: int = 1
    """How often a task that failed for its environment (exit 4) is tried again."""
    flags: list[str] = field(default_factory=list)
    env: dict[str, str] | None = None


@dataclass
class BatchOutcome:
    results: dict[str, dict[str, Any]]
    """The latest result of every task of the batch (earlier runs' included)."""
    skipped: list[str] = field(default_factory=list)
    not_run: list[str] = field(default_factory=list)
    budget: str | None = None
    """Which batch budget ran out: cost or wall."""
    interrupted: bool = False
    wall_s: float = 0.0

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        if self.budget and self.not_run:
            return EXIT_BUDGET
        codes = [r.get("exit_code") for r in self.results.values()]
        if EXIT_ENVIRONMENT in codes:
            return EXIT_ENVIRONMENT
        if any(not r.get("passed") for r in self.results.values()):
            return EXIT_NOT_COMPLETED
        return EXIT_OK


def run_batch(tasks: list[Task], out_dir: Path, options: BatchOptions, executor: Callable[[], Executor],
              notify: Notify | None = None) -> BatchOutcome:  # fmt: skip
    """Run every unfinished task of the batch; the results file is out_dir/results.jsonl."""
    started = time.monotonic()
    notify = notify or (lambda *_: None)
    results = ResultsFile(out_dir / "results.jsonl")
    ids = {t.id for t in tasks}
    outcome = BatchOutcome(results={})
    queue: deque[Job] = deque()
    for task in tasks:
        if results.finished(task.id):
            outcome.skipped.append(task.id)
            notify("skipped", task, results.previous[task.id])
        elif task.error:
            results.append(malformed_result(task))
            notify("finished", task, results.written[task.id])
        else:
            queue.append(Job(task=task, out_dir=out_dir, flags=options.flags, env=options.env))
    try:
        if queue:
            _drive(queue, results, options, executor, notify, outcome, started, ids)
    finally:
        results.close()
        outcome.results = {k: v for k, v in results.all().items() if k in ids}
        outcome.wall_s = round(time.monotonic() - started, 3)
    return outcome


def _drive(queue: deque[Job], results: ResultsFile, options: BatchOptions, make: Callable[[], Executor],
           notify: Notify, outcome: BatchOutcome, started: float, ids: set[str]) -> None:  # fmt: skip
    executor = make()
    running: dict[Any, Job] = {}
    try:
        while queue or running:
            while queue and len(running) < options.concurrency and not _over(options, results, ids, started, outcome):
                job = queue.popleft()
                notify("started", job.task, None)
                running[executor.submit(job)] = job
            if not running:
                break
            timeout = 1.0
            if options.max_wall_s is not None:
                timeout = max(0.0, min(timeout, started + options.max_wall_s - time.monotonic()))
            for handle in executor.wait(list(running), timeout):
                _collect(executor, handle, running.pop(handle), queue, results, options, notify)
            if running and _wall_over(options, started):
                outcome.budget = "wall"
                executor.cancel(list(running))
                queue.extendleft(reversed(running.values()))
                running.clear()
                break
    except KeyboardInterrupt:
        outcome.interrupted = True
        executor.cancel(list(running))
        queue.extendleft(reversed(running.values()))
    finally:
        outcome.not_run = [job.task.id for job in queue]
        executor.close()


def _collect(executor: Executor, handle: Any, job: Job, queue: deque[Job], results: ResultsFile,
             options: BatchOptions, notify: Notify) -> None:  # fmt: skip
    try:
        result = executor.result(handle)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # the worker died (Ray raises its own errors): the environment failed
        result = {"task_id": job.task.id, "status": "error", "exit_code": EXIT_ENVIRONMENT, "passed": False,
                  "error": f"the worker running the task died: {type(exc).__name__}: {_first_line(exc)}",
                  "attempt": job.attempt}  # fmt: skip
    if result.get("exit_code") == EXIT_ENVIRONMENT and job.attempt <= options.retries:
        notify("retry", job.task, result)
        queue.appendleft(Job(task=job.task, out_dir=job.out_dir, flags=job.flags, env=job.env, attempt=job.attempt + 1))
        return
    results.append(result)
    notify("finished", job.task, result)


def _over(options: BatchOptions, results: ResultsFile, ids: set[str], started: float, outcome: BatchOutcome) -> bool:
    """Whether the batch's budget is spent (then nothing more is started)."""
    if options.max_cost_usd is not None:
        spent = sum(float(r.get("cost_usd") or 0.0) for k, r in results.all().items() if k in ids)
        if spent >= options.max_cost_usd:
            outcome.budget = "cost"
            return True
    if _wall_over(options, started):
        outcome.budget = "wall"
        return True
    return False


def _wall_over(options: BatchOptions, started: float) -> bool:
    return options.max_wall_s is not None and time.monotonic() - started >= options.max_wall_s


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else ""
