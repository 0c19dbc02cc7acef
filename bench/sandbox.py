"""Per-command overhead of BwrapSandbox.run over a plain capped subprocess, for three small commands.

Runs each command N times through both runners, interleaved so that load on the machine hits both
alike, and prints median and p10/p90 milliseconds, the overhead and the ratio. The last line is a JSON
summary. Usage: python bench/sandbox.py [--runs N] [--network off|proxy|on] [--mode M] [--against REV]

`--against REV` also measures `true` in a real git repository through this checkout's sandbox and through
the sandbox of revision REV (a git worktree of it, made and removed here), in alternating rounds of fresh
processes, and reports the ratio: whether a change made the sandbox slower than it was.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from branchwise.sandbox.isolation.bwrap import BwrapSandbox
from branchwise.sandbox.isolation.process import run_capped
from branchwise.sandbox.settings import SandboxSettings

COMMANDS = {
    "true": ["true"],
    "bash -c true": ["bash", "-c", "true"],
    "python3 -c pass": ["/usr/bin/python3", "-c", "pass"],
}


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _spread(values: list[float]) -> str:
    return f"p10 {_pct(values, 0.1):6.2f}, p90 {_pct(values, 0.9):6.2f}"


# One round in a fresh process: the sandbox of whichever checkout `branchwise` names on its path.
_ROUND = """
import json, resource, statistics, sys, time
from pathlib import Path
try:
    from branchwise.sandbox.isolation.bwrap import BwrapSandbox
except ImportError:  # revisions before the sandbox was split into subpackages
    from branchwise.sandbox.bwrap import BwrapSandbox
opened = time.perf_counter()
with BwrapSandbox(Path(sys.argv[1])) as box:
    setup = (time.perf_counter() - opened) * 1000
    for _ in range(5):
        box.run(["true"])
    times = []
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    for _ in range(int(sys.argv[2])):
        start = time.perf_counter()
        box.run(["true"])
        times.append((time.perf_counter() - start) * 1000)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1000 / len(times)
