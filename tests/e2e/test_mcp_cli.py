"""`branchwise mcp list | tools | serve` through the installed command; `serve` driven by the SDK's own client."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.conftest import BRANCHWISE, EXAMPLE, make_repo
from tests.support.mcp_servers import FS_SERVER, require_servers

pytestmark = pytest.mark.slow


def user_config(env: dict[str, str], text: str) -> None:
    path = Path(env["XDG_CONFIG_HOME"]) / "branchwise" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


FS = f'[mcp.servers.fs]\ncommand = "{FS_SERVER}"\nargs = ["${{workspace}}"]\nstartup_timeout_s = 60\n'


def test_list_and_tools_show_servers_as_a_run_would_start_them(cli, clean_env, tmp_path):
    require_servers()
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    user_config(clean_env, FS + '[mcp.servers.gone]\ncommand = "no-such-mcp-server"\n[mcp.servers.off]\nurl = '
                '"http://127.0.0.1:9/mcp"\nenabled = false\n')  # fmt: skip
    listed = cli("mcp", "list", cwd=repo, timeout=120)
    assert listed.returncode == 4, listed.stderr  # an enabled server cannot be started
    lines = listed.stdout.splitlines()
    assert lines[0].split()[:2] == ["fs", "ready"] and "in the sandbox" in lines[0] and "14 tools" in lines[0]
    assert "gone" in lines[1] and "failed" in lines[1] and "'no-such-mcp-server' is not on PATH" in lines[2]
    assert lines[3].split() == ["off", "disabled"]
    rows = json.loads(cli("mcp", "list", "--json", "--no-start", cwd=repo).stdout)["servers"]
    assert [(r["name"], r["state"]) for r in rows] == [("fs", "stopped"), ("gone", "failed"), ("off", "disabled")]
    tools = cli("mcp", "tools", "fs", cwd=repo, timeout=120)
    assert tools.returncode == 0, tools.stderr
    assert any(line.split()[:2] == ["mcp__fs__read_text_file", "read"] for line in tools.stdout.splitlines())
    assert any(line.split()[:2] == ["mcp__fs__write_file", "external"] for line in tools.stdout.splitlines())
    schema = json.loads(cli("mcp", "tools", "fs", "--json", cwd=repo, timeout=120).stdout)
    assert schema["tools"][0]["input_schema"]["type"] == "object"
    unknown = cli("mcp", "tools", "nope", cwd=repo)
    assert unknown.returncode == 2 and "no MCP server named 'nope'" in unknown.stderr


def test_a_repository_cannot_add_a_server(cli, tmp_path):
    repo = make_repo(tmp_path / "repo", {".branchwise/config.toml": '[mcp.servers.x]\ncommand = "sh"\n'})
    res = cli("mcp", "list", cwd=repo)
    assert res.returncode == 2 and "mcp.servers.x may only say enabled = false" in res.stderr
    assert "Traceback" not in res.stderr


async def _serve_session(env: dict[str, str], cwd: Path, calls: list[dict[str, Any]]) -> tuple[Any, list[Any]]:
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    params = StdioServerParameters(command=str(BRANCHWISE), args=["mcp", "serve"], env=env, cwd=cwd)
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        listed = await session.list_tools()
        results = [await session.call_tool("run_task", call, read_timeout_seconds=300) for call in calls]
    return listed, results


def test_serve_runs_the_demo_task_for_an_mcp_client(clean_env, tmp_path):
    repo = make_repo(tmp_path / "calc", source=EXAMPLE)
    env = {k: v for k, v in clean_env.items() if k != "BRANCHWISE_PLANNER_ENABLED"}  # the demo plans first
    calls = [{"task_file": "task.toml", "cd": str(repo)}, {"cd": str(repo), "model": "scripted:missing.yaml"},
             {"task": "x", "cd": str(tmp_path / "nowhere")}]  # fmt: skip
    listed, (demo, bad, nowhere) = anyio.run(_serve_session, env, tmp_path, calls)
    tool = next(t for t in listed.tools if t.name == "run_task")
    assert {"task", "task_file", "cd", "model", "checks", "max_steps", "search", "sandbox"} <= set(
        tool.input_schema["properties"]
    )
    assert not demo.is_error, demo.content
    final = demo.structured_content
    assert final["status"] == "completed" and final["exit_code"] == 0
    assert final["checks"] and all(c["passed"] for c in final["checks"])
    assert final["changed_files"] == ["calc/stats.py"]
    assert json.loads(demo.content[0].text) == final  # the same object as text, for clients that only read text
    assert "return (ordered[middle - 1] + ordered[middle]) / 2" in (repo / "calc" / "stats.py").read_text()
    assert bad.is_error and bad.structured_content["exit_code"] == 2  # no task given: run's usage error
    assert "no task given" in (bad.structured_content["error"] or "")
    assert nowhere.is_error and nowhere.structured_content == {
        "status": "error", "exit_code": 2, "error": f"cd {tmp_path / 'nowhere'}: not a directory"}  # fmt: skip
