"""The tag cache: one SQLite file per workspace under the state directory, a row per file.

A row is reused while the file's size and mtime are unchanged; when they change the file is hashed and
reparsed only if its content changed. Rows of another extraction format are dropped on open. Several
sessions may share a cache (WAL mode; writers wait for each other).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from branchwise.tools.repomap.tags import FORMAT, FileRecord

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, digest TEXT NOT NULL,
    lang TEXT NOT NULL, status TEXT NOT NULL, summary BLOB NOT NULL, payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS blobs (key TEXT PRIMARY KEY, state TEXT NOT NULL, data BLOB NOT NULL);
"""
PARSED = ("ok", "syntax-errors")


def state_home() -> Path:
    """$XDG_STATE_HOME, or ~/.local/state."""
    state = os.environ.get("XDG_STATE_HOME", "")
    return Path(state) if Path(state).is_absolute() else Path.home() / ".local" / "state"


def default_cache_path(root: Path) -> Path:
    """$XDG_STATE_HOME/branchwise/repomap/<hash of the workspace's real path>.sqlite."""
    digest = hashlib.sha256(os.fsencode(os.path.realpath(root))).hexdigest()[:20]
    return state_home() / "branchwise" / "repomap" / f"{digest}.sqlite"


@dataclass(frozen=True)
class Row:
    """What the cache knows about a file without its tags."""

    size: int
    mtime_ns: int
    digest: str
    status: str


class TagCache:
    """Rows of `FileRecord`s keyed by workspace-relative path."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        found = self._db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
        if found is None or found[0] != str(FORMAT):
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute("DELETE FROM files")
                self._db.execute("DELETE FROM blobs")
                self._db.execute("INSERT OR REPLACE INTO meta VALUES ('format', ?)", (str(FORMAT),))

    def rows(self) -> dict[str, Row]:
        """Every cached file's identity and status."""
        cur = self._db.execute("SELECT path, size, mtime_ns, digest, status FROM files")
        return {p: Row(s, m, d, st) for p, s, m, d, st in cur}

    def summaries(self, paths: Iterable[str] | None = None) -> Iterator[tuple[str, bytes]]:
        """(path, summary) of parsed files, all of them or those in `paths`."""
        if paths is None:
            yield from self._db.execute("SELECT path, summary FROM files WHERE status IN (?, ?)", PARSED)
            return
        wanted = list(paths)
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            marks = ",".join("?" * len(chunk))
            yield from self._db.execute(
                f"SELECT path, summary FROM files WHERE status IN (?, ?) AND path IN ({marks})", (*PARSED, *chunk)
            )

    def payload(self, path: str) -> bytes | None:
        """The full tags of a parsed file, or None."""
        found = self._db.execute("SELECT payload FROM files WHERE path = ? AND status IN (?, ?)", (path, *PARSED))
        row = found.fetchone()
        return bytes(row[0]) if row else None

    def put(self, records: Iterable[FileRecord]) -> None:
        """Insert or replace rows; a record with status `unchanged` only refreshes size and mtime."""
        fresh, touched = [], []
        for r in records:
            if r.status == "unchanged":
                touched.append((r.size, r.mtime_ns, r.path))
            else:
                fresh.append((r.path, r.size, r.mtime_ns, r.digest, r.lang, r.status, r.summary, r.payload))
        if not (fresh or touched):
            return
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?)", fresh)
            self._db.executemany("UPDATE files SET size = ?, mtime_ns = ? WHERE path = ?", touched)

    def delete(self, paths: Iterable[str]) -> None:
        doomed = [(p,) for p in paths]
        if doomed:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany("DELETE FROM files WHERE path = ?", doomed)

    def get_blob(self, key: str) -> tuple[str, bytes] | None:
        """A derived blob kept with the rows (the ranking graph) and the state it was made from."""
        row = self._db.execute("SELECT state, data FROM blobs WHERE key = ?", (key,)).fetchone()
        return (row[0], bytes(row[1])) if row else None

    def put_blob(self, key: str, state: str, data: bytes) -> None:
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("INSERT OR REPLACE INTO blobs VALUES (?, ?, ?)", (key, state, data))

    def close(self) -> None:
        self._db.close()
