"""The memory store: transactions, hashes, the append-only audit log, scope filters, rollback, export/import."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from branchwise.agent.memory.records import Evidence, Provenance, Scope, Tip, new_id, parse_record
from branchwise.agent.memory.store import MemoryStore, StoreError, UnknownItem, default_path


def tip(text: str, repo: str = "r1", **fields: object) -> Tip:
    return Tip(id=new_id("tip"), text=text, scope=Scope(repo=repo), **fields)  # type: ignore[arg-type]


@pytest.fixture
def store(tmp_path: Path) -> MemoryStore:
    with MemoryStore(tmp_path / "memory.db") as s:
        yield s


def test_default_path_follows_xdg_data_home(tmp_path):
    assert default_path({"XDG_DATA_HOME": str(tmp_path)}) == tmp_path / "branchwise" / "memory.db"
    assert default_path({"HOME": "/home/u"}) == Path("/home/u/.local/share/branchwise/memory.db")


def test_a_record_round_trips_with_its_hash_and_one_audit_entry(store):
    stored = store.put(tip("Run `make test`."), action="add", actor="test")
    assert stored.sha256 == stored.content_hash() and len(stored.sha256) == 64
    again = store.get(stored.id)
    assert again == stored
    (entry,) = store.audit(stored.id)
    assert (entry.action, entry.before_sha, entry.after_sha) == ("add", None, stored.sha256)
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_statistics_change_without_changing_the_hash(store):
    stored = store.put(tip("Run `make test`."), action="add", actor="test")
    store.change_stats(stored.id, lambda s: setattr(s, "used", s.used + 2), actor="t", reason="used")
    after = store.require(stored.id)
    assert after.stats.used == 2 and after.sha256 == stored.sha256
    assert [e.action for e in store.audit(stored.id)] == ["add", "feedback"]


def test_the_audit_log_refuses_updates_and_deletes(store):
    store.put(tip("Run `make test`."), action="add", actor="test")
    for sql in ("UPDATE audit SET reason = 'x'", "DELETE FROM audit"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            store.conn.execute(sql)


def test_a_failing_write_leaves_nothing_behind(store):
    def half_done(w):
        w.put(tip("first"), "add")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        store.write("test", half_done)
    assert store.items() == [] and store.audit() == []


def test_scope_status_and_kind_filters(store):
    mine = store.put(tip("mine", "r1"), action="add", actor="t")
    everywhere = store.put(tip("for any repo", ""), action="add", actor="t")
    store.put(tip("theirs", "r2"), action="add", actor="t")
    assert {i.id for i in store.items(repo="r1")} == {mine.id, everywhere.id}
    assert store.items(repo="r1", statuses=["active"]) == []
    assert len(store.items()) == 3


def test_search_ranks_by_bm25_within_the_scope(store):
    store.put(tip("Run the unit tests with `python3 -m unittest`", "r1", status="active"), action="add", actor="t")
    store.put(tip("Format code with ruff before committing", "r1", status="active"), action="add", actor="t")
    store.put(tip("Run unit tests with pytest", "r2", status="active"), action="add", actor="t")
    hits = store.search('"unit" OR "tests"', repo="r1", statuses=["active"])
    assert [h[0].text for h in hits] == ["Run the unit tests with `python3 -m unittest`"]
    assert hits[0][1] > 0


def test_unknown_ids_are_usage_errors_and_prefixes_resolve(store):
    stored = store.put(tip("x"), action="add", actor="t")
    assert store.require(stored.id[:8]).id == stored.id
    with pytest.raises(UnknownItem):
        store.require("tip-nope")


def test_rollback_of_an_item_restores_its_previous_content(store):
    stored = store.put(tip("old text"), action="add", actor="t")
    store.put(stored.model_copy(update={"text": "new text"}), action="edit", actor="t")
    assert store.rollback(item_id=stored.id) == [stored.id]
    assert store.require(stored.id).text == "old text"
    store.rollback(item_id=stored.id)  # the rollback was logged, so it can be undone as well
    assert store.require(stored.id).text == "new text"


def test_rollback_to_a_sequence_number_undoes_everything_after_it(store):
    first = store.put(tip("one"), action="add", actor="t")
    mark = store.audit()[-1].seq
    store.put(first.model_copy(update={"status": "active"}), action="promote", actor="t")
    second = store.put(tip("two"), action="add", actor="t")
    restored = store.rollback(to_seq=mark)
    assert set(restored) == {first.id, second.id}
    assert store.get(second.id) is None and store.require(first.id).status == "candidate"


def test_export_then_import_into_a_fresh_store_gives_the_same_records_and_hashes(store, tmp_path):
    a = store.put(tip("one", evidence=[Evidence(run_id="r-1", task="t")]), action="add", actor="t")
    store.put(tip("two", provenance=Provenance(trust="verified")), action="add", actor="t")
    store.change_stats(a.id, lambda s: setattr(s, "helped", 3), actor="t", reason="x")
    lines = list(store.export_lines())
    with MemoryStore(tmp_path / "fresh.db") as fresh:
        report = fresh.import_lines(lines)
        assert len(report.added) == 2 and not report.rejected
        assert list(fresh.export_lines()) == lines
        assert {i.id: i.sha256 for i in fresh.items()} == {i.id: i.sha256 for i in store.items()}
        assert fresh.require(a.id).stats.helped == 3
        again = fresh.import_lines(lines)
        assert len(again.unchanged) == 2 and not again.added


def test_import_rejects_a_record_whose_hash_does_not_match(store, tmp_path):
    stored = store.put(tip("honest"), action="add", actor="t")
    line = next(store.export_lines()).replace("honest", "tampered")
    with MemoryStore(tmp_path / "fresh.db") as fresh:
        report = fresh.import_lines([line, "not json"])
        assert fresh.items() == [] and len(report.rejected) == 2
        assert "sha256 does not match" in report.rejected[0]
    assert parse_record(line).id == stored.id


def test_a_store_that_cannot_be_opened_is_an_environment_problem(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreError) as err:
        MemoryStore(blocker / "memory.db")
    assert err.value.exit_code == 4
