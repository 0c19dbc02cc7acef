"""The Workspace seam: snapshot the files of a workspace, restore them exactly, and diff snapshots.

`ShadowGitWorkspace` keeps each snapshot as a commit in a git directory outside the workspace.
What a snapshot captures: every file, symlink and directory that is not ignored, with content,
executable bit and symlink target (never followed), including empty directories.
What it does not capture, by design:

- ignored paths (the workspace's .gitignore files plus `excludes`): restore neither writes nor
  deletes them, so node_modules, virtualenvs and caches survive every restore;
- nested git repositories (a directory holding its own .git): left alone like ignored paths and
  reported in `SnapshotInfo.nested_repos` and in diff warnings, never silently dropped;
- the user's .git, the shadow repository itself, processes, permissions other than the exec bit,
  owners and timestamps.

Errors raised here::

    SandboxError
    └── SnapshotError       git failed, or a snapshot id is unknown (message: git's first stderr line)
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from branchwise.sandbox.workspace.gc import maybe_collect
from branchwise.sandbox.workspace.shadowgit import (
    SHADOW_ATTRIBUTES,
    Git,
    SnapshotDeadline,
    SnapshotError,
    SnapshotInfo,
    default_git_dir,
    exclude_pathspecs,
    is_nested_repo,
    isolated_env,
    make_dirs_beneath,
    make_fifo_beneath,
    split_z,
)
from branchwise.sandbox.workspace.stage import Stager, tracked_dirs
from branchwise.sandbox.workspace.watch import ChangeWatcher

__all__ = [
    "DEFAULT_EXCLUDES",
    "FileChange",
    "ShadowGitWorkspace",
    "SnapshotDeadline",
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
        watch: bool = True,
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
        self.warnings: list[str] = []
        """Things a user should know (no change watcher: every snapshot walks the tree), for Warning events."""
        self._ref_prefix = f"refs/branchwise/{self.session}/"
        self._index_file = self.git_dir / f"index-{self.session}"
        self._infos: dict[str, SnapshotInfo] = {}
        self._count = 0
        self._last: tuple[tuple[object, ...], str] | None = None
        excludes_file, digest = self._init_git_dir()
        # The index of the last run that ended: its stat data lets this run's first snapshot skip re-hashing.
        # Keyed by the root too: a replay's scratch copy shares the git directory but not the files' stat data.
        root_digest = hashlib.sha256(os.fsencode(self.root) + digest.encode()).hexdigest()[:12]
        self._base_index = self.git_dir / f"index-base-{root_digest}"
        self._git = Git(self.root, isolated_env(self.git_dir, self.root, self._index_file, excludes_file))
        self._take_base_index()
        skip = frozenset(p.strip("/") for p in self.excludes if p.endswith("/") and "/" not in p.strip("/"))
        self._stager = Stager(self._git, self.root, self._index_file, self._watcher() if watch else None, skip)
        self._count = len(self.snapshots())

    @property
    def deadline(self) -> float | None:
        """time.monotonic() by which each snapshot, restore or diff must be over, or SnapshotDeadline (None: no
        deadline but git's own ten minutes). A run sets its wall limit here."""
        return self._git.deadline

    @deadline.setter
    def deadline(self, value: float | None) -> None:
        self._git.deadline = value

    def snapshot(self, label: str = "", *, full: bool = False) -> str:
        """Commit the current state of the files (and its empty directories) and return the commit id.

        `full` walks the whole tree even when the change watcher names what changed (the end of a run)."""
        tree, empty_dirs = self._stage(full=full)
        info = SnapshotInfo(label, empty_dirs, tuple(sorted(self._stager.nested)), self._stager.fifos())
        if self._last is not None and self._last[0] == (tree, info.empty_dirs, info.nested_repos, info.fifos):
            return self._last[1]  # nothing changed: the same state has the same id, at no git call
        sha = self._git.run("commit-tree", tree, stdin=info.message()).decode().strip()
        self._git.run("update-ref", f"{self._ref_prefix}{self._count}", sha)
        self._count += 1
        self._infos[sha] = info
        self._last = ((tree, info.empty_dirs, info.nested_repos, info.fifos), sha)
        return sha

    def restore(self, snapshot_id: str) -> None:
        """Reset the files to `snapshot_id`: rewrite what differs, delete what is new, recreate empty dirs."""
        info = self.info(snapshot_id)
        self._refuse_to_overwrite_nested(snapshot_id)
        # With the index brought up to the files, a two-way read-tree touches only the paths that differ
        # (the files are clean against `current`), and no untracked file is left but empty directories.
        current, empty_now = self._stage(full=False)
        self._stager.remove_specials(keep={path for path, _ in info.fifos})  # git sees none of them
        if self._git.try_run("read-tree", "-u", "-m", current, snapshot_id).returncode == 0:
            _remove_empty_dirs(self.root, set(empty_now) - set(info.empty_dirs), set(info.empty_dirs))
        else:  # something ignored is in the way of a file the snapshot has: overwrite like a reset does
            self._stager.forget()
            self._git.run("read-tree", "-u", "--reset", snapshot_id)
            # -d without -x/-ff: untracked files and dirs go, ignored paths and nested repositories stay.
            self._git.run("clean", "-f", "-d", "-q", *exclude_pathspecs(self._stager.nested))
        blocked = [d for d in info.empty_dirs if not make_dirs_beneath(self.root, d)]
        if blocked:
            raise SnapshotError(f"cannot recreate directory {blocked[0]!r}: something is in the way")
        blocked = [path for path, mode in info.fifos if not make_fifo_beneath(self.root, path, mode)]
        if blocked:
            raise SnapshotError(f"cannot recreate named pipe {blocked[0]!r}: something is in the way")
        self._stager.remade({path for path, _ in info.fifos})

    def diff(self, a: str, b: str | None = None) -> WorkspaceDiff:
        """Files, patch and empty-directory changes from snapshot `a` to `b` (None: the current files)."""
        old = self.info(a)
        if b is None:
            new_tree, empty_dirs = self._stage(full=False)
            new = SnapshotInfo("", empty_dirs, tuple(sorted(self._stager.nested)))
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
        new_tree = self._stage(full=False)[0] if b is None else b
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
        self.close()
        self._infos = {k: v for k, v in self._infos.items() if k in keep}
        if self._last is not None and self._last[1] not in keep:
            self._last = None
        if not keep:
            self._count = 0

    def close(self) -> None:
        """Stop watching, and leave this session's index for the next run of the workspace (its stat data is
        what makes that run's first snapshot cheap). The instance still works after this, walking the tree."""
        self._stager.close()
        if self._owns_git_dir():
            self._index_file.replace(self._base_index)  # the last session to end wins: any index is a cache
        else:  # a scratch copy (replay) borrowing the workspace's repository: its stat data helps nobody
            self._index_file.unlink(missing_ok=True)
        try:
            maybe_collect(self.git_dir)
        except SnapshotError as exc:
            self.warnings.append(f"shadow repository {self.git_dir} not collected: {exc}")

    def _owns_git_dir(self) -> bool:
        try:
            return self._index_file.exists() and (self.git_dir / "branchwise-workspace").read_text() == f"{self.root}\n"
        except OSError:
            return False

    def stats(self) -> dict[str, int]:
        """How many stages found nothing changed, asked git about the changed paths only, or walked the tree."""
        return dict(self._stager.counts)

    def describe(self) -> dict[str, object]:
        """Facts for the trajectory: kind, root, git_dir, session, excludes."""
        return {
            "kind": "shadow-git",
            "root": str(self.root),
            "git_dir": str(self.git_dir),
            "session": self.session,
            "excludes": list(self.excludes),
        }

    def _stage(self, *, full: bool) -> tuple[str, tuple[str, ...]]:
        if self._take_base_index():
            self._stager.forget()
        return self._stager.stage(full=full)

    def _take_base_index(self) -> bool:
        """Start from the index the last run left (a copy: sessions may run side by side)."""
        if self._index_file.exists() or not self._base_index.exists():
            return False
        try:
            shutil.copyfile(self._base_index, self._index_file)
        except OSError:
            self._index_file.unlink(missing_ok=True)  # another session replaced it meanwhile: start empty
        return True

    def _watcher(self) -> ChangeWatcher | None:
        names = frozenset(p.strip("/") for p in self.excludes if p.endswith("/") and "/" not in p.strip("/"))
        paths = frozenset(p.strip("/") for p in self.excludes if p.startswith("/") and p.endswith("/"))
        try:
            # With an index from a previous run, its directories are watched instead of walking the tree.
            dirs = tracked_dirs(self._git) if self._index_file.exists() else None
            watcher = ChangeWatcher(self.root, skip_names=names, skip_paths=paths, dirs=dirs)
        except OSError as exc:
            self.warnings.append(f"no change watcher for {self.root} ({exc.strerror}): every snapshot walks the tree")
            return None
        if watcher.broken:
            self.warnings.append(f"{watcher.broken}: every snapshot walks the tree")
        return watcher

    def _init_git_dir(self) -> tuple[Path, str]:
        """Create the shadow repository if needed; return this instance's exclude file and its digest."""
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
        record = self.git_dir / "branchwise-workspace"  # whose repository this is, for `runs prune`
        if not record.exists():
            _write_if_changed(record, f"{self.root}\n")
        return excludes_file, digest

    def _refuse_to_overwrite_nested(self, snapshot_id: str) -> None:
        """read-tree --reset would delete a nested repository that sits where the snapshot has content."""
        self._stager.nested = {p for p in self._stager.nested if is_nested_repo(self.root / p)}
        if not self._stager.nested:
            return
        ancestors = {str(parent) for p in self._stager.nested for parent in Path(p).parents if str(parent) != "."}
        literal = [f":(literal){p}" for p in sorted(self._stager.nested | ancestors)]
        out = self._git.run("ls-tree", "-z", snapshot_id, "--", *literal)
        for entry in split_z(out):
            meta, _, path = entry.partition("\t")
            if path in self._stager.nested or meta.split(" ")[1] != "tree":
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


def _remove_empty_dirs(root: Path, dirs: set[str], keep: set[str]) -> None:
    """rmdir each of `dirs` that is still an empty directory, deepest first, then each parent this leaves empty
    unless it is in `keep` (never follows a symlink; what is not empty stays, as a clean -d would leave it)."""
    pending = sorted(dirs, key=lambda d: d.count("/"), reverse=True)
    for rel in pending:
        while rel and rel not in keep:
            path = root / rel
            try:
                if not stat.S_ISDIR(os.lstat(path).st_mode):
                    break
                path.rmdir()
            except OSError:
                break  # not empty (ignored files inside), or gone already
            rel = rel.rpartition("/")[0]


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
