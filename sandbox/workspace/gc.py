"""Garbage collection of shadow repositories: keep what runs still need, remove what nobody can use.

Each workspace has one shadow repository under $XDG_STATE_HOME/branchwise/shadow/. Runs keep their start and
end snapshots (refs/branchwise/<run id>/...) for replay and undo; everything else a run made is garbage once
it ends. `collect` deletes the refs of runs that no longer exist, repacks, and prunes loose objects older than
an hour (a live session's newest objects are younger than that). The indexes left between runs are roots too:
each gets a ref to its tree first, so the blobs they point at survive. `remove_orphans` deletes the shadow
repositories whose workspace directory is gone.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from branchwise.sandbox.workspace.shadowgit import Git, SnapshotError, default_git_dir, isolated_env

AUTO_GC_BYTES = 256 * 1024 * 1024
"""A shadow repository bigger than this is collected when a session ends."""
PRUNE_EXPIRE = "1.hour.ago"
STALE_INDEX_S = 24 * 3600  # a session index this old belongs to a run that died


@dataclass(frozen=True)
class ShadowRepo:
    git_dir: Path
    workspace: Path | None
    """The workspace it holds snapshots of (None: not recorded, an older repository)."""
    size_bytes: int

    @property
    def orphaned(self) -> bool:
        return self.workspace is not None and not self.workspace.is_dir()


def shadow_base() -> Path:
    return default_git_dir(Path("/")).parent


def dir_size(path: Path) -> int:
    total = 0
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size  # noqa: PTH118 (os.walk hands out str)
            except OSError:
                pass
    return total


def list_shadows(base: Path | None = None) -> list[ShadowRepo]:
    base = base or shadow_base()
    repos = []
    for git_dir in sorted(p for p in base.glob("*") if (p / "HEAD").is_file()):
        try:
            recorded = (git_dir / "branchwise-workspace").read_text().strip()
        except OSError:
            recorded = ""
        repos.append(ShadowRepo(git_dir, Path(recorded) if recorded else None, dir_size(git_dir)))
    return repos


def remove_orphans(base: Path | None = None, *, dry_run: bool = False) -> list[ShadowRepo]:
    """Delete the shadow repositories whose workspace no longer exists; return them."""
    gone = [r for r in list_shadows(base) if r.orphaned]
    if not dry_run:
        for repo in gone:
            shutil.rmtree(repo.git_dir, ignore_errors=True)
    return gone


def collect(git_dir: Path, *, live_sessions: Iterable[str] | None = None) -> tuple[int, int]:
    """Drop the refs of sessions not in `live_sessions` (None: keep every ref), repack and prune.
    Returns the repository's size before and after, in bytes."""
    before = dir_size(git_dir)
    git = _git(git_dir)
    if live_sessions is not None:
        live = set(live_sessions)
        refs = git.run("for-each-ref", "--format=%(refname)", "refs/branchwise/").decode().split()
        doomed = [r for r in refs if r.split("/")[2] not in live]
        if doomed:
            git.run("update-ref", "--stdin", stdin="".join(f"delete {r}\n" for r in doomed).encode())
    _protect_indexes(git_dir)
    git.run("repack", "-A", "-d", "-q")
    git.run("prune", f"--expire={PRUNE_EXPIRE}")
    git.run("pack-refs", "--all", "--prune")
    return before, dir_size(git_dir)


def maybe_collect(git_dir: Path, limit: int = AUTO_GC_BYTES) -> bool:
    """Collect a repository grown past `limit` (every ref is kept: runs decide what they need)."""
    if dir_size(git_dir / "objects") <= limit:
        return False
    collect(git_dir)
    return True


def _protect_indexes(git_dir: Path) -> None:
    """A ref to the tree of each index kept in the repository, so that pruning keeps its blobs."""
    now = time.time()
    for index in sorted(git_dir.glob("index-*")):
        base = index.name.startswith("index-base-")
        try:
            if not base and now - index.stat().st_mtime > STALE_INDEX_S:
                index.unlink()  # a session that died without ending
                continue
        except OSError:
            continue
        git = _git(git_dir, index)
        try:
            tree = git.run("write-tree").decode().strip()
            git.run("update-ref", f"refs/branchwise-index/{index.name}", tree)
        except SnapshotError:
            index.unlink(missing_ok=True)  # unreadable, or it names objects already gone: useless as a cache


def _git(git_dir: Path, index: Path | None = None) -> Git:
    env = isolated_env(git_dir, git_dir, index or git_dir / "index-gc", Path(os.devnull))
    del env["GIT_WORK_TREE"]
    return Git(git_dir, env)
