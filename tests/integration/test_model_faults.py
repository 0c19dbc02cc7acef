"""What real providers get wrong, imitated by the local OpenAI-compatible server: each is handled, none crashes.

Every test drives the real CLI and litellm over HTTP on 127.0.0.1, with the scripted server answering.
"""

from __future__ import annotations

import json

import pytest

from branchwise.agent.record.trajectory import read_events
from tests.integration.test_litellm_http import CHECK, FIX, call, settings
from tests.support.openai_server import FakeOpenAI, raw, reply, trickle

pytestmark = pytest.mark.slow  # each run imports litellm (seconds)


@pytest.fixture
def server():
    with FakeOpenAI() as srv:
        yield srv


def run_json(cli, repo, server, *args: str, timeout: float = 120, **env: str):
    res = cli("run", "-f", "task.toml", "-m", "openai/gpt-4o-mini", "-o", "json", *args, cwd=repo,
              env=settings(server, **env), timeout=timeout)  # fmt: skip
    assert "Traceback" not in res.stderr, res.stderr
    return res, json.loads(res.stdout)


def test_arguments_that_are_json_but_not_an_object_are_answered_and_the_run_goes_on(cli, example_repo, server):
    plan = {"subgoals": [{"title": "Fix median()", "done_check": CHECK}]}
    server.script(
        reply(tool_calls=[call("submit_plan", **plan)]),
        reply(tool_calls=[{"name": "view", "arguments": "null"}]),
        reply(tool_calls=[{"name": "view", "arguments": '"calc/stats.py"'}]),
        reply(tool_calls=[call("str_replace", **FIX)]),
    )
    res, result = run_json(cli, example_repo, server, BRANCHWISE_PLANNER_ENABLED="true")
    assert res.returncode == 0 and result["status"] == "completed", res.stderr
    second = server.chat_requests[2]["body"]["messages"]
    answers = [m["content"] for m in second if m["role"] == "tool"]
    assert any("must be a JSON object" in a for a in answers)


def test_a_server_trickling_keep_alive_bytes_does_not_hold_a_call_past_its_timeout(cli, example_repo, server):
    server.script(trickle(30), trickle(30))
    res, result = run_json(cli, example_repo, server, BRANCHWISE_LLM_TIMEOUT_S="3", BRANCHWISE_LLM_MAX_RETRIES="1")
    assert res.returncode == 4 and "no answer from openai/gpt-4o-mini within 3 s after 2 attempts" in result["error"]
    first, second = (r["time"] for r in server.chat_requests)
    assert second - first < 3 + 1.5  # the first call was given up at its timeout, not after 30 s of bytes
    events = read_events(example_repo / ".branchwise" / "runs" / result["run_id"] / "events.jsonl")
    retried = next(e.ts for e in events if e.type == "warning" and "retry 1/1" in e.message)
    assert events[-1].ts - retried < 3 + 1.5  # and so was the second


def test_max_wall_holds_during_a_model_call(cli, example_repo, server):
    server.script(trickle(60))
    res, result = run_json(cli, example_repo, server, "--max-wall", "4", BRANCHWISE_LLM_TIMEOUT_S="50")
    assert res.returncode == 3 and result["status"] == "budget_exceeded" and result["limit"] == "wall"
    assert result["duration_s"] < 4 + 2
    assert "checks were not run" in res.stderr


def test_max_wall_holds_during_a_command(cli, example_repo, server):
    server.script(reply(tool_calls=[call("shell", command="sleep 60")]))
    res, result = run_json(cli, example_repo, server, "--max-wall", "4")
    assert res.returncode == 3 and result["limit"] == "wall"
    assert result["duration_s"] < 4 + 2


def test_an_answer_with_no_choices_is_retried(cli, example_repo, server):
    empty = raw({"id": "x", "object": "chat.completion", "created": 0, "model": "gpt-4o-mini", "choices": []})
    server.script(
        empty, reply(tool_calls=[call("str_replace", **FIX)]), reply(tool_calls=[call("finish", summary="ok")])
    )
    res, _ = run_json(cli, example_repo, server)
    assert res.returncode == 0, res.stderr
    assert len(server.chat_requests) == 3 and "retry 1/4" in res.stderr


def test_two_calls_with_one_id_are_answered_with_two_ids(cli, example_repo, server):
    twice = [{"id": "dup", **call("view", path="calc/stats.py")}, {"id": "dup", **call("view", path="tests")}]
    server.script(reply(tool_calls=twice), reply(tool_calls=[call("str_replace", **FIX)]),
                  reply(tool_calls=[call("finish", summary="ok")]))  # fmt: skip
    res, _ = run_json(cli, example_repo, server)
    assert res.returncode == 0, res.stderr
    messages = server.chat_requests[1]["body"]["messages"]
    sent = [c["id"] for m in messages if m["role"] == "assistant" for c in m.get("tool_calls") or []]
    answered = [m["tool_call_id"] for m in messages if m["role"] == "tool"]
    assert len(set(sent)) == 2 and answered == sent


@pytest.mark.parametrize("usage", [{"prompt_tokens": -500, "completion_tokens": -3}, {"prompt_tokens": 10**30}])
def test_impossible_usage_figures_are_not_trusted(cli, example_repo, server, usage):
    server.script(reply(tool_calls=[call("str_replace", **FIX)], usage=usage),
                  reply(tool_calls=[call("finish", summary="ok")]))  # fmt: skip
    res, result = run_json(cli, example_repo, server)
    assert res.returncode == 0, res.stderr
    assert result["tokens"]["prompt"] > 0 and result["tokens"]["prompt"] < 10**7
    assert result["cost_usd"] > 0  # gpt-4o-mini has a price: our own count is priced
    assert "impossible token counts" in res.stderr


def test_a_reply_cut_off_at_the_token_limit_is_told_to_the_model(cli, example_repo, server):
    cut = reply("Let me write the whole file", tool_calls=[call("view", path="calc")], finish_reason="length")
    server.script(cut, reply(tool_calls=[call("str_replace", **FIX)]), reply(tool_calls=[call("finish", summary="ok")]))
    res, _ = run_json(cli, example_repo, server)
    assert res.returncode == 0, res.stderr
    told = server.chat_requests[1]["body"]["messages"][-1]
    assert told["role"] == "user" and "cut off at the output-token limit" in told["content"]


def test_tool_calls_written_as_text_under_auto_are_used_with_a_hint(cli, example_repo, server):
    block = '<tool_call>\n{{"name": "{name}", "arguments": {args}}}\n</tool_call>'
    server.script(
        reply(block.format(name="str_replace", args=json.dumps(FIX))),
        reply(block.format(name="finish", args=json.dumps({"summary": "done"}))),
    )
    res, result = run_json(cli, example_repo, server)
    assert res.returncode == 0 and result["status"] == "completed", res.stderr
    assert 'set llm.tool_calling = "text"' in res.stderr


def test_no_library_warnings_reach_stderr(cli, example_repo, server):
    odd = raw({"id": "x", "object": "chat.completion", "created": 0, "model": "gpt-4o-mini",
               "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": None,
                            "tool_calls": [{"id": "a", "type": "function", "function": {"name": "finish",
                                            "arguments": '{"summary": "ok"}'}}], "extra_field": {"x": 1}}}],
               "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}})  # fmt: skip
    server.script(reply(tool_calls=[call("str_replace", **FIX)]), odd)
    res, _ = run_json(cli, example_repo, server)
    assert res.returncode == 0, res.stderr
    assert "Warning" not in res.stderr and "pydantic" not in res.stderr.lower()
