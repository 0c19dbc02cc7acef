from __future__ import annotations

from pathlib import Path

import pytest

from branchwise.agent.config.schema import LimitsSettings
from branchwise.agent.errors import BudgetExceeded, Completed, Failed, ScriptExhausted
from branchwise.agent.models.scripted import ScriptedModel, load_script
from branchwise.agent.record.events import CheckResult, EventBus, ToolCallRecord
from branchwise.agent.run.loop import Executor
from branchwise.sandbox.isolation.host import HostSandbox
from branchwise.sandbox.workspace.safefs import WorkspaceFS
from branchwise.tools import ToolBox, ToolContext, default_tools
from tests.conftest import finish, shell, write_script


@pytest.fixture
def make_executor(tmp_path: Path):
    sandboxes = []

    def build(replies, *, checks=None, gate=None, **limits):
        script = write_script(tmp_path / "replies.yaml", replies)
        sandbox = HostSandbox(tmp_path)
        sandboxes.append(sandbox)
        bus = EventBus("test")
        events: list = []
        bus.subscribe(events.append)
        ctx = ToolContext(sandbox=sandbox, fs=WorkspaceFS(tmp_path))
        executor = Executor(
            ScriptedModel.from_file(script),
            ToolBox(default_tools()),
            ctx,
            bus,
            LimitsSettings(**limits),
            run_checks=checks,
            gate=gate,
        )
        return executor, events

    yield build
    for sandbox in sandboxes:
        sandbox.close()


def run(executor: Executor) -> None:
    executor.run("system", "task")


def types(events) -> list[str]:
    return [e.type for e in events]


def test_a_run_is_model_reply_tool_call_result_per_step(make_executor):
    executor, events = make_executor([shell("echo hi"), finish("all good")])
    with pytest.raises(Completed) as info:
        run(executor)
    assert info.value.summary == "all good"
    assert types(events) == ["model_reply", "tool_call", "tool_result", "step_finished"] * 2
    assert events[2].output == "hi\n[exit code: 0]"
    assert [e.step for e in events if e.type == "step_finished"] == [1, 2]
    tool_messages = [m for m in executor.messages if m["role"] == "tool"]
    assert tool_messages[0]["tool_call_id"] == events[1].call.id


def test_reply_without_tool_call_gets_a_hint_and_the_run_continues(make_executor):
    executor, events = make_executor([{"content": "I think it is fine."}, finish()])
    with pytest.raises(Completed):
        run(executor)
    assert "format_error" in types(events)
    assert "call finish when done" in executor.messages[3]["content"]


def test_bad_calls_go_back_to_the_model_with_the_reason(make_executor):
    replies = [
        {"tool_calls": [{"name": "frobnicate", "arguments": {}}]},
        {"tool_calls": [{"name": "shell", "arguments": '{"command": "ls"'}]},
        {"tool_calls": [{"name": "view", "arguments": {"pth": "x"}}]},
        finish(),
    ]
    executor, events = make_executor(replies, max_format_errors=5)
    with pytest.raises(Completed):
        run(executor)
    outputs = [e.output for e in events if e.type == "tool_result"]
    assert "unknown tool 'frobnicate'" in outputs[0]
    assert "not valid JSON" in outputs[1]
    assert "path: Field required" in outputs[2]


def test_repeated_malformed_replies_fail_the_run(make_executor):
    executor, _ = make_executor([{"content": "hmm"}] * 5, max_format_errors=3)
    with pytest.raises(Failed, match="3 malformed replies in a row"):
        run(executor)


def test_step_limit_is_a_budget_stop(make_executor):
    executor, _ = make_executor([shell("true")] * 5, max_steps=2)
    with pytest.raises(BudgetExceeded, match="step limit"):
        run(executor)
    assert executor.steps == 2


def test_running_out_of_script_is_an_error_not_a_hang(make_executor):
    executor, _ = make_executor([shell("true")])
    with pytest.raises(ScriptExhausted, match="ran out of scripted replies after 1"):
        run(executor)


def test_finish_is_refused_while_checks_fail_then_accepted(make_executor, tmp_path):
    flag = tmp_path / "fixed"

    def checks() -> list[CheckResult]:
        ok = flag.exists()
        return [CheckResult(command="test -e fixed", exit_code=0 if ok else 1, passed=ok, output="")]

    executor, events = make_executor([finish("early"), shell("touch fixed"), finish("done")], checks=checks)
    with pytest.raises(Completed, match="done"):
        run(executor)
    refused = next(e for e in events if e.type == "tool_result" and e.name == "finish")
    assert refused.is_error and "checks fail" in refused.output


def test_finish_rejections_are_limited(make_executor):
    def checks() -> list[CheckResult]:
        return [CheckResult(command="false", exit_code=1, passed=False)]

    executor, _ = make_executor([finish()] * 3, checks=checks, max_finish_rejections=1)
    with pytest.raises(Failed, match="checks still fail after 2 attempts"):
        run(executor)


def test_gate_refusal_is_an_observation(make_executor, tmp_path):
    def gate(call: ToolCallRecord) -> str | None:
        return "denied by test policy" if call.name == "shell" else None

    executor, events = make_executor([shell("touch nope"), finish()], gate=gate)
    with pytest.raises(Completed):
        run(executor)
    assert not (tmp_path / "nope").exists()
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
