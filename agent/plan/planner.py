"""Plans: ordered subgoals with a way to tell each is done, written by the model through a `submit_plan` call."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from branchwise.agent.models.base import Message, Reply

MAX_PLAN_ATTEMPTS = 2


class Subgoal(BaseModel):
    """One step of a plan, and how to tell it is done."""

    model_config = ConfigDict(extra="forbid")
    title: str = Field(description="What to achieve, in one sentence.")
    done_check: str | None = Field(
        None, description="A shell command that exits 0 once this subgoal is done (preferred), e.g. a test."
    )
    done_question: str | None = Field(
        None, description="When no command can tell: a yes/no question about the work that answers it."
    )
    risk: str | None = Field(None, description="What could go wrong, if anything is worth noting.")


class Plan(BaseModel):
    """Ordered subgoals, plus facts learned so far (carried over when re-planning)."""

    model_config = ConfigDict(extra="forbid")
    subgoals: list[Subgoal] = Field(min_length=1, description="The subgoals, in the order to do them.")
    facts: list[str] = Field([], description="Facts learned so far that the next steps need (files, commands).")

    def render(self, done: int = 0) -> str:
        """The plan as text for the system prompt; the first `done` subgoals are marked done."""
        lines = []
        for i, sub in enumerate(self.subgoals):
            mark = "[done] " if i < done else ""
            check = f" (done when `{sub.done_check}` exits 0)" if sub.done_check else ""
            lines.append(f"{i + 1}. {mark}{sub.title}{check}")
        return "\n".join(lines)


SUBMIT_PLAN = {
    "type": "function",
    "function": {
        "name": "submit_plan",
        "description": "Submit the plan: ordered subgoals, each with a way to tell it is done.",
        "parameters": {
            "type": "object",
            "properties": {
                "subgoals": {
                    "type": "array",
                    "items": {k: v for k, v in Subgoal.model_json_schema().items() if k != "title"},
                },
                "facts": {"type": "array", "items": {"type": "string"}},
            },
            "required": ["subgoals"],
        },
    },
}

PLANNER_SYSTEM = """\
You plan a software task for an autonomous agent that works in a repository with a shell and file tools. \
Split the task into a few ordered subgoals (usually 1 to 5; one is fine for a small task). For each, give a \
done_check: a shell command that exits 0 exactly when the subgoal is done (a focused test, a grep, a build), run \
from the repository root. If no command can tell, give a done_question instead. Note risks briefly. Do not do \
the work. Answer by calling submit_plan once."""


def plan_messages(task: str, context: str, *, previous: str = "") -> list[Message]:
    """The planner's conversation: the task, what is known about the repository, and any earlier attempt."""
    user = f"Task:\n{task}\n\n{context}".rstrip()
    if previous:
        user += f"\n\n{previous}"
    return [{"role": "system", "content": PLANNER_SYSTEM}, {"role": "user", "content": user}]


def parse_plan(reply: Reply) -> Plan | str:
    """The plan in a reply, or what is wrong with the reply (to send back to the planner)."""
    call = next((c for c in reply.tool_calls if c.name == "submit_plan"), None)
    if call is None:
        return "Call submit_plan with the plan."
    arguments: Any = call.arguments
    if arguments is None:
        try:
            arguments = json.loads(call.raw_arguments or "")
        except json.JSONDecodeError as exc:
            return f"The submit_plan arguments are not valid JSON ({exc.msg}); call it again."
    try:
        return Plan.model_validate(arguments)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "arguments"
        return f"The plan is invalid ({where}: {err['msg']}); call submit_plan again."


@dataclass
class PlanAnswer:
    """What the model answered when asked for a plan."""

    plan: Plan | None
    """None when the model did not plan."""
    action: Reply | None = None
    """A reply that did something else instead (a plain tool call, or text): the model's first step."""
    problem: str = ""


def ask_for_plan(ask: Callable[[list[Message]], Reply], messages: list[Message]) -> PlanAnswer:
    """Ask for a plan, telling the model once what was wrong if its submit_plan call was unusable.

    A model that answers with anything but submit_plan cannot (or will not) plan: its reply is handed back as
    its first action instead of being thrown away, so a plan-less model or reply file still does the task.
    """
    parsed: Plan | str = "no answer"
    for _ in range(MAX_PLAN_ATTEMPTS):
        reply = ask(messages)
        if not any(c.name == "submit_plan" for c in reply.tool_calls):
            return PlanAnswer(None, reply, "the model answered without calling submit_plan")
        parsed = parse_plan(reply)
        if isinstance(parsed, Plan):
            return PlanAnswer(parsed)
        messages = [*messages, reply.as_message()]
        for call in reply.tool_calls:
            messages.append({"role": "tool", "tool_call_id": call.id, "content": parsed})
    return PlanAnswer(None, None, f"the model did not produce a usable plan ({parsed})")
