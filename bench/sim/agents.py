"""The simulated policy and judge: Models that read the conversations the real code builds and answer them."""

from __future__ import annotations

import json
import random
import re
from typing import Any

from branchwise.agent.models.base import Message, Model, Reply
from branchwise.agent.record.events import ToolCallRecord

from .world import Noise, Task

FEEDBACK_START = "Note: you are back at an earlier point"
_TRIED = re.compile(r"^- (.+?) → ", re.MULTILINE)
_STEP = re.compile(r"step (\d+) (\w+)")
_CANDIDATE = re.compile(r"^## Candidate (\d+)\n", re.MULTILINE)
# The judge's base value on [0, 1] for a state it takes to be wrong ("counterproductive", −60).
WRONG_VALUE = 0.2


class SimPolicy:
    """Proposes `step <d> <action>` shell calls, `inspect` or finish, from what the conversation shows."""

    name = "sim-policy"
    supports_n = True

    def __init__(self, task: Task, noise: Noise, rng: random.Random) -> None:
        self.task, self.noise, self.rng = task, noise, rng
        self._ids = 0

    def query(
        self,
        messages: list[Message],
        tools: list[dict[str, Any]],
        *,
        n: int = 1,
        temperature: float | None = None,
        deadline: float | None = None,
    ) -> list[Reply]:
        done = sum(1 for m in messages if m.get("role") == "tool" and str(m.get("content", "")).startswith("applied "))
        avoid = self.tried(messages[-1]) if self.rng.random() < self.noise.p_heed else set()
        return [self.reply(self.choose(done, avoid)) for _ in range(n)]

    def tried(self, last: Message) -> set[str]:
        """Actions a hindsight note lists as already tried from this state."""
        text = str(last.get("content") or "")
        if last.get("role") != "user" or not text.startswith(FEEDBACK_START):
            return set()
        return {_action_of(summary) for summary in _TRIED.findall(text)}

    def choose(self, done: int, avoid: set[str]) -> str:
        """The next command, or 'finish'."""
        noise, rng = self.noise, self.rng
        if done >= self.task.length:
            return "finish" if "finish" not in avoid and rng.random() < noise.p_finish else "inspect"
        if "finish" not in avoid and rng.random() < noise.p_premature:
            return "finish"
        depth = done + 1
        good = sorted(self.task.correct[depth - 1] - avoid)
        if good and rng.random() < noise.p_skill:
            return f"step {depth} {rng.choice(good)}"
        wrong = [a for a in self.task.mistakes[depth - 1] if a not in avoid] or self.task.mistakes[depth - 1]
        weights = [1 / (rank + 1) ** noise.zipf for rank in range(len(wrong))]
        return f"step {depth} {rng.choices(wrong, weights)[0]}"

    def reply(self, command: str) -> Reply:
        self._ids += 1
        if command == "finish":
            call = ToolCallRecord(id=f"call_{self._ids}", name="finish", arguments={"summary": "The task is done."})
        else:
            call = ToolCallRecord(id=f"call_{self._ids}", name="shell", arguments={"command": command})
        return Reply(tool_calls=[call])

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": "simulated"}


