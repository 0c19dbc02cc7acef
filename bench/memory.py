"""Memory benchmark: two families of six related tasks on real git repositories, run in sequence with memory
off, with tips only, and with tips and shortcuts; plus retrieval precision@5 on a labelled set of 36 queries.

The runs are real: the project's session, tools, policy gate, bwrap sandbox, snapshots and checks, with the
memory wired around them as the run path will (bench/sim/memory_rig.py). Only the model is simulated
(bench/sim/memory_agent.py): it knows how to do each family's task but learns the repository's particulars by
trying, unless a note or an offered shortcut tells it; reflection uses the trace reflector (no model call).
Usage: python bench/memory.py [--families NAME ...] [--skip-runs] [--skip-precision]
The last line of output is a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sim import memory_labels as labels
from sim.memory_agent import FamilyPolicy
from sim.memory_rig import run_task
from sim.memory_world import FAMILIES, commit

from branchwise.agent.config.schema import MemorySettings
from branchwise.agent.memory.records import Check, Condition, Provenance, Scope, Shortcut, Step, Tip
from branchwise.agent.memory.retrieve import rank
from branchwise.agent.memory.scope import scope_of
from branchwise.agent.memory.service import LongTermMemory
from branchwise.agent.memory.store import MemoryStore

CONDITIONS = ("off", "tips", "on")
TARGET = 0.30


@dataclass
class Row:
    family: str
    task: int
    condition: str
    success: bool
    steps: int
    model_calls: int
    retrieved: int
    used: int
    hurt: bool
    shortcut: str


def run_family(family: str, condition: str, root: Path, env: dict[str, str]) -> tuple[list[Row], dict[str, Any]]:
    make, tasks = FAMILIES[family]
    repo = make(root / f"{family}-{condition}")
    memory = None
    if condition != "off":
        # The trace reflector, as documented above: the simulated model plays tasks and does not write reflections.
        settings = MemorySettings(shortcut_tools=condition == "on", embeddings="off", reflector="trace")
        memory = LongTermMemory(MemoryStore(root / f"{family}-{condition}.db"), scope_of(repo), settings)
    rows = []
    for task in tasks():
        policy = FamilyPolicy(task)
        result = run_task(repo, task.prompt, task.checks, policy, memory, env=env)
        reflector_calls = result.reflector_calls
        rows.append(
            Row(
                family,
                task.index + 1,
                condition,
                result.finished.status == "completed",
                result.finished.steps,
                policy.calls + reflector_calls,
                len(result.retrieved),
                sum(1 for f in result.feedback if f.reason in ("helped", "hurt")),
                any(f.reason == "hurt" for f in result.feedback),
                policy.shortcut_tried or "",
            )
        )
        commit(repo, task.prompt)
    store_counts = memory.store.counts() if memory else {}
    if memory:
        memory.close()
    return rows, store_counts


def label_store(path: Path) -> tuple[MemoryStore, Scope, dict[str, str]]:
    """The labelled corpus in a fresh store: id -> topic for everything that may be shown."""
    store = MemoryStore(path)
    shop, other = Scope(repo="shop-root", language="python"), Scope(repo="other-root", language="go")
    topic_of: dict[str, str] = {}
    verified = Provenance(trust="verified")
    for topic, texts in labels.TOPICS.items():
        for i, text in enumerate(texts):
            tip = Tip(id=f"tip-{topic}-{i}", text=text, scope=shop, status="active", provenance=verified)
            store.put(tip, action="add", actor="bench")
            topic_of[tip.id] = topic
    for topic, shortcuts in labels.SHORTCUTS.items():
        for name, description in shortcuts:
            sc = Shortcut(
                id=f"sc-{topic}-{name}",
                name=name,
                description=description,
                scope=shop,
                status="active",
                provenance=verified,
                atomic_action_sequence=[Step(name="shell", arguments_map={"command": "true"})],
                postcondition=Condition(checks=[Check(type="cmd_succeeds", command="true")]),
            )
            store.put(sc, action="add", actor="bench")
            topic_of[sc.id] = topic
    for i, (topic, text) in enumerate(labels.OTHER_REPO):
        store.put(
            Tip(id=f"tip-other-{topic}-{i}", text=text, scope=other, status="active", provenance=verified),
            action="add",
            actor="bench",
        )
    for i, (topic, status, text) in enumerate(labels.NOT_SHOWN):
        trust = "untrusted" if status == "untrusted" else "verified"
        shown = "active" if status == "untrusted" else status  # an untrusted item nobody approved: weight 0
        store.put(
            Tip(
                id=f"tip-hidden-{topic}-{i}",
                text=text,
                scope=shop,
                status=shown,  # type: ignore[arg-type]
                provenance=Provenance(trust=trust),
            ),
            action="add",
            actor="bench",
        )  # type: ignore[arg-type]
    return store, shop, topic_of


def precision(root: Path) -> dict[str, Any]:
    """precision@5 (relevant among the top five, over five), precision of what was returned, recall@5, MRR."""
    store, shop, topic_of = label_store(root / "labels.db")
    p5, p_returned, r5, rr, leaks = [], [], [], [], 0
    for query, topic in labels.QUERIES:
        top = [r.item.id for r in rank(store, query, shop, limit=5)]
        relevant = {i for i, t in topic_of.items() if t == topic}
        hits = [i in relevant for i in top]
        leaks += sum(1 for i in top if i not in topic_of)
        p5.append(sum(hits) / 5)
        p_returned.append(sum(hits) / len(top) if top else 0.0)
        r5.append(sum(hits) / min(5, len(relevant)))
        rr.append(next((1 / (n + 1) for n, h in enumerate(hits) if h), 0.0))
    store.close()
    mean = statistics.fmean
    return {
        "queries": len(labels.QUERIES),
        "precision_at_5": round(mean(p5), 3),
        "precision_of_returned": round(mean(p_returned), 3),
        "recall_at_5": round(mean(r5), 3),
        "mrr": round(mean(rr), 3),
        "out_of_scope_or_untrusted_shown": leaks,
    }


def summarise(rows: list[Row]) -> dict[str, Any]:
    def total(condition: str, key: str, repeated: bool = True) -> float:
        return sum(getattr(r, key) for r in rows if r.condition == condition and (r.task > 1 or not repeated))

    out: dict[str, Any] = {}
    for condition in CONDITIONS:
        mine = [r for r in rows if r.condition == condition]
        if mine:
            out[condition] = {
                "success": sum(r.success for r in mine) / len(mine),
                "repeated_steps": total(condition, "steps"),
                "repeated_model_calls": total(condition, "model_calls"),
                "all_steps": total(condition, "steps", repeated=False),
                "hurt_share": sum(r.hurt for r in mine) / len(mine),
            }
    for condition in ("tips", "on"):
        if condition in out and "off" in out:
            out[condition]["step_reduction"] = round(
                1 - out[condition]["repeated_steps"] / out["off"]["repeated_steps"], 3
            )
    return out


def print_rows(rows: list[Row]) -> None:
    print(f"{'family':11} {'task':>4} | " + " | ".join(f"{c:>22}" for c in CONDITIONS))
    keys = sorted({(r.family, r.task) for r in rows})
    for family, task in keys:
        cells = []
        for condition in CONDITIONS:
            r = next((r for r in rows if (r.family, r.task, r.condition) == (family, task, condition)), None)
            cells.append(
                "-".rjust(22)
                if r is None
                else f"{'ok' if r.success else 'FAIL'} {r.steps:2} st {r.model_calls:2} calls"
                f"{' H' if r.hurt else '  '}{' S' if r.shortcut else '  '}".rjust(22)
            )
        print(f"{family:11} {task:>4} | " + " | ".join(cells))
    print(
        "(st: steps = model calls of the run; calls: + reflector calls; H: a retrieved item hurt; S: a shortcut "
        "was tried)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="*", default=list(FAMILIES))
    parser.add_argument("--skip-runs", action="store_true")
    parser.add_argument("--skip-precision", action="store_true")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="branchwise-bench-memory-"))
    home = root / "home"
    home.mkdir()
    os.environ["XDG_STATE_HOME"] = str(home / ".state")  # the sessions' snapshots
    env = {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}  # no user config of this machine
    started = time.monotonic()
    rows: list[Row] = []
    stores: dict[str, Any] = {}
    if not args.skip_runs:
        for family in args.families:
            for condition in CONDITIONS:
                family_rows, counts = run_family(family, condition, root, env)
                rows += family_rows
                stores[f"{family}/{condition}"] = counts
        print_rows(rows)
    result = summarise(rows) if rows else {}
    figures = {} if args.skip_precision else precision(root)
    for condition, numbers in result.items():
        print(f"{condition:5}: {json.dumps(numbers)}")
    if figures:
        print(f"retrieval: {json.dumps(figures)}")
    print(f"memory at the end: {json.dumps(stores)}")
    on, off = result.get("on", {}), result.get("off", {})
    summary = {
        "bench": "memory",
        "tasks": len({(r.family, r.task) for r in rows}),
        "step_reduction_repeated": on.get("step_reduction"),
        "step_reduction_repeated_tips_only": result.get("tips", {}).get("step_reduction"),
        "success_off": off.get("success"),
        "success_on": on.get("success"),
        "hurt_share_on": on.get("hurt_share"),
        "precision_at_5": figures.get("precision_at_5"),
        "target_step_reduction": TARGET,
        "meets_target": bool(on) and on["step_reduction"] >= TARGET and on["success"] >= off["success"],
        "seconds": round(time.monotonic() - started, 1),
        "rows": [asdict(r) for r in rows],
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
