"""Feedback and retirement (research note b.2, steps 3-5): what each item did for a run, when it goes.

- Feedback: a retrieved item was used when the run called the shortcut, or ran what the tip puts in
  backticks or touched a path it names; it helped when it was used and the run was verified, it hurt when
  it was used and the run was not (or the shortcut failed).
- Retirement: a shortcut whose calls failed more than 30% of its last 10 (at least 3 calls); a tip that hurt
  more than it helped after 5 uses, or that has not been used for 90 days and never helped.
- A cap per scope (200 tips, 50 shortcuts): the least useful active items are deprecated first.
- Near-duplicate tips (the same words, Jaccard >= 0.8) and shortcuts with the same steps merge into a new
  version that keeps all the evidence and supersedes both.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from branchwise.agent.memory.content import words
from branchwise.agent.memory.records import Item, Shortcut, Stats, Tip, Verification, canonical, new_id
from branchwise.agent.memory.retrieve import utility
from branchwise.agent.memory.rows import Writer
from branchwise.agent.memory.store import MemoryStore
from branchwise.agent.memory.trace import Trace

FAILURES = frozenset({"precondition", "step", "postcondition"})
_TICKED = re.compile(r"`([^`\n]{2,})`")
_PATHISH = re.compile(r"(?<![\w/])([\w.-]+/[\w./<>-]+|[\w-]+\.(?:py|js|ts|rs|go|toml|json|md|cfg|ini|txt|yaml|yml))")
DUPLICATE_JACCARD = 0.8


@dataclass(frozen=True)
class Limits:
    """The retirement rules' numbers (research note b.2, step 5)."""

    window: int = 10
    max_failure_share: float = 0.3
    min_calls: int = 3
    min_uses: int = 5
    unused_days: float = 90.0
    cap_tips: int = 200
    cap_shortcuts: int = 50


@dataclass
class Use:
    """What one retrieved item did in one run."""

    id: str
    used: bool
    helped: bool
    hurt: bool


def uses(trace: Trace, items: list[Item], verification: Verification) -> list[Use]:
    """Attribute the run's outcome to the items it retrieved."""
    verified = verification != "none"
    out = []
    for item in items:
        if isinstance(item, Shortcut):
            calls = [s for s in trace.calls if s.call.name == item.tool_name()]
            used = bool(calls)
            failed = any(not s.ok for s in calls)
            out.append(Use(item.id, used, used and verified and not failed, used and (failed or not verified)))
        else:
            used = tip_used(item, trace)
            out.append(Use(item.id, used, used and verified, used and not verified))
    return out


def tip_used(tip: Tip, trace: Trace) -> bool:
    """The run ran a command the tip recommends (the last one in backticks; a <name> stands for any word) or
    touched a path it names."""
    ticked = _TICKED.findall(tip.text)
    recommended = _template_regex(ticked[-1].strip()) if ticked else None
    paths = [_template_regex(p) for p in _PATHISH.findall(tip.text)]
    for step in trace.calls:
        command = " ".join(str(step.args.get("command", "")).split())
        if recommended is not None and command and recommended.match(command):
            return True
        path = str(step.args.get("path", ""))
        if path and any(p.fullmatch(path) for p in paths):
            return True
    return False


def _template_regex(text: str) -> re.Pattern[str]:
    parts = re.split(r"<[A-Za-z_][A-Za-z0-9_]*>", " ".join(text.split()))
    return re.compile(r"[^\s`]+".join(re.escape(p) for p in parts) + r"(\s|$)")


def apply_use(stats: Stats, use: Use, now: float) -> None:
    if use.used:
        stats.used += 1
        stats.last_used = now
    stats.helped += use.helped
    stats.hurt += use.hurt


def record_call(stats: Stats, outcome: str, window: int = 10) -> None:
    """A shortcut call's outcome, in its counters and its recent window."""
    stats.calls += 1
    stats.ok += outcome == "ok"
    stats.precond_fail += outcome == "precondition"
    stats.step_fail += outcome in ("step", "postcondition")
    stats.recent = [*stats.recent, outcome][-window:]


def retirement(item: Item, limits: Limits, now: float | None = None) -> str | None:
    """Why an active item should be deprecated now, or None."""
    s = item.stats
    if isinstance(item, Shortcut):
        recent = s.recent[-limits.window :]
        failed = sum(o in FAILURES for o in recent)
        if len(recent) >= limits.min_calls and failed / len(recent) > limits.max_failure_share:
            return f"{failed} of its last {len(recent)} calls failed"
        return None
    if s.used >= limits.min_uses and s.hurt > s.helped:
        return f"hurt {s.hurt} times and helped {s.helped} in {s.used} uses"
    idle_days = ((now or time.time()) - (s.last_used or item.provenance.created)) / 86400
    if idle_days > limits.unused_days and s.helped == 0:
        return f"unused for {idle_days:.0f} days and never helped"
    return None


