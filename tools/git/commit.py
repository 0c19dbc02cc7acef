"""The end of a run in git: the agent's changes committed on a new branch made from the starting HEAD.

What the agent changed is the difference between the run's start and end snapshots (shadow git, so
shell commands are covered too), applied to the tree of the HEAD the run started from. The commit is
written into the object store and a new branch points at it; HEAD, the index, the working tree and
every existing ref stay as they are. Where the user had uncommitted edits in a file the agent also
changed, the agent's change is merged onto the committed version (git merge-file); a conflict refuses
the commit. Nothing is pushed, no commit is rewritten, no hook runs.

Errors raised here::

    GitError
    ├── NotARepository      the workspace is not in a git repository
    └── CommitRefused       a merge, rebase, cherry-pick, revert or bisect is in progress, the start is
                            unknown, or the agent's change conflicts with uncommitted edits
"""

from __future__ import annotations

import io
import re
import subprocess
import tempfile
import textwrap
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from branchwise.tools.git.isolation import GitError, NotARepository, git_environment, open_repo

TRAILER = "Branchwise-Run"
_IN_PROGRESS = (
    ("MERGE_HEAD", "a merge"),
    ("rebase-merge", "a rebase"),
    ("rebase-apply", "a rebase or git am"),
    ("CHERRY_PICK_HEAD", "a cherry-pick"),
    ("REVERT_HEAD", "a revert"),
    ("BISECT_LOG", "a bisect"),
)
_ZERO = "0" * 40
_AUTHOR = re.compile(r"^\s*(.+?)\s*<([^<>]+)>\s*$")


class CommitSettings(Protocol):
    """The [git] settings this module reads (agent/config/schema.py GitSettings)."""

    commit: bool
    branch_prefix: str
    author: str


class CommitRefused(GitError):
    """The result cannot be committed; the changes stay in the working tree."""


class SnapshotStore(Protocol):
    """The shadow snapshots of the run (ShadowGitWorkspace): where they live and the workspace root."""

    root: Path
    git_dir: Path


@dataclass(frozen=True)
class CommitResult:
    """The commit made for a run, and what the user should know about it."""

    branch: str
    commit: str
    files: tuple[str, ...]
    dirty_at_start: tuple[str, ...]  # the user's uncommitted paths when the run began: not in the commit
    merged: tuple[str, ...]  # files where the agent's change was merged onto the user's committed version

    def describe(self) -> str:
        """One line for the user."""
        text = f"committed {len(self.files)} file(s) on {self.branch} ({self.commit[:10]})"
        if self.dirty_at_start:
            text += f"; your {len(self.dirty_at_start)} uncommitted file(s) were left out and are untouched"
        return text


@dataclass(frozen=True)
class _Change:
    path: str
    base: tuple[str, str] | None  # (mode, sha) at the start snapshot
    theirs: tuple[str, str] | None  # (mode, sha) at the end snapshot


def operation_in_progress(git_dir: Path) -> str | None:
    """'a merge', 'a rebase', ... when one is in progress in this repository, else None."""
    for name, what in _IN_PROGRESS:
        if (git_dir / name).exists():
            return what
    return None


@dataclass(frozen=True)
class StartState:
    """The repository when a run begins: what to record in run_started, and what to tell the user."""

    head: str | None  # the commit HEAD points at (None: no commits yet)
    branch: str | None  # None when HEAD is detached
    dirty: tuple[str, ...]  # paths with uncommitted changes (git status), left alone by the commit
    in_progress: str | None  # "a merge", "a rebase", ... (the end-of-run commit will be refused)


def start_state(root: Path) -> StartState | None:
    """HEAD, branch, uncommitted paths and any operation in progress; None outside git."""
    try:
        with open_repo(root) as repo:
            head = None if not repo.head.is_valid() else repo.head.commit.hexsha
            branch = None if repo.head.is_detached else repo.head.ref.name
            raw = repo.git.execute(
                ["git", "status", "--porcelain=v1", "-z", "--untracked-files=all"], stdout_as_string=False
            )
            dirty = tuple(item[3:].decode("utf-8", "surrogateescape") for item in raw.split(b"\0") if len(item) > 3)
            return StartState(head, branch, dirty, operation_in_progress(Path(repo.git_dir)))
    except NotARepository:
        return None


def commit_run(
    snapshots: SnapshotStore,
    *,
    start_head: str | None,
    start_snapshot: str,
    end_snapshot: str,
    summary: str,
    run_id: str,
    settings: CommitSettings,
    task: str = "",
) -> CommitResult | None:
    """Commit the run's changes on a new branch; None when git.commit is off, outside git, or nothing changed."""
    if not settings.commit:
        return None
    author = parse_author(settings.author)
    try:
        with open_repo(snapshots.root, author=author) as repo, _shadow(snapshots.git_dir, author) as shadow:
            what = operation_in_progress(Path(repo.git_dir))
            if what is not None:
                raise CommitRefused(
                    f"{what} is in progress: nothing was committed; the changes are in the working tree"
                )
            return _commit(repo, shadow, start_head, start_snapshot, end_snapshot, summary, run_id, settings, task)
    except NotARepository:
        return None


