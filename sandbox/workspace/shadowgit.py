"""Plumbing for ShadowGitWorkspace: git run with isolated config, and the tree facts git does not keep.

Nothing here reads the user's git configuration, hooks, templates or attributes: every call gets a
fresh environment whose configuration comes only from `SHADOW_CONFIG` below.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from branchwise.sandbox.base import SandboxError

# Settings that make git's behaviour independent of the user's configuration and fast on big trees.
SHADOW_CONFIG: tuple[tuple[str, str], ...] = (
    ("core.bare", "false"),
    ("core.autocrlf", "false"),
    ("core.safecrlf", "false"),
    ("core.symlinks", "true"),
    ("core.fileMode", "true"),
    ("core.ignoreCase", "false"),
    ("core.precomposeUnicode", "false"),
    ("core.protectNTFS", "false"),
    ("core.protectHFS", "false"),
    ("core.hooksPath", "/dev/null"),
    ("core.attributesFile", "/dev/null"),
    ("core.fsmonitor", "false"),
    ("core.splitIndex", "false"),
    ("core.sparseCheckout", "false"),
    ("core.preloadIndex", "true"),
    ("core.untrackedCache", "false"),
    ("core.logAllRefUpdates", "false"),
    ("core.quotePath", "false"),
    ("core.bigFileThreshold", "512m"),
    ("gc.auto", "0"),
    ("gc.autoDetach", "false"),
    ("maintenance.auto", "false"),
    ("commit.gpgSign", "false"),
    ("index.version", "4"),
    ("advice.addEmbeddedRepo", "false"),
    ("submodule.recurse", "false"),
    ("diff.ignoreSubmodules", "all"),  # never look inside another repository (its config could run things)
    ("diff.noprefix", "false"),
    ("diff.mnemonicPrefix", "false"),
    ("diff.renames", "false"),
    ("user.name", "branchwise"),
    ("user.email", "branchwise@localhost"),
)

# $GIT_DIR/info/attributes outranks every .gitattributes: no filters (LFS), no EOL conversion, no
# $Id$ expansion, so bytes on disk are the bytes in the object store; diff decides binary by content.
SHADOW_ATTRIBUTES = "* -text -filter -ident -working-tree-encoding !eol !diff !merge\n"

_META_PREFIX = "branchwise-snapshot: "
_GIT_TIMEOUT_S = 600.0


class SnapshotError(SandboxError):
    """A workspace snapshot, restore or diff failed; the message carries git's first stderr line."""


class SnapshotDeadline(SnapshotError):
    """A snapshot, restore or diff was stopped at the deadline it was given (the run's wall limit)."""


@dataclass(frozen=True)
class SnapshotInfo:
    """What a snapshot records besides the files: its label, directories without files, nested repos."""

    label: str = ""
    empty_dirs: tuple[str, ...] = ()
    nested_repos: tuple[str, ...] = ()
    fifos: tuple[tuple[str, int], ...] = ()
    """Named pipes (path, permission bits): git cannot hold them, so the record does and restore remakes them."""

    def message(self) -> bytes:
        """The commit message that carries this record (the commit's tree stays exactly the workspace)."""
        body: dict[str, object] = {"v": 1, "label": self.label, "empty_dirs": self.empty_dirs,
                                   "nested_repos": self.nested_repos}  # fmt: skip
        if self.fifos:
            body["fifos"] = [list(f) for f in self.fifos]
        title = " ".join(self.label.split()) or "snapshot"
        return f"{title}\n\n{_META_PREFIX}{json.dumps(body, sort_keys=True)}\n".encode("utf-8", "surrogateescape")

    @classmethod
    def from_commit(cls, commit: bytes) -> SnapshotInfo:
        """Parse `git cat-file commit` output; raise SnapshotError if it is not one of ours."""
        message = commit.decode("utf-8", "surrogateescape").partition("\n\n")[2]
        last = message.rstrip("\n").rpartition("\n")[2]
        if not last.startswith(_META_PREFIX):
            raise SnapshotError("not a branchwise snapshot commit")
        try:
            body = json.loads(last[len(_META_PREFIX) :])
            fifos = tuple((str(path), int(mode) & 0o7777) for path, mode in body.get("fifos", ()))
            return cls(str(body["label"]), tuple(body["empty_dirs"]), tuple(body["nested_repos"]), fifos)
        except (ValueError, KeyError, TypeError) as exc:
            raise SnapshotError(f"malformed snapshot record: {exc}") from exc


