"""What a search works with (seams, settings, budget) and what it produces."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from branchwise.agent.config.schema import LimitsSettings, SearchSettings
from branchwise.agent.models.base import Message, Model, Reply
from branchwise.agent.record.events import CheckResult, EventBus, Usage
from branchwise.agent.run.actor import Actor, Outcome
from branchwise.agent.search import value as V
from branchwise.agent.search.tree import Node, SearchTree
from branchwise.tools import ToolContext

Verify = Callable[[], list[CheckResult]]


class Workspace(Protocol):
    """The part of the Workspace seam the search uses."""

    def snapshot(self, label: str = "") -> str: ...
    def restore(self, snapshot_id: str) -> None: ...
    def changed_paths(self, a: str, b: str | None = None) -> list[str]: ...
    def diff(self, a: str, b: str | None = None) -> Any: ...


@dataclass
class SearchContext:
    """Everything a strategy works with; each piece is a seam, so benchmarks can plug in simulations."""

    model: Model
    judge: Model | None
    actor: Actor
    ctx: ToolContext
    workspace: Workspace
    bus: EventBus
    settings: SearchSettings
    limits: LimitsSettings
    verify: Verify | None = None
    tree_path: Path | None = None
    task: str = ""


@dataclass
class SearchResult:
    """How the search ended and which node the workspace was left on."""

    status: str
    summary: str
    chosen: Node | None
    tree: SearchTree
    checks: list[CheckResult] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)


@dataclass
class Pending:
    """A child that has run and has its executable signals, but no value yet."""

    node: Node
    parent: Node
    signals: V.Signals
    outcome: Outcome


class Budget:
    """Model calls, nodes, cost and wall time shared by the whole search."""

    def __init__(self, settings: SearchSettings, limits: LimitsSettings) -> None:
        self.settings, self.limits = settings, limits
        self.calls = 0
        self.nodes = 0
        self.cost_usd = 0.0
        self.usage = Usage()
        self.started = time.monotonic()

    def exhausted(self) -> str | None:
        s, lim = self.settings, self.limits
        if self.calls >= s.max_model_calls:
            return f"model-call budget used ({s.max_model_calls})"
        if self.nodes >= s.max_nodes:
            return f"node budget used ({s.max_nodes})"
        if lim.max_cost_usd and self.cost_usd >= lim.max_cost_usd:
            return f"cost limit reached (${self.cost_usd:.4f})"
        if time.monotonic() - self.started >= lim.max_wall_s:
            return f"wall-time limit reached ({lim.max_wall_s:g} s)"
        return None

    def calls_left(self) -> int:
        return max(0, self.settings.max_model_calls - self.calls)

    def charge(self, reply: Reply, *, calls: int = 1) -> None:
        self.calls += calls
        self.cost_usd += reply.cost_usd
        self.usage = self.usage + reply.usage