def _commit(
    repo: Any,
    shadow: Any,
    start_head: str | None,
    start: str,
    end: str,
    summary: str,
    run_id: str,
    settings: CommitSettings,
    task: str,
) -> CommitResult | None:
    import git

    parent = _start_commit(repo, start_head)
    changes = list(_changes(shadow, start, end))
    if not changes:
        return None
    ours = _tree_entries(repo, parent, [c.path for c in changes])
    entries, merged = [], []
    for change in changes:
        entry, was_merged = _resolve(repo, shadow, change, ours.get(change.path))
        if entry is not None:
            entries.append(entry)
        if was_merged:
            merged.append(change.path)
    tree = _write_tree(repo, parent, entries)
    if parent is not None and tree == parent.tree.hexsha:
        return None
    name, email = parse_author(settings.author)
    actor = git.Actor(name, email)
    commit = git.Commit.create_from_tree(
        repo,
        repo.tree(tree),
        commit_message(summary, run_id),
        parent_commits=[parent] if parent is not None else [],
        head=False,
        author=actor,
        committer=actor,
    )
    branch = _free_branch(repo, settings.branch_prefix + slug(task or summary, run_id))
    repo.create_head(branch, commit)
    return CommitResult(
        branch=branch,
        commit=commit.hexsha,
        files=tuple(c.path for c in changes),
        dirty_at_start=tuple(_dirty_at_start(repo, shadow, parent, start)),
        merged=tuple(merged),
    )


def _start_commit(repo: Any, start_head: str | None) -> Any:
    """The commit the run started from (None for a repository without commits)."""
    if start_head is None:
        return None
    import gitdb.exc

    try:
        return repo.commit(start_head)
    except (ValueError, LookupError, gitdb.exc.ODBError) as exc:
        raise CommitRefused(f"the run's starting commit {start_head[:12]} is not in the repository") from exc


def _changes(shadow: Any, start: str, end: str) -> Iterator[_Change]:
    """The raw difference between two snapshots, one entry per path."""
    raw = shadow.git.execute(
        ["git", "diff-tree", "-r", "-z", "--no-renames", "--raw", start, end], stdout_as_string=False
    )
    fields = raw.split(b"\0")
    for head, path in zip(fields[0:-1:2], fields[1::2], strict=True):
        old_mode, new_mode, old_sha, new_sha, _status = head.lstrip(b":").decode().split(" ")
        yield _Change(
            path.decode("utf-8", "surrogateescape"),
            None if old_sha == _ZERO else (old_mode, old_sha),
            None if new_sha == _ZERO else (new_mode, new_sha),
        )


def _tree_entries(repo: Any, commit: Any, paths: list[str]) -> dict[str, tuple[str, str]]:
    """(mode, sha) of these paths in a commit's tree."""
    if commit is None or not paths:
        return {}
    out: dict[str, tuple[str, str]] = {}
    for i in range(0, len(paths), 500):
        spec = [f":(literal){p}" for p in paths[i : i + 500]]
        raw = repo.git.execute(
            ["git", "ls-tree", "-z", "--full-tree", commit.hexsha, "--", *spec], stdout_as_string=False
        )
        for item in raw.split(b"\0"):
            if item:
                meta, _, path = item.partition(b"\t")
                mode, _kind, sha = meta.decode().split(" ")
                out[path.decode("utf-8", "surrogateescape")] = (mode, sha)
    return out


def _resolve(repo: Any, shadow: Any, c: _Change, ours: tuple[str, str] | None) -> tuple[str | None, bool]:
    """The index line for one changed path (None: nothing to change) and whether it took a merge."""
    if ours == c.base or ours == c.theirs or c.theirs is None or c.base is None:
        # HEAD had what the run started with (or the user had deleted or created the file): the agent's
        # version is the result. A deletion by the agent deletes the file from the commit.
        if c.theirs is None:
            return (f"0 {_ZERO}\t{c.path}" if ours is not None else None), False
        if ours == c.theirs:
            return None, False
        _copy_blob(repo, shadow, c.theirs[1])
        return f"{c.theirs[0]} {c.theirs[1]}\t{c.path}", False
    regular = ("100644", "100755")
    if ours is None or ours[0] not in regular or c.base[0] not in regular or c.theirs[0] not in regular:
        raise CommitRefused(f"the agent changed {c.path}, which you had changed too: nothing was committed")
    merged = _merge_file(_blob(shadow, c.base[1]), _blob(repo, ours[1]), _blob(shadow, c.theirs[1]), c.path)
    sha = _store(repo, merged)
    mode = c.theirs[0] if c.theirs[0] != c.base[0] else ours[0]
    return f"{mode} {sha}\t{c.path}", True


