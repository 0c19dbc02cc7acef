"""What every command needs the same way: which workspace it works in."""

from __future__ import annotations

from pathlib import Path

from branchwise.agent.run.workspace import find_workspace, starting_point


def workspace_for(cd: Path | None, task_file: Path | None = None, *, allow_non_git: bool = True) -> Path:
    """The git top level of -C, the task file's directory, or the current directory.

    Commands that change files (run, sandbox run) pass allow_non_git only when the user asked for it; the
    others (runs, tree, config, doctor) just look, so outside git they use the directory itself."""
    return find_workspace(starting_point(cd, task_file), allow_non_git=allow_non_git)
