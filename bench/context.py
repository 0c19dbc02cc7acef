"""Prompt tokens per step over a 60-step scripted run, with and without working-memory compaction.

The run: a plan of 6 subgoals, each 10 steps (9 commands printing 7 KB each, then one that satisfies the
subgoal's done-check). The same scripted replies run twice through the real planner-executor loop and bwrap
sandbox: once with `planner.condense = true` (subgoal summaries + a context budget), once with it off. Each
prompt the model receives is counted with litellm's token counter (gpt-4o's tokenizer). Last line: JSON.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SUBGOALS, STEPS_PER_SUBGOAL = 6, 10
CONTEXT_TOKENS = 8000
LINES_PER_OUTPUT = 1000  # `seq` of 1000 six-digit numbers: 7 KB, about 2,300 tokens per observation


def script() -> dict[str, Any]:
    plan = {
        "subgoals": [{"title": f"part {k}", "done_check": f"test -e part-{k}.done"} for k in range(1, SUBGOALS + 1)]
    }
    replies: list[dict[str, Any]] = [{"tool_calls": [{"name": "submit_plan", "arguments": plan}]}]
    for k in range(1, SUBGOALS + 1):
        for i in range(STEPS_PER_SUBGOAL - 1):
            start = 100_000 * k + 1000 * i  # every output differs, so no step looks like a loop
            command = f"seq {start} {start + LINES_PER_OUTPUT - 1}"
            replies.append({"tool_calls": [{"name": "shell", "arguments": {"command": command}}]})
        replies.append({"tool_calls": [{"name": "shell", "arguments": {"command": f"touch part-{k}.done"}}]})
    return {"replies": replies}


class CountingModel:
    """Wraps the scripted model and counts every prompt it is given with litellm's tokenizer."""

    def __init__(self, inner: Any, counter: Any) -> None:
        self.inner, self.counter = inner, counter
        self.prompt_tokens: list[int] = []

    def query(self, messages, tools, **options):  # type: ignore[no-untyped-def]
        self.prompt_tokens.append(self.counter(model="gpt-4o", messages=messages))
        return self.inner.query(messages, tools, **options)

    def __getattr__(self, name: str) -> Any:  # the rest of the Model protocol is the scripted model's
        return getattr(self.inner, name)


def run(condense: bool, workdir: Path, replies: Path, counter: Any) -> list[int]:
    from branchwise.agent.config.layers import load_config
    from branchwise.agent.models.scripted import ScriptedModel
    from branchwise.agent.run.session import Session
    from branchwise.agent.run.wiring import make_sandbox_for

    repo = workdir / ("condensed" if condense else "plain")
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    flags = {
        "planner.enabled": True,
        "planner.condense": condense,
        "planner.context_tokens": CONTEXT_TOKENS,
        "planner.max_steps_per_subgoal": STEPS_PER_SUBGOAL + 1,
        "planner.stall_steps": STEPS_PER_SUBGOAL + 1,
        "limits.max_steps": SUBGOALS * STEPS_PER_SUBGOAL + 5,
    }
    loaded = load_config(repo, flags=flags)
    model = CountingModel(ScriptedModel.from_file(replies), counter)
    sandbox = make_sandbox_for(loaded.config, repo)
    with Session(loaded=loaded, workspace=repo, sandbox=sandbox, model=model) as session:
        finished = session.run("Do the six parts of the plan.")
    if finished.status != "completed":
        raise SystemExit(f"the {'condensed' if condense else 'plain'} run ended {finished.status}: {finished.summary}")
    return model.prompt_tokens[1:]  # the first prompt is the planner's


def slope(values: list[int]) -> float:
    """Least-squares tokens added per step."""
    xs = range(len(values))
    mx, my = statistics.mean(xs), statistics.mean(values)
    return sum((x - mx) * (y - my) for x, y in zip(xs, values, strict=True)) / sum((x - mx) ** 2 for x in xs)


def main() -> None:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    from branchwise.agent.models.litellm_model import import_litellm

    counter = import_litellm().token_counter
    with tempfile.TemporaryDirectory(prefix="branchwise-bench-context-") as tmp:
        work = Path(tmp)
        replies = work / "replies.json"  # JSON is YAML
        replies.write_text(json.dumps(script()))
        with_compaction = run(True, work, replies, counter)
        without = run(False, work, replies, counter)
    print(f"{'step':>4} {'condensed':>10} {'plain':>8}")
    for step in range(0, len(without), 5):
        print(f"{step + 1:>4} {with_compaction[step]:>10} {without[step]:>8}")
    summary: dict[str, Any] = {"bench": "context", "steps": len(without), "context_tokens": CONTEXT_TOKENS}
    for name, values in (("condensed", with_compaction), ("plain", without)):
        half = len(values) // 2
        summary[name] = {
            "max": max(values),
            "mean": round(statistics.mean(values)),
            "last": values[-1],
            "tokens_per_step_slope": round(slope(values), 1),
            "second_half_over_first_half": round(statistics.mean(values[half:]) / statistics.mean(values[:half]), 2),
        }
    summary["last_step_ratio_plain_over_condensed"] = round(without[-1] / with_compaction[-1], 2)
    print(
        f"condensed: max {summary['condensed']['max']}, slope {summary['condensed']['tokens_per_step_slope']} "
        f"tokens/step; plain: max {summary['plain']['max']}, slope {summary['plain']['tokens_per_step_slope']}"
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
