"""Bare `branchwise`: the interactive REPL in a terminal, a headless run of the task on stdin otherwise."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any


def start(*, cd: Path | None, flags: dict[str, Any], resume: str | None, vi: bool, full_access: bool,
          no_git: bool) -> int:  # fmt: skip
    """Open the REPL when stdin is a terminal; otherwise read the task from stdin and run it as `run` does."""
    if not sys.stdin.isatty():
        from branchwise.agent.errors import UsageError
        from branchwise.cli.commands.run import RunOptions, run_command

        if resume is not None:
            raise UsageError("--resume continues an interactive session: run it in a terminal")
        task = sys.stdin.read()
        options = RunOptions(task=task, cd=cd, flags=flags, full_access=full_access, no_git=no_git)
        return run_command(options)
    from branchwise.cli.repl.app import Repl, ReplOptions

    return Repl(ReplOptions(cd=cd, flags=flags, resume=resume, vi=vi, full_access=full_access, no_git=no_git)).run()
