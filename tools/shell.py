"""The shell tool: one bash command per call, run through the sandbox, with a tracked working directory."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

from pydantic import BaseModel, Field

from branchwise.sandbox.base import OutputLimits
from branchwise.tools.base import Observation, Tool, ToolContext

# Commands must not wait for a pager, an editor or a password prompt nobody will answer. And Python must not
# reuse bytecode across commands: after a snapshot restore, a file of the same size rewritten within the same
# second looks unchanged to the .pyc check, so tests would run another branch's code.
COMMAND_ENV = {
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONPYCACHEPREFIX": "/tmp/.branchwise-no-pycache",
    "PAGER": "cat",
    "GIT_PAGER": "cat",
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_EDITOR": "true",
    "EDITOR": "true",
    "DEBIAN_FRONTEND": "noninteractive",
    "PIP_NO_INPUT": "1",
    "TERM": "dumb",
    "NO_COLOR": "1",
}


class ShellArgs(BaseModel):
    command: str = Field(description="A bash command line. Each call is a fresh shell; only the directory persists.")
    timeout_s: float | None = Field(
        None,
        gt=0,
        description="Seconds before the command is killed (default set by the user's configuration).",
    )
    background: bool = Field(
        False,
        description="Start the command in the background and return at once (a server, a watcher); its output "
        "goes to a log that the `background` tool reads.",
    )


class Shell(Tool):
    name = "shell"
    description = (
        "Run a bash command in the workspace and return its combined stdout and stderr and exit code. "
        "Each call starts a new non-interactive shell: variables do not persist, but a `cd` does. A process left "
        "running (`server &`, or background=true) keeps running for later calls (see the `background` tool). "
        "Long output keeps its beginning and end. Do not start editors, pagers or prompts."
    )
    Args = ShellArgs

    def __init__(self) -> None:
        self._marker = f"__branchwise_cwd_{secrets.token_hex(4)}__"

    def run(self, args: ShellArgs, ctx: ToolContext) -> Observation:
        cwd = ctx.shell_cwd if ctx.shell_cwd.is_dir() else ctx.workspace
        if args.background:
            process = ctx.sandbox.start_background(
                ["bash", "--noprofile", "--norc", "-c", args.command], cwd=cwd, env=COMMAND_ENV
            )
            process.extra["command"] = args.command
            text = f"started in the background as {process.id}; read its output with the background tool"
            return Observation(text, data={"background": [process.id]})
        script = f"{args.command}\n__bw_status=$?\nprintf '\\n{self._marker}%s\\n' \"$PWD\"\nexit $__bw_status\n"
        timeout = min(args.timeout_s or ctx.shell_timeout_s, 4 * ctx.shell_timeout_s)
        if ctx.deadline is not None:  # the run's wall-time limit holds during a command too
            timeout = max(0.1, min(timeout, ctx.deadline - time.monotonic()))
        half = ctx.output_limit_bytes // 2
        result = ctx.sandbox.run(
            ["bash", "--noprofile", "--norc", "-c", script],
            cwd=cwd,
            timeout=timeout,
            env=COMMAND_ENV,
            limits=OutputLimits(keep_head=half, keep_tail=half),
            keep_background=True,
        )
        output, new_cwd = self._split_cwd(result.output)
        notes = []
        if new_cwd is not None:
            moved = self._accept_cwd(new_cwd, ctx)
            if moved:
                notes.append(moved)
        if result.background:
            for process in result.background:
                process.extra["command"] = args.command
            ids = ", ".join(p.id for p in result.background)
            notes.append(f"[processes it started still run in the background as {ids}: see the background tool]")
        if result.killed == "timeout":
            notes.append(f"[killed: no exit after {timeout:g} s]")
        elif result.killed == "output_limit":
            notes.append("[killed: too much output]")
        body = output if output.strip() else "(no output)"
        text = "\n".join([body.rstrip("\n"), *notes, f"[exit code: {result.exit_code}]"])
        return Observation(
            text,
            is_error=False,
            data={
                "exit_code": result.exit_code,
                "killed": result.killed,
                "truncated": result.truncated,
                "background": [p.id for p in result.background],
            },
        )

    def _split_cwd(self, output: str) -> tuple[str, str | None]:
        """Take the trailer with the final directory out of the output."""
        index = output.rfind(self._marker)
        if index < 0:
            return output, None
        line_end = output.find("\n", index)
        cwd = output[index + len(self._marker) : line_end if line_end >= 0 else None]
        head = output[:index]
        if head.endswith("\n"):
            head = head[:-1]  # the newline the trailer itself added
        return head, cwd.strip()

    def _accept_cwd(self, new_cwd: str, ctx: ToolContext) -> str | None:
        path = Path(new_cwd)
        if path == ctx.shell_cwd:
            return None
        if path == ctx.workspace or ctx.workspace in path.parents:
            ctx.cwd = path
            return None
        ctx.cwd = None
        return f"[working directory is outside the workspace; reset to {ctx.workspace}]"
