"""`branchwise memory ...`: look at, search, promote, retire, edit, export, import, audit and roll back
long-term memory (tips and shortcuts). Listings are scoped to the current repository unless --all-repos."""

from __future__ import annotations

import getpass
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from branchwise.agent.config.layers import load_config
from branchwise.agent.errors import BranchwiseError, UsageError
from branchwise.agent.memory.records import Item, Shortcut, Tip
from branchwise.agent.memory.service import LongTermMemory, check_repository_settings
from branchwise.agent.memory.validate import rules_check
from branchwise.cli.common import workspace_for
from branchwise.cli.render.output import Output

SHOWN_BY_DEFAULT = ("active", "candidate", "quarantined")


def _open(cd: Path | None) -> LongTermMemory:
    workspace = workspace_for(cd)
    loaded = load_config(workspace)
    check_repository_settings(loaded)
    settings = loaded.config.memory.model_copy(update={"embeddings": "off"})  # listing needs no model
    return LongTermMemory.open(workspace, settings)


def guarded(fn: Callable[[LongTermMemory, Output], int], cd: Path | None, out: Output | None = None) -> int:
    """Open the store, run one subcommand, close; user errors are one line with their exit code."""
    out = out or Output()
    try:
        memory = _open(cd)
    except BranchwiseError as err:
        out.error(str(err))
        return err.exit_code
    try:
        return fn(memory, out)
    except BranchwiseError as err:
        out.error(str(err))
        return err.exit_code
    finally:
        memory.close()


def list_items(memory: LongTermMemory, *, statuses: list[str] | None, kind: str | None, all_repos: bool) -> list[Item]:
    items = memory.store.items(repo=None if all_repos else memory.scope.repo)
    if statuses is not None:
        items = [i for i in items if i.status in statuses]
    return [i for i in items if kind is None or i.kind == kind]


def record_json(item: Item) -> dict[str, Any]:
    data = item.model_dump(mode="json")
    data["untrusted"] = item.provenance.trust == "untrusted"
    return data


def trust_label(item: Item) -> str:
    """The trust column: an untrusted item is marked so nobody takes it for a checked one."""
    if item.provenance.trust == "untrusted":
        return "UNTRUSTED" + (" (approved)" if item.provenance.approved_by else "")
    return item.provenance.trust


def provenance_label(item: Item) -> str:
    runs = [e.run_id for e in item.evidence]
    source = item.provenance.source + (f"/{item.provenance.reflector}" if item.provenance.reflector else "")
    return f"{source} {runs[0]}{f' +{len(runs) - 1}' if len(runs) > 1 else ''}" if runs else source


