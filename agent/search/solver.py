"""The search as a Solver: best-of-n or mcts over one goal, from the workspace as it is now.

Before it starts, the search is fitted to its budget (agent/search/fit.py): a budget that cannot pay for one
judged trajectory runs the cheapest strategy that fits (fewer best-of-n attempts, or the plain loop) and says so
in a warning event, so that a search is never worse than no search at a small budget.
"""

from __future__ import annotations

from branchwise.agent.record.events import Warning
from branchwise.agent.run.budget import BudgetView
from branchwise.agent.run.context import RunContext
from branchwise.agent.run.loop import LoopSolver
from branchwise.agent.run.solver import Goal, Outcome, Verify
from branchwise.agent.search.best_of_n import BestOfN
from branchwise.agent.search.context import SearchContext
from branchwise.agent.search.engine import Search
from branchwise.agent.search.fit import fit
from branchwise.agent.search.mcts import MCTS

STRATEGIES: dict[str, type[Search]] = {"best-of-n": BestOfN, "mcts": MCTS}


class SearchSolver:
    """Explores branches from snapshots, verifies, and leaves the workspace on the chosen one."""

    def __init__(self, rc: RunContext, strategy: str) -> None:
        self.rc, self.name = rc, strategy
        self.search: Search | None = None
        """The last goal's search (None when it fell back to the plain loop)."""

    def solve(self, goal: Goal, verify: Verify | None, budget: BudgetView) -> Outcome:
        rc = self.rc
        fitted = fit(self.name, rc.config.search, budget.calls_left(), judged=rc.judge is not None)
        if fitted.reason:
            rc.bus.emit(Warning(message=f"search fitted to its budget: {fitted.reason}"))
        self.search = None
        if fitted.strategy == "none":
            return LoopSolver(rc).solve(goal, verify, budget)
        name = fitted.strategy
        sc = SearchContext(
            model=rc.model,
            judge=rc.judge,
            asker=rc.asker,
            actor=rc.actor,
            ctx=rc.tools,
            workspace=rc.workspace,
            bus=rc.bus,
            settings=fitted.settings,
            budget=budget,
            max_finish_rejections=rc.config.limits.max_finish_rejections,
            verify=verify,
            tree_path=goal.tree_path,
            task=goal.task,
            condense=rc.condense,
            first_reply=goal.first_reply,
        )
        search = self.search = STRATEGIES[name](sc)
        result = search.run(list(goal.opening))
        if search.exhausted is not None and search.exhausted.run_level and result.status != "completed":
            raise search.exhausted.error()
        looping = any(n.signals.get("repeated") for n in result.tree.path(result.chosen.id)) if result.chosen else False
        if result.status == "completed":
            return Outcome("done", summary=result.summary, messages=result.messages, checks=result.checks,
                           looping=looping, reason=f"the {name} search verified it")  # fmt: skip
        status = "exhausted" if result.status == "budget_exceeded" else "failed"
        limit = search.exhausted.limit if search.exhausted else None
        reason = f"the {name} search ended {result.status}: {result.summary}"
        return Outcome(status, reason=reason, messages=result.messages, checks=result.checks, limit=limit)
