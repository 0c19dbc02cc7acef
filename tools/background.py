"""The background tool: list, read the log of, and stop the processes a session left running.

A process gets here either because the shell tool was asked to start it in the background, or because a
command left it running (`python3 -m http.server 8000 &`): it lives until it exits, is stopped, a search
restores an earlier state, or the session ends. Its output goes to a log file outside the workspace.
"""

from __future__ import annotations

import os
import time
from typing import Literal

from pydantic import BaseModel, Field

from branchwise.sandbox.base import BackgroundError, BackgroundProcess
from branchwise.tools.base import Effect, Observation, Tool, ToolContext, ToolError

MAX_LOG_CHARS = 20_000


class BackgroundArgs(BaseModel):
    action: Literal["list", "log", "stop"] = Field(
        "list", description="list: the session's background processes; log: the end of one's output; stop: end one."
    )
    id: str | None = Field(None, description="The process id (bg-...) for log and stop; stop without an id ends all.")
    lines: int = Field(50, ge=1, le=2000, description="log: how many lines from the end.")


class Background(Tool):
    name = "background"
    description = (
        "Manage processes left running in the background (servers, watchers), started by `shell` with "
        "background=true or by a command ending in `&`: list them, read the end of one's output, or stop one."
    )
    Args = BackgroundArgs

    def effect_of(self, args: BackgroundArgs) -> Effect:
        return "exec" if args.action == "stop" else "read"

    def run(self, args: BackgroundArgs, ctx: ToolContext) -> Observation:
        if args.action == "list":
            return Observation(self._list(ctx))
        if args.action == "log":
            if not args.id:
                raise ToolError("log needs the id of a background process (see action=list)")
            return Observation(_tail(self._find(ctx, args.id), args.lines))
        if args.id is not None:
            self._find(ctx, args.id)
        try:
            ctx.sandbox.stop_background(args.id)
        except BackgroundError as exc:
            raise ToolError(str(exc)) from None
        return Observation(f"stopped {args.id or 'every background process'}")

    @staticmethod
    def _list(ctx: ToolContext) -> str:
        running = ctx.sandbox.background()
        if not running:
            return "(no background processes are running)"
        now = time.time()
        lines = [f"{p.id}  running {now - p.started:.0f} s  {_label(p)}" for p in running]
        return "\n".join(lines)

    @staticmethod
    def _find(ctx: ToolContext, process_id: str) -> BackgroundProcess:
        for process in ctx.sandbox.background():
            if process.id == process_id:
                return process
        raise ToolError(f"no running background process {process_id!r} (see action=list)")


def _label(process: BackgroundProcess) -> str:
    command = str(process.extra.get("command") or " ".join(process.argv))
    return " ".join(command.split())[:160]


def _tail(process: BackgroundProcess, lines: int) -> str:
    """The last lines of a process's log, read without loading a huge log whole."""
    try:
        with open(process.log_path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            f.seek(max(0, size - MAX_LOG_CHARS * 2))
            text = f.read().decode("utf-8", "replace")
    except OSError as exc:
        raise ToolError(f"cannot read the log of {process.id}: {exc.strerror}") from None
    tail = "\n".join(text.splitlines()[-lines:])[-MAX_LOG_CHARS:]
    return tail or "(no output yet)"
