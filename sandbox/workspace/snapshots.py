"""The Workspace seam: snapshot the files of a workspace, restore them exactly, and diff snapshots.

`ShadowGitWorkspace` keeps each snapshot as a commit in a git directory outside the workspace.
What a snapshot captures: every file, symlink and directory that is not ignored, with content,
executable bit and symlink target (never followed), including empty directories, and named pipes.
What it does not capture, by design:

- ignored paths (the workspace's .gitignore files plus `excludes`): restore neither writes nor
  deletes them, so node_modules, virtualenvs and caches survive every restore;
- nested git repositories (a directory holding its own .git): left alone like ignored paths and
  reported in `SnapshotInfo.nested_repos` and in diff warnings, never silently dropped;
- the user's .git, the shadow repository itself, processes, sockets and devices, permissions of files
  other than the exec bit, owners and timestamps.

Errors raised here::

    SandboxError
    └── SnapshotError       git failed, or a snapshot id is unknown (message: git's first stderr line)
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import stat
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from branchwise.sandbox.workspace.shadowgit import (
    SHADOW_ATTRIBUTES,
    Git,
    SnapshotError,
    SnapshotInfo,
    SpecialFiles,
    default_git_dir,
    describe_failure,
    dirs_below,
    exclude_pathspecs,
    is_nested_repo,
    isolated_env,
    make_dirs_beneath,
    make_fifo_beneath,
    special_kind,
    split_z,
)

__all__ = [
    "DEFAULT_EXCLUDES",
    "FileChange",
    "ShadowGitWorkspace",
    "SnapshotError",
    "SnapshotInfo",
    "Workspace",
    "WorkspaceDiff",
]

# gitignore patterns for trees that are rebuilt by tools, large, and never the agent's work product.
DEFAULT_EXCLUDES: tuple[str, ...] = (
    "node_modules/",
    ".venv/",
    "venv/",
    "__pycache__/",
    ".mypy_cache/",
    ".pytest_cache/",
    ".ruff_cache/",
    ".hypothesis/",
    ".tox/",
    ".nox/",
    "/.branchwise/runs/",
)

ChangeStatus = Literal["added", "modified", "deleted", "type-changed", "mode-changed"]
_STATUS: dict[str, ChangeStatus] = {"A": "added", "D": "deleted", "M": "modified", "T": "type-changed"}
_SESSION_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
_SHA_RE = re.compile(r"[0-9a-f]{40}")
_NO_COMMIT_RE = re.compile(r"^error: '(.+)/' does not have a commit checked out$", re.MULTILINE)
# git refuses FIFOs, sockets and devices; the name may hold a newline, so every candidate is checked on disk.
_SPECIAL_RE = re.compile(rb"(?:^|\n)error: (.+?): can only add regular files, symbolic links or git-directories",
                         re.DOTALL)  # fmt: skip


@dataclass(frozen=True)
class FileChange:
    """One path that differs between two states."""

    path: str
    status: ChangeStatus


@dataclass(frozen=True)
class WorkspaceDiff:
    """Changed files, a `git diff`-style patch (binary files named, not dumped) and what was not compared."""

    files: tuple[FileChange, ...]
    patch: str
    empty_dirs_added: tuple[str, ...] = ()
    empty_dirs_removed: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def paths(self) -> list[str]:
        return [f.path for f in self.files]

    @property
    def is_empty(self) -> bool:
        return not (self.files or self.empty_dirs_added or self.empty_dirs_removed)


class Workspace(Protocol):
    """The files an agent works on, with cheap snapshots to branch from."""

    root: Path

    def snapshot(self, label: str = "") -> str:
        """Record the current state of the files and return its id."""
        ...

    def restore(self, snapshot_id: str) -> None:
        """Make the files exactly what they were at `snapshot_id` (ignored paths are left alone)."""
        ...

    def diff(self, a: str, b: str | None = None) -> WorkspaceDiff:
        """What changed from snapshot `a` to snapshot `b` (None: the files as they are now)."""
        ...

    def changed_paths(self, a: str, b: str | None = None) -> list[str]:
        """Paths of the files that differ between `a` and `b` (None: now)."""
        ...

    def describe(self) -> dict[str, object]:
        """Facts for the trajectory: kind, root, where snapshots are kept."""
        ...


class ShadowGitWorkspace:
    """Snapshots as commits in a git directory outside `root`, kept alive by per-session refs.

    One instance belongs to one session and is not thread-safe; several sessions may share a
    workspace and a git directory (each has its own index file and ref namespace).
    """

    def __init__(
        self,
        root: Path,
        git_dir: Path | None = None,
        *,
        excludes: Sequence[str] = DEFAULT_EXCLUDES,
        session: str | None = None,
    ) -> None:
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise SnapshotError(f"workspace {self.root} is not a directory")
        self.git_dir = Path(git_dir).absolute() if git_dir else default_git_dir(self.root)
        if self.git_dir.resolve().is_relative_to(self.root):
            raise SnapshotError(f"the shadow git directory {self.git_dir} must be outside the workspace")
        self.session = session or uuid.uuid4().hex[:12]
        if not _SESSION_RE.fullmatch(self.session):
            raise SnapshotError(f"invalid session name {self.session!r}")
        self.excludes = tuple(excludes)
        self._ref_prefix = f"refs/branchwise/{self.session}/"
        self._index_file = self.git_dir / f"index-{self.session}"
        self._infos: dict[str, SnapshotInfo] = {}
        self._nested: set[str] = set()
        self._special: set[str] = set()  # FIFOs, sockets and devices: kept out of git's index
        skip = {p.strip("/") for p in self.excludes if p.endswith("/") and "/" not in p.strip("/") and "*" not in p}
        self._special_watch = SpecialFiles(self.root, skip)
        self._ignored_special: dict[str, bool] = {}
        self._count = 0
        excludes_file = self._init_git_dir()
        self._git = Git(self.root, isolated_env(self.git_dir, self.root, self._index_file, excludes_file))
        self._count = len(self.snapshots())

    def snapshot(self, label: str = "") -> str:
        """Commit the current state of the files (and its empty directories) and return the commit id."""
        tree, empty_dirs = self._stage()
        info = SnapshotInfo(label, empty_dirs, tuple(sorted(self._nested)), self._fifos())
        sha = self._git.run("commit-tree", tree, stdin=info.message()).decode().strip()
        self._git.run("update-ref", f"{self._ref_prefix}{self._count}", sha)
        self._count += 1
        self._infos[sha] = info
        return sha

    def restore(self, snapshot_id: str) -> None:
        """Reset the files to `snapshot_id`: rewrite what differs, delete what is new, recreate empty dirs."""
        info = self.info(snapshot_id)
        self._refuse_to_overwrite_nested(snapshot_id)
        self._find_specials()
        # --reset: overwrite local changes and untracked files in the way; only changed paths are written.
        self._git.run("read-tree", "-u", "--reset", snapshot_id)
        # -d without -x/-ff: untracked files and dirs go, ignored paths and nested repositories stay.
        self._git.run("clean", "-f", "-d", "-q", *exclude_pathspecs(self._nested))
        self._remove_specials(keep={path for path, _ in info.fifos})
        blocked = [d for d in info.empty_dirs if not make_dirs_beneath(self.root, d)]
        if blocked:
            raise SnapshotError(f"cannot recreate directory {blocked[0]!r}: something is in the way")
        blocked = [path for path, mode in info.fifos if not make_fifo_beneath(self.root, path, mode)]
        if blocked:
            raise SnapshotError(f"cannot recreate named pipe {blocked[0]!r}: something is in the way")
        self._special = {p for p in self._special if special_kind(self.root / p)} | {p for p, _ in info.fifos}

    def diff(self, a: str, b: str | None = None) -> WorkspaceDiff:
        """Files, patch and empty-directory changes from snapshot `a` to `b` (None: the current files)."""
        old = self.info(a)
        if b is None:
            new_tree, empty_dirs = self._stage()
            new = SnapshotInfo("", empty_dirs, tuple(sorted(self._nested)))
        else:
            new_tree, new = b, self.info(b)
        no_extras = ("--no-renames", "--no-color", "--no-ext-diff", "--no-textconv")
        patch = self._git.run("diff-tree", "-r", "-p", *no_extras, a, new_tree)
        nested = sorted(set(old.nested_repos) | set(new.nested_repos))
        return WorkspaceDiff(
            files=tuple(self._changes(a, new_tree)),
            patch=patch.decode("utf-8", "replace"),
            empty_dirs_added=tuple(sorted(set(new.empty_dirs) - set(old.empty_dirs))),
            empty_dirs_removed=tuple(sorted(set(old.empty_dirs) - set(new.empty_dirs))),
            warnings=tuple(
                f"nested git repository {p}/ is not captured; changes inside it are not shown" for p in nested
            ),
        )

    def changed_paths(self, a: str, b: str | None = None) -> list[str]:
        """Paths of the files that differ from snapshot `a` to `b` (None: the current files)."""
        self.info(a)
        if b is not None:
            self.info(b)
        new_tree = self._stage()[0] if b is None else b
        return [c.path for c in self._changes(a, new_tree)]

    def info(self, snapshot_id: str) -> SnapshotInfo:
        """The record kept with a snapshot; SnapshotError if the id is not a snapshot of this repository."""
        known = self._infos.get(snapshot_id)
        if known is not None:
            return known
        if not _SHA_RE.fullmatch(snapshot_id):
            raise SnapshotError(f"unknown snapshot id {snapshot_id!r}")
        info = SnapshotInfo.from_commit(self._git.run("cat-file", "commit", snapshot_id))
        self._infos[snapshot_id] = info
        return info

    def snapshots(self) -> list[str]:
        """Ids of this session's snapshots, oldest first."""
        out = self._git.run("for-each-ref", "--format=%(refname) %(objectname)", self._ref_prefix)
        pairs = [line.split(" ") for line in out.decode().splitlines()]
        return [sha for ref, sha in sorted(pairs, key=lambda p: int(p[0].rsplit("/", 1)[1]))]

    def drop(self) -> None:
        """Forget this session: delete its refs and its index (objects go at the next `git gc`)."""
        self.keep_only(())

    def keep_only(self, snapshot_ids: Iterable[str]) -> None:
        """End of a session: keep the refs of these snapshots (for replay), delete the rest and the index."""
        keep = set(snapshot_ids)
        out = self._git.run("for-each-ref", "--format=%(refname) %(objectname)", self._ref_prefix).decode()
        doomed = [ref for ref, sha in (line.split(" ") for line in out.splitlines()) if sha not in keep]
        if doomed:
            self._git.run("update-ref", "--stdin", stdin="".join(f"delete {r}\n" for r in doomed).encode())
        self._index_file.unlink(missing_ok=True)
        self._infos = {k: v for k, v in self._infos.items() if k in keep}
        if not keep:
            self._count = 0

    def describe(self) -> dict[str, object]:
        """Facts for the trajectory: kind, root, git_dir, session, excludes."""
        return {
            "kind": "shadow-git",
            "root": str(self.root),
            "git_dir": str(self.git_dir),
            "session": self.session,
            "excludes": list(self.excludes),
        }

    def _init_git_dir(self) -> Path:
        """Create the shadow repository if needed; return this instance's exclude file."""
        if not (self.git_dir / "HEAD").exists():
            self.git_dir.mkdir(parents=True, exist_ok=True)
            env = isolated_env(self.git_dir, self.root, self._index_file, Path(os.devnull))
            for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
                del env[name]
            # --template= : no hooks or info files copied from the user's or the system's templates.
            Git(self.git_dir, env).run("init", "-q", "--bare", "--template=", str(self.git_dir))
            _write_if_changed(self.git_dir / "description", f"branchwise shadow repository for {self.root}\n")
        _write_if_changed(self.git_dir / "info" / "attributes", SHADOW_ATTRIBUTES)
        patterns = "".join(f"{p}\n" for p in self.excludes)
        # Named by content so sessions with different exclude lists can share one git directory.
        digest = hashlib.sha256(patterns.encode()).hexdigest()[:12]
        excludes_file = self.git_dir / "info" / f"exclude-{digest}"
        _write_if_changed(excludes_file, patterns)
        return excludes_file

    def _stage(self) -> tuple[str, tuple[str, ...]]:
        """Bring the index up to the current files; return (tree id, directories without files)."""
        self._nested = {p for p in self._nested if is_nested_repo(self.root / p)}
        self._find_specials()
        self._add_all()
        untracked = split_z(
            self._git.run("ls-files", "-o", "--directory", "--exclude-standard", "-z", *exclude_pathspecs(self._nested))
        )
        empty_dirs = self._dirs_without_files([p.rstrip("/") for p in untracked if p.endswith("/")])
        tree = self._git.run("write-tree").decode().strip()
        return tree, empty_dirs

    def _add_all(self) -> None:
        """`git add -A`, keeping nested repositories out of the index (as gitlinks or as failures)."""
        while True:
            proc = self._git.try_run("add", "-A", "--verbose", *exclude_pathspecs(self._nested | self._special))
            if proc.returncode == 0:
                break
            special = {os.fsdecode(m) for m in _SPECIAL_RE.findall(proc.stderr)} - self._special
            special = {p for p in special if special_kind(self.root / p)}
            if special:
                self._special |= special
                continue
            # A nested repository without a commit makes the whole add fail: exclude it and retry.
            no_commit = set(_NO_COMMIT_RE.findall(proc.stderr.decode("utf-8", "surrogateescape")))
            if not no_commit or no_commit <= self._nested:
                raise SnapshotError(describe_failure(("add",), proc.stderr))
            self._nested |= no_commit
        # A nested repository with a commit was added as a gitlink ("add 'sub/'", or "add 'sub'" when
        # it replaced a file): the added path is a directory. Take it back out of the index.
        if self._special:  # an excluded path keeps its old index entries (what was there before the FIFO)
            specs = [f":(literal){p}" for p in sorted(self._special)]
            stale = self._git.run("ls-files", "-z", "--", *specs)
            if stale:
                self._git.run("update-index", "--force-remove", "-z", "--stdin", stdin=stale)
        gitlinks = {p for p in map(os.fsdecode, _verbose_paths(proc.stdout)) if is_nested_repo(self.root / p)}
        if gitlinks:
            paths = b"".join(os.fsencode(p) + b"\0" for p in sorted(gitlinks))
            self._git.run("update-index", "--force-remove", "-z", "--stdin", stdin=paths)
            self._nested |= gitlinks

    def _find_specials(self) -> None:
        """The special files now (those git ignores through the excludes are not the workspace's)."""
        found = self._special_watch.scan() | {p for p in self._special if special_kind(self.root / p)}
        unknown = sorted(p for p in found if p not in self._ignored_special)
        if unknown:
            proc = self._git.try_run("check-ignore", "-z", "--stdin", stdin=b"".join(os.fsencode(p) + b"\0"
                                                                                    for p in unknown))  # fmt: skip
            ignored = set(split_z(proc.stdout)) if proc.returncode in (0, 1) else set()
            self._ignored_special.update((p, p in ignored) for p in unknown)
        self._special = {p for p in found if not self._ignored_special.get(p, False)}

    def _fifos(self) -> tuple[tuple[str, int], ...]:
        """The named pipes among the special files, with their permission bits."""
        found = []
        for path in sorted(self._special):
            try:
                st = os.lstat(self.root / path)
            except OSError:
                continue
            if stat.S_ISFIFO(st.st_mode):
                found.append((path, stat.S_IMODE(st.st_mode)))
        return tuple(found)

    def _remove_specials(self, keep: set[str]) -> None:
        """Restore: special files the snapshot does not have go (git's clean does not see them)."""
        for path in sorted(self._special - keep):
            if special_kind(self.root / path):
                with contextlib.suppress(OSError):
                    (self.root / path).unlink()

    def _dirs_without_files(self, tops: list[str]) -> tuple[str, ...]:
        """Every non-ignored directory at or under `tops` (untracked dirs that hold no files)."""
        ignored: set[str] = set()
        if any(_has_subdir(self.root / t) for t in tops):
            literal = [f":(literal){t}/" for t in tops]
            ignored_args = ("-o", "-i", "--directory", "--exclude-standard", "-z", "--")
            out = self._git.run("ls-files", *ignored_args, *literal)
            ignored = set(split_z(out))
        found: list[str] = []
        for top in tops:
            plain, nested = dirs_below(self.root, top, ignored, self._special)
            found += plain
            self._nested.update(nested)
        return tuple(sorted(found))

    def _refuse_to_overwrite_nested(self, snapshot_id: str) -> None:
        """read-tree --reset would delete a nested repository that sits where the snapshot has content."""
        self._nested = {p for p in self._nested if is_nested_repo(self.root / p)}
        if not self._nested:
            return
        ancestors = {str(parent) for p in self._nested for parent in Path(p).parents if str(parent) != "."}
        literal = [f":(literal){p}" for p in sorted(self._nested | ancestors)]
        out = self._git.run("ls-tree", "-z", snapshot_id, "--", *literal)
        for entry in split_z(out):
            meta, _, path = entry.partition("\t")
            if path in self._nested or meta.split(" ")[1] != "tree":
                raise SnapshotError(
                    f"restoring would overwrite the nested git repository at {path!r}; move it out of the way"
                )

    def _changes(self, a: str, b: str) -> list[FileChange]:
        """Raw diff between two tree-ish ids, one FileChange per path."""
        fields = self._git.run("diff-tree", "-r", "-z", "--no-renames", "--raw", a, b).split(b"\0")
        changes = []
        for head, path in zip(fields[0:-1:2], fields[1::2], strict=True):
            old_mode, new_mode, old_sha, new_sha, letter = head.lstrip(b":").decode().split(" ")
            status = _STATUS.get(letter[0], "modified")
            if status == "modified" and old_sha == new_sha and old_mode != new_mode:
                status = "mode-changed"
            changes.append(FileChange(os.fsdecode(path), status))
        return changes


def _has_subdir(path: Path) -> bool:
    try:
        with os.scandir(path) as entries:
            return any(e.is_dir(follow_symlinks=False) for e in entries)
    except OSError:
        return False


def _write_if_changed(path: Path, text: str) -> None:
    """Write atomically, and only if different, so concurrent sessions never see a half-written file."""
    try:
        if path.read_text() == text:
            return
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    tmp.write_text(text)
    tmp.replace(path)


def _verbose_paths(out: bytes) -> list[bytes]:
    """The paths of `git add --verbose` ("add 'PATH'" records), read so that a name holding a newline or a quote
    still comes out whole: every way of cutting the output at "'\\n" that ends a record is offered."""
    paths: list[bytes] = []
    for start in (m.end() for m in re.finditer(rb"(?:^|\n)add '", out)):
        end = out.find(b"'\n", start)
        while end != -1:
            paths.append(out[start:end].rstrip(b"/"))
            if out.startswith((b"add '", b"remove '"), end + 2):
                break
            end = out.find(b"'\n", end + 1)
    return paths