def over_cap(items: list[Item], limits: Limits) -> list[tuple[Item, str]]:
    """Active items past the cap of their kind in one scope, least useful first."""
    out = []
    for kind, cap in (("tip", limits.cap_tips), ("shortcut", limits.cap_shortcuts)):
        active = [i for i in items if i.kind == kind and i.status == "active"]
        if len(active) > cap:
            worst = sorted(active, key=utility)[: len(active) - cap]
            out += [(i, f"evicted: more than {cap} active {kind}s in this repository") for i in worst]
    return out


def equivalent(a: Item, b: Item) -> bool:
    """Near-duplicates: tips with (almost) the same words, shortcuts with the same steps."""
    if a.kind != b.kind:
        return False
    if isinstance(a, Shortcut) and isinstance(b, Shortcut):
        return _steps_key(a) == _steps_key(b)
    assert isinstance(a, Tip) and isinstance(b, Tip)
    wa, wb = set(words(a.text)), set(words(b.text))
    return bool(wa and wb) and len(wa & wb) / len(wa | wb) >= DUPLICATE_JACCARD


def _steps_key(sc: Shortcut) -> str:
    """The action sequence with argument names erased, so two inductions of the same procedure compare equal."""
    text = canonical([s.model_dump(mode="json") for s in sc.atomic_action_sequence])
    return re.sub(r"\{[A-Za-z_][A-Za-z0-9_]*\}", "{}", text)


def shape(sc: Shortcut) -> tuple[tuple[str, str], ...]:
    """Which tools a shortcut calls on which (templated) paths or commands, whatever text its edits carry."""
    return tuple((s.name, str(s.arguments_map.get("path") or s.arguments_map.get("command") or ""))
                 for s in sc.atomic_action_sequence)  # fmt: skip


def merge(w: Writer, keep: Item, other: Item, reason: str) -> Item:
    """One new version holding both items' evidence and statistics; both old records are superseded."""
    base = max((keep, other), key=lambda i: (len(i.run_ids()), i.stats.helped, len(i.summary())))
    merged = base.model_copy(deep=True)
    merged.id = new_id(base.kind)
    merged.version = max(keep.version, other.version) + 1
    merged.supersedes = [keep.id, other.id]
    runs = {e.run_id for e in base.evidence}
    merged.evidence = [*base.evidence, *(e for e in (keep.evidence + other.evidence) if e.run_id not in runs)]
    merged.evidence = list({e.run_id: e for e in merged.evidence}.values())
    merged.stats = _sum_stats(keep.stats, other.stats)
    merged.status = "active" if "active" in (keep.status, other.status) else keep.status
    for old in (keep, other):
        w.put(old.model_copy(update={"status": "superseded"}), "supersede", f"merged into {merged.id}")
    return w.put(merged, "merge", reason)


def _sum_stats(a: Stats, b: Stats) -> Stats:
    total = Stats()
    for name in ("retrieved", "used", "helped", "hurt", "ignored", "calls", "ok", "precond_fail", "step_fail"):
        setattr(total, name, getattr(a, name) + getattr(b, name))
    total.last_used = max(filter(None, [a.last_used, b.last_used]), default=None)
    total.recent = (a.recent + b.recent)[-10:]
    return total


def sweep(store: MemoryStore, repo: str, limits: Limits, now: float | None = None) -> list[tuple[Item, str]]:
    """Merge active near-duplicates, deprecate what the rules retire and what exceeds the cap; returns the
    changed items with why."""

    def run(w: Writer) -> list[tuple[Item, str]]:
        changes: list[tuple[Item, str]] = []
        active = [i for i in store.items(repo=repo, statuses=["active"]) if i.scope.repo == repo]
        gone: set[str] = set()
        for i, a in enumerate(active):
            for b in active[i + 1 :]:
                if a.id not in gone and b.id not in gone and equivalent(a, b):
                    changes.append((merge(w, a, b, f"near-duplicates {a.id} and {b.id}"), "merged"))
                    gone |= {a.id, b.id}
        current = [i for i in active if i.id not in gone] + [c for c, _ in changes]
        for item in current:
            why = retirement(item, limits, now)
            if why:
                changes.append((w.put(item.model_copy(update={"status": "deprecated"}), "deprecate", why), why))
                gone.add(item.id)
        rest = [i for i in current if i.id not in gone]
        for item, why in over_cap(rest, limits):
            changes.append((w.put(item.model_copy(update={"status": "deprecated"}), "deprecate", why), why))
        return changes

    return store.write("lifecycle", run)
