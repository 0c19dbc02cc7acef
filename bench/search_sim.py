"""Search benchmark with no LLM: the real `none`, `best-of-n` and `mcts` code on simulated tasks.

A simulated policy, judge, sandbox and workspace are plugged in at the Model, Sandbox and Workspace seams
(see bench/README.md and bench/sim/); everything between them is the project's own code. Each cell runs
the same task bank per seed for every strategy at the same model-call budget.
Usage: python bench/search_sim.py [--quick] [--tasks N] [--seeds N] [--only NAME ...] [--set key=value ...]
                                  [--noise key=value ...] [--strategies NAME ...] [--first-seed N]
The last line of output is a JSON summary.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sim.runner import STRATEGIES, run_task
from sim.world import Noise, Task

BASE = Noise()
# The noise settings (research note d.1, plus sticky blind spots: a harsher judge), each run at every budget.
NOISES: list[tuple[str, Noise]] = [
    ("base", BASE),
    ("noisy judge σ=.4", replace(BASE, sigma=0.4)),
    ("deceptive judge .6", replace(BASE, deceive=0.6)),
    ("weak tests fp=.4", replace(BASE, fp=0.4)),
    ("low skill p=.6", replace(BASE, p_skill=0.6)),
    ("sticky blind .6", replace(BASE, deceive=0.6, sticky=True)),
]
BUDGETS = [10, 20, 30, 60]
DEFAULT_BUDGET = 30
# (name, noise, model-call budget): every noise setting at every budget; names are "NOISE @BUDGET".
SETTINGS: list[tuple[str, Noise, int]] = [(f"{name} @{b}", noise, b) for name, noise in NOISES for b in BUDGETS]
ORDER = ["mcts", "best-of-n", "none"]
"""The acceptance order: each strategy at least as good as the next, within one standard error."""
TARGET_OVER_NONE = 0.15


@dataclass
class Cell:
    """One (setting, strategy, seed): means over the task bank."""

    setting: str
    strategy: str
    seed: int
    success: float
    coverage: float
    calls: float
    judge_calls: float


def run_cell(job: tuple[str, Noise, int, str, int, int, str, dict[str, Any]]) -> Cell:
    setting, noise, budget, strategy, seed, tasks, root, search = job
    outcomes = []
    for i in range(tasks):
        task = Task.generate(f"s{seed}t{i}", random.Random(f"task:{seed}:{i}"))
        outcomes.append(run_task(strategy, task, noise, budget, seed, Path(root), search))
    return Cell(
        setting,
        strategy,
        seed,
        statistics.fmean(o.success for o in outcomes),
        statistics.fmean(o.coverage for o in outcomes),
        statistics.fmean(o.calls for o in outcomes),
        statistics.fmean(o.judge_calls for o in outcomes),
    )


def mean_se(values: list[float]) -> tuple[float, float]:
    """Mean and standard error across seeds."""
    se = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else 0.0
    return statistics.fmean(values), se


def summarize(cells: list[Cell]) -> dict[str, dict[str, dict[str, list[float]]]]:
    """setting -> strategy -> metric -> [mean, standard error]."""
    out: dict[str, dict[str, dict[str, list[float]]]] = {}
    for setting in dict.fromkeys(c.setting for c in cells):
        for strategy in STRATEGIES:
            group = [c for c in cells if c.setting == setting and c.strategy == strategy]
            if not group:
                continue
            metrics = {
                "success": [c.success for c in group],
                "coverage": [c.coverage for c in group],
                "gap": [c.coverage - c.success for c in group],
                "calls": [c.calls for c in group],
                "judge_calls": [c.judge_calls for c in group],
            }
            out.setdefault(setting, {})[strategy] = {k: [round(x, 4) for x in mean_se(v)] for k, v in metrics.items()}
    return out


def print_table(summary: dict[str, dict[str, dict[str, list[float]]]], budgets: dict[str, int]) -> None:
    head = f"{'setting':<24} {'budget':>6} {'strategy':<10} {'success':>13} {'coverage':>13} {'gap':>13} {'calls':>12}"
    print(head + f" {'judge':>6}")
    print("-" * (len(head) + 7))
    for setting, rows in summary.items():
        for strategy, m in rows.items():
            cols = [f"{m[k][0]:.3f} ± {m[k][1]:.3f}" for k in ("success", "coverage", "gap")]
            calls = f"{m['calls'][0]:.1f} ± {m['calls'][1]:.1f}"
            print(
                f"{setting:<24} {budgets[setting]:>6} {strategy:<10} {cols[0]:>13} {cols[1]:>13} {cols[2]:>13} "
                f"{calls:>12} {m['judge_calls'][0]:>6.1f}"
            )
        print()


def paired(cells: list[Cell], setting: str, a: str, b: str) -> tuple[float, float] | None:
    """Mean and standard error across seeds of success(a) − success(b): both ran the same task bank per seed."""
    by_seed: dict[int, dict[str, float]] = {}
    for c in cells:
        if c.setting == setting and c.strategy in (a, b):
            by_seed.setdefault(c.seed, {})[c.strategy] = c.success
    diffs = [row[a] - row[b] for row in by_seed.values() if len(row) == 2]
    return mean_se(diffs) if diffs else None


def acceptance(cells: list[Cell]) -> dict[str, Any]:
    """The issue's targets: in every setting mcts ≥ best-of-n ≥ none within one standard error (of the paired
    difference across seeds); at the base noise and default budget, mcts ≥ none + 15 points."""
    order: dict[str, dict[str, Any]] = {}
    for setting in dict.fromkeys(c.setting for c in cells):
        row = {}
        for better, worse in itertools.pairwise(ORDER):
            diff = paired(cells, setting, better, worse)
            if diff is not None:
                row[f"{better}_minus_{worse}"] = [round(x, 4) for x in diff]
                row[f"{better}_vs_{worse}_met"] = diff[0] >= -diff[1]
        if row:
            order[setting] = row
    base = None
    over_none = paired(cells, f"base @{DEFAULT_BUDGET}", "mcts", "none")
    if over_none is not None:
        base = {"mcts_minus_none": [round(x, 4) for x in over_none], "met": over_none[0] >= TARGET_OVER_NONE}
    met = all(v for row in order.values() for k, v in row.items() if k.endswith("_met"))
    return {"order": order, "base_mcts_vs_none": base, "all_met": met and (base is None or base["met"])}


def print_acceptance(verdict: dict[str, Any]) -> None:
    print("acceptance: mcts ≥ best-of-n ≥ none within one standard error (paired differences in success across")
    print("seeds, mean ± standard error); met when the difference is at least minus its standard error")
    print(f"{'setting':<26} {'mcts − best-of-n':>22} {'best-of-n − none':>22}")
    for setting, row in verdict["order"].items():
        cols = []
        for better, worse in itertools.pairwise(ORDER):
            key = f"{better}_minus_{worse}"
            if key not in row:
                cols.append(f"{'-':>22}")
                continue
            (mean, se), met = row[key], row[f"{better}_vs_{worse}_met"]
            cols.append(f"{mean:+.3f} ± {se:.3f} {'met' if met else 'NOT':>4}")
        print(f"{setting:<26} {cols[0]:>22} {cols[1]:>22}")
    if verdict["base_mcts_vs_none"]:
        (mean, se), met = verdict["base_mcts_vs_none"]["mcts_minus_none"], verdict["base_mcts_vs_none"]["met"]
        verdict_text = "met" if met else "NOT met"
        print(f"mcts − none, base @{DEFAULT_BUDGET} (target ≥ +0.15): {mean:+.3f} ± {se:.3f} {verdict_text}")
    print(f"all met: {verdict['all_met']}")


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """key=value pairs; values are JSON (numbers, true/false) or else strings."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="60 tasks per seed instead of 500")
    parser.add_argument("--tasks", type=int, help="tasks per seed and cell")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds are FIRST_SEED, FIRST_SEED+1, ...")
    parser.add_argument("--only", nargs="*", help="settings to run (by name prefix, e.g. 'base' or 'base @10')")
    parser.add_argument("--budgets", nargs="*", type=int, help=f"budgets to run (default {BUDGETS})")
    parser.add_argument("--strategies", nargs="*", default=list(STRATEGIES), choices=STRATEGIES)
    parser.add_argument("--set", nargs="*", default=[], help="SearchSettings overrides for both searches, key=value")
    parser.add_argument("--noise", nargs="*", default=[], help="Noise overrides for every setting, key=value")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args()
    tasks = args.tasks or (60 if args.quick else 500)
    search = parse_overrides(args.set)
    overrides = parse_overrides(args.noise)
    chosen = [
        (name, replace(noise, **overrides), budget)
        for name, noise, budget in SETTINGS
        if not args.only or any(name.startswith(p) for p in args.only)
    ]
    chosen = [c for c in chosen if not args.budgets or c[2] in args.budgets]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="search-sim-") as root:
        jobs = [
            (name, noise, budget, strategy, seed, tasks, root, search)
            for name, noise, budget in chosen
            for seed in range(args.first_seed, args.first_seed + args.seeds)
            for strategy in args.strategies
        ]
        with ProcessPoolExecutor(args.workers) as pool:
            cells = list(pool.map(run_cell, jobs))
    summary = summarize(cells)
    budgets = {name: budget for name, _, budget in chosen}
    print(f"search_sim: {tasks} tasks x {args.seeds} seeds per cell; ± is the standard error across seeds")
    print("calls = replies of the policy and the judge, counted by a wrapper around both models (for best-of-n")
    print("and mcts it equals the engine's Budget.calls); none's step limit is the budget and it has no judge;")
    print("best-of-n is configured with one attempt per 10 calls of budget (its default 3 at 30); both searches")
    print("are fitted to the budget as a run fits them (agent/search/fit.py): below one judged trajectory mcts")
    print("runs best-of-n with the attempts that fit, and best-of-n with fewer than two runs the plain loop.\n")
    print_table(summary, budgets)
    verdict = acceptance(cells)
    print_acceptance(verdict)
    print(f"({time.monotonic() - started:.0f} s)")
    noise = {name: {**noise.__dict__, "budget": budget} for name, noise, budget in chosen}
    report = {"tasks": tasks, "seeds": args.seeds, "overrides": search, "settings": noise, "results": summary}
    print(json.dumps({**report, "acceptance": verdict}))


if __name__ == "__main__":
    main()
