"""The executor: ask the model, run the tool calls it makes, record what happened. One step at a time."""

from __future__ import annotations

import time
from collections.abc import Callable

from branchwise.agent.config.schema import LimitsSettings
from branchwise.agent.errors import BudgetExceeded, Completed, Failed
from branchwise.agent.models.base import Message, Model, Reply, reply_event
from branchwise.agent.record.events import CheckResult, EventBus, FormatError, StepFinished, ToolCallRecord, Usage
from branchwise.agent.run.actor import NO_TOOL_CALL, Actor, Outcome
from branchwise.agent.run.gate import Gate
from branchwise.tools import Observation, ToolBox, ToolContext

ChecksRunner = Callable[[], list[CheckResult]]


class Executor:
    """Runs the main loop for one task until a StopRun (or an error) ends it."""

    def __init__(
        self,
        model: Model,
        toolbox: ToolBox,
        ctx: ToolContext,
        bus: EventBus,
        limits: LimitsSettings,
        *,
        temperature: float | None = None,
        run_checks: ChecksRunner | None = None,
        gate: Gate | None = None,
    ) -> None:
        self.model, self.toolbox, self.ctx, self.bus, self.limits = model, toolbox, ctx, bus, limits
        self.temperature = temperature
        self.run_checks = run_checks
        self.actor = Actor(toolbox, ctx, bus, gate)
        self.messages: list[Message] = []
        self.usage = Usage()
        self.cost_usd = 0.0
        self.steps = 0
        self.started = time.monotonic()
        self.format_errors = 0
        self.finish_rejections = 0
        self.last_checks: list[CheckResult] | None = None
        self.last_outcome: Outcome | None = None

    def run(self, system: str, task: str) -> None:
        """Loop until a StopRun is raised; the caller handles it (and any error) in one place."""
        self.messages = [{"role": "system", "content": system}, {"role": "user", "content": task}]
        while True:
            self.step()

    def step(self) -> None:
        """Ask the model, run the actions, record."""
        self.check_limits()
        self.steps += 1
        self.bus.step = self.steps
        try:
            self.execute(self.query())
        finally:
            self.bus.emit(StepFinished(usage=self.usage, cost_usd=self.cost_usd))

    def check_limits(self) -> None:
        if self.steps >= self.limits.max_steps:
            raise BudgetExceeded(f"step limit reached ({self.limits.max_steps} steps)")
        if self.limits.max_cost_usd and self.cost_usd >= self.limits.max_cost_usd:
            raise BudgetExceeded(f"cost limit reached (${self.cost_usd:.4f} of ${self.limits.max_cost_usd:g})")
        if time.monotonic() - self.started >= self.limits.max_wall_s:
            raise BudgetExceeded(f"wall-time limit reached ({self.limits.max_wall_s:g} s)")

    def query(self) -> Reply:
        reply = self.model.query(self.messages, self.toolbox.schemas(), n=1, temperature=self.temperature)[0]
        self.usage = self.usage + reply.usage
        self.cost_usd += reply.cost_usd
        self.bus.emit(reply_event(reply, self.model.name))
        self.messages.append(reply.as_message())
        return reply

    def execute(self, reply: Reply) -> None:
        outcome = self.last_outcome = self.actor.act(reply)
        self.messages += outcome.messages
        if outcome.no_tool_call:
            self.format_error(NO_TOOL_CALL)
            return
        if outcome.malformed:
            self.count_format_error()
        else:
            self.format_errors = 0
        if outcome.finish is not None:
            self.finish(*outcome.finish)

    def add_result(self, call: ToolCallRecord, obs: Observation) -> None:
        self.messages.append(self.actor.tool_message(call, obs))

    def finish(self, call: ToolCallRecord, obs: Observation) -> None:
        """The model says it is done: run the task's checks; refuse the finish while they fail."""
        summary = obs.output
        if self.run_checks is None:
            self.add_result(call, Observation("Finished."))
            raise Completed(summary)
        self.last_checks = self.run_checks()
        failed = [c for c in self.last_checks if not c.passed]
        if not failed:
            self.add_result(call, Observation("Finished; all checks passed." if self.last_checks else "Finished."))
            raise Completed(summary)
        self.finish_rejections += 1
        report = "\n\n".join(f"$ {c.command}\n[exit code {c.exit_code}]\n{c.output}" for c in failed)
        if self.finish_rejections > self.limits.max_finish_rejections:
            self.add_result(call, Observation(f"Checks failed:\n{report}", is_error=True))
            raise Failed(f"checks still fail after {self.finish_rejections} attempts to finish: {failed[0].command}")
        self.add_result(
            call,
            Observation(
                f"Not finished: the task's checks fail.\n{report}\nFix the problem, then call finish again.",
                True,
            ),
        )

    def format_error(self, message: str) -> None:
        self.bus.emit(FormatError(message=message))
        self.messages.append({"role": "user", "content": message})
        self.count_format_error()

    def count_format_error(self) -> None:
        self.format_errors += 1
        if self.format_errors >= self.limits.max_format_errors:
            raise Failed(f"the model sent {self.format_errors} malformed replies in a row")
