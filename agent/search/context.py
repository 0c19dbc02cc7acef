"""What a search works with (seams, settings, budget) and what it produces."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from branchwise.agent.config.schema import SearchSettings
from branchwise.agent.models.base import Message, Model, Reply
from branchwise.agent.plan.condense import WorkingMemory
from branchwise.agent.record.events import CheckResult, EventBus
from branchwise.agent.run.actor import Acted, Actor
from branchwise.agent.run.budget import BudgetView
from branchwise.agent.run.query import Asker
from branchwise.agent.run.solver import Verify
from branchwise.agent.search import value as V
from branchwise.agent.search.tree import Node, SearchTree
from branchwise.tools import ToolContext


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
    asker: Asker
    actor: Actor
    ctx: ToolContext
    workspace: Workspace
    bus: EventBus
    settings: SearchSettings
    budget: BudgetView
    max_finish_rejections: int = 3
    verify: Verify | None = None
    tree_path: Path | None = None
    task: str = ""
    condense: WorkingMemory | None = None
    """Keeps each proposal's prompt within the context budget (None: no bound)."""
    first_reply: Reply | None = None
    """A reply already given for the root state (the answer to the planner's question): the first proposal."""


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
    outcome: Acted
