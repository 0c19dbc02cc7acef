"""The real litellm path over HTTP, against an OpenAI-compatible server started by the test on 127.0.0.1."""

from __future__ import annotations

import json

import pytest

from tests.support.openai_server import FakeOpenAI, error, hang, reply

CHECK = "python3 -m unittest discover -s tests -q"
FIX = {
    "path": "calc/stats.py",
    "old_str": "(ordered[middle] + ordered[middle + 1])",
    "new_str": "(ordered[middle - 1] + ordered[middle])",
}


def call(name: str, **arguments) -> dict:
    return {"name": name, "arguments": arguments}


@pytest.fixture
def server():
    with FakeOpenAI() as srv:
        yield srv


def settings(server: FakeOpenAI, **extra: str) -> dict[str, str]:
    return {
        "BRANCHWISE_LLM_API_BASE": server.base_url,
        "BRANCHWISE_LLM_RETRY_BACKOFF_S": "0.05",
        "NO_PROXY": "127.0.0.1,localhost",
        **extra,
    }


def test_example_completes_over_http_with_tool_calls_and_a_retried_429(cli, example_repo, server):
    server.script(
        reply(
            "Let me run the tests.",
            tool_calls=[call("shell", command=CHECK)],
            usage={"prompt_tokens": 900, "completion_tokens": 20},
        ),
        error(429, "Rate limit reached, slow down", headers={"Retry-After": "0"}),
        reply(tool_calls=[call("view", path="calc/stats.py")]),
        reply(tool_calls=[call("str_replace", **FIX)]),
        reply(tool_calls=[call("shell", command=CHECK)]),
        reply(tool_calls=[call("finish", summary="Fixed median for even counts.")]),
    )
    res = cli("run", "-f", "task.toml", "-m", "openai/gpt-4o-mini", "-o", "json", cwd=example_repo,
              env=settings(server))  # fmt: skip
    assert res.returncode == 0, res.stderr
    result = json.loads(res.stdout)
    assert result["status"] == "completed" and result["steps"] == 5
    assert result["checks"][0]["passed"] and result["changed_files"] == ["calc/stats.py"]
    assert result["tokens"]["prompt"] >= 900
    assert result["cost_usd"] > 0  # a known model name is priced by litellm even on a custom server
    requests = server.chat_requests
    assert len(requests) == 6  # five replies and one 429 that was retried
    first, after_429 = requests[0]["body"], requests[2]["body"]
    assert first["model"] == "gpt-4o-mini" and {t["function"]["name"] for t in first["tools"]} >= {"shell", "finish"}
    assert requests[1]["body"]["messages"] == after_429["messages"]  # the retry resent the same conversation
    tool_messages = [m for m in after_429["messages"] if m["role"] == "tool"]
    assert "FAIL: test_even_count" in tool_messages[0]["content"]
    assert requests[0]["headers"]["authorization"] == "Bearer not-needed"
    assert "retry 1/4" in res.stderr


def test_planned_run_over_http(cli, example_repo, server):
    plan = {"subgoals": [{"title": "Fix median()", "done_check": CHECK}], "facts": ["tests use unittest"]}
    server.script(
        reply("A one-step plan.", tool_calls=[call("submit_plan", **plan)]),
        reply(tool_calls=[call("str_replace", **FIX)]),
    )
    res = cli("run", "-f", "task.toml", "-m", "openai/gpt-4o-mini", "-o", "json", cwd=example_repo,
              env=settings(server, BRANCHWISE_PLANNER_ENABLED="true"))  # fmt: skip
    assert res.returncode == 0, res.stderr
    result = json.loads(res.stdout)
    assert result["plan"] == [{"title": "Fix median()", "done_check": CHECK}]
    first = server.chat_requests[0]["body"]
    assert [t["function"]["name"] for t in first["tools"]] == ["submit_plan"]
    assert "Files in the repository" in first["messages"][1]["content"]
    second = server.chat_requests[1]["body"]
    assert "subgoal 1 of 1: Fix median()" in second["messages"][2]["content"]
    assert "tests use unittest" in second["messages"][0]["content"]