def default_git_dir(root: Path) -> Path:
    """$XDG_STATE_HOME/branchwise/shadow/<hash of the workspace's real path> (~/.local/state by default)."""
    state = os.environ.get("XDG_STATE_HOME", "")
    base = Path(state) if Path(state).is_absolute() else Path.home() / ".local" / "state"
    digest = hashlib.sha256(os.fsencode(os.path.realpath(root))).hexdigest()[:20]
    return base / "branchwise" / "shadow" / digest


def isolated_env(git_dir: Path, work_tree: Path, index_file: Path, excludes_file: Path) -> dict[str, str]:
    """A from-scratch environment: nothing inherited but PATH, config only from SHADOW_CONFIG."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LC_ALL": "C",
        "HOME": str(git_dir),
        "XDG_CONFIG_HOME": str(git_dir / "no-xdg-config"),
        "GIT_DIR": str(git_dir),
        "GIT_WORK_TREE": str(work_tree),
        "GIT_INDEX_FILE": str(index_file),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_SYSTEM": "/dev/null",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_ATTR_NOSYSTEM": "1",
        "GIT_NO_REPLACE_OBJECTS": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_OPTIONAL_LOCKS": "0",
        "GIT_AUTHOR_NAME": "branchwise",
        "GIT_AUTHOR_EMAIL": "branchwise@localhost",
        "GIT_COMMITTER_NAME": "branchwise",
        "GIT_COMMITTER_EMAIL": "branchwise@localhost",
    }
    config = (*SHADOW_CONFIG, ("core.excludesFile", str(excludes_file)))
    env["GIT_CONFIG_COUNT"] = str(len(config))
    for i, (key, value) in enumerate(config):
        env[f"GIT_CONFIG_KEY_{i}"] = key
        env[f"GIT_CONFIG_VALUE_{i}"] = value
    return env


class Git:
    """Runs git in the shadow repository; any failure becomes a one-line SnapshotError."""

    def __init__(self, cwd: Path, env: Mapping[str, str]) -> None:
        self.cwd = cwd
        self.env = dict(env)
        self.deadline: float | None = None
        """time.monotonic() by which every git call must be over (a run's wall limit), or None."""

    def run(self, *args: str, stdin: bytes | None = None) -> bytes:
        """Run `git args...` and return stdout; raise SnapshotError on a non-zero exit."""
        proc = self.try_run(*args, stdin=stdin)
        if proc.returncode != 0:
            raise SnapshotError(describe_failure(args, proc.stderr))
        return proc.stdout

    def try_run(self, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        """Run `git args...` and return the completed process whatever its exit code."""
        timeout, by_deadline = _GIT_TIMEOUT_S, False
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise SnapshotDeadline(f"git {args[0]} not started: the deadline has passed")
            timeout, by_deadline = min(timeout, left), left < timeout
        try:
            return subprocess.run(
                ["git", *args],
                cwd=self.cwd,
                env=self.env,
                input=stdin,
                capture_output=True,
                timeout=timeout,
                check=False,
            )
        except FileNotFoundError as exc:
            raise SnapshotError("git is not installed (or not on PATH)") from exc
        except subprocess.TimeoutExpired as exc:
            if by_deadline:
                raise SnapshotDeadline(f"git {args[0]} stopped at the deadline after {timeout:.1f} s") from exc
            raise SnapshotError(f"git {args[0]} timed out after {_GIT_TIMEOUT_S:.0f} s") from exc


def describe_failure(args: Sequence[str], stderr: bytes) -> str:
    """'git <cmd> failed: <first line of stderr>'."""
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    first = next((ln for ln in lines if ln.startswith(("fatal:", "error:"))), lines[0] if lines else "")
    return f"git {args[0]} failed: {first or 'no message'}"


def exclude_pathspecs(paths: Iterable[str]) -> list[str]:
    """Pathspecs for `git add`/`ls-files` that cover the whole tree except `paths`."""
    excluded = [f":(exclude,literal){p}" for p in sorted(paths)]
    return ["--", ".", *excluded] if excluded else []


def split_z(output: bytes) -> list[str]:
    """NUL-separated git output as str paths (undecodable bytes survive via surrogateescape)."""
    return [os.fsdecode(item) for item in output.split(b"\0") if item]


def special_kind(path: Path) -> str | None:
    """ "fifo", "other" (a socket or a device) or None (a file, a directory, a symlink, or nothing)."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode):
        return None
    return "fifo" if stat.S_ISFIFO(mode) else "other"


def make_fifo_beneath(root: Path, rel: str, mode: int) -> bool:
    """mkfifo `rel` under `root` (its directory must exist), never through a symlink; False if it cannot be."""
    parent, _, name = rel.rpartition("/")
    if parent and not make_dirs_beneath(root, parent):
        return False
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in parent.split("/") if parent else ():
            child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = child
        try:
            os.mkfifo(name, 0o600, dir_fd=fd)
        except FileExistsError:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):  # a directory git emptied but left: only an empty one goes
                os.rmdir(name, dir_fd=fd)
                os.mkfifo(name, 0o600, dir_fd=fd)
            elif not stat.S_ISFIFO(st.st_mode):
                return False
        _chmod_at(fd, name, mode)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _chmod_at(dir_fd: int, name: str, mode: int) -> None:
    """chmod a FIFO by name in `dir_fd`, never through a symlink (O_NONBLOCK: opening a FIFO does not wait)."""
    fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW, dir_fd=dir_fd)
    try:
        os.fchmod(fd, mode & 0o7777)
    finally:
        os.close(fd)


def is_nested_repo(path: Path) -> bool:
    """A directory with its own .git (directory or gitfile) is another repository."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode) and os.path.lexists(path / ".git")
    except OSError:
        return False


def dirs_below(
    root: Path, rel: str, ignored: set[str], specials: set[str] | None = None
) -> tuple[list[str], list[str]]:
    """`rel` and every directory under it (no symlinks followed): (plain dirs, nested repos); the FIFOs,
    sockets and devices met on the way are added to `specials`.

    `ignored` holds ignored directories as 'a/b/' so the walk never enters node_modules and friends.
    """
    plain: list[str] = []
    nested: list[str] = []
    stack = [rel]
    while stack:
        current = stack.pop()
        if is_nested_repo(root / current):
            nested.append(current)
            continue
        plain.append(current)
        try:
            with os.scandir(root / current) as entries:
                listed = list(entries)
        except OSError:
            continue
        subdirs = [e.name for e in listed if e.is_dir(follow_symlinks=False) and e.name != ".git"]
        if specials is not None:
            specials.update(f"{current}/{e.name}" for e in listed
                            if not (e.is_file(follow_symlinks=False) or e.is_dir(follow_symlinks=False)
                                    or e.is_symlink()))  # fmt: skip
        stack.extend(f"{current}/{n}" for n in subdirs if f"{current}/{n}/" not in ignored)
    return plain, nested


def make_dirs_beneath(root: Path, rel: str) -> bool:
    """mkdir -p `rel` under `root` without following symlinks; False if something else is in the way."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in rel.split("/"):
            try:
                os.mkdir(part, 0o777, dir_fd=fd)
            except FileExistsError:
                pass
            try:
                child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except OSError:
                return False  # a file or a symlink sits where the directory belongs
            os.close(fd)
            fd = child
        return True
    finally:
        os.close(fd)


def verbose_paths(out: bytes) -> list[bytes]:
    """The paths of `git add --verbose` ("add 'PATH'" records), read so that a name holding a newline or a quote
    still comes out whole: every way of cutting the output at "'\\n" that ends a record is offered (callers check
    each candidate on disk)."""
    paths: list[bytes] = []
    for start in (m.end() for m in re.finditer(rb"(?:^|\n)add '", out)):
        end = out.find(b"'\n", start)
        while end != -1:
            paths.append(out[start:end].rstrip(b"/"))
            if out.startswith((b"add '", b"remove '"), end + 2):
                break
            end = out.find(b"'\n", end + 1)
    return paths
