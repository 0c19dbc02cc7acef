"""`branchwise mcp serve`: branchwise as an MCP server. Each `run_task` call is one `branchwise run -o json` in a
subprocess, so a run keeps the exit-code contract and its own process (a crash or a hang ends only that run)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any, Literal

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field

_PROGRESS_EVERY_S = 5.0
_STOP_GRACE_S = 10.0
_STDERR_KEEP = 4000

Opt = Annotated


def make_server(version: str, instructions: str) -> MCPServer:
    """The MCP server with its one tool."""
    server = MCPServer("branchwise", version=version, instructions=instructions, log_level="WARNING")
    annotations = ToolAnnotations(title="Run a branchwise task", read_only_hint=False, destructive_hint=False,
                                  idempotent_hint=False, open_world_hint=False)  # fmt: skip

    @server.tool(annotations=annotations)
    async def run_task(
        ctx: Context,
        task: Opt[str | None, Field(description="What to do (or give task_file).")] = None,
        cd: Opt[str | None, Field(description="Work in this directory (default: where the server started).")] = None,
        task_file: Opt[str | None, Field(description="A task file (TOML): prompt, model, limits, checks.")] = None,
        model: Opt[str | None, Field(description="Any litellm model name, or scripted:PATH.")] = None,
        checks: Opt[list[str] | None, Field(description="Commands that must exit 0 for success.")] = None,
        max_steps: Opt[int | None, Field(description="Stop after this many model calls.", gt=0)] = None,
        max_cost: Opt[float | None, Field(description="Stop after spending this many dollars.", ge=0)] = None,
        max_wall: Opt[float | None, Field(description="Stop after this many seconds.", gt=0)] = None,
        search: Opt[Literal["none", "best-of-n", "mcts"] | None, Field(description="Search strategy.")] = None,
        attempts: Opt[int | None, Field(description="best-of-n: number of attempts.", gt=0)] = None,
        plan: Opt[bool | None, Field(description="Plan the task into checkable subgoals first.")] = None,
        plan_only: Opt[bool, Field(description="Return the plan without running it.")] = False,
        sandbox: Opt[Literal["read-only", "workspace-write"] | None, Field(description="Sandbox mode.")] = None,
        network: Opt[Literal["off", "proxy", "on"] | None, Field(description="Network of the sandbox.")] = None,
        approval: Opt[Literal["untrusted", "on-request", "never"] | None, Field(description="Approval mode.")] = None,
        allow_domain: Opt[list[str] | None, Field(description="Proxy mode: hosts commands may reach.")] = None,
    ) -> CallToolResult:
        """Run a task with branchwise, headless, and return the final JSON object of `branchwise run -o json`."""
        options = {k: v for k, v in locals().items() if k != "ctx"}  # the parameters above, by name
        if cd is not None and not Path(cd).is_dir():
            return _result({"status": "error", "exit_code": 2, "error": f"cd {cd}: not a directory"})
        # Relative paths (task_file, scripted:PATH) mean what they would mean in a shell in that directory.
        return await _run(run_argv(options), ctx, cwd=cd)

    return server


def run_argv(options: dict[str, Any]) -> list[str]:
    """The `branchwise run` command line for run_task's options (the same options, the same meaning)."""
    argv = [sys.executable, "-m", "branchwise.cli.main", "run", "-o", "json"]
    flags = {"task_file": "--file", "model": "--model", "max_steps": "--max-steps", "max_cost": "--max-cost",
             "max_wall": "--max-wall", "search": "--search", "attempts": "--attempts", "sandbox": "--sandbox",
             "network": "--network", "approval": "--approval", "cd": "--cd"}  # fmt: skip
    for key, flag in flags.items():
        if options.get(key) is not None:
            argv += [flag, str(options[key])]
    for check in options.get("checks") or []:
        argv += ["--check", check]
    for domain in options.get("allow_domain") or []:
        argv += ["--allow-domain", domain]
    if options.get("plan") is not None:
        argv.append("--plan" if options["plan"] else "--no-plan")
    if options.get("plan_only"):
        argv.append("--plan-only")
    if options.get("task") is not None:
        argv += ["--", options["task"]]  # after --, a task that starts with a dash is still the task
    return argv


async def _run(argv: list[str], ctx: Context, *, cwd: str | None) -> CallToolResult:
    started = time.monotonic()
    # stdin is the MCP channel of this server: the run must not read it.
    process = await anyio.open_process(
        argv, stdin=subprocess.DEVNULL, cwd=cwd, env=dict(os.environ), start_new_session=True
    )
    out, err = bytearray(), bytearray()

    async def drain(stream: Any, into: bytearray, keep: int | None) -> None:
        async for chunk in stream:
            into += chunk
            if keep is not None:
                del into[:-keep]

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(drain, process.stdout, out, None)
            tg.start_soon(drain, process.stderr, err, _STDERR_KEEP)
            while process.returncode is None:
                with anyio.move_on_after(_PROGRESS_EVERY_S):
                    await process.wait()
                if process.returncode is None:
                    # Keeps clients that reset their timeout on progress waiting for a long run.
                    elapsed = time.monotonic() - started
                    await ctx.report_progress(elapsed, None, f"running for {elapsed:.0f} s")
    finally:
        if process.returncode is None:  # the client cancelled the call: interrupt the run, as Ctrl-C would
            with anyio.CancelScope(shield=True):
                await _stop(process)
    code = process.returncode if process.returncode is not None else 130
    return _result(_final_object(out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), code))


def _result(final: dict[str, Any]) -> CallToolResult:
    """The final object as structured content and as text (for clients that read only text)."""
    text = json.dumps(final, ensure_ascii=False)
    return CallToolResult(content=[TextContent(text=text)], structured_content=final, is_error=final["exit_code"] != 0)


def _final_object(stdout: str, stderr: str, code: int) -> dict[str, Any]:
    """The run's final JSON object; when it printed none (a usage error), one with the same keys that matter."""
    for line in reversed(stdout.strip().splitlines()):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and "exit_code" in obj:
            return obj
    errors = [ln.removeprefix("branchwise: error: ") for ln in stderr.splitlines() if ln.startswith("branchwise:")]
    return {"status": "error", "exit_code": code, "error": errors[-1] if errors else stderr.strip()[-500:] or None}


async def _stop(process: Any) -> None:
    with_group = process.pid
    try:
        os.killpg(with_group, signal.SIGINT)
    except ProcessLookupError:
        return
    with anyio.move_on_after(_STOP_GRACE_S):
        await process.wait()
    if process.returncode is None:
        os.killpg(with_group, signal.SIGKILL)
        await process.wait()
