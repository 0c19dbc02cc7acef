"""Background processes of a session: they survive the shell call that started them, can be listed, read and
stopped, and end with the session; external command lines run in the same sandbox (real bwrap)."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path

import pytest

from branchwise.sandbox.isolation.bwrap import BwrapSandbox
from branchwise.sandbox.workspace.safefs import WorkspaceFS
from branchwise.tools import ToolBox, ToolContext, default_tools
from tests.conftest import make_repo, shell, write_script


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def call(box: ToolBox, ctx: ToolContext, name: str, **args: object) -> str:
    return box.get(name).run(box.parse_args(name, args), ctx).output


@pytest.fixture
def session(tmp_path: Path):
    ws = tmp_path / "ws"
    ws.mkdir()
    with BwrapSandbox(ws) as sandbox:
        yield sandbox, ToolContext(sandbox=sandbox, fs=WorkspaceFS(ws)), ToolBox(default_tools())


def test_a_server_started_with_an_ampersand_is_reachable_from_the_next_command(session):
    _, ctx, box = session
    port = free_port()
    first = call(box, ctx, "shell", command=f"nohup python3 -m http.server {port} & sleep 0.5; echo started")
    assert "started" in first and "still run in the background as bg-" in first and "[exit code: 0]" in first
    probe = f"python3 -c \"import urllib.request as u; print(u.urlopen('http://127.0.0.1:{port}/').status)\""
    assert "200" in call(box, ctx, "shell", command=probe)
    listing = call(box, ctx, "background", action="list")
    process_id = listing.split()[0]
    assert process_id.startswith("bg-") and "http.server" in listing
    assert "GET / HTTP" in call(box, ctx, "background", action="log", id=process_id)
    assert "stopped" in call(box, ctx, "background", action="stop", id=process_id)
    assert call(box, ctx, "background", action="list") == "(no background processes are running)"
    assert "[exit code: 0]" not in call(box, ctx, "shell", command=probe)


def test_a_plain_command_leaves_nothing_behind_and_keeps_its_exit_code(session):
    sandbox, ctx, box = session
    out = call(box, ctx, "shell", command="echo hi; exit 7")
    assert "hi" in out and "[exit code: 7]" in out and "background" not in out
    assert sandbox.background() == []


def test_background_flag_starts_at_once_and_the_session_end_stops_everything(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    with BwrapSandbox(ws) as sandbox:
        ctx, box = ToolContext(sandbox=sandbox, fs=WorkspaceFS(ws)), ToolBox(default_tools())
        started = time.monotonic()
        out = call(box, ctx, "shell", command="sleep 300", background=True)
        assert time.monotonic() - started < 5 and "started in the background as bg-" in out
        assert len(sandbox.background()) == 1
        deadline = time.monotonic() + 10
        pids = sandbox.processes()
        while not any(_cmdline(p) == "sleep 300" for p in pids):
            assert time.monotonic() < deadline, "the background process never showed up"
            time.sleep(0.05)
            pids = sandbox.processes()
    deadline = time.monotonic() + 5
    while any(_cmdline(p) == "sleep 300" for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_cmdline(p) == "sleep 300" for p in pids)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def test_an_external_command_line_runs_in_the_session_sandbox_and_dies_with_it(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    port = free_port()
    with BwrapSandbox(ws) as sandbox:
        sandbox.run(["bash", "-c", f"python3 -m http.server {port} >/dev/null 2>&1 & sleep 0.5"], keep_background=True)
        script = (
            "id -u; cat /etc/shadow >/dev/null 2>&1 || echo masked; "
            f"python3 -c \"import urllib.request as u; print(u.urlopen('http://127.0.0.1:{port}/').status)\""
        )
        done = subprocess.run(sandbox.command_line(["bash", "-c", script]), env={}, capture_output=True, text=True)
        assert done.stdout.split() == ["1000", "masked", "200"], done.stderr
        sleeper = subprocess.Popen(sandbox.command_line(["sleep", "300"]), env={})
        deadline = time.monotonic() + 10
        while len(sandbox.processes()) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert sleeper.wait(timeout=10) != 0  # killed with the session


def test_the_cli_reaches_a_server_started_in_an_earlier_shell_call(cli, tmp_path):
    repo = make_repo(tmp_path / "repo", {"README.md": "hi\n"})
    port = free_port()
    probe = f"python3 -c \"import urllib.request as u; print('status', u.urlopen('http://127.0.0.1:{port}/').status)\""
    script = write_script(
        tmp_path / "replies.yaml",
        [shell(f"nohup python3 -m http.server {port} &"), shell(f"sleep 0.5; {probe}"),
         {"tool_calls": [{"name": "finish", "arguments": {"summary": "served"}}]}],
    )  # fmt: skip
    res = cli("run", "serve and check", "-m", f"scripted:{script}", "-o", "stream-json", cwd=repo)
    assert res.returncode == 0, res.stderr
    results = [json.loads(line) for line in res.stdout.splitlines() if '"tool_result"' in line]
    assert "status 200" in results[1]["output"]


def test_the_unsandboxed_host_mode_keeps_background_processes_too(tmp_path):
    from branchwise.sandbox.isolation.host import HostSandbox

    ws = tmp_path / "ws"
    ws.mkdir()
    with HostSandbox(ws) as sandbox:
        result = sandbox.run(["bash", "-c", "sleep 300 & echo started"], keep_background=True)
        assert result.exit_code == 0 and result.output.strip() == "started" and len(result.background) == 1
        assert sandbox.run(["true"], keep_background=True).background == ()
        pid = next(p for p in _children_named("sleep") if _cmdline(p) == "sleep 300")
    assert _gone(pid)


def _children_named(name: str) -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _cmdline(int(p.name)).startswith(name)]


def _gone(pid: int) -> bool:
    deadline = time.monotonic() + 5
    while _cmdline(pid) == "sleep 300" and time.monotonic() < deadline:
        time.sleep(0.05)
    return _cmdline(pid) != "sleep 300"