def test_text_tool_format_for_servers_without_tool_calling(cli, example_repo, server):
    block = '<tool_call>\n{{"name": "{name}", "arguments": {args}}}\n</tool_call>'
    server.script(
        reply("I will fix it.\n" + block.format(name="str_replace", args=json.dumps(FIX))),
        reply(block.format(name="finish", args=json.dumps({"summary": "done"}))),
    )
    res = cli("run", "-f", "task.toml", "-m", "openai/local-coder", "-o", "json", cwd=example_repo,
              env=settings(server, BRANCHWISE_LLM_TOOL_CALLING="text"))  # fmt: skip
    assert res.returncode == 0, res.stderr
    bodies = [r["body"] for r in server.chat_requests]
    assert all("tools" not in b for b in bodies)
    assert "<tool_call>" in bodies[0]["messages"][0]["content"]
    assert {m["role"] for m in bodies[1]["messages"]} == {"system", "user", "assistant"}
    assert "<tool_result" in bodies[1]["messages"][-1]["content"]


def test_malformed_tool_arguments_go_back_to_the_model(cli, example_repo, server):
    server.script(
        reply(tool_calls=[{"name": "str_replace", "arguments": '{"path": "calc/stats.py", "old_str": '}]),
        reply(tool_calls=[call("str_replace", **FIX)]),
        reply(tool_calls=[call("finish", summary="ok")]),
    )
    res = cli("run", "-f", "task.toml", "-m", "openai/gpt-4o-mini", "-o", "json", cwd=example_repo,
              env=settings(server))  # fmt: skip
    assert res.returncode == 0, res.stderr
    tool_message = next(m for m in server.chat_requests[1]["body"]["messages"] if m["role"] == "tool")
    assert "not valid JSON" in tool_message["content"]


@pytest.mark.parametrize(
    ("entries", "code", "expected"),
    [
        ([error(500, "boom")] * 3, 4, "failed or cannot be reached after 3 attempts"),
        ([error(503, "overloaded")] * 3, 4, "unavailable after 3 attempts"),
        ([error(401, "Incorrect API key provided: sk-x")], 2, "rejected the API key"),
        ([error(403, "not allowed")], 2, "denied access"),
        ([error(404, "The model `nope` does not exist")], 2, "does not know model"),
        ([hang(5)] * 3, 4, "no answer from openai/gpt-4o-mini within 0.5 s"),
    ],
)
def test_provider_failures_are_one_line_with_the_documented_exit_code(
    cli, example_repo, server, entries, code, expected
):
    server.script(*entries)
    res = cli("run", "-f", "task.toml", "-m", "openai/gpt-4o-mini", cwd=example_repo,
              env=settings(server, BRANCHWISE_LLM_MAX_RETRIES="2", BRANCHWISE_LLM_TIMEOUT_S="0.5"))  # fmt: skip
    assert res.returncode == code, res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("branchwise: error:")]
    assert len(errors) == 1 and expected in errors[0], res.stderr
    assert "Traceback" not in res.stderr
    assert len(server.chat_requests) == len(entries)  # retried exactly as often as configured, or not at all


def test_connection_refused_is_an_environment_problem(cli, example_repo):
    with FakeOpenAI() as srv:
        base = srv.base_url
    res = cli("run", "-f", "task.toml", "-m", "openai/gpt-4o-mini", cwd=example_repo,
              env={"BRANCHWISE_LLM_API_BASE": base, "BRANCHWISE_LLM_MAX_RETRIES": "1",
                   "BRANCHWISE_LLM_RETRY_BACKOFF_S": "0.05", "NO_PROXY": "127.0.0.1"})  # fmt: skip
    assert res.returncode == 4 and base.split("/v1")[0] in res.stderr and "Traceback" not in res.stderr