def _merge_file(base: bytes, ours: bytes, theirs: bytes, path: str) -> bytes:
    """Three-way merge of one file's contents; CommitRefused on a conflict."""
    with tempfile.TemporaryDirectory(prefix="branchwise-merge-") as tmp:
        names = []
        for label, data in (("ours", ours), ("base", base), ("theirs", theirs)):
            (Path(tmp) / label).write_bytes(data)
            names.append(label)
        env = git_environment(Path(tmp), author=("branchwise", "branchwise@localhost"))
        proc = subprocess.run(
            ["git", "merge-file", "-p", "-q", *names], cwd=tmp, env=env, capture_output=True, check=False
        )
    if proc.returncode != 0:
        raise CommitRefused(
            f"the agent's change to {path} conflicts with your uncommitted edits there: nothing was committed"
        )
    return proc.stdout


def _blob(repo: Any, sha: str) -> bytes:
    return bytes(repo.odb.stream(bytes.fromhex(sha)).read())


def _store(repo: Any, data: bytes) -> str:
    from gitdb.base import IStream

    return str(repo.odb.store(IStream("blob", len(data), io.BytesIO(data))).hexsha.decode())


def _copy_blob(repo: Any, shadow: Any, sha: str) -> None:
    """Bring one blob from the shadow repository into the user's object store."""
    if not repo.odb.has_object(bytes.fromhex(sha)):
        stored = _store(repo, _blob(shadow, sha))
        if stored != sha:
            raise CommitRefused(f"object {sha[:12]} changed on the way into the repository")


def _write_tree(repo: Any, parent: Any, entries: list[str]) -> str:
    """The tree of `parent` with `entries` (index-info lines) applied, built in a private index file."""
    with tempfile.TemporaryDirectory(prefix="branchwise-index-") as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        if parent is not None:
            repo.git.execute(["git", "read-tree", parent.hexsha], env=env)
        else:
            repo.git.execute(["git", "read-tree", "--empty"], env=env)
        info = Path(tmp) / "info"
        info.write_bytes("".join(e + "\n" for e in entries).encode("utf-8", "surrogateescape"))
        with open(info, "rb") as stdin:
            repo.git.execute(["git", "update-index", "--index-info"], istream=stdin, env=env)
        return str(repo.git.execute(["git", "write-tree"], env=env)).strip()


def _dirty_at_start(repo: Any, shadow: Any, parent: Any, start: str) -> list[str]:
    """Paths whose content at the start of the run differed from HEAD: the user's uncommitted work."""
    theirs = _all_entries(shadow, start)
    ours = _all_entries(repo, parent.hexsha) if parent is not None else {}
    return sorted(p for p in set(theirs) | set(ours) if theirs.get(p) != ours.get(p) and p in theirs)


def _all_entries(repo: Any, treeish: str) -> dict[str, tuple[str, str]]:
    raw = repo.git.execute(["git", "ls-tree", "-r", "-z", "--full-tree", treeish], stdout_as_string=False)
    out = {}
    for item in raw.split(b"\0"):
        if item:
            meta, _, path = item.partition(b"\t")
            mode, _kind, sha = meta.decode().split(" ")
            out[path.decode("utf-8", "surrogateescape")] = (mode, sha)
    return out


def _free_branch(repo: Any, wanted: str) -> str:
    """`wanted`, or wanted-2, -3, ... if taken; checked as a branch name by git."""
    existing = {h.name for h in repo.heads}
    name, n = wanted, 1
    while name in existing:
        n += 1
        name = f"{wanted}-{n}"
    repo.git.execute(["git", "check-ref-format", "--branch", name])
    return name


def slug(text: str, fallback: str) -> str:
    """A short branch-name slug of a task: ascii words joined by dashes, at most 40 characters."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    words = re.findall(r"[a-z0-9]+", ascii_text)
    out = ""
    for word in words:
        if len(out) + len(word) + 1 > 40:
            break
        out = f"{out}-{word}" if out else word
    return out or re.sub(r"[^A-Za-z0-9-]", "-", fallback)


def commit_message(summary: str, run_id: str) -> str:
    """Subject and body from the run's summary, and a trailer naming branchwise and the run."""
    text = " ".join(summary.split()) or "Changes made by branchwise"
    first = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0].rstrip(".")
    subject = first if len(first) <= 72 else first[:71].rstrip() + "…"
    body = "\n".join(textwrap.wrap(text, 72)) if text.rstrip(".") != subject else ""
    parts = [subject, body, f"{TRAILER}: {run_id}"] if body else [subject, f"{TRAILER}: {run_id}"]
    return "\n\n".join(parts) + "\n"


def parse_author(value: str) -> tuple[str, str]:
    """("Name", "email") from "Name <email>"."""
    match = _AUTHOR.match(value)
    if not match:
        raise CommitRefused(f"git.author must look like 'Name <email>', not {value!r}")
    return match.group(1), match.group(2)


def _shadow(git_dir: Path, author: tuple[str, str]) -> Any:
    """The shadow repository (a bare git directory) through gitpython, isolated like the user's."""
    return open_repo(git_dir, author=author, bare=True)
