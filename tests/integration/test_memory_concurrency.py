"""Two processes writing to and retrieving from one memory database at once lose no record and corrupt nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from branchwise.agent.memory.records import Scope, Tip
from branchwise.agent.memory.store import MemoryStore

SECONDS = 30
WORKER = r"""
import json, sys, time
from pathlib import Path
from branchwise.agent.memory.records import Provenance, Scope, Tip
from branchwise.agent.memory.retrieve import rank
from branchwise.agent.memory.store import MemoryStore

path, name, seconds = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])
scope = Scope(repo="shared")
written, bumps, reads = [], 0, 0
with MemoryStore(path) as store:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        item = Tip(id=f"tip-{name}-{len(written)}", text=f"lesson {len(written)} from {name} about running tests",
                   scope=scope, status="active", provenance=Provenance(trust="verified"))
        store.put(item, action="add", actor=name)
        written.append(item.id)
        store.change_stats("tip-shared", lambda s: setattr(s, "used", s.used + 1), actor=name, reason="bump")
        bumps += 1
        reads += len(rank(store, "running tests lesson", scope, limit=5))
        if len(written) % 25 == 0:
            assert sum(1 for _ in store.export_lines()) >= len(written)
print(json.dumps({"written": written, "bumps": bumps, "reads": reads}))
"""


@pytest.mark.slow
@pytest.mark.timeout(SECONDS * 4)
def test_two_processes_writing_and_retrieving_at_once_lose_nothing(tmp_path: Path):
    db = tmp_path / "memory.db"
    with MemoryStore(db) as store:
        store.put(Tip(id="tip-shared", text="shared counter", scope=Scope(repo="shared")), action="add", actor="t")
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(db), name, str(SECONDS)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=SECONDS * 3)
        assert worker.returncode == 0, err[-2000:]
        results.append(json.loads(out))
    written = [i for r in results for i in r["written"]]
    assert min(len(r["written"]) for r in results) > 10 and all(r["reads"] > 0 for r in results)
    with MemoryStore(db) as store:
        assert store.integrity() == "ok"
        assert {i.id for i in store.items()} == {"tip-shared", *written}
        assert store.require("tip-shared").stats.used == sum(r["bumps"] for r in results)  # no lost update
        assert all(i.sha256 == i.content_hash() for i in store.items())
        assert len(store.audit()) == 1 + len(written) + sum(r["bumps"] for r in results)
