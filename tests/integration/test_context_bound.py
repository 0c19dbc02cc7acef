"""One context bound for every run mode: with the planner off, the plain loop and the searches condense the
prompt like the planner's working memory does, so 7 KB tool outputs over many steps never outgrow the budget."""

from __future__ import annotations

import json

import pytest

from tests.conftest import finish, make_repo, shell, write_script

STEPS = 30
BUDGET = 6000  # tokens; one 7 KB observation is about 2,300
LINES = 1000  # `seq` of 1000 six-digit numbers: 7 KB


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["none", "best-of-n", "mcts"])
def test_prompt_stays_bounded_with_the_planner_off(cli, tmp_path, strategy):
    repo = make_repo(tmp_path / "repo", files={"README.md": "hello\n"})
    replies = [shell(f"seq {100_000 + 1000 * i} {100_000 + 1000 * i + LINES - 1}") for i in range(STEPS)]
    script = write_script(tmp_path / "r.yaml", [*replies, finish("read them all")])
    env = {"BRANCHWISE_PLANNER_CONTEXT_TOKENS": str(BUDGET), "BRANCHWISE_SEARCH_BRANCHING": "1",
           "BRANCHWISE_SEARCH_ATTEMPTS": "1", "BRANCHWISE_SEARCH_FIT_BUDGET": "false",
           "BRANCHWISE_LIMITS_MAX_STEPS": "60", "BRANCHWISE_SEARCH_MAX_NODES": "60"}  # fmt: skip
    res = cli("run", "read the numbers", "-m", f"scripted:{script}", "--no-plan", "--search", strategy,
              "-o", "stream-json", cwd=repo, env=env)  # fmt: skip
    events = [json.loads(line) for line in res.stdout.splitlines()]
    assert res.returncode == 0, res.stderr
    prompts = [e["usage"]["prompt"] for e in events if e["type"] == "model_reply"]
    assert len(prompts) == STEPS + 1
    # Unbounded, the prompt would grow by about 2,300 tokens a step (about 70,000 at the end). Bounded, it
    # stays within the budget plus the latest observation, which is pinned.
    assert max(prompts) <= BUDGET + 2600, prompts
    assert prompts[-1] < prompts[STEPS // 3] + 2600
    assert any(e["type"] == "condense" for e in events)
