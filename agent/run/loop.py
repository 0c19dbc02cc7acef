"""The main loop: ask the model, run the tool calls it makes, record what happened, one step at a time.

`LoopSolver` is the plain solver (search strategy `none`). Each step: check the budget, keep the prompt within
its token budget, ask, act, and judge the step (is the goal done, is the agent looping, is it getting
anywhere). A finish is accepted only when the goal's checks pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from branchwise.agent.errors import Limit
from branchwise.agent.models.base import Message, Reply
from branchwise.agent.plan.ledger import LOOP_NUDGE, Ledger
from branchwise.agent.record.events import CheckResult, FormatError, StepFinished, ToolCallRecord
from branchwise.agent.run.actor import NO_TOOL_CALL, Acted
from branchwise.agent.run.budget import BudgetView
from branchwise.agent.run.context import RunContext
from branchwise.agent.run.solver import Goal, Outcome, OutcomeStatus, Verify
from branchwise.tools import Observation

PINNED_MESSAGES = 3  # system prompt (with the plan), the task, the current subgoal
CUT_OFF_NOTE = (
    "Your last reply was cut off at the output-token limit, so it may be incomplete. Keep replies short: one "
    "tool call at a time, and write big files in parts."
)


@dataclass
class _State:
    """One goal's conversation and counters."""

    goal: Goal
    ledger: Ledger
    messages: list[Message] = field(default_factory=list)
    format_errors: int = 0
    rejections: int = 0
    snapshot: str | None = None
    last_checks: list[CheckResult] | None = None


class LoopSolver:
    """One trajectory: the model's replies run one after the other."""

    name = "none"

    def __init__(self, rc: RunContext) -> None:
        self.rc = rc

    def solve(self, goal: Goal, verify: Verify | None, budget: BudgetView) -> Outcome:
        planner = self.rc.config.planner
        ledger = Ledger(planner.stall_steps, planner.max_failures, replan=goal.replan)
        state = _State(goal=goal, ledger=ledger, messages=list(goal.opening))
        if goal.check_each_step or goal.replan:
            state.snapshot = self.rc.workspace.snapshot(f"goal {goal.index + 1}")
        while True:
            reached = budget.exhausted()
            if reached is not None:
                if reached.run_level:
                    raise reached.error()
                return self._end(state, "exhausted", reached.reason, reached.limit)
            outcome = self.step(state, verify)
            if outcome is not None:
                return outcome

    def step(self, state: _State, verify: Verify | None) -> Outcome | None:
        """Ask the model, run the actions, record; an Outcome when the goal ends here."""
        rc = self.rc
        rc.condense.fit(state.messages, PINNED_MESSAGES)
        rc.bus.step = rc.budget.tally.steps + 1
        if state.goal.first_reply is not None:  # given already (the answer to the planner's question)
            reply, state.goal.first_reply = state.goal.first_reply, None
        else:
            tools, temperature = rc.toolbox.schemas(), rc.config.llm.temperature
            reply = rc.asker.ask(rc.model, state.messages, tools, temperature=temperature)[0]
        try:
            state.messages.append(reply.as_message())
            acted = rc.actor.act(reply)
            state.messages += acted.messages
            return self._after(state, reply, acted, verify)
        finally:  # a step is a reply that was acted on, however it went: the budget counts this event
            rc.bus.emit(StepFinished(usage=rc.budget.tally.usage, cost_usd=rc.budget.tally.cost_usd))

    def _after(self, state: _State, reply: Reply, acted: Acted, verify: Verify | None) -> Outcome | None:
        """What the step's result means: a nudge, the end of the goal, or going on."""
        rc = self.rc
        if reply.truncated:
            state.messages.append({"role": "user", "content": CUT_OFF_NOTE})
        if acted.no_tool_call:
            rc.bus.emit(FormatError(message=NO_TOOL_CALL))
            state.messages.append({"role": "user", "content": NO_TOOL_CALL})
        if acted.malformed:
            state.format_errors += 1
            if state.format_errors >= rc.config.limits.max_format_errors:
                why = f"the model sent {state.format_errors} malformed replies in a row"
                return self._end(state, "failed", why)
        else:
            state.format_errors = 0
        if acted.finish is not None:
            call, obs = acted.finish
            return self.finish(state, call, obs, verify)
        return self.progress(state, reply, acted, verify)

    def finish(self, state: _State, call: ToolCallRecord, obs: Observation, verify: Verify | None) -> Outcome | None:
        """The model says it is done: run the goal's checks; refuse the finish while they fail."""
        actor = self.rc.actor
        if verify is None:
            state.messages.append(actor.tool_message(call, Observation("Finished.")))
            return Outcome("done", summary=obs.output, messages=state.messages)
        checks = verify(state.messages)
        failed = [c for c in checks if not c.passed]
        if not failed:
            done = "Finished; all checks passed." if checks else "Finished."
            state.messages.append(actor.tool_message(call, Observation(done)))
            return Outcome("done", summary=obs.output, messages=state.messages, checks=checks)
        state.rejections += 1
        report = "\n\n".join(f"$ {c.command}\n[exit code {c.exit_code}]\n{c.output}" for c in failed)
        if state.rejections > self.rc.config.limits.max_finish_rejections:
            state.messages.append(actor.tool_message(call, Observation(f"Checks failed:\n{report}", is_error=True)))
            why = f"checks still fail after {state.rejections} attempts to finish: {failed[0].command}"
            return Outcome("failed", reason=why, messages=state.messages, checks=checks)
        text = f"Not finished: the checks fail.\n{report}\nFix the problem, then call finish again."
        state.messages.append(actor.tool_message(call, Observation(text, is_error=True)))
        state.last_checks = checks
        return None

    def progress(self, state: _State, reply: Reply, acted: Acted, verify: Verify | None) -> Outcome | None:
        """After a step that did not finish: done by its check, looping, stalled, or going on."""
        goal = state.goal
        changed = False
        # A step whose tools all declare they only read cannot have changed a file: no snapshot needed.
        if state.snapshot is not None and not acted.read_only:
            now = self.rc.workspace.snapshot(f"goal {goal.index + 1} step")
            changed = bool(self.rc.workspace.changed_paths(state.snapshot, now))
            state.snapshot = now
        passes = False
        if goal.check_each_step and verify is not None and not acted.read_only:
            passes = all(c.passed for c in verify(state.messages))
        verdict = state.ledger.assess(
            goal.index, goal.title, acted.results, malformed=acted.malformed, files_changed=changed, done=passes
        )
        if verdict.decision == "advance":
            return Outcome("done", reason=verdict.reason, messages=state.messages, looping=verdict.looping)
        if goal.replan:  # progress events are the planner's; without one the ledger only spots loops
            self.rc.bus.emit(verdict)
        if verdict.decision == "replan":
            return self._end(state, "stuck", verdict.reason)
        if verdict.looping:
            state.messages.append({"role": "user", "content": LOOP_NUDGE})
        return None

    @staticmethod
    def _end(state: _State, status: OutcomeStatus, reason: str, limit: Limit | None = None) -> Outcome:
        return Outcome(status, reason=reason, messages=state.messages, checks=state.last_checks, limit=limit)
