"""How good a search node looks: executable signals first (exit codes, tests, syntax, checks), the judge second."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from branchwise.agent.models.base import Message, Reply
from branchwise.agent.record.events import CheckResult

_PYTEST = re.compile(r"(\d+) (passed|failed|errors?)\b")
_UNITTEST_RAN = re.compile(r"^Ran (\d+) tests? in", re.MULTILINE)
_UNITTEST_FAILED = re.compile(r"^FAILED \((.*)\)\s*$", re.MULTILINE)
_TEST_COMMAND = re.compile(
    r"\b(pytest|unittest|tox|nox|npm (run )?test|yarn test|cargo test|go test|make (test|check)|jest|vitest|rspec"
    r"|ctest|mvn test|gradle test)\b"
)
_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)

# Rewards for actions that went wrong, on [0, 1] (moatless: −25 minor, −50 major, −100 crash).
MINOR_FAILURE, MAJOR_FAILURE = 0.375, 0.25
SYNTAX_ERROR = 0.1
LOOP_PENALTY = 0.125
LINT_PENALTY = 0.2


@dataclass
class Signals:
    """What the environment said about a node, before anyone's opinion."""

    tool_errors: int = 0
    refused: int = 0
    nonzero_exits: int = 0
    tests: tuple[int, int] | None = None
    """(passed, failed) parsed from test output the agent produced in this step."""
    syntax_errors: list[str] = field(default_factory=list)
    lint_errors: list[str] = field(default_factory=list)
    """Undefined names in the Python files the step changed (pyflakes)."""
    checks: list[CheckResult] | None = None
    repeated: bool = False
    """The same action with the same observation already happened on this path (a loop)."""

    @property
    def checks_pass(self) -> bool | None:
        return None if self.checks is None else all(c.passed for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "tool_errors": self.tool_errors,
            "refused": self.refused,
            "nonzero_exits": self.nonzero_exits,
            "syntax_errors": self.syntax_errors,
            "lint_errors": self.lint_errors,
            "repeated": self.repeated,
        }
        if self.tests is not None:
            out["tests"] = {"passed": self.tests[0], "failed": self.tests[1]}
        if self.checks is not None:
            out["checks_pass"] = self.checks_pass
        return out


def parse_test_counts(output: str) -> tuple[int, int] | None:
    """(passed, failed) from a pytest or unittest summary, or None when the output has none."""
    ran = _UNITTEST_RAN.search(output)
    if ran:
        total = int(ran.group(1))
        failed_line = _UNITTEST_FAILED.search(output)
        failed = (
            sum(int(n) for n in re.findall(r"(?:failures|errors)=(\d+)", failed_line.group(1))) if failed_line else 0
        )
        return total - failed, failed
    counts: dict[str, int] = {}
    for number, word in _PYTEST.findall(output):
        counts[word.rstrip("s")] = counts.get(word.rstrip("s"), 0) + int(number)
    if "passed" in counts or "failed" in counts:
        return counts.get("passed", 0), counts.get("failed", 0) + counts.get("error", 0)
    return None


def is_test_command(command: str) -> bool:
    return bool(_TEST_COMMAND.search(command))


def blend(signals: Signals, judge: float | None, *, finished: bool, previous_tests: tuple[int, int] | None) -> float:
    """The reward in [0, 1]: decisive executable signals (syntax errors, failed tools, test counts, checks)
    override the judge, whose opinion only fills in where they say nothing or are blended with test results."""
    if finished:
        if signals.checks_pass is False:
            return 0.0
        return 0.6 + 0.4 * (0.5 if judge is None else judge)
    if signals.syntax_errors:
        reward = SYNTAX_ERROR
    elif signals.tool_errors:
        reward = MAJOR_FAILURE
    elif signals.refused or (signals.nonzero_exits and signals.tests is None):
        reward = MINOR_FAILURE
    elif signals.tests is not None:
        passed, failed = signals.tests
        fraction = passed / (passed + failed) if passed + failed else 0.0
        trend = 0.0
        if previous_tests is not None:
            trend = 0.1 * _sign(previous_tests[1] - failed)
        executable = min(1.0, max(0.0, 0.5 + 0.5 * fraction + trend)) if failed else 1.0
        reward = executable if judge is None else 0.5 * executable + 0.5 * judge
    else:
        reward = 0.5 if judge is None else judge
    if signals.repeated:
        reward -= LOOP_PENALTY
    if signals.lint_errors:
        reward -= LINT_PENALTY
    return round(min(1.0, max(0.0, reward)), 4)


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


def decisive(signals: Signals, *, finished: bool) -> bool:
    """True when executable signals alone settle the reward, so the judge call can be skipped."""
    if finished:
        return signals.checks_pass is False
    return bool(signals.syntax_errors or signals.tool_errors or signals.refused or signals.repeated)


