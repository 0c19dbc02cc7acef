"""Which directory a run works in, decided the same way by every command, and whether it is small enough.

The workspace is the git top level of: the `-C` directory if given, else the task file's directory, else the
current directory. Outside a git repository there is no workspace unless the user says so (`--no-git` or
`workspace.allow_non_git`): guessing made a stray `branchwise run` in /tmp snapshot 400 MB and offer the agent
write access to all of it. A tree with more files than `workspace.max_files` is refused before its first
snapshot.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from branchwise.agent.errors import UsageError

# Trees rebuilt by tools: not the user's files, never counted (the snapshots ignore them too).
_SKIPPED_DIRS = frozenset({".git", "node_modules", ".venv", "venv", "__pycache__", ".tox", ".nox", ".mypy_cache",
                           ".pytest_cache", ".ruff_cache"})  # fmt: skip


def _git_env() -> dict[str, str]:
    """Plain git for reading facts about the user's repository: no user or system config, no prompts."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL="/dev/null", GIT_TERMINAL_PROMPT="0", LC_ALL="C")
    env.update(GIT_CONFIG_COUNT="2", GIT_CONFIG_KEY_0="core.fsmonitor", GIT_CONFIG_VALUE_0="false",
               GIT_CONFIG_KEY_1="core.hooksPath", GIT_CONFIG_VALUE_1="/dev/null")  # fmt: skip
    return env


def git_output(cwd: Path, *args: str) -> str | None:
    """A read-only git command's output, or None when git is missing or the command fails."""
    try:
        out = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True, check=False,
                             env=_git_env(), timeout=60)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_branch(workspace: Path) -> str | None:
    return git_output(workspace, "branch", "--show-current") or None


def starting_point(cd: Path | None, task_file: Path | None) -> Path:
    """Where to look for the workspace: -C, else the task file's directory, else the current directory."""
    if cd is not None:
        start = cd.expanduser()
        if not start.is_dir():
            raise UsageError(f"-C {cd}: not a directory")
        return start.resolve()
    if task_file is not None:
        if not task_file.is_file():
            raise UsageError(f"{task_file}: task file not found")
        return task_file.resolve().parent
    return Path.cwd().resolve()


def find_workspace(start: Path, *, allow_non_git: bool = False) -> Path:
    """The git top level containing `start`; outside git, `start` itself only if allowed."""
    top = git_output(start, "rev-parse", "--show-toplevel")
    if top:
        return Path(top).resolve()
    if not allow_non_git:
        raise UsageError(
            f"{start} is not inside a git repository; run branchwise in one, or pass --no-git "
            "(or set workspace.allow_non_git = true) to work on this directory as it is"
        )
    return start.resolve()


def check_size(workspace: Path, max_files: int) -> None:
    """Refuse a workspace with more than `max_files` files before anything snapshots it."""
    tracked = git_output(workspace, "ls-files", "-z")
    count = tracked.count("\0") if tracked is not None else _count_files(workspace, max_files + 1)
    if count > max_files:
        raise UsageError(
            f"{workspace} holds more than {max_files} files; pick a smaller directory with -C, "
            "or raise workspace.max_files"
        )


def _count_files(root: Path, stop_at: int) -> int:
    """Files under root (tool-rebuilt trees skipped), counting no further than `stop_at`."""
    count = 0
    for _, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in _SKIPPED_DIRS]
        count += len(filenames)
        if count >= stop_at:
            break
    return count
