"""A server that misbehaves (tests/mcp_servers/faulty.py, on the SDK's server class), inside the sandbox: each
fault is one clear observation for the model and at most one warning line for the user, and the session goes on."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.mcp_servers import FAULTY, SERVER_PYTHON, faulty_server, mcp_session

pytestmark = pytest.mark.slow

START = 60  # a loaded CI machine takes seconds to import the SDK


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    path = tmp_path / "ws"
    path.mkdir()
    return path


def test_resources_and_prompts_are_listed_and_resources_can_be_read(ws):
    with mcp_session(ws, {"f": faulty_server(ws, startup_timeout_s=START)}) as s:
        row = s.manager.status(start=False)[0]
        assert (row.state, row.resources, row.prompts) == ("ready", 1, 1)
        reader = s.box.get("mcp__f__read_resource")
        assert reader.effect == "read" and "notes://today (today)" in reader.description
        assert s.call("mcp__f__read_resource", uri="notes://today").output == "[resource notes://today]\nbuy milk"
        missing = s.call("mcp__f__read_resource", uri="notes://never")
        assert missing.is_error and "returned an error" in missing.output
        prompt = s.manager.connections["f"].get_prompt("review", {"topic": "the diff"}, 30)
        assert prompt.messages[0].content.text == "Review the diff carefully."


def test_a_crash_is_reported_the_server_restarted_once_then_given_up(ws):
    with mcp_session(ws, {"f": faulty_server(ws, tool_timeout_s=30, startup_timeout_s=START)}) as s:
        first = s.call("mcp__f__crash")
        assert first.is_error and first.data["mcp_fault"] == "crash"
        assert "crashed during the call (exit code 3)" in first.output and "faulty: crashing now" in first.output
        assert "has been restarted; the call was not retried" in first.output
        assert s.call("mcp__f__echo", text="alive").output == "alive"
        assert len(s.warnings) == 1 and "restarted it" in s.warnings[0]
        second = s.call("mcp__f__crash")
        assert "crashed during the call again" in second.output and "cannot be used in this session" in second.output
        after = s.call("mcp__f__echo", text="x")
        assert after.is_error and after.data["mcp_fault"] == "down" and "stays down" in after.output
        assert len(s.warnings) == 2 and "for the rest of the session" in s.warnings[1]
        assert s.manager.status(start=False)[0].state == "dead"


def test_a_server_that_died_between_calls_is_restarted_and_the_call_goes_through(ws):
    with mcp_session(ws, {"f": faulty_server(ws, startup_timeout_s=START)}) as s:
        assert s.call("mcp__f__exit_soon").output == "exiting soon"
        deadline = time.monotonic() + 10
        while not s.manager.connections["f"].info.eof and time.monotonic() < deadline:
            time.sleep(0.05)
        answer = s.call("mcp__f__echo", text="still here")
        assert not answer.is_error and answer.output == "still here"
        assert s.warnings == ["mcp server f had exited (exit code 4); restarted it"]


def test_a_hanging_call_times_out_and_a_frozen_server_is_replaced(ws):
    with mcp_session(ws, {"f": faulty_server(ws, tool_timeout_s=2, startup_timeout_s=START)}) as s:
        started = time.monotonic()
        hung = s.call("mcp__f__hang")
        assert time.monotonic() - started < 10
        assert hung.data["mcp_fault"] == "timeout" and "did not answer within 2 s" in hung.output
        assert s.call("mcp__f__echo", text="responsive").output == "responsive"  # a ping said it is alive
        assert s.warnings == ["mcp server f: a call timed out after 2 s"]
        frozen = s.call("mcp__f__freeze")
        assert "stopped answering" in frozen.output and "has been restarted" in frozen.output
        assert s.call("mcp__f__echo", text="new server").output == "new server"
        assert len(s.warnings) == 2


def test_malformed_answers_are_reported_and_do_not_break_the_session(ws):
    with mcp_session(ws, {"f": faulty_server(ws, startup_timeout_s=START)}) as s:
        bad = s.call("mcp__f__malformed")
        assert bad.is_error and bad.data["mcp_fault"] == "malformed"
        assert "returned a malformed result" in bad.output and "CallToolResult" in bad.output
        assert s.call("mcp__f__garbage").output == "answered after garbage"  # lines that are not JSON-RPC: skipped
        assert s.manager.connections["f"].info.bad_lines == 2
        assert s.call("mcp__f__echo", text="fine").output == "fine"
        assert s.warnings == ["mcp server f returned a malformed result"]


def test_floods_are_capped(ws):
    with mcp_session(ws, {"f": faulty_server(ws, tool_timeout_s=120, startup_timeout_s=START)}) as s:
        big = s.call("mcp__f__flood_result", megabytes=8)
        assert not big.is_error and len(big.output.encode()) < s.ctx.output_limit_bytes + 200
        assert "bytes of the result left out" in big.output
        assert s.call("mcp__f__flood_stderr", megabytes=40).output == "stderr flooded"
        assert len(s.manager.connections["f"].info.stderr_tail) <= 8192
        line = s.call("mcp__f__flood_line", megabytes=70)
        assert line.output == "answered after a flood"  # the 70 MB line was dropped, the answer after it kept
        huge = s.call("mcp__f__flood_result", megabytes=40)  # an answer over 64 MB fails its call at once
        assert huge.is_error and huge.data["mcp_fault"] == "malformed" and "over 64 MB" in huge.output
        assert s.warnings == ["mcp server f: the server sent a message over 64 MB; it was dropped"]
        assert s.call("mcp__f__echo", text="after floods").output == "after floods"


def test_a_server_that_does_not_start_costs_one_warning_and_no_tools(ws):
    servers = {
        "f": faulty_server(ws, startup_timeout_s=START),
        "broken": {"command": str(SERVER_PYTHON), "args": ["-c", "import sys; sys.exit('no config for you')"]},
        "silent": {"command": "/bin/sleep", "args": ["600"], "startup_timeout_s": 2},
    }
    with mcp_session(ws, servers) as s:
        assert {t.split("__")[1] for t in s.box.tools} == {"f"}
        assert len(s.warnings) == 2
        broken = next(w for w in s.warnings if "broken" in w)
        assert "exited during start-up (exit code 1)" in broken and "no config for you" in broken
        assert "its tools are not available" in broken
        assert any("silent: did not start within 2 s" in w for w in s.warnings)


def test_a_streamable_http_server_is_reached_with_its_headers(ws, monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([sys.executable, str(FAULTY), "--http", str(port)], stderr=subprocess.DEVNULL)
    try:
        _wait_for_port(port)
        url = f"http://127.0.0.1:{port}/mcp"
        settings = {"url": url, "headers": {"X-Token": "${TEST_TOKEN}"}, "startup_timeout_s": START}
        monkeypatch.setenv("TEST_TOKEN", "t-123")
        with mcp_session(ws, {"web": settings}) as s:
            assert s.box.get("mcp__web__crash").effect == "external"  # a remote service: nothing contains it
            assert s.box.get("mcp__web__echo").effect == "read"
            assert s.call("mcp__web__echo", text="over http").output == "over http"
            assert s.call("mcp__web__header", name="x-token").output == "t-123"
    finally:
        server.kill()
        server.wait()


def _wait_for_port(port: int) -> None:
    deadline = time.monotonic() + START
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    pytest.fail("the HTTP test server did not start")
