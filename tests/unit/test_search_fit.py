"""Fitting a search to its budget: below one judged trajectory, the cheapest strategy that fits."""

from __future__ import annotations

import pytest

from branchwise.agent.config.schema import SearchSettings
from branchwise.agent.search.fit import fit, judged_trajectory_calls


def settings(**kw: object) -> SearchSettings:
    return SearchSettings(**kw)  # type: ignore[arg-type]


def test_a_judged_trajectory_costs_the_proposals_and_a_judgement_per_step():
    s = settings(trajectory_steps=8, branching=2)
    assert judged_trajectory_calls(s, judged=True) == 24
    assert judged_trajectory_calls(s, judged=False) == 16


@pytest.mark.parametrize(
    ("calls", "judged", "strategy", "attempts"),
    [
        (80, True, "mcts", 3),
        (24, True, "mcts", 3),
        (23, True, "best-of-n", 2),  # one call short of a judged trajectory: two attempts of 8 fit
        (16, False, "mcts", 3),  # no judge to pay
        (15, True, "none", 3),  # one attempt only: nothing to pick from, the plain loop
        (10, True, "none", 3),
        (0, True, "none", 3),
    ],
)
def test_mcts_falls_back_by_what_the_calls_pay_for(calls, judged, strategy, attempts):
    fitted = fit("mcts", settings(), calls, judged=judged)
    assert fitted.strategy == strategy and fitted.settings.attempts == attempts
    assert (fitted.reason is None) == (strategy == "mcts")
    if strategy != "mcts":
        assert f"{calls} model calls are fewer than one judged trajectory costs" in (fitted.reason or "")


def test_best_of_n_keeps_the_attempts_that_fit():
    assert fit("best-of-n", settings(attempts=3), 24, judged=True).settings.attempts == 3
    fewer = fit("best-of-n", settings(attempts=3), 20, judged=True)
    assert (fewer.strategy, fewer.settings.attempts) == ("best-of-n", 2)
    assert "pay for 2 of its 3 attempts" in (fewer.reason or "")
    alone = fit("best-of-n", settings(attempts=3), 12, judged=True)
    assert alone.strategy == "none" and "fewer than two attempts" in (alone.reason or "")
    single = fit("best-of-n", settings(attempts=1), 80, judged=True)
    assert single.strategy == "none" and "one attempt is the plain loop" in (single.reason or "")


def test_never_fitted_when_switched_off_or_already_plain():
    assert fit("mcts", settings(fit_budget=False), 1, judged=True).strategy == "mcts"
    assert fit("none", settings(), 1, judged=True).reason is None