def print_table(out: Output, items: list[Item]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("id", "kind", "status", "trust", "used", "from", "text"):
        table.add_column(column, no_wrap=column != "text", overflow="fold" if column == "text" else "ellipsis")
    for i in items:
        used = f"{i.stats.helped}/{i.stats.used}" + (f" hurt {i.stats.hurt}" if i.stats.hurt else "")
        table.add_row(i.id, i.kind, i.status, trust_label(i), used, provenance_label(i), i.summary()[:160])
    Console(file=out.out, width=200, highlight=False).print(table)


def list_command(*, as_json: bool, all_statuses: bool, status: str | None, kind: str | None, all_repos: bool,
                 cd: Path | None, out: Output | None = None) -> int:  # fmt: skip
    """List this repository's items (active, candidates, quarantined; --all adds retired and superseded)."""

    def run(memory: LongTermMemory, out: Output) -> int:
        statuses = [status] if status else None if all_statuses else list(SHOWN_BY_DEFAULT)
        items = list_items(memory, statuses=statuses, kind=kind, all_repos=all_repos)
        if as_json:
            out.data([record_json(i) for i in items])
        elif not items:
            out.info(f"no memory items for this repository yet ({memory.store.path})")
        else:
            print_table(out, items)
            if any(i.provenance.trust == "untrusted" for i in items):
                out.info("UNTRUSTED: derived from content nobody vouched for; never used until you promote it.")
        return 0

    return guarded(run, cd, out)


def show_command(item_id: str, *, as_json: bool, cd: Path | None, out: Output | None = None) -> int:
    def run(memory: LongTermMemory, out: Output) -> int:
        item = memory.store.require(item_id)
        if as_json:
            out.data(record_json(item))
            return 0
        out.info(f"{item.id}  {item.kind} v{item.version}  {item.status}  trust: {trust_label(item)}")
        out.info(_body(item))
        p = item.provenance
        out.info(f"provenance: {provenance_label(item)}; created {_when(p.created)}"
                 + (f"; approved by {p.approved_by}" if p.approved_by else ""))  # fmt: skip
        for source in p.untrusted_sources:
            out.info(f"  derived from untrusted content: {source}")
        for e in item.evidence:
            out.info(f"evidence: run {e.run_id} ({e.outcome}): {e.task}")
        s = item.stats
        out.info(f"stats: retrieved {s.retrieved}, used {s.used}, helped {s.helped}, hurt {s.hurt}"
                 + (f", calls {s.calls} (ok {s.ok})" if isinstance(item, Shortcut) else ""))  # fmt: skip
        if item.validation.errors or item.validation.note:
            out.info(f"validation: {'; '.join(item.validation.errors) or item.validation.note}")
        if item.supersedes:
            out.info(f"supersedes: {', '.join(item.supersedes)}")
        out.info(f"sha256: {item.sha256}")
        return 0

    return guarded(run, cd, out)


def _body(item: Item) -> str:
    if isinstance(item, Tip):
        return f"{item.text}\n  (when: {item.trigger}; category: {item.category})"
    props = item.arguments.get("properties", {})
    lines = [f"{item.tool_name()}({', '.join(props)}): {item.description}",
             f"  precondition: {item.precondition.nl or '-'}", f"  side effects: {item.side_effects}"]  # fmt: skip
    lines += [f"  step {n}: {s.name} {s.arguments_map}" for n, s in enumerate(item.atomic_action_sequence, 1)]
    lines += [f"  postcondition: {c.type} {c.command or c.path or ''}" for c in item.postcondition.checks]
    return "\n".join(lines)


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def search_command(query: str, *, as_json: bool, cd: Path | None, out: Output | None = None) -> int:
    """Rank this repository's active items for a query, as a run would see them."""

    def run(memory: LongTermMemory, out: Output) -> int:
        from branchwise.agent.memory.retrieve import rank

        ranked = rank(memory.store, query, memory.scope, limit=20, allowed_hosts=memory.settings.allowed_hosts)
        if as_json:
            out.data([{"score": round(r.score, 6), "bm25": round(r.bm25, 4), **record_json(r.item)} for r in ranked])
        elif not ranked:
            out.info("nothing active matches")
        else:
            print_table(out, [r.item for r in ranked])
        return 0

    return guarded(run, cd, out)


def promote_command(item_id: str, *, force: bool, cd: Path | None, out: Output | None = None) -> int:
    """Make an item active by hand: the person's signature (needed for untrusted items and external effects)."""

    def run(memory: LongTermMemory, out: Output) -> int:
        item = memory.store.require(item_id)
        problems = rules_check(item, memory.settings.allowed_hosts)
        if problems and not force:
            raise UsageError(f"{item.id} breaks the memory rules ({'; '.join(problems)}); --force to promote anyway")
        changed = item.model_copy(deep=True, update={"status": "active"})
        changed.provenance.approved_by = getpass.getuser()
        stored = memory.store.put(changed, action="promote", actor="user", reason="promoted by hand")
        out.info(f"{stored.id} is active (trust {trust_label(stored)})")
        return 0

    return guarded(run, cd, out)


def retire_command(item_id: str, *, reason: str, cd: Path | None, out: Output | None = None) -> int:
    def run(memory: LongTermMemory, out: Output) -> int:
        item = memory.store.require(item_id)
        memory.store.put(item.model_copy(update={"status": "deprecated"}), action="deprecate", actor="user",
                         reason=reason or "retired by hand")  # fmt: skip
        out.info(f"{item.id} is retired (deprecated); `branchwise memory rollback {item.id}` undoes it")
        return 0

    return guarded(run, cd, out)


def edit_command(item_id: str, *, changes: dict[str, str], cd: Path | None, out: Output | None = None) -> int:
    """A new version with the given fields changed; the old one is kept (superseded) for rollback."""

    def run(memory: LongTermMemory, out: Output) -> int:
        from branchwise.agent.memory.records import new_id, parse_record

        old = memory.store.require(item_id)
        fields = {k: v for k, v in changes.items() if v is not None}
        if not fields:
            raise UsageError("nothing to change: give --text, --trigger, --category or --description")
        data = old.model_dump(mode="json") | fields
        data.update(id=new_id(old.kind), version=old.version + 1, supersedes=[old.id], sha256="")
        new = parse_record(data)
        new.provenance.approved_by = getpass.getuser()
        problems = rules_check(new, memory.settings.allowed_hosts)
        if problems:
            raise UsageError(f"the edited item breaks the memory rules: {'; '.join(problems)}")

        def write(w: Any) -> Item:
            w.put(old.model_copy(update={"status": "superseded"}), "supersede", f"edited into {new.id}")
            return w.put(new, "edit", "edited by hand")

        stored = memory.store.write("user", write)
        out.info(f"{stored.id} (v{stored.version}) replaces {old.id}")
        return 0

    return guarded(run, cd, out)


def export_command(path: Path | None, *, cd: Path | None, out: Output | None = None) -> int:
    def run(memory: LongTermMemory, out: Output) -> int:
        lines = [line + "\n" for line in memory.store.export_lines()]
        if path is None or str(path) == "-":
            out.out.writelines(lines)
        else:
            path.write_text("".join(lines), encoding="utf-8")
            print(f"exported {len(lines)} record(s) to {path}", file=out.err)
        return 0

    return guarded(run, cd, out)


def import_command(path: Path, *, as_candidates: bool, cd: Path | None, out: Output | None = None) -> int:
    """Add records from a JSONL export; their hashes must match. --as-candidates marks them untrusted candidates."""

    def run(memory: LongTermMemory, out: Output) -> int:
        from branchwise.agent.memory.records import parse_record

        try:
            text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"{path}: cannot read: {exc.strerror}") from None
        lines = text.splitlines()
        if as_candidates:
            lines = [_as_candidate(parse_record(line)) for line in lines if line.strip()]
        report = memory.store.import_lines(lines)
        out.info(f"imported {len(report.added)}, already present {len(report.unchanged)}, "
                 f"conflicting ids {len(report.conflicts)}, rejected {len(report.rejected)}")  # fmt: skip
        for problem in report.rejected[:20]:
            out.warn(problem)
        return 1 if report.rejected else 0

    return guarded(run, cd, out)


