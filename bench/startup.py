"""Start-up time of `branchwise --help`, `--version`, `run --help` and `sandbox run -- true` against
`python -c pass`, measured interleaved in the same run.

Prints median wall times and ratios; the last line is a JSON summary. Targets: --help under 0.35 s median;
`run --help` under 3x `python -c pass`. `sandbox run -- true` is reported beside `bwrap ... true` with the
same binary and no mounts, so that the sandbox's own share (its mount layout, seccomp, the proxy) shows.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS = 21
BRANCHWISE = str(Path(sys.executable).with_name("branchwise"))
COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "branchwise --help": [BRANCHWISE, "--help"],
    "branchwise --version": [BRANCHWISE, "--version"],
    "branchwise run --help": [BRANCHWISE, "run", "--help"],
    "branchwise sandbox run -- true": [BRANCHWISE, "sandbox", "run", "--no-git", "--", "true"],
}
RUN_HELP_TARGET = 3.0


# As a user's shell runs it: with bytecode caches. A PYTHONDONTWRITEBYTECODE inherited from the bench's own shell
# (some CI images set it) would compile every module of the source checkout on every start, which no installed
# copy does; the warm-up run below writes the caches.
ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}


def wall(argv: list[str], cwd: str) -> float:
    started = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, cwd=cwd, env=ENV)
    return time.perf_counter() - started


def main() -> None:
    commands = dict(COMMANDS)
    bwrap = shutil.which("bwrap")
    if bwrap:  # the bare isolation, for scale: a new namespace with the host's root read-only
        commands["bwrap --ro-bind / / true"] = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--unshare-all", "true"]
    with tempfile.TemporaryDirectory(prefix="startup-") as cwd:
        for argv in commands.values():
            wall(argv, cwd)  # warm the page cache and the bytecode caches
        samples: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(RUNS):  # interleaved, so load on the machine hits every command alike
            for name, argv in commands.items():
                samples[name].append(wall(argv, cwd))
    base = statistics.median(samples["python -c pass"])
    summary = {}
    for name, values in samples.items():
        median = statistics.median(values)
        summary[name] = {"median_s": round(median, 4), "ratio_to_python": round(median / base, 2)}
        print(f"{name:32} median {median * 1000:7.1f} ms   x{median / base:5.2f} of python -c pass")
    help_s = summary["branchwise --help"]["median_s"]
    print(f"--help target 0.35 s: {'met' if help_s < 0.35 else 'MISSED'} ({help_s:.3f} s)")
    run_help = summary["branchwise run --help"]["ratio_to_python"]
    verdict = "met" if run_help < RUN_HELP_TARGET else "MISSED"
    print(f"run --help target under {RUN_HELP_TARGET:g}x python -c pass: {verdict} (x{run_help:.2f})")
    targets = {"help_under_0.35_s": help_s < 0.35, "run_help_under_3x": run_help < RUN_HELP_TARGET}
    print(json.dumps({"bench": "startup", "runs": RUNS, **summary, "targets": targets}))


if __name__ == "__main__":
    main()