_SCALE = (
    "Reward scale: 75..100 the action significantly advances the task; 50..74 it contributes; 25..49 acceptable "
    "with issues; 0..24 little effect; -49..-1 inappropriate, unnecessary or repetitive; -100..-50 counterproductive."
)
JUDGE_SYSTEM = f"""\
You evaluate the last action of an autonomous coding agent working on a task. You get the task, the agent's \
previous actions (summarised), the last action with its output, and test results when there are any. Test and \
check results are the ground truth: never contradict them.

Reply with one JSON object and nothing else:
{{"explanation": "2-3 sentences", "feedback_to_alternative_branch": "what a different attempt from the same \
state should do", "reward": <integer from -100 to 100>}}

{_SCALE} {{stage}}"""
COMPARE_SYSTEM = f"""\
You evaluate alternative last actions of an autonomous coding agent working on a task: each candidate was tried \
from the same state. You get the task, the agent's previous actions (summarised), and each candidate action with \
its output. Test and check results are the ground truth: never contradict them. Rate every candidate on its own \
merits (several may be good, or none).

Reply with one JSON object and nothing else:
{{"candidates": [{{"id": <candidate number>, "explanation": "1-2 sentences", "feedback_to_alternative_branch": \
"what a different attempt should do", "reward": <integer from -100 to 100>}}, ...]}}, one entry per candidate.

{_SCALE} {{stage}}"""


def _stage(depth: int) -> str:
    if depth < 3:
        return "This is an early step: do not penalise reasonable exploration."
    return "Check for repetition, whether the changes match the task, and whether they break anything."


def _context(task: str, history: list[str]) -> str:
    steps = "\n".join(f"{i}. {h}" for i, h in enumerate(history[-12:], 1)) or "(none)"
    return f"Task:\n{task}\n\nPrevious actions:\n{steps}"


def judge_messages(task: str, history: list[str], last_action: str, observation: str, depth: int) -> list[Message]:
    user = f"{_context(task, history)}\n\nLast action:\n{last_action}\n\nIts output (truncated):\n{observation[-3000:]}"
    return [
        {"role": "system", "content": JUDGE_SYSTEM.replace("{stage}", _stage(depth))},
        {"role": "user", "content": user},
    ]


def compare_messages(task: str, history: list[str], tried: list[tuple[str, str]], depth: int) -> list[Message]:
    """The judge prompt for several candidate actions from one state, each with its output."""
    parts = [
        f"## Candidate {i}\nAction:\n{action}\n\nIts output (truncated):\n{output[-2000:]}"
        for i, (action, output) in enumerate(tried, 1)
    ]
    user = _context(task, history) + "\n\n" + "\n\n".join(parts)
    system = COMPARE_SYSTEM.replace("{stage}", _stage(depth))
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


@dataclass
class Judgement:
    value: float
    """The judge's reward mapped from −100..100 to 0..1."""
    explanation: str = ""
    feedback: str = ""


def ask_judge(
    ask: Callable[[list[Message]], Reply], messages: list[Message], count: int = 1
) -> tuple[list[Judgement | None], Reply]:
    """One judge call (`ask` makes it) rating `count` candidates; a reply that is not the asked-for JSON gives no
    opinion (None)."""
    reply = ask(messages)
    match = _JSON_OBJECT.search(reply.content or "")
    try:
        data = json.loads(match.group(0)) if match else None
    except json.JSONDecodeError:
        data = None
    if count == 1:
        return [_judgement(data)], reply
    rated = data.get("candidates") if isinstance(data, dict) else None
    by_id = {item.get("id"): item for item in rated if isinstance(item, dict)} if isinstance(rated, list) else {}
    return [_judgement(by_id.get(i)) for i in range(1, count + 1)], reply


def _judgement(data: Any) -> Judgement | None:
    try:
        reward = float(data["reward"])
    except (KeyError, TypeError, ValueError):
        return None
    value = (min(100.0, max(-100.0, reward)) + 100.0) / 200.0
    return Judgement(
        value=value,
        explanation=str(data.get("explanation", ""))[:1000],
        feedback=str(data.get("feedback_to_alternative_branch", ""))[:1000],
    )


def failed_finish_reward(checks: list[CheckResult]) -> float:
    """A finish whose checks fail is worth little, a bit more when most tests pass."""
    counts = [parse_test_counts(c.output) for c in checks]
    known = [c for c in counts if c is not None]
    if not known:
        return 0.1
    passed, failed = sum(p for p, _ in known), sum(f for _, f in known)
    return round(0.1 + 0.2 * (passed / (passed + failed) if passed + failed else 0), 4)