def _as_candidate(item: Item) -> str:
    from branchwise.agent.memory.records import canonical

    changed = item.model_copy(deep=True, update={"status": "candidate"})
    changed.provenance.trust, changed.provenance.derived_from_untrusted_input = "untrusted", True
    changed.provenance.untrusted_sources = ["imported from a file"]
    changed.provenance.source, changed.provenance.approved_by = "import", None
    return canonical(changed.sealed().model_dump(mode="json"))


def audit_command(item_id: str | None, *, limit: int, verify: bool, as_json: bool, cd: Path | None,
                  out: Output | None = None) -> int:  # fmt: skip
    """The audit log (newest last); --verify also checks every record's hash and audit trail."""

    def run(memory: LongTermMemory, out: Output) -> int:
        target = memory.store.require(item_id).id if item_id else None
        entries = memory.store.audit(target, limit=limit)
        problems = _verify(memory) if verify else []
        if as_json:
            out.data({"entries": [e.as_dict() for e in entries], "problems": problems})
        else:
            for e in entries:
                sha = (e.after_sha or e.before_sha or "")[:10]
                out.info(f"#{e.seq} {_when(e.ts)} {e.actor:10} {e.action:11} {e.item_id} {sha} {e.reason}")
            for p in problems:
                out.warn(p)
            if verify and not problems:
                out.info(f"integrity: ok ({memory.store.integrity()}); every record matches its hash and audit trail")
        return 1 if problems else 0

    return guarded(run, cd, out)


def _verify(memory: LongTermMemory) -> list[str]:
    from branchwise.agent.memory.rows import CorruptRow, row_item

    corrupt = []
    for item_id, body, stats in memory.store.conn.execute("SELECT id, body, stats FROM items"):
        try:
            row_item(body, stats)
        except CorruptRow as exc:
            corrupt.append(f"{item_id}: not a valid record ({exc})")
    items = memory.store.items()
    audited = memory.store.last_audited(i.id for i in items)
    problems = [f"{i.id}: sha256 does not match its content" for i in items if i.sha256 != i.content_hash()]
    problems += [f"{i.id}: not written through branchwise (no audit entry for its content)"
                 for i in items if audited.get(i.id) != i.sha256]  # fmt: skip
    check = memory.store.integrity()
    return corrupt + problems + ([f"sqlite integrity_check: {check}"] if check != "ok" else [])


def rollback_command(item_id: str | None, *, to: int | None, cd: Path | None, out: Output | None = None) -> int:
    def run(memory: LongTermMemory, out: Output) -> int:
        restored = memory.store.rollback(to_seq=to, item_id=item_id)
        out.info(f"rolled back {len(restored)} item(s): {', '.join(restored) or '-'}")
        return 0

    return guarded(run, cd, out)


def stats_command(*, as_json: bool, cd: Path | None, out: Output | None = None) -> int:
    def run(memory: LongTermMemory, out: Output) -> int:
        items = memory.store.items(repo=memory.scope.repo)
        totals = {k: sum(getattr(i.stats, k) for i in items) for k in ("retrieved", "used", "helped", "hurt")}
        data = {"path": str(memory.store.path), "repo": memory.scope.repo, "counts": memory.store.counts(),
                "this_repo": totals, "integrity": memory.store.integrity()}  # fmt: skip
        if as_json:
            out.data(data)
            return 0
        out.info(f"memory: {data['path']} (integrity {data['integrity']})")
        for kind, by_status in sorted(data["counts"].items()):
            out.info(f"  {kind}s: " + ", ".join(f"{n} {s}" for s, n in sorted(by_status.items())))
        out.info("  this repository: " + ", ".join(f"{k} {v}" for k, v in totals.items()))
        return 0

    return guarded(run, cd, out)
