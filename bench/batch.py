"""Batch throughput: 20 small scripted tasks (each a real `branchwise run` in its own clone: a shell step, a
check, a commit) run one after another, on a local Ray at concurrency 2, and in a plain process pool at
concurrency 2, all in this one run.

Ray's start-up looks for a public address, so the script re-runs itself inside a loopback-only network
namespace (as root: unshare --net; otherwise unshare --net --map-root-user) before it starts Ray.

Figures: the wall time of each way (Ray's start and shutdown reported apart from the tasks), the ratio of Ray at
concurrency 2 to sequential, and Ray's overhead per task against the process pool:
(Ray's wall for the tasks - the pool's) x concurrency / tasks. Targets (issue 15): ratio <= 0.60, overhead
< 0.5 s. The last line is the JSON summary.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TASKS = int(os.environ.get("BENCH_BATCH_TASKS", "20"))
CONCURRENCY = 2
MARK = "BENCH_BATCH_IN_NETNS"


def in_loopback_namespace() -> None:
    """Re-run this script in a network namespace that has only loopback (once)."""
    if os.environ.get(MARK) == "1":
        return
    unshare = ["unshare", "--net"] if os.geteuid() == 0 else ["unshare", "--net", "--map-root-user"]
    script = 'ip link set lo up && exec "$@"'
    env = {**os.environ, MARK: "1"}
    code = subprocess.run([*unshare, "sh", "-c", script, "sh", sys.executable, __file__], env=env).returncode
    sys.exit(code)


def make_tasks(base: Path) -> list[Any]:
    from branchwise.agent.batch.tasks import discover

    repo = base / "repo"
    repo.mkdir()
    (repo / "README.md").write_text("bench\n")
    for args in (["init", "-q", "-b", "main"], ["add", "-A"],
                 ["-c", "user.name=b", "-c", "user.email=b@localhost", "commit", "-q", "-m", "init"]):  # fmt: skip
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)
    tasks = base / "tasks"
    tasks.mkdir()
    replies = "replies:\n  - tool_calls: [{name: shell, arguments: {command: 'echo ok > out.txt'}}]\n"
    replies += "  - tool_calls: [{name: finish, arguments: {summary: done}}]\n"
    (tasks / "replies.yaml").write_text(replies)
    for i in range(TASKS):
        (tasks / f"t{i:02d}.toml").write_text(
            f'prompt = "task {i}"\nrepo = "../repo"\nmodel = "scripted:replies.yaml"\nchecks = ["grep -q ok out.txt"]\n'
        )
    return discover([str(tasks)])


class Timed:
    """An executor made in advance (so its start is timed apart) whose close is timed too."""

    def __init__(self, executor: Any) -> None:
        self.executor, self.close_s = executor, 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.executor, name)

    def close(self) -> None:
        started = time.monotonic()
        self.executor.close()
        self.close_s = time.monotonic() - started


def run(tasks: list[Any], out: Path, executor: Any, concurrency: int) -> tuple[float, int]:
    from branchwise.agent.batch.runner import BatchOptions, run_batch

    options = BatchOptions(concurrency=concurrency, flags=["--no-plan"], env=dict(os.environ))
    started = time.monotonic()
    outcome = run_batch(tasks, out, options, lambda: executor)
    wall = time.monotonic() - started - getattr(executor, "close_s", 0.0)
    passed = sum(1 for r in outcome.results.values() if r.get("passed"))
    return wall, passed


def main() -> int:
    in_loopback_namespace()
    from branchwise.agent.batch.executors import InlineExecutor, PoolExecutor, RayExecutor

    base = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    home = base / "home"
    home.mkdir()
    os.environ.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), XDG_STATE_HOME=str(home / ".state"))
    os.environ["BRANCHWISE_MEMORY_REFLECTOR"] = "trace"
    try:
        tasks = make_tasks(base)
        sequential, ok_seq = run(tasks, base / "seq", InlineExecutor(), 1)
        print(f"sequential: {sequential:.2f} s ({ok_seq}/{TASKS} passed)", flush=True)
        started = time.monotonic()
        ray = Timed(RayExecutor(CONCURRENCY, log=base / "ray.log"))
        ray_init = time.monotonic() - started
        ray_wall, ok_ray = run(tasks, base / "ray", ray, CONCURRENCY)
        print(f"ray c={CONCURRENCY}: {ray_wall:.2f} s for the tasks ({ok_ray}/{TASKS} passed); start {ray_init:.2f} s, "
              f"shutdown {ray.close_s:.2f} s", flush=True)  # fmt: skip
        pool = Timed(PoolExecutor(CONCURRENCY))
        pool_wall, ok_pool = run(tasks, base / "pool", pool, CONCURRENCY)
        print(f"process pool c={CONCURRENCY}: {pool_wall:.2f} s ({ok_pool}/{TASKS} passed)", flush=True)
    finally:
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(base, ignore_errors=True)
        else:
            print(f"kept {base}")
    ratio = ray_wall / sequential
    overhead = (ray_wall - pool_wall) * CONCURRENCY / TASKS
    summary = {
        "bench": "batch",
        "tasks": TASKS,
        "concurrency": CONCURRENCY,
        "cpus": os.cpu_count(),
        "passed": {"sequential": ok_seq, "ray": ok_ray, "pool": ok_pool},
        "sequential_s": round(sequential, 3),
        "ray_tasks_s": round(ray_wall, 3),
        "ray_start_s": round(ray_init, 3),
        "ray_shutdown_s": round(ray.close_s, 3),
        "pool_tasks_s": round(pool_wall, 3),
        "ratio_ray_to_sequential": round(ratio, 3),
        "ratio_ray_with_start_to_sequential": round((ray_wall + ray_init + ray.close_s) / sequential, 3),
        "ray_overhead_per_task_s": round(overhead, 3),
        "target_ratio_met": ratio <= 0.60,
        "target_overhead_met": overhead < 0.5,
    }
    print(json.dumps(summary))
    return 0 if ok_seq == ok_ray == ok_pool == TASKS else 1


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
