"""The memory store: one SQLite database per user, an FTS5 index, an append-only audit log, a sha256 per record.

Every write is one `BEGIN IMMEDIATE` transaction (retried when another process holds the lock), so two runs
writing at once (two terminals, a batch) lose nothing: WAL lets readers go on while one writer commits, the
busy timeout makes a writer wait for the other, and read-modify-write of statistics happens inside the
transaction. The audit log keeps, for each change, the record before and after it; triggers refuse to update or
delete its rows, and `rollback` works by writing the old states back (which is itself logged).

Errors raised here::

    EnvironmentProblem
    └── StoreError          the database cannot be opened or written (locked for too long, corrupt, no space)
    UsageError
    └── UnknownItem         no record has this id
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from branchwise.agent.errors import EnvironmentProblem, UsageError
from branchwise.agent.memory.records import Item, Kind, Stats, Status, canonical, parse_record
from branchwise.agent.memory.rows import CorruptRow, UnknownItem, Writer, decoded, read_item, row_item

T = TypeVar("T")
SCHEMA_VERSION = "1"
_RETRIES = 8
_SCHEMA = """
CREATE TABLE IF NOT EXISTS items(
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, status TEXT NOT NULL, repo TEXT NOT NULL,
    language TEXT, tool TEXT, site TEXT, trust TEXT NOT NULL, version INTEGER NOT NULL,
    created REAL NOT NULL, updated REAL NOT NULL, sha256 TEXT NOT NULL, body TEXT NOT NULL, stats TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS items_scope ON items(repo, status, kind);
CREATE VIRTUAL TABLE IF NOT EXISTS items_fts USING fts5(name, text, trigger, tokenize = 'porter unicode61');
CREATE TABLE IF NOT EXISTS audit(
    seq INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, txn TEXT NOT NULL, actor TEXT NOT NULL,
    action TEXT NOT NULL, item_id TEXT NOT NULL, before_sha TEXT, after_sha TEXT, before TEXT, after TEXT,
    reason TEXT NOT NULL DEFAULT '', pid INTEGER);
CREATE INDEX IF NOT EXISTS audit_item ON audit(item_id, seq);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class StoreError(EnvironmentProblem):
    """The memory database cannot be used."""


def default_path(env: Mapping[str, str] | None = None) -> Path:
    """$XDG_DATA_HOME/branchwise/memory.db, with ~/.local/share when XDG_DATA_HOME is unset."""
    env = os.environ if env is None else env
    xdg = env.get("XDG_DATA_HOME", "")
    base = Path(xdg) if Path(xdg).is_absolute() else Path(env.get("HOME") or "~").expanduser() / ".local" / "share"
    return base / "branchwise" / "memory.db"


@dataclass(frozen=True)
class AuditEntry:
    """One row of the audit log."""

    seq: int
    ts: float
    txn: str
    actor: str
    action: str
    item_id: str
    before_sha: str | None
    after_sha: str | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class MemoryStore:
    """One user's memory database. Not shared between threads; each process opens its own."""

    def __init__(self, path: Path, *, busy_timeout_s: float = 10.0) -> None:
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.conn = sqlite3.connect(self.path, timeout=busy_timeout_s, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the memory database {self.path}: {exc}") from None
        self.conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        with _translated(self.path):
            self._retry(lambda: self.conn.execute("PRAGMA journal_mode = WAL").fetchone())
            self.conn.execute("PRAGMA synchronous = NORMAL")
            self._retry(self._create)
        try:
            self.path.chmod(0o600)
        except OSError:
            pass

    def __enter__(self) -> MemoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.conn.close()

    def _create(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA.split(";\n"):
                if statement.strip():
                    self.conn.execute(statement)
            self.conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema', ?)", (SCHEMA_VERSION,))
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    # -- writing ---------------------------------------------------------------------------------------

    def write(self, actor: str, fn: Callable[[Writer], T]) -> T:
        """Run `fn` in one IMMEDIATE transaction, retried from the start if the database stays locked."""

        def attempt() -> T:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(Writer(self.conn, actor))
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            return result

        with _translated(self.path):
            return self._retry(attempt)

    def put(self, item: Item, *, action: str, actor: str, reason: str = "") -> Item:
        """Write one record (insert or new content), audited; returns it with its hash."""
        return self.write(actor, lambda w: w.put(item, action, reason))

    def change_stats(self, item_id: str, change: Callable[[Stats], None], *, actor: str, reason: str) -> Item:
        return self.write(actor, lambda w: w.set_stats(item_id, change, reason))

    def _retry(self, fn: Callable[[], T]) -> T:
        for attempt in range(_RETRIES):
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                if ("locked" not in str(exc) and "busy" not in str(exc)) or attempt == _RETRIES - 1:
                    raise
                time.sleep(random.uniform(0.02, 0.1) * (attempt + 1))  # busy_timeout already waited; jitter
        raise AssertionError("unreachable")

    # -- reading ---------------------------------------------------------------------------------------

    def get(self, item_id: str) -> Item | None:
        with _translated(self.path):
            try:
                return read_item(self.conn, item_id)
            except CorruptRow as exc:
                raise StoreError(f"memory item {item_id} in {self.path} is corrupt: {exc}") from None

    def require(self, item_id: str) -> Item:
        item = self.get(item_id) or self._by_prefix(item_id)
        if item is None:
            raise UnknownItem(f"no memory item {item_id!r} (see `branchwise memory list --all`)")
        return item

    def _by_prefix(self, prefix: str) -> Item | None:
        rows = self.conn.execute("SELECT body, stats FROM items WHERE id LIKE ? LIMIT 2", (prefix + "%",)).fetchall()
        return row_item(*rows[0]) if len(rows) == 1 else None

    def items(
        self, *, repo: str | None = None, statuses: Iterable[Status] | None = None, kinds: Iterable[Kind] | None = None
    ) -> list[Item]:
        """Records in creation order; `repo` keeps that repository's items and the ones for any repository."""
        where, params = _filters(repo, statuses, kinds)
        sql = f"SELECT body, stats FROM items {('WHERE ' + where) if where else ''} ORDER BY created, id"
        with _translated(self.path):
            return [item for item, _ in decoded(self.conn.execute(sql, params))]

    def search(
        self,
        match: str,
        *,
        repo: str | None,
        statuses: Iterable[Status],
        kinds: Iterable[Kind] | None = None,
        language: str | None = None,
        limit: int = 50,
    ) -> list[tuple[Item, float]]:
        """Full-text matches with their BM25 score (higher is better), filtered by scope and status."""
        where, params = _filters(repo, statuses, kinds, alias="i.")
        if language is not None:
            where += " AND (i.language IS NULL OR i.language = ?)"
            params.append(language)
        sql = (
            "SELECT i.body, i.stats, bm25(items_fts, 4.0, 1.0, 2.0) AS rank FROM items_fts "
            f"JOIN items i ON i.rowid = items_fts.rowid WHERE items_fts MATCH ? AND {where} ORDER BY rank LIMIT ?"
        )
        with _translated(self.path):
            rows = self.conn.execute(sql, [match, *params, limit]).fetchall()
        return [(item, -rest[0]) for item, rest in decoded(rows)]

    def last_audited(self, ids: Iterable[str]) -> dict[str, str | None]:
        """The hash each item had after its latest audited write (None: never audited)."""
        ids = list(ids)
        out: dict[str, str | None] = dict.fromkeys(ids)
        for chunk in (ids[i : i + 500] for i in range(0, len(ids), 500)):
            marks = ", ".join("?" * len(chunk))
            sql = (
                f"SELECT item_id, after_sha FROM audit WHERE seq IN (SELECT max(seq) FROM audit "
                f"WHERE item_id IN ({marks}) GROUP BY item_id)"
            )
            out.update(dict(self.conn.execute(sql, chunk).fetchall()))
        return out

    def audit(self, item_id: str | None = None, *, since: int = 0, limit: int | None = None) -> list[AuditEntry]:
        sql = "SELECT seq, ts, txn, actor, action, item_id, before_sha, after_sha, reason FROM audit WHERE seq > ?"
        params: list[Any] = [since]
        if item_id is not None:
            sql += " AND item_id = ?"
            params.append(item_id)
        sql += " ORDER BY seq DESC" + (f" LIMIT {int(limit)}" if limit else "")
        with _translated(self.path):
            rows = self.conn.execute(sql, params).fetchall()
        return [AuditEntry(*row) for row in reversed(rows)]

    def integrity(self) -> str:
        """SQLite's own integrity check ('ok' when the file is sound)."""
        with _translated(self.path):
            return str(self.conn.execute("PRAGMA integrity_check").fetchone()[0])

    # -- rollback --------------------------------------------------------------------------------------

    def rollback(self, *, to_seq: int | None = None, item_id: str | None = None, actor: str = "user") -> list[str]:
        """Write back the states before the changes after audit entry `to_seq`, or before the latest change of
        `item_id` (the whole transaction it was part of). Returns the ids of the items restored."""
        if (to_seq is None) == (item_id is None):
            raise UsageError("rollback needs an item id or --to SEQ, not both")

        def undo(w: Writer) -> list[str]:
            entries = self._undo_entries(to_seq, item_id)
            for seq, iid, before in entries:
                if before is None:
                    w.delete(iid, "rollback", f"undo #{seq}")
                else:
                    w.put(parse_record(before), "rollback", f"undo #{seq}")
            return list(dict.fromkeys(iid for _, iid, _ in entries))

        return self.write(actor, undo)

    def _undo_entries(self, to_seq: int | None, item_id: str | None) -> list[tuple[int, str, str | None]]:
        content = "(before IS NOT NULL OR after IS NOT NULL)"
        if item_id is not None:
            row = self.conn.execute(
                f"SELECT txn FROM audit WHERE item_id = ? AND {content} ORDER BY seq DESC LIMIT 1",
                (self.require(item_id).id,),
            ).fetchone()
            if row is None:
                raise UsageError(f"{item_id}: nothing to roll back")
            rows = self.conn.execute(
                f"SELECT seq, item_id, before FROM audit WHERE txn = ? AND {content} ORDER BY seq DESC", row
            ).fetchall()
        else:
            rows = self.conn.execute(
                f"SELECT seq, item_id, before FROM audit WHERE seq > ? AND {content} ORDER BY seq DESC", (to_seq,)
            ).fetchall()
        return [(int(s), str(i), b) for s, i, b in rows]

    # -- export and import -----------------------------------------------------------------------------

    def export_lines(self) -> Iterator[str]:
        """Every record as one JSON line, hash and statistics included."""
        for item in self.items():
            yield canonical(item.model_dump(mode="json"))

    def import_lines(self, lines: Iterable[str], *, actor: str = "import") -> ImportReport:
        """Add records from JSONL; a record's hash must match its content; ids already present are kept."""
        report = ImportReport()
        parsed: list[Item] = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                item = parse_record(line)
            except ValueError as exc:
                report.rejected.append(f"line {number}: not a memory record ({str(exc).splitlines()[0]})")
                continue
            if item.sha256 != item.content_hash():
                report.rejected.append(f"line {number}: {item.id}: sha256 does not match the record's content")
                continue
            parsed.append(item)

        def add(w: Writer) -> None:
            for item in parsed:
                have = w.get(item.id)
                if have is not None:
                    (report.unchanged if have.sha256 == item.sha256 else report.conflicts).append(item.id)
                    continue
                w.put(item, "import", "imported from JSONL")
                w.conn.execute("UPDATE items SET stats = ? WHERE id = ?", (item.stats.model_dump_json(), item.id))
                report.added.append(item.id)

        self.write(actor, add)
        return report

    def counts(self) -> dict[str, dict[str, int]]:
        """Records per kind and status."""
        out: dict[str, dict[str, int]] = {}
        for kind, status, n in self.conn.execute("SELECT kind, status, count(*) FROM items GROUP BY kind, status"):
            out.setdefault(kind, {})[status] = n
        return out


@dataclass
class ImportReport:
    """What an import did: records added, already present (same hash), in conflict (same id, other content),
    and lines refused."""

    added: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)


def _filters(
    repo: str | None, statuses: Iterable[Status] | None, kinds: Iterable[Kind] | None, alias: str = ""
) -> tuple[str, list[Any]]:
    clauses, params = ["1 = 1"], []
    if repo is not None:
        clauses.append(f"({alias}repo = ? OR {alias}repo = '')")
        params.append(repo)
    for column, values in (("status", statuses), ("kind", kinds)):
        if values is not None:
            values = list(values)
            clauses.append(f"{alias}{column} IN ({', '.join('?' * len(values))})")
            params.extend(values)
    return " AND ".join(clauses), params


class _translated:
    """Turn sqlite errors into one-line StoreErrors naming the file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, sqlite3.DatabaseError):
            raise StoreError(f"memory database {self.path}: {exc}") from None