print(json.dumps([statistics.median(times), cpu, setup]))
"""
_REPO = Path(__file__).resolve().parent.parent


def _round(checkout: Path, workspace: Path, runs: int, home: Path) -> tuple[float, float, float]:
    """(median wall ms, CPU ms of the processes it started) of `true` through `checkout`'s sandbox, and the
    ms its session took to set up (the first of a fresh process, as a `branchwise run` has it). Without
    site (-S) the editable install of this checkout cannot answer for the other one; site-packages still gives
    the dependencies."""
    pkg = home / checkout.name
    pkg.mkdir(exist_ok=True)
    if not (pkg / "branchwise").exists():
        (pkg / "branchwise").symlink_to(checkout)
    env = {**os.environ, "PYTHONPATH": f"{pkg}:{sysconfig.get_paths()['purelib']}"}
    done = subprocess.run([sys.executable, "-S", "-c", _ROUND, str(workspace), str(runs)], env=env, cwd=home,
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"the round in {checkout} failed: {done.stderr.strip()[-500:]}")
    wall, cpu, setup = json.loads(done.stdout.strip().splitlines()[-1])
    return float(wall), float(cpu), float(setup)


def against(rev: str, runs: int, rounds: int = 9) -> dict[str, float | str]:
    """This checkout against revision `rev`, rounds alternating, on a real git repository."""
    git = ["git", "-C", str(_REPO)]
    known = subprocess.run([*git, "cat-file", "-e", f"{rev}^{{commit}}"], capture_output=True, check=False)
    if known.returncode != 0:  # a shallow clone, say
        print(f"no comparison: revision {rev} is not in this clone")
        return {"rev": rev, "skipped": "revision not in this clone"}
    with tempfile.TemporaryDirectory(prefix="branchwise-bench-vs-") as tmp:
        home = Path(tmp)
        base = home / "base"
        subprocess.run([*git, "worktree", "add", "--detach", "-q", str(base), rev], check=True)
        try:
            repo = home / "repo"
            repo.mkdir()
            (repo / "a.txt").write_text("a\n")
            for step in (["init", "-q"], ["add", "a.txt"], ["-c", "user.name=b", "-c", "user.email=b@b", "commit",
                                                           "-qm", "init"]):  # fmt: skip
                subprocess.run(["git", "-C", str(repo), *step], check=True)
            now: list[tuple[float, float, float]] = []
            then: list[tuple[float, float, float]] = []
            for _ in range(rounds):
                now.append(_round(_REPO, repo, runs, home))
                then.append(_round(base, repo, runs, home))
        finally:
            subprocess.run([*git, "worktree", "remove", "--force", str(base)], check=False)
    n, t = (statistics.median(r[0] for r in now), statistics.median(r[0] for r in then))
    nc, tc = (statistics.median(r[1] for r in now), statistics.median(r[1] for r in then))
    ns, ts = (statistics.median(r[2] for r in now), statistics.median(r[2] for r in then))
    print(f"true in a git repository: this checkout {n:6.2f} ms, {rev} {t:6.2f} ms, ratio {n / t:5.2f}x; CPU of the "
          f"processes started {nc:5.2f} against {tc:5.2f} ms, ratio {nc / tc:5.2f}x; session setup {ns:6.1f} against "
          f"{ts:6.1f} ms, ratio {ns / ts:5.2f}x (medians of {rounds} alternating rounds of {runs})")  # fmt: skip
    return {"rev": rev, "this_ms": round(n, 2), "rev_ms": round(t, 2), "ratio": round(n / t, 3),
            "this_cpu_ms": round(nc, 2), "rev_cpu_ms": round(tc, 2), "cpu_ratio": round(nc / tc, 3),
            "this_setup_ms": round(ns, 1), "rev_setup_ms": round(ts, 1), "setup_ratio": round(ns / ts, 3)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--network", default="off", choices=["off", "proxy", "on"])
    parser.add_argument("--mode", default="workspace-write", choices=["read-only", "workspace-write"])
    parser.add_argument("--against", metavar="REV", help="also compare with the sandbox of git revision REV")
    args = parser.parse_args()
    summary: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="branchwise-bench-") as tmp:
        workspace = Path(tmp)
        (workspace / ".git" / "hooks").mkdir(parents=True)
        (workspace / ".git" / "config").write_text("[core]\n")
        settings = SandboxSettings(mode=args.mode, network=args.network)
        setup_start = time.perf_counter()
        with BwrapSandbox(workspace, settings) as sandbox:
            setup_ms = (time.perf_counter() - setup_start) * 1000
            print(f"session setup: {setup_ms:.1f} ms, degraded: {sandbox.describe()['degraded'] or 'nothing'}")
            for name, argv in COMMANDS.items():
                plain: list[float] = []
                boxed: list[float] = []
                for _ in range(3):  # warm caches for both
                    run_capped(argv, cwd=workspace, env={}, timeout=30)
                    sandbox.run(argv)
                for _ in range(args.runs):
                    plain.append(_timed(lambda a=argv: run_capped(a, cwd=workspace, env={}, timeout=30)))
                    boxed.append(_timed(lambda a=argv: sandbox.run(a)))
                p, b = statistics.median(plain), statistics.median(boxed)
                summary[name] = {
                    "plain_ms": round(p, 2),
                    "sandbox_ms": round(b, 2),
                    "overhead_ms": round(b - p, 2),
                    "ratio": round(b / p, 2),
                }
                print(
                    f"{name:16s} plain {p:7.2f} ms ({_spread(plain)})  "
                    f"sandbox {b:7.2f} ms ({_spread(boxed)})  overhead {b - p:6.2f} ms  ratio {b / p:5.2f}x"
                )
    print(
        json.dumps(
            {
                "runs": args.runs,
                "network": args.network,
                "mode": args.mode,
                "setup_ms": round(setup_ms, 1),
                "commands": summary,
                **({"against": against(args.against, args.runs)} if args.against else {}),
            }
        )
    )


if __name__ == "__main__":
    main()
