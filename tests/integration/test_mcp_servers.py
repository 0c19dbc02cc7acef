"""Real MCP servers that no one here wrote, inside the session's sandbox: the reference filesystem server from npm
and mcp-server-git from PyPI. The sandbox, not the server, has the last word on what they may write."""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path

import pytest

from branchwise.agent.record.events import EventBus, PolicyDecision, ToolCall, ToolCallRecord, ToolResult
from branchwise.agent.run.actor import Actor
from branchwise.agent.run.gate import PolicyGate
from branchwise.sandbox.isolation import hidden
from branchwise.sandbox.isolation.bwrap import BwrapSandbox
from branchwise.sandbox.policy.engine import Policy, TaintTracker
from branchwise.sandbox.settings import PolicySettings, SandboxSettings
from branchwise.tools.mcp.manager import McpManager
from branchwise.tools.mcp.settings import McpSettings
from tests.conftest import git, make_repo
from tests.support.mcp_servers import FS_SERVER, GIT_SERVER, SERVERS, mcp_session

pytestmark = pytest.mark.slow


@pytest.fixture
def outside():
    """A directory outside the workspace that the sandbox shows read-only (next to the servers, which it must
    show), and that the servers are told they may write. Others may read it: a folder only root may read is
    hidden instead, behind an empty tmpfs (once the root-only scan has seen it, so it would depend on when)."""
    SERVERS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=SERVERS, prefix="outside-") as path:
        Path(path).chmod(0o755)
        yield Path(path)


def fs_server(*roots: Path) -> dict[str, object]:
    return {"command": str(FS_SERVER), "args": [str(r) for r in roots], "startup_timeout_s": 60}


def test_the_filesystem_server_works_in_the_workspace_and_the_os_refuses_writes_beyond_it(tmp_path, outside):
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "notes.txt").write_text("first line\n")
    with mcp_session(ws, {"fs": fs_server(ws, outside)}) as s:
        assert {"mcp__fs__read_text_file", "mcp__fs__write_file", "mcp__fs__list_directory"} <= set(s.box.tools)
        assert s.box.get("mcp__fs__read_text_file").effect == "read"
        assert s.box.get("mcp__fs__write_file").effect == "external"  # it declares destructiveHint
        assert s.call("mcp__fs__read_text_file", path=str(ws / "notes.txt")).output == "first line\n"
        wrote = s.call("mcp__fs__write_file", path=str(ws / "new.txt"), content="from mcp")
        assert not wrote.is_error and (ws / "new.txt").read_text() == "from mcp"
        # The server allows this path (it is one of its roots); the sandbox mounts it read-only.
        refused = s.call("mcp__fs__write_file", path=str(outside / "escape.txt"), content="x")
        assert refused.is_error and "EROFS" in refused.output, refused.output
        assert not (outside / "escape.txt").exists()
        assert s.warnings == []


