"""Start-up time of `branchwise --help` and `--version` against `python -c pass`, measured in the same run.

Prints median wall times and ratios; the last line is a JSON summary. Target: --help under 0.35 s median.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

RUNS = 21
BRANCHWISE = str(Path(sys.executable).with_name("branchwise"))
COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "branchwise --help": [BRANCHWISE, "--help"],
    "branchwise --version": [BRANCHWISE, "--version"],
}


def wall(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def main() -> None:
    for argv in COMMANDS.values():
        wall(argv)  # warm the page cache
    samples: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(RUNS):  # interleaved, so load on the machine hits every command alike
        for name, argv in COMMANDS.items():
            samples[name].append(wall(argv))
    base = statistics.median(samples["python -c pass"])
    summary = {}
    for name, values in samples.items():
        median = statistics.median(values)
        summary[name] = {"median_s": round(median, 4), "ratio_to_python": round(median / base, 2)}
        print(f"{name:22} median {median * 1000:7.1f} ms   x{median / base:5.2f} of python -c pass")
    help_s = summary["branchwise --help"]["median_s"]
    print(f"--help target 0.35 s: {'met' if help_s < 0.35 else 'MISSED'} ({help_s:.3f} s)")
    print(json.dumps({"bench": "startup", "runs": RUNS, **summary}))


if __name__ == "__main__":
    main()
