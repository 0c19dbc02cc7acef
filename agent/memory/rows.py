"""Rows of the memory database: how a record is stored, indexed and audited inside one open transaction."""

from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from branchwise.agent.errors import UsageError
from branchwise.agent.memory.records import Item, Stats, canonical, parse_record


class UnknownItem(UsageError):
    """No memory item has this id."""


def read_item(conn: sqlite3.Connection, item_id: str) -> Item | None:
    row = conn.execute("SELECT body, stats FROM items WHERE id = ?", (item_id,)).fetchone()
    return row_item(*row) if row else None


class Writer:
    """The open transaction handed to a write function: change records, each change audited."""

    def __init__(self, conn: sqlite3.Connection, actor: str) -> None:
        self.conn, self.actor = conn, actor
        self.txn = uuid.uuid4().hex[:12]
        self.changed: list[Item] = []

    def get(self, item_id: str) -> Item | None:
        return read_item(self.conn, item_id)

    def put(self, item: Item, action: str, reason: str = "") -> Item:
        """Insert or replace a record's content (its statistics stay as stored); returns it sealed."""
        sealed = item.sealed()
        before = self.get(item.id)
        stats = before.stats if before is not None else sealed.stats
        sealed.stats = stats
        row = item_row(sealed)
        if before is None:
            self.conn.execute(
                f"INSERT INTO items({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values())
            )
        else:
            row.pop("created")
            sets = ", ".join(f"{k} = ?" for k in row)
            self.conn.execute(f"UPDATE items SET {sets} WHERE id = ?", [*row.values(), item.id])
        self._index(sealed)
        self._audit(action, item.id, before, sealed, reason)
        self.changed.append(sealed)
        return sealed

    def delete(self, item_id: str, action: str, reason: str = "") -> None:
        before = self.get(item_id)
        if before is None:
            return
        rowid = self.conn.execute("SELECT rowid FROM items WHERE id = ?", (item_id,)).fetchone()[0]
        self.conn.execute("DELETE FROM items_fts WHERE rowid = ?", (rowid,))
        self.conn.execute("DELETE FROM items WHERE id = ?", (item_id,))
        self._audit(action, item_id, before, None, reason)

    def set_stats(self, item_id: str, change: Callable[[Stats], None], reason: str) -> Item:
        """Read, change and write an item's statistics inside this transaction (no update is lost)."""
        item = self.get(item_id)
        if item is None:
            raise UnknownItem(f"no memory item {item_id!r}")
        change(item.stats)
        self.conn.execute("UPDATE items SET stats = ? WHERE id = ?", (item.stats.model_dump_json(), item_id))
        self._audit("feedback", item_id, None, None, reason, sha=item.sha256)
        return item

    def _index(self, item: Item) -> None:
        rowid = self.conn.execute("SELECT rowid FROM items WHERE id = ?", (item.id,)).fetchone()[0]
        self.conn.execute("DELETE FROM items_fts WHERE rowid = ?", (rowid,))
        name, text, trigger = item.search_fields()
        self.conn.execute(
            "INSERT INTO items_fts(rowid, name, text, trigger) VALUES (?, ?, ?, ?)", (rowid, name, text, trigger)
        )

    def _audit(
        self, action: str, item_id: str, before: Item | None, after: Item | None, reason: str, *, sha: str | None = None
    ) -> None:
        self.conn.execute(
            "INSERT INTO audit(ts, txn, actor, action, item_id, before_sha, after_sha, before, after, reason, pid) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                time.time(),
                self.txn,
                self.actor,
                action,
                item_id,
                before.sha256 if before else sha,
                after.sha256 if after else sha,
                record_body(before) if before else None,
                record_body(after) if after else None,
                reason,
                os.getpid(),
            ),
        )


def item_row(item: Item) -> dict[str, Any]:
    now = time.time()
    return {
        "id": item.id,
        "kind": item.kind,
        "status": item.status,
        "repo": item.scope.repo,
        "language": item.scope.language,
        "tool": item.scope.tool,
        "site": item.scope.site,
        "trust": item.provenance.trust,
        "version": item.version,
        "created": item.provenance.created,
        "updated": now,
        "sha256": item.sha256,
        "body": record_body(item),
        "stats": item.stats.model_dump_json(),
    }


def record_body(item: Item) -> str:
    return canonical(item.model_dump(mode="json", exclude={"stats"}))


def row_item(body: str, stats: str) -> Item:
    """The record of one row; a row that does not parse (written around the store) is a CorruptRow."""
    try:
        data = json.loads(body)
        data["stats"] = json.loads(stats)
        return parse_record(data)
    except (ValueError, TypeError) as exc:
        raise CorruptRow(str(exc).splitlines()[0]) from None


def decoded(rows: Iterable[tuple[Any, ...]]) -> Iterator[tuple[Item, tuple[Any, ...]]]:
    """(record, rest of the row) for every row that parses; the others are skipped: a bad row must not stop
    every other record from being read (`memory audit --verify` reports them)."""
    for body, stats, *rest in rows:
        try:
            yield row_item(body, stats), tuple(rest)
        except CorruptRow:
            continue


class CorruptRow(ValueError):
    """A row of the items table is not a valid record."""