def test_the_server_sees_the_sandbox_view_of_the_host(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    with mcp_session(ws, {"fs": fs_server(ws, Path("/etc"))}) as s:
        # /etc/shadow is masked (deny_read): whatever the server gets, it is not the host's password hashes.
        shadow = s.call("mcp__fs__read_text_file", path="/etc/shadow")
        assert "root:" not in shadow.output, shadow.output
        assert "root:" in Path("/etc/shadow").read_text()
        assert "root:" in s.call("mcp__fs__read_text_file", path="/etc/passwd").output


def test_mcp_server_git_reads_the_repository_and_cannot_change_one_outside_the_workspace(tmp_path, outside):
    ws = make_repo(tmp_path / "ws", {"a.txt": "one\n"})
    (ws / "a.txt").write_text("two\n")
    other = make_repo(outside / "other", {"b.txt": "b\n"})
    with mcp_session(ws, {"git": {"command": str(GIT_SERVER), "startup_timeout_s": 60}}) as s:
        assert s.box.get("mcp__git__git_status").effect == "read"
        status = s.call("mcp__git__git_status", repo_path=str(ws))
        assert not status.is_error and "a.txt" in status.output, status.output
        diff = s.call("mcp__git__git_diff_unstaged", repo_path=str(ws))
        assert "-one" in diff.output and "+two" in diff.output
        made = s.call("mcp__git__git_create_branch", repo_path=str(ws), branch_name="inside")
        assert not made.is_error and "inside" in git(ws, "branch")
        refused = s.call("mcp__git__git_create_branch", repo_path=str(other), branch_name="escape")
        assert refused.is_error and "could not be obtained" in refused.output, refused.output  # GitPython's EROFS
        assert "escape" not in git(other, "branch")
    # The control: the same server and call unsandboxed (sandbox = "host", user config only) do write there.
    with mcp_session(ws, {"git": {"command": str(GIT_SERVER), "sandbox": "host", "startup_timeout_s": 60}}) as s:
        assert s.box.get("mcp__git__git_create_branch").effect == "external"  # nothing contains a host server
        assert not s.call("mcp__git__git_create_branch", repo_path=str(other), branch_name="control").is_error
    assert "control" in git(other, "branch")


def test_calls_go_through_the_policy_and_become_events(tmp_path):
    """Actor and gate as a session wires them: a rule on the MCP tool's name and arguments decides, every call is
    a tool_call and a tool_result, and the result is untrusted content for taint."""
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "README.md").write_text("see https://docs.example.com/setup for the token\n")
    (ws / ".env").write_text("TOKEN=x\n")
    rules = [
        {"name": "no-dotenv", "tool": "mcp__fs__*", "decision": "deny",
         "args_schema": {"properties": {"path": {"pattern": "/\\.env$"}}, "required": ["path"]}},
        {"name": "fs-reads", "tool": "mcp__fs__read_*", "decision": "allow"},
    ]  # fmt: skip
    policy = Policy(PolicySettings.model_validate({"rules": rules}), SandboxSettings(), ws)
    bus, events = EventBus(), []
    bus.subscribe(events.append)
    gate = PolicyGate(policy, bus, taint=TaintTracker(ws))
    bus.subscribe(gate.observe)
    with mcp_session(ws, {"fs": fs_server(ws)}) as s:
        actor = Actor(s.box, s.ctx, bus, gate)

        def run(call_id: str, tool: str, **args: object) -> str:
            obs, _ = actor.run_call(ToolCallRecord(id=call_id, name=tool, arguments=args))
            actor.tool_message(ToolCallRecord(id=call_id, name=tool, arguments=args), obs)
            return obs.output

        assert "docs.example.com" in run("1", "mcp__fs__read_text_file", path=str(ws / "README.md"))
        assert "denied by policy" in run("2", "mcp__fs__read_text_file", path=str(ws / ".env"))
        assert "needs the user's approval" in run("3", "mcp__fs__write_file", path=str(ws / "x"), content="y")
    decisions = [(e.call_id, e.decision, e.rule) for e in events if isinstance(e, PolicyDecision)]
    assert decisions == [("1", "allow", "fs-reads"), ("2", "deny", "no-dotenv"), ("3", "ask", "default:external")]
    assert [e.call.id for e in events if isinstance(e, ToolCall)] == ["1", "2", "3"]
    assert [e.call_id for e in events if isinstance(e, ToolResult)] == ["1", "2", "3"]
    assert not (ws / "x").exists()
    hit = gate.taint.check(["curl https://docs.example.com/setup"]) if gate.taint else None
    assert hit is not None and hit.sources == ["tool_output"]


def test_the_server_runs_in_the_sessions_cgroup_and_network_namespace(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    with mcp_session(ws, {"fs": fs_server(ws)}) as s:
        s.call("mcp__fs__list_directory", path=str(ws))
        node = [p for p in s.sandbox.processes() if b"mcp-server-filesystem" in _cmdline(p)]
        assert node, "the server does not run in the session's cgroup"
        assert Path(f"/proc/{node[0]}/ns/net").stat().st_ino != Path("/proc/self/ns/net").stat().st_ino
        probe = s.sandbox.run(["python3", "-c", "import os; print(os.getuid())"])
        assert probe.output.strip() == "1000"
    assert all(not _cmdline(p) for p in node)  # it ended with the session


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


@pytest.mark.skipif(os.geteuid() != 0, reason="only a sandbox started by root hides root-only folders")
@pytest.mark.parametrize("late", [False, True], ids=["before-the-start", "as-bwrap-starts"])
def test_a_hidden_folder_that_goes_away_before_a_server_starts_does_not_fail_it(tmp_path, monkeypatch, late):
    # A folder only root may read is hidden behind a tmpfs, which bwrap can mount only where it still exists.
    # One that went away between the server's launch being made and its start failed the start with
    # "bwrap: Can't mkdir ...: Read-only file system" (`branchwise mcp list` failed that way in the suite).
    ws = tmp_path / "ws"
    ws.mkdir()
    gone = Path(tempfile.mkdtemp(dir=SERVERS, prefix="vanishing-"))  # mode 0700
    monkeypatch.setattr(hidden, "_ROOT_ONLY", hidden._Rescan())  # a root-only scan that sees it
    settings = McpSettings.model_validate({"servers": {"fs": fs_server(ws)}})
    with BwrapSandbox(ws) as sbx:
        manager = McpManager(settings, sbx, ws, warn=lambda _message: None)
        try:
            connection = manager.connection("fs")
            assert connection is not None and str(gone) in connection.launch.argv  # masked when it was made
            gone.rmdir()
            if late:  # the first start still gets the command line made while it existed: bwrap fails, once
                made, fresh = [], connection.launch.command

                def rebuild() -> list[str]:
                    made.append(1)
                    return connection.launch.argv if len(made) == 1 else fresh()

                connection.launch = dataclasses.replace(connection.launch, rebuild=rebuild)
            assert "mcp__fs__read_text_file" in {tool.name for tool in manager.tools()}, connection.error
        finally:
            manager.close()
            if gone.exists():
                gone.rmdir()
