"""The judge's reply formats: one rated action, or several candidates rated in one call."""

from __future__ import annotations

import json

from branchwise.agent.models.base import Reply
from branchwise.agent.search import value as V


class CannedJudge:
    """A judge that always answers with the same text."""

    name = "canned"

    def __init__(self, content: str) -> None:
        self.content = content
        self.asked: list[list[dict]] = []

    def query(self, messages, tools, *, n=1, temperature=None):
        self.asked.append(messages)
        return [Reply(content=self.content)]

    def describe(self):
        return {"name": self.name}


def ask(judge: CannedJudge):
    def one(messages):
        return judge.query(messages, [])[0]

    return one


def rated(reward: int, note: str = "") -> dict:
    return {"explanation": "e", "feedback_to_alternative_branch": note, "reward": reward}


def test_one_action_reward_maps_to_unit_interval():
    judge = CannedJudge(json.dumps(rated(50, "try x")))
    (judgement,), _ = V.ask_judge(ask(judge), V.judge_messages("t", [], "shell: ls", "out", 1))
    assert judgement is not None and judgement.value == 0.75 and judgement.feedback == "try x"


def test_candidates_are_matched_by_id_and_missing_ones_give_no_opinion():
    reply = {"candidates": [{"id": 2, **rated(-100)}, {"id": 1, **rated(100)}, {"id": 7, **rated(0)}]}
    judge = CannedJudge("Here you go: " + json.dumps(reply))
    messages = V.compare_messages("t", ["shell: ls"], [("shell: a", "A"), ("shell: b", "B"), ("shell: c", "C")], 4)
    judgements, _ = V.ask_judge(ask(judge), messages, 3)
    assert [j.value if j else None for j in judgements] == [1.0, 0.0, None]
    text = messages[1]["content"]
    assert "## Candidate 1\nAction:\nshell: a" in text and "## Candidate 3" in text and "1. shell: ls" in text


def test_a_reply_that_is_not_the_json_asked_for_gives_no_opinions():
    for content in ("no idea", '{"candidates": "x"}', '{"reward": "high"}', "{broken"):
        judgements, _ = V.ask_judge(ask(CannedJudge(content)), [], 2)
        assert judgements == [None, None]
        single, _ = V.ask_judge(ask(CannedJudge(content)), [], 1)
        assert single == [None]
