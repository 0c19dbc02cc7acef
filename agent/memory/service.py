"""Long-term memory for one workspace: what the run path calls.

    memory = open_memory(loaded, workspace, bus=bus)          # NoMemory when [memory] enabled = false
    recall = memory.recall(query, budget_tokens=..., purpose="plan" | "act")   # (a) the notes block
    tools = memory.shortcut_tools(recall, calls, snapshots)                    # (b) shortcuts as tools
    memory.feedback(events)                                                    # (d) what retrieved items did
    memory.reflect(events, calls=..., snapshots=..., ctx=..., model=...)       # (c) learn from a verified run

Every read and write is an event on the bus (`memory_retrieved`, `memory_written`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from branchwise.agent.config.layers import LoadedConfig
from branchwise.agent.config.schema import MemorySettings
from branchwise.agent.errors import ConfigError
from branchwise.agent.memory.base import Memory, NoMemory
from branchwise.agent.memory.learn import Learner, Written
from branchwise.agent.memory.lifecycle import Limits, apply_use, record_call, retirement, sweep, uses
from branchwise.agent.memory.records import Item, Scope, Shortcut, Tip, Verification
from branchwise.agent.memory.reflect import FailureNote, ModelReflector, Reflector, TraceReflector, classify_failures
from branchwise.agent.memory.retrieve import Embedder, Recall, TokenCounter, estimate, rank, render
from branchwise.agent.memory.scope import scope_of
from branchwise.agent.memory.shortcut_tool import make_tool
from branchwise.agent.memory.shortcuts import CallRunner, ShortcutRunner, Snapshots
from branchwise.agent.memory.store import MemoryStore, default_path
from branchwise.agent.memory.trace import Trace, trace_of
from branchwise.agent.memory.validate import replay
from branchwise.agent.models.base import Model
from branchwise.agent.record.events import EventBus, MemoryRetrieved, MemoryWritten, ModelReply
from branchwise.tools.base import Tool, ToolContext

# Settings a repository's own config or a task file may not turn on or redirect (they would widen what
# memory accepts or where it lives); they may still turn memory off.
_REPOSITORY_FORBIDDEN = ("path", "allowed_hosts", "embedding_model", "reflector")
_REPOSITORY_ONLY_OFF = ("enabled", "learn", "auto_promote", "shortcut_tools")


@dataclass
class LearnReport:
    """What reflecting on one run did."""

    verification: Verification
    reflector: str = ""
    failures: list[FailureNote] = field(default_factory=list)
    written: list[Written] = field(default_factory=list)
    replies: list[Any] = field(default_factory=list)


class LongTermMemory:
    """The store, seen from one workspace's scope."""

    def __init__(
        self,
        store: MemoryStore,
        scope: Scope,
        settings: MemorySettings | None = None,
        *,
        bus: EventBus | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        self.store, self.scope = store, scope
        self.settings = settings or MemorySettings()
        self.bus, self.embedder = bus, embedder
        self._counted: set[str] = set()  # an item counts as retrieved once per run, however often it is recalled
        s = self.settings
        self.limits = Limits(unused_days=s.retire_unused_days, cap_tips=s.cap_tips, cap_shortcuts=s.cap_shortcuts)

    @classmethod
    def open(
        cls,
        workspace: Path,
        settings: MemorySettings | None = None,
        *,
        bus: EventBus | None = None,
        env: Mapping[str, str] | None = None,
    ) -> LongTermMemory:
        """The user's store, scoped to this workspace; the embedder only if a local model is on disk."""
        settings = settings or MemorySettings()
        path = Path(settings.path).expanduser() if settings.path else default_path(env)
        embedder = None
        if settings.embeddings == "auto":
            from branchwise.agent.memory.embed import local_embedder

            embedder = local_embedder(settings.embedding_model)
        return cls(MemoryStore(path), scope_of(workspace), settings, bus=bus, embedder=embedder)

    def close(self) -> None:
        self.store.close()

    # -- the Memory seam (the planner's repository context uses it today) -----------------------------------

    def retrieve(self, task: str, scope: str) -> tuple[list[str], list[dict[str, object]]]:
        """Tips as text and shortcuts as dicts (name, description, arguments) for the task."""
        recall = self.recall(task, purpose="plan")
        tips = [r.item.text for r in recall.tips if isinstance(r.item, Tip)]
        shortcuts: list[dict[str, object]] = [
            {"name": r.item.tool_name(), "description": r.item.description, "arguments": r.item.arguments}
            for r in recall.shortcuts
            if isinstance(r.item, Shortcut)
        ]
        return tips, shortcuts

    # -- (a) retrieval ------------------------------------------------------------------------------------

    def recall(
        self,
        query: str,
        *,
        budget_tokens: int | None = None,
        purpose: str = "act",
        count: TokenCounter = estimate,
        shortcuts: bool = True,
    ) -> Recall:
        """The notes block for a prompt (query: task + current subgoal + current error), within the budget."""
        budget = self.settings.tip_tokens if budget_tokens is None else budget_tokens
        common = {
            "embedder": self.embedder,
            "allowed_hosts": self.settings.allowed_hosts,
            "on_unsafe": self._quarantine,
        }
        tips = rank(self.store, query, self.scope, kinds=["tip"], limit=self.settings.max_tips, **common)
        found = []
        if shortcuts and self.settings.shortcut_tools and self.settings.max_shortcuts:
            found = rank(self.store, query, self.scope, kinds=["shortcut"], limit=self.settings.max_shortcuts, **common)
        recall = render(tips, found, budget, count)
        fresh = [i for i in recall.ids if i not in self._counted]
        if fresh:
            self._count_retrieved(fresh)
            self._counted.update(fresh)
        self._emit(
            MemoryRetrieved(
                purpose=purpose,
                query=query[:500],
                repo=self.scope.repo,
                ids=recall.ids,
                items=[_entry(r.item, r.score) for r in [*recall.tips, *recall.shortcuts]],
                tokens=recall.tokens,
            )
        )
        return recall

    def _count_retrieved(self, ids: list[str]) -> None:
        def bump(w: Any) -> None:
            for item_id in ids:
                w.set_stats(item_id, _retrieved, "retrieved")

        self.store.write("retrieval", bump)

    def _quarantine(self, item: Item, problem: str) -> None:
        """An item that fails its integrity or content checks on the way out is quarantined, not shown."""
        changed = item.model_copy(update={"status": "quarantined"})
        changed.validation.errors = [problem]
        stored = self.store.put(changed, action="quarantine", actor="retrieval", reason=problem)
        self._emit(
            MemoryWritten(
                op="quarantine",
                id=stored.id,
                kind=stored.kind,
                status=stored.status,
                trust=stored.provenance.trust,
                reason=problem,
            )
        )

    # -- (b) shortcuts as tools ---------------------------------------------------------------------------

    def shortcut_tools(self, recall: Recall, calls: CallRunner, snapshots: Snapshots) -> list[Tool]:
        """One tool per shortcut in the recall; each step goes through `calls` (the session's gate and sandbox)."""
        runner = ShortcutRunner(calls, snapshots, on_outcome=self._on_call)
        self._emit(
            MemoryRetrieved(
                purpose="tools",
                repo=self.scope.repo,
                ids=[r.item.id for r in recall.shortcuts],
                items=[_entry(r.item, r.score) for r in recall.shortcuts],
            )
        )
        tools: dict[str, Tool] = {}
        for r in recall.shortcuts:  # best first: a later shortcut with the same tool name is left out
            if isinstance(r.item, Shortcut) and r.item.tool_name() not in tools:
                tools[r.item.tool_name()] = make_tool(r.item, runner)
        return list(tools.values())

    def _on_call(self, sc: Shortcut, outcome: str) -> None:
        item = self.store.change_stats(
            sc.id, lambda s: record_call(s, outcome), actor="shortcut", reason=f"call: {outcome}"
        )
        why = retirement(item, self.limits)
        if why and item.status == "active":
            stored = self.store.put(
                item.model_copy(update={"status": "deprecated"}), action="deprecate", actor="lifecycle", reason=why
            )
            self._emit(
                MemoryWritten(
                    op="deprecate",
                    id=stored.id,
                    kind="shortcut",
                    status="deprecated",
                    trust=stored.provenance.trust,
                    reason=why,
                )
            )

    # -- (d) feedback -------------------------------------------------------------------------------------

    def feedback(self, events: Iterable[Any] | Trace, verification: Verification | None = None) -> list[Written]:
        """Count what the run's retrieved items did: used, helped, hurt, ignored (knowledge not followed)."""
        trace = events if isinstance(events, Trace) else trace_of(events)
        verification = verification or trace.verification()
        items = [i for i in (self.store.get(x) for x in trace.retrieved) if i is not None]
        now = time.time()
        ignored = {f.item_id for f in classify_failures(trace, items) if f.kind == "knowledge_not_followed"}
        out = []
        for use in uses(trace, items, verification):
            if not (use.used or use.id in ignored):
                continue

            def change(stats: Any, use: Any = use) -> None:
                apply_use(stats, use, now)
                stats.ignored += use.id in ignored and verification == "none"

            item = self.store.change_stats(
                use.id,
                change,
                actor="feedback",
                reason=f"run {trace.run_id}: used={use.used} helped={use.helped} hurt={use.hurt}",
            )
            out.append(
                Written(
                    "feedback",
                    item.id,
                    item.kind,
                    item.status,
                    item.provenance.trust,
                    "helped" if use.helped else "hurt" if use.hurt else "not followed",
                )
            )
        self._emit_all(out)
        return out

    # -- (c) reflection -----------------------------------------------------------------------------------

    def reflect(
        self,
        events: Iterable[Any] | Trace,
        *,
        verification: Verification | None = None,
        calls: CallRunner | None = None,
        snapshots: Snapshots | None = None,
        ctx: ToolContext | None = None,
        model: Model | None = None,
    ) -> LearnReport:
        """Learn from a run: only after external verification (checks passed, or the user accepted). Shortcuts
        are replayed from the run's start snapshot when `calls`, `snapshots` and `ctx` are given."""
        trace = events if isinstance(events, Trace) else trace_of(events)
        verification = verification or trace.verification()
        trace.verified_as = verification
        report = LearnReport(verification)
        if verification == "none" or not self.settings.learn:
            return report
        existing = self._existing(trace)
        reflection = self.reflector(model).reflect(trace, existing, self.scope)
        report.reflector, report.failures = reflection.reflector, reflection.failures
        report.replies = reflection.replies
        name = model.name if model is not None else ""
        for reply in reflection.replies:  # the reflector's model calls belong to the run's record
            self._emit(
                ModelReply(
                    content=reply.content,
                    tool_calls=reply.tool_calls,
                    usage=reply.usage,
                    cost_usd=reply.cost_usd,
                    model=name,
                    purpose="reflect",
                )
            )
        replayer = None
        if calls is not None and snapshots is not None and ctx is not None and trace.start_snapshot:
            runner = ShortcutRunner(calls, snapshots)
            start = trace.start_snapshot
            replayer = lambda sc: replay(sc, runner, snapshots, start, ctx)  # noqa: E731
        learner = Learner(
            self.store,
            self.scope,
            trace,
            verification,
            self.settings.allowed_hosts,
            self.settings.auto_promote,
            replayer,
        )
        report.written = learner.apply(reflection)
        report.written += [
            Written("deprecate" if why != "merged" else "merge", i.id, i.kind, i.status, i.provenance.trust, why)
            for i, why in sweep(self.store, self.scope.repo, self.limits)
        ]
        self._emit_all(report.written)
        return report

    def reflector(self, model: Model | None) -> Reflector:
        """The configured reflector; auto means rules for scripted models (and without a model), else the model."""
        choice = self.settings.reflector
        if choice == "auto":
            choice = "trace" if model is None or getattr(model, "kind", "") == "scripted" else "model"
        if choice == "model" and model is not None:
            return ModelReflector(model)
        return TraceReflector()

    def _existing(self, trace: Trace) -> list[Item]:
        """The items the reflector sees: the top 20 for the task, whatever the run retrieved, and this scope's
        retired shortcuts (so a procedure that did not generalise is not learned again)."""
        top = [r.item for r in rank(self.store, trace.task, self.scope, limit=20)]
        retrieved = [i for i in (self.store.get(x) for x in trace.retrieved) if i is not None]
        retired = self.store.items(repo=self.scope.repo, statuses=["deprecated"], kinds=["shortcut"])
        return list({i.id: i for i in [*retrieved, *top, *retired]}.values())

    # -- events -------------------------------------------------------------------------------------------

    def _emit(self, event: Any) -> None:
        if self.bus is not None:
            self.bus.emit(event)

    def _emit_all(self, written: list[Written]) -> None:
        for w in written:
            self._emit(MemoryWritten(op=w.op, id=w.id, kind=w.kind, status=w.status, trust=w.trust, reason=w.reason))


def _retrieved(stats: Any) -> None:
    stats.retrieved += 1


def _entry(item: Item, score: float) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": item.id, "kind": item.kind, "trust": item.provenance.trust, "score": round(score, 6)}
    if isinstance(item, Shortcut):
        entry["tool"] = item.tool_name()
    return entry


def run_summary(events: Iterable[Any]) -> dict[str, list[Any]]:
    """The `memory` part of a run's final JSON: ids retrieved, shortcut tools called, and every write."""
    retrieved: list[str] = []
    tools: dict[str, str] = {}
    used: list[str] = []
    written: list[dict[str, str]] = []
    for e in events:
        kind = e.get("type") if isinstance(e, dict) else e.type
        data = e if isinstance(e, dict) else e.model_dump(mode="json")
        if kind == "memory_retrieved":
            retrieved += [i for i in data["ids"] if i not in retrieved]
            tools.update({str(i["tool"]): str(i["id"]) for i in data["items"] if "tool" in i})
        elif kind == "tool_call" and data["call"]["name"] in tools and tools[data["call"]["name"]] not in used:
            used.append(tools[data["call"]["name"]])
        elif kind == "memory_written":
            written.append({k: data[k] for k in ("op", "id", "kind", "status", "trust")})
    return {"retrieved": retrieved, "used": used, "written": written}


def check_repository_settings(loaded: LoadedConfig) -> None:
    """A repository's config or a task file may turn memory off, never redirect or widen it."""
    memory = loaded.config.memory
    for key, source in loaded.sources.items():
        if not key.startswith("memory.") or not source.startswith(("project config", "task file")):
            continue
        name = key.split(".")[1]
        if name in _REPOSITORY_FORBIDDEN or (name in _REPOSITORY_ONLY_OFF and getattr(memory, name)):
            raise ConfigError(
                f"{source}: {key} may only be set in your user config, a BRANCHWISE_* variable or "
                "on the command line (a repository may only turn memory off)"
            )


def open_memory(loaded: LoadedConfig, workspace: Path, *, bus: EventBus | None = None) -> Memory:
    """The memory a session should use: LongTermMemory, or NoMemory when [memory] enabled = false."""
    check_repository_settings(loaded)
    if not loaded.config.memory.enabled:
        return NoMemory()
    return LongTermMemory.open(workspace, loaded.config.memory, bus=bus)
