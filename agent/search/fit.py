"""Fitting the search to its budget: a strategy that cannot pay for one judged trajectory hands over to one that can.

A tree search earns its keep only once it can follow a branch to a finish: each step of an MCTS trajectory costs
`branching` proposals and (with a judge) one judgement, so a budget below `trajectory_steps × (branching + 1)`
model calls spends itself on the first few levels of the tree and ends with nothing finished (in the simulator,
MCTS at 10 calls solved 0% where the plain loop solved 17%). Below that cost the search falls back to the
cheapest strategy that fits: best-of-n with as many attempts as the budget pays for (`trajectory_steps` calls
each, at least two, else there is nothing to pick from), else the plain loop, which spends every call on
acting. The fall-back is announced with a warning event.
"""

from __future__ import annotations

from dataclasses import dataclass

from branchwise.agent.config.schema import SearchSettings


@dataclass(frozen=True)
class Fit:
    """What to run on a goal: the strategy and its settings, and why it differs from the configured one."""

    strategy: str
    """none (the plain loop), best-of-n or mcts."""
    settings: SearchSettings
    reason: str | None = None
    """Set when the configured strategy does not fit the budget: the warning to show."""


def judged_trajectory_calls(settings: SearchSettings, *, judged: bool) -> int:
    """Model calls one MCTS trajectory of `trajectory_steps` steps costs: the proposals and a judgement per step."""
    return settings.trajectory_steps * (settings.branching + (1 if judged else 0))


def attempt_calls(settings: SearchSettings) -> int:
    """Model calls one best-of-n attempt is expected to need (its finish may add one judgement)."""
    return settings.trajectory_steps


def fit(strategy: str, settings: SearchSettings, calls: int, *, judged: bool) -> Fit:
    """The strategy to run with `calls` model calls left, starting from the configured `strategy`."""
    if strategy == "none" or not settings.fit_budget:
        return Fit(strategy, settings)
    if strategy == "mcts":
        need = judged_trajectory_calls(settings, judged=judged)
        if calls >= need:
            return Fit("mcts", settings)
        why = f"mcts: {calls} model calls are fewer than one judged trajectory costs ({need})"
    else:
        why = ""
    attempts = min(settings.attempts, calls // attempt_calls(settings))
    if strategy == "best-of-n" and attempts >= settings.attempts >= 2:
        return Fit("best-of-n", settings)
    if attempts >= 2:
        if strategy == "best-of-n":
            why = f"best-of-n: {calls} model calls pay for {attempts} of its {settings.attempts} attempts"
        fitted = settings.model_copy(update={"strategy": "best-of-n", "attempts": attempts})
        return Fit("best-of-n", fitted, f"{why}; running best-of-n with {attempts} attempts instead")
    if strategy == "best-of-n" and settings.attempts < 2:
        why = "best-of-n with one attempt is the plain loop without a judge to pay"
    elif strategy == "best-of-n":
        why = f"best-of-n: {calls} model calls pay for fewer than two attempts of {attempt_calls(settings)} calls"
    return Fit("none", settings.model_copy(update={"strategy": "none"}), f"{why}; running the plain loop instead")
