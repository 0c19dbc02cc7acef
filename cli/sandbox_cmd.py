"""`branchwise sandbox run -- CMD`: one command in exactly the sandbox the agent would use."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from branchwise.agent.config import load_config
from branchwise.agent.errors import BranchwiseError
from branchwise.agent.session import find_workspace
from branchwise.agent.wiring import make_sandbox_for

from .output import Output

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
        out.error("no command given: branchwise sandbox run -- COMMAND [ARGS...]")
        return 2
    cwd = (cd or Path.cwd()).resolve()
    try:
        workspace = find_workspace(cwd)
        loaded = load_config(workspace, flags=flags)
        sandbox = make_sandbox_for(loaded.config, workspace, full_access=full_access)
    except BranchwiseError as err:
        out.error(str(err))
        return err.exit_code
    with sandbox:
        result = sandbox.run(command, cwd=cwd, timeout=timeout)
    sys.stdout.write(result.output)
    sys.stdout.flush()
    if result.killed == "timeout":
        out.warn(f"killed after {timeout:g} s (timeout)")
        return EXIT_TIMEOUT
    if result.killed == "output_limit":
        out.warn("killed: the command wrote more output than the sandbox reads")
    return result.exit_code
