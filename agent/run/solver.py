"""The Solver seam: work on one goal (a subgoal of the plan, or the whole task) until it is done, it fails, or
its budget is used.

Two implementations: the plain loop (`agent/run/loop.py`) and the tree searches (`agent/search/solver.py`). The
driver (`agent/run/driver.py`) gives each subgoal to the configured solver; without a planner the whole task is
a plan of one subgoal, so there is one run path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from branchwise.agent.errors import Limit
from branchwise.agent.models.base import Message, Reply
from branchwise.agent.record.events import CheckResult
from branchwise.agent.run.budget import BudgetView

Verify = Callable[[list[Message]], list[CheckResult]]
"""Runs the goal's checks now (its done-check, or the task's checks), given the conversation that got here
(a done-question asks the judge about it)."""


@dataclass
class Goal:
    """What a solver works on."""

    index: int
    title: str
    opening: list[Message]
    """The pinned start of the conversation: system prompt (with the plan), the task, the subgoal."""
    task: str
    """The task as the judge should see it (the task, and the current subgoal when there is a plan)."""
    check_each_step: bool = False
    """Run `verify` after every step and stop as soon as it passes (a subgoal with a done-check command)."""
    replan: bool = False
    """Whether a stalled loop may give up for a re-plan (only when there is a planner to ask)."""
    tree_path: Path | None = None
    """Where a search saves its tree."""
    first_reply: Reply | None = None
    """A reply the model already gave for this goal (instead of a plan): the first step, not asked again."""


OutcomeStatus = Literal["done", "failed", "stuck", "exhausted"]


@dataclass
class Outcome:
    """How a solver ended on a goal."""

    status: OutcomeStatus
    """done: verified (or nothing to verify); failed: it cannot be done this way; stuck: no progress, a
    re-plan may help; exhausted: the goal's own budget is used (the run's own limits raise BudgetExceeded)."""
    summary: str = ""
    reason: str = ""
    messages: list[Message] = field(default_factory=list)
    checks: list[CheckResult] | None = None
    looping: bool = False
    limit: Limit | None = None
    """exhausted: which of the goal's own caps was used up."""


class Solver(Protocol):
    """Works on one goal with the session's tools, within a budget."""

    name: str

    def solve(self, goal: Goal, verify: Verify | None, budget: BudgetView) -> Outcome:
        """Work until done, failed, stuck or out of budget; raise BudgetExceeded when a run limit is reached."""
        ...
