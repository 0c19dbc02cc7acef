"""One meter per run: steps, model calls, nodes, tokens, cost and wall time.

The meter is started once, when the run starts, and subscribed to the run's events: every model reply
(whoever asked: the loop, a search, the planner, the judge) and every finished step is counted where it
is announced, so no tally is copied by hand. Solvers ask it before they act; a subgoal or a search works
within a narrowed view of it (fewer steps, nodes or model calls), never a fresh budget.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from branchwise.agent.errors import BudgetExceeded, Limit
from branchwise.agent.record.events import ModelReply, StepFinished, Usage

UNLIMITED = 10**12


@dataclass(frozen=True)
class Tally:
    """What a run (or a part of it) used."""

    steps: int = 0
    """Model replies whose tool calls were executed (a search node is one)."""
    model_calls: int = 0
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0

    @property
    def tokens(self) -> int:
        return self.usage.prompt + self.usage.completion

    def minus(self, earlier: Tally) -> Tally:
        return Tally(
            steps=self.steps - earlier.steps,
            model_calls=self.model_calls - earlier.model_calls,
            usage=Usage(
                prompt=self.usage.prompt - earlier.usage.prompt,
                completion=self.usage.completion - earlier.usage.completion,
            ),
            cost_usd=self.cost_usd - earlier.cost_usd,
        )


@dataclass(frozen=True)
class Exhausted:
    """Why no more work may be done: which limit, in words, and whether it is the run's own."""

    limit: Limit
    reason: str
    run_level: bool

    def error(self) -> BudgetExceeded:
        return BudgetExceeded(self.reason, limit=self.limit)


@dataclass(frozen=True)
class Caps:
    """Upper bounds on a tally; 0 (cost, tokens) or UNLIMITED mean none."""

    steps: int = UNLIMITED
    model_calls: int = UNLIMITED
    tokens: int = 0
    cost_usd: float = 0.0


class Budget:
    """The run's meter: an event subscriber that tallies usage, and the one place limits are checked."""

    def __init__(self, caps: Caps, wall_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.caps, self.clock = caps, clock
        self.started = clock()
        self.deadline = self.started + wall_s
        self.wall_s = wall_s
        self.tally = Tally()

    def __call__(self, event: Any) -> None:
        if isinstance(event, ModelReply):
            self.tally = replace(
                self.tally,
                model_calls=self.tally.model_calls + 1,
                usage=self.tally.usage + event.usage,
                cost_usd=self.tally.cost_usd + event.cost_usd,
            )
        elif isinstance(event, StepFinished):
            self.tally = replace(self.tally, steps=self.tally.steps + 1)

    def remaining_s(self) -> float:
        return self.deadline - self.clock()

    def exhausted(self) -> Exhausted | None:
        """The run's limit that is reached, if any."""
        return _first_reached(self.tally, self.caps, run_level=True) or self._wall()

    def _wall(self) -> Exhausted | None:
        if self.clock() >= self.deadline:
            return Exhausted("wall", f"wall-time limit reached ({self.wall_s:g} s)", True)
        return None

    def check(self) -> None:
        """Raise BudgetExceeded when a limit of the run is reached."""
        if (reached := self.exhausted()) is not None:
            raise reached.error()

    def view(self, label: str, *, steps: int | None = None, model_calls: int | None = None) -> BudgetView:
        """A narrowed budget for a part of the run (`label` names it in messages), counted from now."""
        return BudgetView(self, label, Caps(steps=steps or UNLIMITED, model_calls=model_calls or UNLIMITED))


class BudgetView:
    """A part of the run's budget: its own caps on what it uses from now on, and the run's limits too."""

    def __init__(self, budget: Budget, label: str, caps: Caps) -> None:
        self.budget, self.label, self.caps = budget, label, caps
        self.start = budget.tally

    @property
    def used(self) -> Tally:
        return self.budget.tally.minus(self.start)

    @property
    def deadline(self) -> float:
        return self.budget.deadline

    def exhausted(self) -> Exhausted | None:
        """The run's limit or this part's own that is reached, if any (run limits first)."""
        reached = self.budget.exhausted()
        if reached is not None:
            return reached
        used = self.used
        if used.steps >= self.caps.steps:
            return Exhausted("steps", f"{self.label}: its {self.caps.steps} steps are used", False)
        if used.model_calls >= self.caps.model_calls:
            return Exhausted("model_calls", f"{self.label}: its {self.caps.model_calls} model calls are used", False)
        return None

    def steps_left(self) -> int:
        run = self.budget.caps.steps - self.budget.tally.steps
        return max(0, min(run, self.caps.steps - self.used.steps))

    def calls_left(self) -> int:
        run = self.budget.caps.model_calls - self.budget.tally.model_calls
        return max(0, min(run, self.caps.model_calls - self.used.model_calls))

    def narrow(self, label: str, *, steps: int | None = None, model_calls: int | None = None) -> BudgetView:
        """A view inside this one (a search inside a subgoal): at most what this one has left."""
        caps = Caps(
            steps=min(self.steps_left(), steps or UNLIMITED),
            model_calls=min(self.calls_left(), model_calls or UNLIMITED),
        )
        return BudgetView(self.budget, label, caps)


_NAMES: dict[Limit, str] = {
    "steps": "step limit reached ({cap} steps)",
    "model_calls": "model-call limit reached ({cap} calls)",
    "tokens": "token limit reached ({cap} tokens)",
    "cost": "cost limit reached (${used:.4f} of ${cap:g})",
}


def _first_reached(used: Tally, caps: Caps, *, run_level: bool) -> Exhausted | None:
    """The first of the run's caps that `used` reaches."""
    checks: list[tuple[Limit, float, float, bool]] = [
        ("steps", used.steps, caps.steps, caps.steps < UNLIMITED),
        ("model_calls", used.model_calls, caps.model_calls, caps.model_calls < UNLIMITED),
        ("tokens", used.tokens, caps.tokens, caps.tokens > 0),
        ("cost", used.cost_usd, caps.cost_usd, caps.cost_usd > 0),
    ]
    for limit, value, cap, active in checks:
        if active and value >= cap:
            text = _NAMES[limit].format(cap=cap if limit == "cost" else int(cap), used=value)
            return Exhausted(limit, text, run_level)
    return None
