"""Which paths of a workspace changed since the last look, learned from inotify instead of walking the tree.

`ChangeWatcher` puts one inotify watch on every directory of the workspace (not on `.git` directories and not
on directories the snapshots ignore by name, such as node_modules), so a snapshot after a step only asks git
about the paths that step touched. Writes made inside the sandbox are seen too: bubblewrap bind-mounts the
same directories, and inotify reports on the directory entry, whichever mount namespace wrote it.

What inotify cannot see, so `take()` says "unknown" (None) and the caller walks the whole tree instead:
a queue overflow, a directory that could not be watched (the kernel's watch limit), the workspace root itself
moved or deleted. Writes through a shared memory mapping, or through a hard link that lives outside the
workspace, produce no event at all: `Stager` walks the whole tree at the end of every run to catch those.
"""

from __future__ import annotations

import errno
import os
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from inotify_simple import INotify
from inotify_simple import flags as F

_MASK = (
    F.CREATE
    | F.DELETE
    | F.MODIFY
    | F.ATTRIB
    | F.MOVED_FROM
    | F.MOVED_TO
    | F.DELETE_SELF
    | F.MOVE_SELF
    | F.DONT_FOLLOW
    | F.ONLYDIR
    | F.EXCL_UNLINK
)
_STRUCTURE = F.CREATE | F.DELETE | F.MOVED_FROM | F.MOVED_TO  # events that can change which directories are empty
MAX_PATHS = 5000
"""More changed paths than this between two looks: asking git about each costs more than one walk."""


@dataclass
class Changes:
    """What changed since the last look: paths (files or whole directories), and where entries came or went."""

    paths: set[str] = field(default_factory=set)
    structure: set[str] = field(default_factory=set)
    """Parent directories ('' for the root) in which a name was created, deleted or moved."""
    new_dirs: set[str] = field(default_factory=set)


class ChangeWatcher:
    """Recursive inotify watches on a workspace; `take()` returns the changes since the previous call."""

    def __init__(
        self,
        root: Path,
        *,
        skip_names: frozenset[str] = frozenset(),
        skip_paths: frozenset[str] = frozenset(),
        dirs: Iterable[str] | None = None,
    ) -> None:
        """Watch every directory under `root`, found by walking it, or exactly `dirs` (and the root): the
        directories a previous index holds files in, which costs a fraction of the walk on a big tree."""
        self.root = Path(root)
        self.skip_names = skip_names | {".git"}
        self.skip_paths = skip_paths
        self._inotify = INotify(nonblocking=True)
        # The fd is closed by close(); this only spares a forgotten instance the ResourceWarning at collection.
        weakref.finalize(self, self._inotify.close)
        self._dirs: dict[int, str] = {}
        self._wds: dict[str, int] = {}
        self._pending = Changes()
        self.broken: str | None = None
        """Why the watches can no longer be trusted (then every `take()` is None until `close()`)."""
        self._lost = False
        if dirs is None:
            self._add_tree("")
        else:
            for rel in sorted({"", *dirs}):
                self._add_one(rel)

    def watch_more(self, dirs: Iterable[str]) -> None:
        """Also watch these directories (found by a walk of the tree); each is re-examined at the next look,
        since something may have changed in it before its watch was in place."""
        for rel in sorted(set(dirs) - self._wds.keys()):
            if self._add_one(rel):
                self._pending.paths.add(rel)

    def take(self) -> Changes | None:
        """The changes since the last call, or None when they are not known (walk the tree this time)."""
        self._drain()
        changes, self._pending = self._pending, Changes()
        lost, self._lost = self._lost, False
        if self.broken or lost or len(changes.paths) > MAX_PATHS:
            return None
        return changes

    def close(self) -> None:
        self._inotify.close()
        self._dirs.clear()
        self._wds.clear()

    def _drain(self) -> None:
        while not self._inotify.closed:
            try:
                events = self._inotify.read(timeout=0)
            except BlockingIOError:
                return
            if not events:
                return
            for event in events:
                self._event(event.wd, event.mask, event.name)

    def _event(self, wd: int, mask: int, name: str) -> None:
        if mask & F.Q_OVERFLOW:
            self._lost = True
            return
        parent = self._dirs.get(wd)
        if parent is None:
            return
        if mask & F.IGNORED:  # the watch is gone (its directory was deleted or moved away)
            del self._dirs[wd]
            if self._wds.get(parent) == wd:
                del self._wds[parent]
            return
        if mask & (F.DELETE_SELF | F.MOVE_SELF):
            if parent == "":
                self.broken = "the workspace directory itself was moved or deleted"
            return
        path = f"{parent}/{name}" if parent else name
        if path in self.skip_paths or (mask & F.ISDIR and name in self.skip_names):
            return
        self._pending.paths.add(path)
        if mask & _STRUCTURE:
            self._pending.structure.add(parent)
        if mask & F.ISDIR and mask & F.MOVED_FROM:
            self._forget(path)
        if mask & F.ISDIR and mask & (F.CREATE | F.MOVED_TO):
            self._pending.new_dirs.add(path)
            self._add_tree(path)

    def _add_tree(self, rel: str) -> None:
        """Watch `rel` and every directory below it (symlinks are not followed)."""
        stack = [rel]
        while stack and not self.broken:
            current = stack.pop()
            if not self._add_one(current):
                continue
            try:
                with os.scandir(self.root / current) as entries:
                    names = [e.name for e in entries if e.is_dir(follow_symlinks=False)]
            except OSError:
                continue
            for name in names:
                child = f"{current}/{name}" if current else name
                if name not in self.skip_names and child not in self.skip_paths:
                    stack.append(child)

    def _add_one(self, rel: str) -> bool:
        if any(part in self.skip_names for part in rel.split("/")) or rel in self.skip_paths:
            return False
        try:
            wd = self._inotify.add_watch(os.fsencode(self.root / rel if rel else self.root), _MASK)
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
                self.broken = f"cannot watch {rel or '.'}: {exc.strerror} (raise fs.inotify.max_user_watches)"
            return False  # gone again already: its creation and deletion are both events of its parent
        self._dirs[wd], self._wds[rel] = rel, wd
        return True

    def _forget(self, rel: str) -> None:
        """Drop the watches of `rel` and of every directory below it: their paths are stale after a move."""
        prefix = f"{rel}/"
        for path in [p for p in self._wds if p == rel or p.startswith(prefix)]:
            wd = self._wds.pop(path)
            self._dirs.pop(wd, None)
            try:
                self._inotify.rm_watch(wd)
            except OSError:
                pass

    @property
    def watched(self) -> int:
        return len(self._wds)
