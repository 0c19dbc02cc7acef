"""`branchwise sandbox run -- CMD`: one command in exactly the sandbox the agent would use."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from branchwise.agent.config.layers import load_config
from branchwise.agent.errors import UsageError
from branchwise.agent.run.wiring import make_sandbox_for
from branchwise.agent.run.workspace import find_workspace, starting_point
from branchwise.cli.render.output import Output
from branchwise.sandbox.isolation.bwrap import BwrapSandbox

EXIT_TIMEOUT = 124  # what coreutils' timeout(1) returns


def sandbox_run_command(
    command: list[str],
    *,
    flags: dict[str, Any],
    timeout: float,
    full_access: bool,
    cd: Path | None,
    out: Output | None = None,
) -> int:
    out = out or Output()
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise UsageError("no command given: branchwise sandbox run -- COMMAND [ARGS...]")
    if command[0].startswith("-"):
        # Unknown options before the command arrive as its first words; no real command starts with a dash.
        raise UsageError(f"unknown option {command[0]} (see branchwise sandbox run --help; the command goes after --)")
    cwd = starting_point(cd, None)
    allow = bool(flags.get("workspace.allow_non_git")) or load_config(cwd, flags=flags).config.workspace.allow_non_git
    workspace = find_workspace(cwd, allow_non_git=allow)
    loaded = load_config(workspace, flags=flags)
    sandbox = make_sandbox_for(loaded.config, workspace, full_access=full_access)
    with sandbox:
        if not sandbox.describe().get("isolated"):
            out.warn("running UNSANDBOXED: the command runs directly on this machine")
        result = sandbox.run(command, cwd=cwd, timeout=timeout)
        egress = sandbox.egress_log() if isinstance(sandbox, BwrapSandbox) else []
    sys.stdout.write(result.output)
    sys.stdout.flush()
    # The proxy's log dies with the session: show the user what it refused, the usual "why can't X" answer.
    for decision in egress:
        if decision.action == "deny":
            where = f"{decision.host}:{decision.port}" if decision.host else "(not a proxy request)"
            out.warn(f"network: proxy denied {decision.method} {where}: {decision.reason}")
    if result.killed == "timeout":
        out.warn(f"killed after {timeout:g} s (timeout)")
        return EXIT_TIMEOUT
    if result.killed == "output_limit":
        out.warn("killed: the command wrote more output than the sandbox reads")
    return result.exit_code
