"""Applying a reflection to the store: each operation becomes audited writes, each new item a candidate that
validation may promote.

An added item first gets its evidence (the run) and its provenance (did it copy anything the run read?). If
memory already holds an equivalent item, the new run corroborates that one instead of adding a duplicate.
An update writes a new version that supersedes the old record, which is kept for rollback.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from branchwise.agent.memory.content import Provenance as Sources
from branchwise.agent.memory.lifecycle import equivalent
from branchwise.agent.memory.records import Evidence, Item, Scope, Shortcut, Stats, Tip, Verification, new_id
from branchwise.agent.memory.reflect import AddItem, DeprecateItem, EditOp, Emphasize, Reflection, UpdateItem
from branchwise.agent.memory.rows import Writer
from branchwise.agent.memory.store import MemoryStore
from branchwise.agent.memory.trace import Trace
from branchwise.agent.memory.validate import item_texts, judge

Replayer = Callable[[Shortcut], tuple[bool, str] | None]
"""Replays a shortcut from the run's start state: (passed, what it said), or None when it cannot be replayed."""
_OUTCOME = {"checks": "verified_success", "accepted": "accepted", "none": "failed"}


@dataclass
class Written:
    """One change made to memory, for events and the run's final report."""

    op: str
    id: str
    kind: str
    status: str
    trust: str
    reason: str = ""


