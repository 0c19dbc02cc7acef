"""Per-command overhead of BwrapSandbox.run over a plain capped subprocess, for three small commands.

Runs each command N times through both runners, interleaved so that load on the machine hits both
alike, and prints median and p10/p90 milliseconds, the overhead and the ratio. The last line is a JSON
summary. Usage: python bench/sandbox.py [--runs N] [--network off|proxy|on] [--mode M]
"""

from __future__ import annotations

import argparse
import json
import statistics
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--network", default="off", choices=["off", "proxy", "on"])
    parser.add_argument("--mode", default="workspace-write", choices=["read-only", "workspace-write"])
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
            }
        )
    )


if __name__ == "__main__":
    main()