class SimJudge:
    """Answers the engine's judge prompt (value.judge_messages) and the final chooser's prompt.

    The value is the true progress of the state plus N(0, sigma); a state off track is valued as if it were on
    track with probability `deceive` (or, with `sticky`, whenever its wrong actions are all blind spots).
    """

    name = "sim-judge"

    def __init__(self, task: Task, noise: Noise, rng: random.Random) -> None:
        self.task, self.noise, self.rng = task, noise, rng

    def query(
        self,
        messages: list[Message],
        tools: list[dict[str, Any]],
        *,
        n: int = 1,
        temperature: float | None = None,
        deadline: float | None = None,
    ) -> list[Reply]:
        system, user = str(messages[0]["content"]), str(messages[-1]["content"])
        if system.startswith("Several candidate changes"):
            return [self.pick(user) for _ in range(n)]
        if system.startswith("You evaluate alternative last actions"):
            return [self.compare(user) for _ in range(n)]
        return [self.rate(user) for _ in range(n)]

    def rate(self, prompt: str) -> Reply:
        """The single-action prompt: the state after the previous actions and the last one."""
        history = prompt.split("\nPrevious actions:\n", 1)[1].split("\n\nIts output", 1)[0]
        last = history.split("\n\nLast action:\n", 1)[1]
        return _json_reply(self.rating(_steps(history), last))

    def compare(self, prompt: str) -> Reply:
        """The prompt with several candidate actions from one state: each rated on its own, with its own noise."""
        history, *candidates = _CANDIDATE.split(prompt.split("\nPrevious actions:\n", 1)[1])
        rated = []
        for number, body in zip(candidates[::2], candidates[1::2], strict=True):
            action = body.split("Action:\n", 1)[1].split("\n\nIts output", 1)[0]
            rated.append({"id": int(number), **self.rating(_steps(history) | _steps(action), action)})
        return _json_reply({"candidates": rated})

    def rating(self, steps: dict[int, str], last: str) -> dict[str, Any]:
        value, believed = self.value(steps, finished=last.startswith("finish"))
        feedback = "Continue from here." if believed else "That step looks wrong: try a different action here."
        return {
            "explanation": "Simulated judgement of the state.",
            "feedback_to_alternative_branch": feedback,
            "reward": round(value * 200 - 100),
        }

    def pick(self, prompt: str) -> Reply:
        """Value each candidate's patch as a finished state; name the best."""
        parts = _CANDIDATE.split(prompt)[1:]
        scored = [
            (self.value(_steps(body), finished=True)[0], int(cid))
            for cid, body in zip(parts[::2], parts[1::2], strict=True)
        ]
        best = max(scored)[1] if scored else -1
        return _json_reply({"id": best, "explanation": "Simulated choice."})

    def value(self, steps: dict[int, str], *, finished: bool) -> tuple[float, bool]:
        """(noisy value on [0, 1], whether the judge takes the state to be on track)."""
        task, noise = self.task, self.noise
        wrong = [(d, a) for d, a in steps.items() if d <= task.length and a not in task.correct[d - 1]]
        if not wrong:
            believed = True
        elif noise.sticky:
            believed = all(task.blind[d - 1][a] < noise.deceive for d, a in wrong)
        else:
            believed = self.rng.random() < noise.deceive
        done = max(steps, default=0)
        if finished:
            base = 1.0 if believed and done == task.length else WRONG_VALUE
        else:
            base = 0.5 + 0.5 * done / task.length if believed else WRONG_VALUE
        return min(1.0, max(0.0, base + self.rng.gauss(0.0, noise.sigma))), believed

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": "simulated"}


class CountingModel:
    """Counts the replies a model hands out, so every strategy is charged the same way."""

    kind = "litellm"  # stands for a real model: the search uses its judge

    def __init__(self, inner: Model) -> None:
        self.inner, self.name, self.calls = inner, inner.name, 0
        self.supports_n = getattr(inner, "supports_n", True)

    def count_tokens(self, messages: list[Message], tools: list[dict[str, Any]]) -> int:
        return 100 * len(messages)

    def context_window(self) -> int | None:
        return None

    def query(
        self,
        messages: list[Message],
        tools: list[dict[str, Any]],
        *,
        n: int = 1,
        temperature: float | None = None,
        deadline: float | None = None,
    ) -> list[Reply]:
        replies = self.inner.query(messages, tools, n=n, temperature=temperature)
        self.calls += len(replies)
        return replies

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()


def _action_of(summary: str) -> str:
    """'shell: step 3 a5' -> 'a5'; 'finish: ...' -> 'finish'; 'shell: inspect' -> 'inspect'."""
    step = _STEP.search(summary)
    if step:
        return step.group(2)
    return "finish" if summary.startswith("finish") else summary.removeprefix("shell: ").strip()


def _steps(text: str) -> dict[int, str]:
    return {int(d): a for d, a in _STEP.findall(text)}


def _json_reply(data: dict[str, Any]) -> Reply:
    return Reply(content=json.dumps(data))
