from __future__ import annotations

from pathlib import Path

import pytest

from branchwise.agent.config.layers import LoadedConfig
from branchwise.agent.config.schema import Config, LimitsSettings
from branchwise.agent.errors import BudgetExceeded, ScriptExhausted
from branchwise.agent.models.scripted import ScriptedModel, load_script
from branchwise.agent.record.events import CheckResult, EventBus, ToolCallRecord
from branchwise.agent.run.loop import LoopSolver
from branchwise.agent.run.session import Session
from branchwise.agent.run.solver import Goal, Outcome
from branchwise.sandbox.isolation.host import HostSandbox
from tests.conftest import finish, shell, write_script


class Loop:
    """The plain solver on one goal, in a real session with the host sandbox and a scripted model."""

    def __init__(self, session: Session, verify=None, gate=None) -> None:
        self.session, self.verify = session, verify
        self.rc = session.context()
        if gate is not None:
            self.rc.actor.gate = gate
        self.outcome: Outcome | None = None

    def run(self) -> Outcome:
        goal = Goal(index=0, title="task", opening=[{"role": "system", "content": "system"},
                                                     {"role": "user", "content": "task"}], task="task")  # fmt: skip
        self.outcome = LoopSolver(self.rc).solve(goal, self.verify, self.session.budget.view("the task"))
        return self.outcome

    @property
    def messages(self) -> list[dict]:
        assert self.outcome is not None
        return self.outcome.messages


@pytest.fixture
def make_loop(tmp_path: Path):
    sessions = []

    def build(replies, *, checks=None, gate=None, **limits):
        script = write_script(tmp_path / "replies.yaml", replies)
        ws = tmp_path / "ws"
        ws.mkdir(exist_ok=True)
        config = Config(limits=LimitsSettings(**limits))
        bus = EventBus("test")
        events: list = []
        bus.subscribe(events.append)
        session = Session(loaded=LoadedConfig(config, {}), workspace=ws, sandbox=HostSandbox(ws),
                          model=ScriptedModel.from_file(script), bus=bus)  # fmt: skip
        sessions.append(session)
        verify = (lambda _conversation: checks()) if checks else None
        return Loop(session, verify, gate), events

    yield build
    for session in sessions:
        session.__exit__(None, None, None)


def run(loop: Loop) -> Outcome:
    return loop.run()


def types(events) -> list[str]:
    return [e.type for e in events]


def test_a_run_is_model_reply_tool_call_result_per_step(make_loop):
    loop, events = make_loop([shell("echo hi"), finish("all good")])
    outcome = run(loop)
    assert outcome.status == "done" and outcome.summary == "all good"
    assert types(events) == ["model_reply", "tool_call", "policy", "tool_result", "step_finished"] * 2
    assert events[3].output == "hi\n[exit code: 0]"
    assert [e.step for e in events if e.type == "step_finished"] == [1, 2]
    tool_messages = [m for m in loop.messages if m["role"] == "tool"]
    assert tool_messages[0]["tool_call_id"] == events[1].call.id


def test_reply_without_tool_call_gets_a_hint_and_the_run_continues(make_loop):
    loop, events = make_loop([{"content": "I think it is fine."}, finish()])
    assert run(loop).status == "done"
    assert "format_error" in types(events)
    assert "call finish when done" in loop.messages[3]["content"]


def test_bad_calls_go_back_to_the_model_with_the_reason(make_loop):
    replies = [
        {"tool_calls": [{"name": "frobnicate", "arguments": {}}]},
        {"tool_calls": [{"name": "shell", "arguments": '{"command": "ls"'}]},
        {"tool_calls": [{"name": "view", "arguments": {"pth": "x"}}]},
        finish(),
    ]
    loop, events = make_loop(replies, max_format_errors=5)
    assert run(loop).status == "done"
    outputs = [e.output for e in events if e.type == "tool_result"]
    assert "unknown tool 'frobnicate'" in outputs[0]
    assert "not valid JSON" in outputs[1]
    assert "path: Field required" in outputs[2]


def test_repeated_malformed_replies_fail_the_run(make_loop):
    loop, _ = make_loop([{"content": "hmm"}] * 5, max_format_errors=3)
    outcome = run(loop)
    assert outcome.status == "failed" and "3 malformed replies in a row" in outcome.reason


def test_step_limit_is_a_budget_stop(make_loop):
    loop, _ = make_loop([shell("true")] * 5, max_steps=2)
    with pytest.raises(BudgetExceeded, match="step limit") as info:
        run(loop)
    assert info.value.limit == "steps"
    assert loop.session.budget.tally.steps == 2


def test_running_out_of_script_is_an_error_not_a_hang(make_loop):
    loop, _ = make_loop([shell("true")])
    with pytest.raises(ScriptExhausted, match="ran out of scripted replies after 1"):
        run(loop)


def test_finish_is_refused_while_checks_fail_then_accepted(make_loop, tmp_path):
    flag = tmp_path / "ws" / "fixed"

    def checks() -> list[CheckResult]:
        ok = flag.exists()
        return [CheckResult(command="test -e fixed", exit_code=0 if ok else 1, passed=ok, output="")]

    loop, events = make_loop([finish("early"), shell("touch fixed"), finish("done")], checks=checks)
    outcome = run(loop)
    assert outcome.status == "done" and outcome.summary == "done"
    refused = next(e for e in events if e.type == "tool_result" and e.name == "finish")
    assert refused.is_error and "checks fail" in refused.output


def test_finish_rejections_are_limited(make_loop):
    def checks() -> list[CheckResult]:
        return [CheckResult(command="false", exit_code=1, passed=False)]

    loop, _ = make_loop([finish()] * 3, checks=checks, max_finish_rejections=1)
    outcome = run(loop)
    assert outcome.status == "failed" and "checks still fail after 2 attempts" in outcome.reason


def test_gate_refusal_is_an_observation(make_loop, tmp_path):
    def gate(call: ToolCallRecord) -> str | None:
        return "denied by test policy" if call.name == "shell" else None

    loop, events = make_loop([shell("touch nope"), finish()], gate=gate)
    assert run(loop).status == "done"
    assert not (tmp_path / "ws" / "nope").exists()
    assert next(e.output for e in events if e.type == "tool_result") == "Not run: denied by test policy"


def test_scripted_format_is_the_public_one(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(
        "replies:\n"
        '  - content: "Run the tests first."\n'
        "    tool_calls:\n"
        "      - name: shell\n"
        '        arguments: {command: "python -m pytest -q"}\n'
        "  - tool_calls:\n"
        "      - name: finish\n"
        '        arguments: {summary: "Fixed the off-by-one in add()."}\n'
    )
    replies = load_script(path)
    assert replies[0].content == "Run the tests first."
    assert replies[0].tool_calls[0].arguments == {"command": "python -m pytest -q"}
    assert replies[1].tool_calls[0].name == "finish"


def test_bad_script_files_are_one_line_errors(tmp_path):
    from branchwise.agent.errors import ConfigError

    bad = tmp_path / "bad.yaml"
    bad.write_text("replies:\n  - tool_calls: [{nam: shell}]\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: replies\.0\.tool_calls\.0\.name: Field required"):
        load_script(bad)
    bad.write_text("replies: [\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_script(bad)
