from __future__ import annotations

from branchwise.agent.models.base import estimate_tokens
from branchwise.agent.plan.condense import WorkingMemory, step_groups, summarize_subgoal
from branchwise.agent.plan.ledger import Ledger
from branchwise.agent.record.events import EventBus, ToolCallRecord
from branchwise.tools import Observation


def step(i: int, output: str) -> list[dict]:
    call = {"id": f"c{i}", "type": "function", "function": {"name": "shell", "arguments": f'{{"command": "cmd {i}"}}'}}
    return [
        {"role": "assistant", "content": f"step {i}", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": f"c{i}", "name": "shell", "content": output},
    ]


def conversation(steps: int, size: int) -> list[dict]:
    pinned = [
        {"role": "system", "content": "SYSTEM with plan and instructions"},
        {"role": "user", "content": "THE TASK"},
        {"role": "user", "content": "SUBGOAL 2"},
    ]
    return pinned + [m for i in range(steps) for m in step(i, f"output {i} " + "x" * size)]


def memory(budget: int) -> tuple[WorkingMemory, list]:
    bus, events = EventBus(), []
    bus.subscribe(events.append)
    return WorkingMemory(estimate_tokens, budget, bus), events


def test_under_budget_nothing_changes():
    messages = conversation(3, 100)
    wm, events = memory(100_000)
    before = [dict(m) for m in messages]
    wm.fit(messages, pinned=3)
    assert messages == before and events == []


def test_old_outputs_are_elided_first_and_pinned_items_survive():
    messages = conversation(10, 2000)
    wm, events = memory(3000)
    wm.fit(messages, pinned=3)
    assert estimate_tokens(messages) <= 3000
    assert [m["content"] for m in messages[:3]] == ["SYSTEM with plan and instructions", "THE TASK", "SUBGOAL 2"]
    assert messages[-1]["content"].startswith("output 9 ")  # the latest observation is whole
    assert "elided" in messages[4]["content"]
    (event,) = events
    assert event.type == "condense" and event.tokens_after < event.tokens_before and event.dropped
    assert "latest observation" in event.kept and "task" in event.kept


def test_steps_are_dropped_whole_when_eliding_is_not_enough():
    messages = conversation(30, 300)
    wm, events = memory(600)
    wm.fit(messages, pinned=3)
    assert messages[:3] == conversation(30, 300)[:3]
    assert messages[-1]["content"].startswith("output 29 ")
    # Every tool message still follows the assistant message that called it.
    calls = set()
    for m in messages:
        calls |= {c["id"] for c in m.get("tool_calls") or []}
        if m["role"] == "tool":
            assert m["tool_call_id"] in calls
    assert any(line.startswith("step: shell cmd 0") for line in events[0].dropped)


def test_step_groups_pair_calls_with_their_results():
    messages = conversation(2, 10)
    assert step_groups(messages, 3) == [(3, 5), (5, 7)]


def test_subgoal_summary_lists_each_step_and_the_check():
    text = summarize_subgoal(1, "fix it", conversation(2, 10)[3:], "Check `make test` passed.")
    assert text.splitlines()[0] == "Subgoal 2 is done: fix it"
    assert "- shell cmd 0 -> output 0 xxxxxxxxxx" in text and text.endswith("Check `make test` passed.")


def results(command: str, output: str, error: bool = False):
    return [(ToolCallRecord(id="x", name="shell", arguments={"command": command}), Observation(output, error))]


def test_ledger_detects_a_loop_and_stalls_into_a_replan():
    ledger = Ledger(stall_limit=2, failure_limit=3)
    first = ledger.assess(0, "t", results("pytest", "1 failed"), malformed=False, files_changed=False, done=False)
    assert first.progressing and not first.looping and first.decision == "continue"
    second = ledger.assess(0, "t", results("pytest", "1 failed"), malformed=False, files_changed=False, done=False)
    assert second.looping and not second.progressing and second.decision == "continue"
    third = ledger.assess(0, "t", results("pytest", "1 failed"), malformed=False, files_changed=False, done=False)
    assert third.decision == "replan" and "no progress in 2 steps" in third.reason


def test_ledger_counts_a_changed_file_as_progress_and_done_wins():
    ledger = Ledger(stall_limit=1, failure_limit=1)
    ledger.assess(0, "t", results("pytest", "1 failed"), malformed=False, files_changed=False, done=False)
    changed = ledger.assess(0, "t", results("edit", "ok"), malformed=False, files_changed=True, done=False)
    assert changed.progressing and changed.decision == "continue"
    same = results("pytest", "1 failed")
    assert ledger.assess(0, "t", same, malformed=True, files_changed=False, done=True).decision == "advance"


def test_a_repeated_action_with_the_same_masked_result_is_never_progress():
    # On a loaded machine a test run can rewrite a cache file and print other timings: still a loop, no progress.
    ledger = Ledger(stall_limit=2, failure_limit=3)
    ledger.assess(0, "t", results("pytest", "1 failed in 0.01s"), malformed=False, files_changed=False, done=False)
    again = ledger.assess(0, "t", results("pytest", "1 failed in 2.71s"), malformed=False, files_changed=True,
                          done=False)  # fmt: skip
    assert again.looping and not again.progressing
    third = ledger.assess(0, "t", results("pytest", "1 failed in 9.9s"), malformed=False, files_changed=True,
                          done=False)  # fmt: skip
    assert third.decision == "replan"


def test_without_a_planner_a_stall_only_nudges():
    ledger = Ledger(stall_limit=1, failure_limit=1, replan=False)
    for _ in range(3):
        verdict = ledger.assess(0, "t", results("pytest", "1 failed"), malformed=False, files_changed=False,
                                done=False)  # fmt: skip
    assert verdict.looping and verdict.decision == "continue"


def test_ledger_replans_after_failures_in_a_row():
    ledger = Ledger(stall_limit=9, failure_limit=2)
    ledger.assess(0, "t", results("a", "boom 1", True), malformed=False, files_changed=False, done=False)
    verdict = ledger.assess(0, "t", results("b", "boom 2", True), malformed=False, files_changed=False, done=False)
    assert verdict.decision == "replan" and "2 failed steps in a row" in verdict.reason