@dataclass
class Learner:
    """Writes one run's reflection into the store."""

    store: MemoryStore
    scope: Scope
    trace: Trace
    verification: Verification
    allowed_hosts: Sequence[str] = ()
    auto_promote: bool = True
    replay: Replayer | None = None
    written: list[Written] = field(default_factory=list)

    def apply(self, reflection: Reflection) -> list[Written]:
        sources = self.trace.provenance()
        shortcuts = 0
        for op in reflection.ops:
            if isinstance(op, AddItem) and isinstance(op.item, Shortcut):
                shortcuts += 1
                if shortcuts > 1:
                    continue  # at most one shortcut per run
            self.apply_op(op, sources)
        return self.written

    def apply_op(self, op: EditOp, sources: Sources) -> None:
        if isinstance(op, AddItem):
            self.add(op.item, sources)
        elif isinstance(op, UpdateItem):
            self.update(op, sources)
        elif isinstance(op, DeprecateItem):
            self._status(op.id, "deprecated", "deprecate", op.reason)
        elif isinstance(op, Emphasize) and self.store.get(op.id) is not None:
            item = self.store.change_stats(op.id, _ignored, actor="reflector", reason=op.reason)
            self._note("emphasize", item, op.reason)

    def evidence(self) -> Evidence:
        task = next((ln.strip() for ln in self.trace.task.strip().splitlines() if ln.strip()), "")[:200]
        return Evidence(
            run_id=self.trace.run_id, task=task, trace_ref=self.trace.trace_ref(), outcome=_OUTCOME[self.verification]
        )

    def add(self, item: Item, sources: Sources) -> None:
        item = item.model_copy(deep=True)
        item.evidence = [self.evidence()]
        item.status = "candidate"
        _mark_sources(item, sources)
        same = self._equivalent(item)
        if same is not None:
            self.corroborate(same, item)
            return
        stored = self.store.put(item, action="add", actor="reflector", reason=f"from run {self.trace.run_id}")
        self._note("add", stored, "candidate from a verified run")
        self.validate(stored)

    def corroborate(self, have: Item, new: Item) -> None:
        """Another run produced an equivalent item: it becomes evidence for the one memory holds."""
        if self.trace.run_id in have.run_ids():
            return
        updated = have.model_copy(deep=True)
        updated.evidence = [*have.evidence, *new.evidence]
        if new.provenance.derived_from_untrusted_input and not have.provenance.derived_from_untrusted_input:
            updated.provenance.untrusted_sources = list(new.provenance.untrusted_sources)  # shown, not inherited
        stored = self.store.put(
            updated, action="corroborate", actor="reflector", reason=f"confirmed by run {self.trace.run_id}"
        )
        self._note("corroborate", stored, f"confirmed by run {self.trace.run_id}")
        if stored.status == "candidate":
            self.validate(stored)

    def update(self, op: UpdateItem, sources: Sources) -> None:
        old = self.store.get(op.id)
        if old is None or old.status in ("superseded", "quarantined"):
            return
        new = old.model_copy(deep=True, update=op.changes)
        new.id, new.version, new.supersedes = new_id(old.kind), old.version + 1, [old.id]
        new.evidence, new.status = [*old.evidence, self.evidence()], "candidate"
        new.provenance.derived_from_untrusted_input, new.provenance.untrusted_sources = False, []
        _mark_sources(new, sources)
        new = type(new).model_validate(new.model_dump())  # the changes are checked like a new record

        def supersede(w: Writer) -> Item:
            w.put(old.model_copy(update={"status": "superseded"}), "supersede", f"replaced by {new.id}: {op.reason}")
            return w.put(new, "update", op.reason)

        stored = self.store.write("reflector", supersede)
        self._note("update", stored, f"new version of {old.id}: {op.reason}")
        self.validate(stored)

    def validate(self, item: Item) -> None:
        """Judge a candidate now: quarantine it, keep it waiting, or promote it."""
        verification = _best(item) if item.evidence else self.verification
        replayed: bool | None = None
        if isinstance(item, Shortcut) and self.replay is not None:
            result = self.replay(item)
            replayed = None if result is None else result[0]
            if result is not None:
                item.validation.replay = "passed" if result[0] else "failed"
                item.validation.note = result[1][-200:]
        verdict = judge(
            item,
            verification=verification,
            replay_passed=replayed,
            auto_promote=self.auto_promote,
            allowed_hosts=self.allowed_hosts,
        )
        item.validation.checked, item.validation.errors = time.time(), verdict.errors
        if verdict.note:
            item.validation.note = verdict.note if not item.validation.note else item.validation.note
        changed = item.model_copy(update={"status": verdict.status})
        changed.provenance.trust = verdict.trust
        action = {"active": "promote", "quarantined": "quarantine"}.get(verdict.status, "validate")
        stored = self.store.put(changed, action=action, actor="validator", reason=verdict.note)
        self._note(action, stored, "; ".join(verdict.errors) or verdict.note)

    def _equivalent(self, item: Item) -> Item | None:
        pool = self.store.items(repo=self.scope.repo, statuses=["active", "candidate"], kinds=[item.kind])
        return next((have for have in pool if have.scope.repo == item.scope.repo and equivalent(have, item)), None)

    def _status(self, item_id: str, status: str, action: str, reason: str) -> None:
        item = self.store.get(item_id)
        if item is None or item.status == status:
            return
        stored = self.store.put(
            item.model_copy(update={"status": status}), action=action, actor="reflector", reason=reason
        )
        self._note(action, stored, reason)

    def _note(self, op: str, item: Item, reason: str) -> None:
        self.written.append(Written(op, item.id, item.kind, item.status, item.provenance.trust, reason))


def _mark_sources(item: Item, sources: Sources) -> None:
    """Flag an item that shares content with what the run read (prose runs count for tips only)."""
    prose, contents = item_texts(item)
    found = sources.sources_of(prose, prose=isinstance(item, Tip)) + sources.sources_of(contents, prose=False)
    if found:
        item.provenance.derived_from_untrusted_input = True
        item.provenance.trust = "untrusted"
        item.provenance.untrusted_sources = found[:5]


def _best(item: Item) -> Verification:
    outcomes = {e.outcome for e in item.evidence}
    return "checks" if "verified_success" in outcomes else "accepted" if "accepted" in outcomes else "none"


def _ignored(stats: Stats) -> None:
    stats.ignored += 1
