"""Host-side git that never runs anything the repository or the user's configuration names.

git reads the repository's own .git/config, which may name filters, textconv and diff drivers, an
fsmonitor, hooks and helpers: each would run a program. `git_environment` is the one place that
decides the environment of every host-side git call made here (and through gitpython): no system or
global configuration, a scratch HOME, an explicit identity, and command-line configuration
(GIT_CONFIG_COUNT, which outranks the repository's) that switches off every such program by name.
`IsolatedRepo` is a gitpython Repo whose git commands get exactly that environment, whatever the
process environment holds (GIT_DIR from a hook, GIT_CONFIG_PARAMETERS, GIT_EXTERNAL_DIFF, ...):
gitpython always merges os.environ under the environment it is given, so each command is started
through `env -i`, which clears it first.

Point `git_environment` at sandbox/workspace/hostgit.py once that module lands: it is the only seam.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

# Settings that would make git run a program, each switched off; the value "" resets a list (helpers).
NEUTRAL_CONFIG: tuple[tuple[str, str], ...] = (
    ("core.hooksPath", "/dev/null"),
    ("core.fsmonitor", "false"),
    ("core.untrackedCache", "false"),
    ("core.pager", "cat"),
    ("core.editor", "false"),
    ("sequence.editor", "false"),
    ("core.askPass", ""),
    ("core.sshCommand", "false"),
    ("core.gitProxy", ""),
    ("core.alternateRefsCommand", ""),
    ("core.attributesFile", "/dev/null"),
    ("credential.helper", ""),
    ("diff.noprefix", "false"),
    ("diff.mnemonicPrefix", "false"),
    ("gpg.program", "false"),
    ("gpg.ssh.program", "false"),
    ("commit.gpgSign", "false"),
    ("tag.gpgSign", "false"),
    ("protocol.allow", "never"),
    ("submodule.recurse", "false"),
    ("diff.ignoreSubmodules", "all"),  # never look inside another repository (its config could run things)
    ("gc.auto", "0"),
    ("maintenance.auto", "false"),
    ("color.ui", "false"),
    ("log.showSignature", "false"),
    ("blame.ignoreRevsFile", ""),
    ("safe.bareRepository", "explicit"),
)
# `diff.external` cannot be switched off by configuration (an empty value is a program named ""):
# every command that can diff gets --no-ext-diff, and --no-textconv, from IsolatedGit itself.
DIFFING = {"diff": ("--no-ext-diff", "--no-textconv"), "show": ("--no-ext-diff", "--no-textconv"),
           "log": ("--no-ext-diff", "--no-textconv"), "blame": ("--no-textconv",)}  # fmt: skip
# Per-driver settings a repository may define (`filter.lfs.process`, `diff.pdf.textconv`, ...).
_DRIVER_KEYS = {
    "filter": ("clean", "smudge", "process"),
    "diff": ("textconv", "command"),
    "merge": ("driver",),
}


def git_environment(
    scratch: Path, *, author: tuple[str, str], extra_config: tuple[tuple[str, str], ...] = ()
) -> dict[str, str]:
    """The complete environment of a host-side git call (nothing inherited but PATH)."""
    name, email = author
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LC_ALL": "C",
        "LANGUAGE": "C",
        "HOME": str(scratch),
        "XDG_CONFIG_HOME": str(scratch / "xdg"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_SYSTEM": "/dev/null",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_ATTR_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_OPTIONAL_LOCKS": "0",  # status must not rewrite the user's index
        "GIT_NO_REPLACE_OBJECTS": "1",
        "GIT_PAGER": "cat",
        "GIT_EDITOR": "false",
        "GIT_ASKPASS": "false",
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_COMMITTER_NAME": name,
        "GIT_COMMITTER_EMAIL": email,
    }
    exec_path = _exec_path()
    if exec_path:
        env["GIT_EXEC_PATH"] = exec_path
    config = (*NEUTRAL_CONFIG, *extra_config)
    env["GIT_CONFIG_COUNT"] = str(len(config))
    for i, (key, value) in enumerate(config):
        env[f"GIT_CONFIG_KEY_{i}"] = key
        env[f"GIT_CONFIG_VALUE_{i}"] = value
    return env


def driver_overrides(repo_root: Path, env: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """Blank every filter, diff and merge driver command the repository's configuration defines."""
    proc = subprocess.run(
        ["git", "-C", str(repo_root), "config", "--list", "--name-only", "-z"],
        env=dict(env),
        capture_output=True,
        check=False,
        timeout=30,
    )
    out: list[tuple[str, str]] = []
    for key in proc.stdout.decode("utf-8", "replace").split("\0"):
        section, _, rest = key.partition(".")
        driver, _, field = rest.rpartition(".")
        if driver and field.lower() in _DRIVER_KEYS.get(section.lower(), ()):
            out.append((f"{section}.{driver}.{field}", ""))
            if section.lower() == "filter":
                out.append((f"{section}.{driver}.required", "false"))
    return tuple(out)


_ENV = shutil.which("env") or "/usr/bin/env"


def _exec_path() -> str | None:
    """git's own helper directory, asked with an empty environment (GIT_EXEC_PATH could point anywhere)."""
    git = shutil.which("git")
    if git is None:
        return None
    proc = subprocess.run(
        [git, "--exec-path"], env={"PATH": os.environ.get("PATH", "")}, capture_output=True, text=True
    )
    return proc.stdout.strip() or None


def isolated_repo_class() -> type:
    """A gitpython Repo whose commands run with `repo.isolated_env` and nothing else (imports gitpython)."""
    import git

    class IsolatedGit(git.cmd.Git):
        isolated_env: ClassVar[dict[str, str]] = {}  # replaced per instance by open_repo

        def execute(self, command: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(command, str):
                raise GitError("git commands must be argument lists")
            env = {**self.isolated_env, **(kwargs.pop("env", None) or {})}
            command = list(command)
            if len(command) > 1 and command[1] in DIFFING:
                command[2:2] = DIFFING[command[1]]
            prefix = [_ENV, "-i", *(f"{k}={v}" for k, v in env.items())]
            return super().execute([*prefix, *command], *args, **kwargs)

    class IsolatedRepo(git.Repo):
        GitCommandWrapperType = IsolatedGit

    return IsolatedRepo


@contextmanager
def open_repo(
    root: Path, *, author: tuple[str, str] = ("branchwise", "branchwise@localhost"), bare: bool = False
) -> Iterator[Any]:
    """The repository at `root` (its top level, or a git directory with `bare`) through gitpython, isolated.

    The scratch HOME is removed afterwards."""
    import git

    scratch = Path(tempfile.mkdtemp(prefix="branchwise-git-"))
    try:
        base = git_environment(scratch, author=author)
        env = git_environment(scratch, author=author, extra_config=driver_overrides(root, base))
        try:
            repo = isolated_repo_class()(str(root))
        except (git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
            raise NotARepository(f"{root} is not a git repository") from exc
        env["GIT_DIR"] = str(Path(repo.git_dir).resolve())
        if not bare:
            env["GIT_WORK_TREE"] = str(Path(root).resolve())
        repo.git.isolated_env = env
        repo.isolated_env = env
        try:
            yield repo
        finally:
            repo.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


class GitError(Exception):
    """A git operation failed or was refused; the message is one line for the user or the model."""


class NotARepository(GitError):
    """The workspace is not inside a git repository."""
