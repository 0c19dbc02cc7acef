"""The actor: runs the tool calls of one model reply against the workspace and records what happened."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from branchwise.agent import cancel
from branchwise.agent.models.base import Message, Reply
from branchwise.agent.record.events import EventBus, ToolCall, ToolCallRecord, ToolResult
from branchwise.agent.run.gate import Gate
from branchwise.sandbox.base import SandboxError
from branchwise.tools import Observation, ToolBox, ToolContext, ToolError
from branchwise.tools.base import Effect

NO_TOOL_CALL = "Your reply called no tool. Use the tools to work on the task; call finish when done."


@dataclass
class Acted:
    """What executing one reply did. A finish call is returned, not answered: its caller decides."""

    messages: list[Message] = field(default_factory=list)
    results: list[tuple[ToolCallRecord, Observation]] = field(default_factory=list)
    finish: tuple[ToolCallRecord, Observation] | None = None
    no_tool_call: bool = False
    malformed: bool = False
    effects: list[Effect] = field(default_factory=list)
    """The declared effect of each call that ran (a refused or malformed call ran nothing)."""

    @property
    def read_only(self) -> bool:
        """Nothing this reply ran could have changed the workspace (by the tools' own declarations)."""
        return all(effect == "read" for effect in self.effects)


class Actor:
    """Validates each call against its tool's schema, asks the gate, runs it, and emits the events."""

    def __init__(self, toolbox: ToolBox, ctx: ToolContext, bus: EventBus, gate: Gate | None = None) -> None:
        self.toolbox, self.ctx, self.bus, self.gate = toolbox, ctx, bus, gate

    def act(self, reply: Reply) -> Acted:
        outcome = Acted()
        if not reply.tool_calls:
            outcome.no_tool_call = outcome.malformed = True
            return outcome
        all_malformed = True
        for call in reply.tool_calls:
            cancel.check()
            if outcome.finish is not None:
                self.answer(outcome, call, Observation("Not run: finish was called earlier in the same reply.", True))
                continue
            obs, malformed = self.run_call(call, outcome.effects)
            all_malformed = all_malformed and malformed
            if obs.data.get("finish"):
                outcome.finish = (call, obs)
            else:
                self.answer(outcome, call, obs)
        outcome.malformed = all_malformed
        return outcome

    def answer(self, outcome: Acted, call: ToolCallRecord, obs: Observation) -> None:
        """Record a call's observation as an event and as the tool message the model will read."""
        outcome.results.append((call, obs))
        outcome.messages.append(self.tool_message(call, obs))

    def tool_message(self, call: ToolCallRecord, obs: Observation) -> Message:
        duration = float(obs.data.pop("_duration_s", 0.0))
        self.bus.emit(
            ToolResult(
                call_id=call.id,
                name=call.name,
                output=obs.output,
                is_error=obs.is_error,
                data=obs.data,
                duration_s=round(duration, 3),
            )
        )
        message: Message = {"role": "tool", "tool_call_id": call.id, "name": call.name, "content": obs.output}
        if isinstance(obs.data.get("image"), str) and not obs.is_error:  # attached by models that take images
            message["image"] = obs.data["image"]
        return message

    def run_call(self, call: ToolCallRecord, effects: list[Effect] | None = None) -> tuple[Observation, bool]:
        """Run one call; returns its observation and whether the call itself was malformed. The effect of a
        call that runs is appended to `effects`."""
        self.bus.emit(ToolCall(call=call))
        try:
            args = self.toolbox.parse_args(call.name, arguments_of(call))
        except ToolError as exc:
            return Observation(f"Error: {exc}", is_error=True), True
        refusal = self.gate(call) if self.gate else None
        if refusal is not None:
            return Observation(f"Not run: {refusal}", is_error=True, data={"refused": True}), False
        cancel.check()  # stopped while the approval was asked
        if self.gate is not None:  # the person who approved it may have edited the call (the gate re-checked it)
            try:
                args = self.toolbox.parse_args(call.name, arguments_of(call))
            except ToolError as exc:
                return Observation(f"Error: {exc}", is_error=True), True
        tool = self.toolbox.get(call.name)
        if effects is not None:
            effects.append(tool.effect_of(args))
        started = time.monotonic()
        try:
            obs = tool.run(args, self.ctx)
        except (ToolError, SandboxError) as exc:
            obs = Observation(f"Error: {exc}", is_error=True)
        except OSError as exc:
            obs = Observation(f"Error: {exc.filename or call.name}: {exc.strerror or exc}", is_error=True)
        obs.data["_duration_s"] = time.monotonic() - started
        return obs, False


def arguments_of(call: ToolCallRecord) -> dict[str, Any]:
    """The call's arguments as a dict; unparsable JSON is a ToolError the model can act on."""
    if call.arguments is not None:
        return call.arguments
    try:
        parsed = json.loads(call.raw_arguments or "{}")
    except json.JSONDecodeError as exc:
        raise ToolError(f"arguments of {call.name} are not valid JSON ({exc.msg}); send a JSON object") from None
    if not isinstance(parsed, dict):
        raise ToolError(f"arguments of {call.name} must be a JSON object")
    return parsed
