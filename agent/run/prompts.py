"""The system prompt: who the agent is, facts about its environment, and the project's own instructions."""

from __future__ import annotations

import datetime
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from branchwise.sandbox.base import SandboxError
from branchwise.sandbox.settings import DEFAULT_DENY_READ
from branchwise.sandbox.workspace.safefs import WorkspaceFS

MAX_INSTRUCTIONS_BYTES = 32 * 1024

SYSTEM_TEMPLATE = """\
You are branchwise, an autonomous software engineer working in a repository on the user's behalf.
You act only through tool calls; every reply must call at least one tool. Nobody answers questions during the
run, so decide for yourself and keep going until the task is done.

How to work:
1. Look before you change: use view, grep and glob to find the relevant code; read the tests.
2. Make small, focused edits with str_replace, insert or create. Keep the project's style.
3. Verify: run the tests or a reproduction with the shell tool, and fix what fails.
4. When the task is done, call finish with a short summary of what changed and how you checked it.{checks}

Environment:
- Workspace: {workspace} (you may only change files inside it){git}
- Shell: bash; each command runs in a fresh shell, only the working directory persists.
- {sandbox}
- OS: {os}; date: {date}
{instructions}"""


def describe_sandbox(info: dict[str, Any]) -> str:
    """One sentence about where commands run, for the model."""
    if not info.get("isolated"):
        return "Commands run directly on the user's machine without a sandbox: be careful."
    mode = info.get("mode", "workspace-write")
    network = info.get("network", "off")
    writes = "nothing (read-only)" if mode == "read-only" else "the workspace and /tmp (cleared after each command)"
    net = {
        "off": "there is no network",
        "proxy": "network goes through a proxy that allows only some domains",
    }.get(str(network), "the network is available")
    return f"Commands run in a sandbox: they can write {writes}; {net}."


def find_instructions(
    workspace: Path, names: Sequence[str], *, deny_read: Sequence[str] = DEFAULT_DENY_READ
) -> tuple[Path, str] | None:
    """The first project instruction file that exists (AGENTS.md, CLAUDE.md, ...), capped in size.

    Read like the file tools read: through WorkspaceFS, so a link to a file outside the workspace or to a
    masked one (`deny_read`), a FIFO or a device is skipped, never read on the host and sent to the model."""
    fs = WorkspaceFS(workspace, hidden=deny_read)
    for name in names:
        try:
            data = fs.read_bytes(name, limit=MAX_INSTRUCTIONS_BYTES, truncate=True)
        except (OSError, SandboxError):  # missing, a directory, outside the workspace, masked, not a file
            continue
        return workspace / name, data.decode("utf-8", errors="replace")
    return None


def system_prompt(
    workspace: Path,
    *,
    sandbox: dict[str, Any],
    instructions: tuple[Path, str] | None,
    checks: Sequence[str],
    git_branch: str | None,
) -> str:
    checks_text = ""
    if checks:
        listed = "\n".join(f"   - {c}" for c in checks)
        checks_text = f"\n   After finish these checks run; the task only counts as done if they all pass:\n{listed}"
    instructions_text = ""
    if instructions is not None:
        path, text = instructions
        instructions_text = (
            f"\nProject instructions from {path.name} (follow them):\n<instructions>\n{text}\n</instructions>\n"
        )
    return SYSTEM_TEMPLATE.format(
        checks=checks_text,
        workspace=workspace,
        git=f"\n- Git: on branch {git_branch}" if git_branch else "",
        sandbox=describe_sandbox(sandbox),
        os=f"{platform.system()} {platform.release()}",
        date=datetime.date.today().isoformat(),
        instructions=instructions_text,
    )
