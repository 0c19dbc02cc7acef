"""Reflection: failures classified first, edit operations (never a rewritten list), at most one shortcut built
from successful steps, creation only after external verification, versioned updates, feedback, retirement."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from branchwise.agent.memory.lifecycle import Limits, over_cap, retirement, sweep, tip_used
from branchwise.agent.memory.records import Evidence, Provenance, Scope, Shortcut, Stats, Tip, new_id
from branchwise.agent.memory.reflect import AddItem, DeprecateItem, Emphasize, ModelReflector, TraceReflector
from branchwise.agent.memory.service import LongTermMemory
from branchwise.agent.memory.store import MemoryStore
from branchwise.agent.memory.trace import trace_of
from branchwise.agent.models.base import Reply
from branchwise.agent.models.scripted import ScriptedModel
from branchwise.agent.record.events import (
    CheckResult,
    EventBus,
    MemoryRetrieved,
    RunFinished,
    RunStarted,
    ToolCall,
    ToolCallRecord,
    ToolResult,
)

SCOPE = Scope(repo="r1", language="python")
TASK = "Add a `greet` subcommand that prints `Hi there`."
CHECK = "python3 -m unittest tests.test_greet -q"
STEPS = [
    ("shell", {"command": "pytest -q tests/test_greet.py"}, "bash: pytest: command not found", 127),
    ("shell", {"command": CHECK}, "FAILED (errors=1)", 1),
    ("view", {"path": "notes/cli.py"}, "     1\tCOMMANDS = {}", None),
    ("create", {"path": "notes/commands/greet.py", "file_text": 'def run(a):\n    return "Hi there"\n'}, "ok", None),
    (
        "str_replace",
        {"path": "notes/cli.py", "old_str": "COMMANDS = {}", "new_str": 'COMMANDS = {"greet": greet.run}'},
        "edited",
        None,
    ),
    ("shell", {"command": CHECK}, "OK", 0),
]


def events(
    steps: list[tuple[str, dict[str, Any], str, int | None]] = STEPS,
    *,
    passed: bool = True,
    retrieved: tuple[str, ...] = (),
    task: str = TASK,
    run_id: str = "run-1",
) -> list[Any]:
    out: list[Any] = [
        RunStarted(
            run_id=run_id, task=task, model="m", workspace="/w", config={"checks": [CHECK]}, start_snapshot="a" * 40
        )
    ]
    if retrieved:
        out.append(MemoryRetrieved(ids=list(retrieved)))
    for i, (name, args, output, code) in enumerate(steps):
        call = ToolCallRecord(id=f"c{i}", name=name, arguments=args)
        out += [
            ToolCall(call=call, step=i + 1),
            ToolResult(
                call_id=call.id, name=name, output=output, step=i + 1, data={} if code is None else {"exit_code": code}
            ),
        ]
    result = CheckResult(command=CHECK, exit_code=0 if passed else 1, passed=passed)
    out.append(RunFinished(status="completed" if passed else "failed", exit_code=0 if passed else 1, checks=[result]))
    return out


@pytest.fixture
def memory(tmp_path: Path) -> LongTermMemory:
    mem = LongTermMemory(MemoryStore(tmp_path / "memory.db"), SCOPE, bus=EventBus())
    yield mem
    mem.close()


def test_the_trace_reflector_returns_operations_learned_from_the_run():
    reflection = TraceReflector().reflect(trace_of(events()), [], SCOPE)
    adds = [op.item for op in reflection.ops if isinstance(op, AddItem)]
    tips = [i for i in adds if isinstance(i, Tip)]
    (sc,) = [i for i in adds if isinstance(i, Shortcut)]
    texts = " | ".join(t.text for t in tips)
    assert "`pytest -q tests/test_<subcommand>.py` fails" in texts and "`python3 -m unittest" in texts
    assert "`notes/commands/<subcommand>.py`" in texts
    assert [f.kind for f in reflection.failures] == ["missing_knowledge", "missing_knowledge"]
    # The shortcut keeps only the successful edits, with the task's values as typed arguments.
    assert [s.name for s in sc.atomic_action_sequence] == ["create", "str_replace"]
    assert list(sc.arguments["properties"]) == ["subcommand", "prints"]
    assert sc.recorded_arguments == {"subcommand": "greet", "prints": "Hi there"}
    assert sc.atomic_action_sequence[0].arguments_map["path"] == "notes/commands/{subcommand}.py"
    assert sc.postcondition.checks[0].command == "python3 -m unittest tests.test_{subcommand} -q"
    assert [c.type for c in sc.precondition.checks] == ["file_absent", "file_exists", "file_contains"]


def test_a_run_that_was_not_verified_writes_nothing(memory):
    report = memory.reflect(events(passed=False))
    assert report.verification == "none" and report.written == [] and memory.store.items() == []


def test_a_verified_run_writes_candidates_that_validation_promotes(memory):
    report = memory.reflect(events())
    ops = [(w.op, w.kind) for w in report.written]
    assert ("add", "tip") in ops and ("add", "shortcut") in ops
    tips = memory.store.items(kinds=["tip"])
    assert tips and all(t.status == "active" and t.provenance.trust == "verified" for t in tips)
    assert all(t.evidence[0].run_id == "run-1" for t in tips)
    (sc,) = memory.store.items(kinds=["shortcut"])
    assert sc.status == "candidate" and "not been replayed" in sc.validation.note  # no replay runner given


def test_knowledge_not_followed_emphasises_the_tip_instead_of_adding_one(memory):
    memory.reflect(events())
    recovery = next(t for t in memory.store.items(kinds=["tip"]) if "fails in this repository" in t.text)
    warned = recovery.model_copy(update={"text": "`pytest -q tests/test_greet.py` fails here; use unittest."})
    memory.store.put(warned, action="edit", actor="t")
    reflection = TraceReflector().reflect(
        trace_of(events(retrieved=(recovery.id,), run_id="run-2")), [memory.store.require(recovery.id)], SCOPE
    )
    assert reflection.failures[0].kind == "knowledge_not_followed" and reflection.failures[0].item_id == recovery.id
    assert any(isinstance(op, Emphasize) and op.id == recovery.id for op in reflection.ops)
    assert not any(
        isinstance(op, AddItem) and "fails in this repository" in getattr(op.item, "text", "") for op in reflection.ops
    )


def test_a_second_run_corroborates_instead_of_duplicating(memory):
    memory.reflect(events())
    before = {i.id for i in memory.store.items()}
    memory.reflect(events(run_id="run-2"))
    items = memory.store.items()
    assert {i.id for i in items} == before
    assert all(len(i.evidence) == 2 for i in items)


def reflector_reply(answer: dict[str, Any]) -> ScriptedModel:
    return ScriptedModel([Reply(content="Here are the edits:\n```json\n" + json.dumps(answer) + "\n```")])


def test_the_model_reflector_returns_add_update_deprecate_and_one_shortcut(memory):
    old = memory.store.put(
        Tip(
            id=new_id("tip"),
            text="Old advice: a subcommand prints what its test expects",
            scope=SCOPE,
            status="active",
            provenance=Provenance(trust="verified"),
        ),
        action="add",
        actor="t",
    )
    gone = memory.store.put(
        Tip(id=new_id("tip"), text="Obsolete note about the greet subcommand", scope=SCOPE, status="active"),
        action="add",
        actor="t",
    )
    answer = {
        "failures": [{"step": 0, "kind": "missing_knowledge"}],
        "operations": [
            {"op": "add", "text": "Tests run with unittest here, not pytest.", "category": "environment"},
            {"op": "update", "id": old.id, "text": "Run one module's tests with `python3 -m unittest tests.test_x`."},
            {"op": "deprecate", "id": gone.id, "reason": "wrong"},
            {"op": "update", "id": "tip-unknown", "text": "ignored: not a known id"},
        ],
        "shortcut": {"name": "Add Subcommand", "steps": [3, 4, 0], "arguments": {"name": "greet"}},
    }
    model = reflector_reply(answer)
    reflection = ModelReflector(model).reflect(trace_of(events()), [old, gone], SCOPE)
    kinds = [type(op).__name__ for op in reflection.ops]
    assert kinds == ["AddItem", "UpdateItem", "DeprecateItem", "AddItem"]
    sc = reflection.ops[-1].item  # type: ignore[union-attr]
    assert sc.name == "add_subcommand" and [s.name for s in sc.atomic_action_sequence] == ["create", "str_replace"]
    assert "you maintain an agent's long-term memory" in model_prompt(ModelReflector(model), old).lower()
    memory.settings = memory.settings.model_copy(update={"reflector": "model"})
    report = memory.reflect(events(), model=reflector_reply(answer))
    assert report.reflector == "model"
    assert memory.store.require(old.id).status == "superseded"
    new = next(i for i in memory.store.items() if old.id in i.supersedes)
    assert new.version == 2 and new.status == "active" and "tests.test_x" in new.text  # type: ignore[union-attr]
    assert memory.store.require(gone.id).status == "deprecated"


def model_prompt(reflector: ModelReflector, item: Tip) -> str:
    return str(reflector.messages(trace_of(events()), [item])[0]["content"])


def test_a_reflector_reply_that_is_not_json_changes_nothing(memory):
    reflection = ModelReflector(ScriptedModel([Reply(content="I think it went fine.")])).reflect(
        trace_of(events()), [], SCOPE
    )
    assert reflection.ops == [] and reflection.reflector == "model"


def test_feedback_counts_use_help_and_harm(memory):
    memory.reflect(events())
    recovery = next(t for t in memory.store.items(kinds=["tip"]) if "works instead" in t.text)
    wave = [("shell", {"command": "python3 -m unittest tests.test_wave -q"}, "OK", 0)]
    memory.feedback(events(wave, retrieved=(recovery.id,), task="Add a `wave` subcommand", run_id="run-2"))
    memory.feedback(events(wave, retrieved=(recovery.id,), passed=False, run_id="run-3"))
    stats = memory.store.require(recovery.id).stats
    assert (stats.used, stats.helped, stats.hurt) == (2, 1, 1) and stats.last_used is not None


def test_tip_use_matches_placeholders():
    tip = Tip(id="t", text="`pytest` fails; `python3 -m unittest tests.test_<name> -q` works instead.")
    used = trace_of(events([("shell", {"command": "python3 -m unittest tests.test_nod -q"}, "OK", 0)]))
    unused = trace_of(events([("shell", {"command": "python3 -m unittest tests.test_nod -v"}, "OK", 0)]))
    assert tip_used(tip, used) and not tip_used(tip, unused)


def test_retirement_rules():
    limits = Limits()
    sc = Shortcut(id="s", name="n", description="d", atomic_action_sequence=[])
    sc.stats = Stats(recent=["ok", "ok", "step", "ok"])
    assert retirement(sc, limits) is None  # 25% failed
    sc.stats = Stats(recent=["ok", "precondition", "step"])
    assert "2 of its last 3" in (retirement(sc, limits) or "")
    tip = Tip(id="t", text="x")
    tip.stats = Stats(used=5, helped=2, hurt=3, last_used=time.time())
    assert "hurt 3" in (retirement(tip, limits) or "")
    tip.stats = Stats(used=1, helped=0, last_used=time.time() - 100 * 86400)
    assert "unused for 100 days" in (retirement(tip, limits) or "")
    tip.stats = Stats(used=1, helped=1, last_used=time.time() - 100 * 86400)
    assert retirement(tip, limits) is None


def test_the_cap_evicts_the_least_useful_first():
    tips = [Tip(id=f"t{i}", text="x", status="active", stats=Stats(used=10, helped=i)) for i in range(5)]
    evicted = over_cap(tips, Limits(cap_tips=3))  # type: ignore[arg-type]
    assert [i.id for i, _ in evicted] == ["t0", "t1"]


def test_near_duplicates_merge_into_a_new_version_that_keeps_both(memory):
    def put(text: str, run: str) -> Tip:
        item = Tip(id=new_id("tip"), text=text, scope=SCOPE, status="active", evidence=[Evidence(run_id=run)])
        return memory.store.put(item, action="add", actor="t")  # type: ignore[return-value]

    a = put("Run the unit tests with python3 -m unittest in this repository", "run-a")
    b = put("Run the unit tests with python3 -m unittest in this repository please", "run-b")
    changes = sweep(memory.store, SCOPE.repo, Limits())
    ((merged, why),) = changes
    assert why == "merged" and set(merged.supersedes) == {a.id, b.id}
    assert {e.run_id for e in merged.evidence} == {"run-a", "run-b"}
    assert {memory.store.require(a.id).status, memory.store.require(b.id).status} == {"superseded"}


def test_only_one_shortcut_per_run(memory):
    reflection = TraceReflector().reflect(trace_of(events()), [], SCOPE)
    (sc,) = [op.item for op in reflection.ops if isinstance(op, AddItem) and isinstance(op.item, Shortcut)]
    second = sc.model_copy(update={"id": new_id("shortcut"), "name": "another"})
    reflection.ops.append(AddItem(second))
    from branchwise.agent.memory.learn import Learner

    Learner(memory.store, SCOPE, trace_of(events()), "checks").apply(reflection)
    assert len(memory.store.items(kinds=["shortcut"])) == 1
    assert not any(isinstance(op, DeprecateItem) for op in reflection.ops)


def test_the_run_summary_names_what_was_retrieved_used_and_written():
    from branchwise.agent.memory.service import run_summary
    from branchwise.agent.record.events import MemoryWritten

    evs = events([("shortcut_add", {}, "Shortcut add ran", None)], retrieved=("sc-1", "tip-1"))
    evs[1].items = [{"id": "sc-1", "kind": "shortcut", "tool": "shortcut_add"}, {"id": "tip-1", "kind": "tip"}]
    evs.append(MemoryWritten(op="add", id="tip-2", kind="tip", status="candidate", trust="verified"))
    summary = run_summary(evs)
    assert summary["retrieved"] == ["sc-1", "tip-1"] and summary["used"] == ["sc-1"]
    assert summary["written"] == [
        {"op": "add", "id": "tip-2", "kind": "tip", "status": "candidate", "trust": "verified"}
    ]
    assert run_summary([e.model_dump(mode="json") for e in evs]) == summary
