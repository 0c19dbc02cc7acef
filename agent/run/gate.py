"""The gate between a tool call and its execution: the policy engine decides, an approver answers `ask`,
and every decision becomes an event naming the rule that made it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from branchwise.agent.record.events import EventBus, PolicyDecision, ToolCallRecord, ToolResult
from branchwise.sandbox.policy.engine import WRITE_TOOLS, CallInfo, Decision, Policy, TaintTracker
from branchwise.sandbox.policy.taint import Source

# Returns None to let the call run, or the reason it may not (that reason goes back to the model).
Gate = Callable[[ToolCallRecord], str | None]
# Answers a policy `ask`: True runs the call. Headless runs have none, so every ask is refused.
Approver = Callable[[ToolCallRecord, Decision], bool]

_PATH_ARGS = ("path",)
# Tool outputs are untrusted content: text the model reads there must not steer calls that leave the box.
_UNTRUSTED_SOURCE = {"view": "file", "grep": "file", "glob": "file"}


def call_info(call: ToolCallRecord, args: dict[str, Any]) -> CallInfo:
    command = str(args["command"]) if call.name == "shell" and "command" in args else None
    paths = [str(args[k]) for k in _PATH_ARGS if isinstance(args.get(k), str)]
    return CallInfo(tool=call.name, args=args, command=command, paths=paths)


class PolicyGate:
    """A Gate backed by the policy engine, taint tracking and an optional approver."""

    def __init__(
        self, policy: Policy, bus: EventBus, *, taint: TaintTracker | None, approver: Approver | None = None
    ) -> None:
        self.policy, self.bus, self.taint, self.approver = policy, bus, taint, approver

    def __call__(self, call: ToolCallRecord) -> str | None:
        args = call.arguments or {}
        info = call_info(call, args)
        decision = self.policy.decide(info, self.taint)
        approved: bool | None = None
        if decision.action == "ask":
            approved = self.approver(call, decision) if self.approver else False
        self.bus.emit(
            PolicyDecision(
                call_id=call.id,
                tool=call.name,
                decision=decision.action,
                rule=decision.rule,
                reason=decision.reason,
                approved=approved,
            )
        )
        if decision.action == "allow" or approved:
            self._follow_into_file(info)
            return None
        if decision.action == "ask" and self.approver is not None:
            return f"the user did not approve it ({decision.reason}; rule {decision.rule}); do the task another way"
        if decision.action == "ask":
            return (
                f"this needs the user's approval ({decision.reason}; rule {decision.rule}) and nobody can approve "
                "it in this run; do the task another way"
            )
        return f"denied by policy ({decision.reason}; rule {decision.rule})"

    def _follow_into_file(self, info: CallInfo) -> None:
        """A file edit that carries tainted content taints the file: running it later must ask too."""
        if self.taint is None or info.tool not in WRITE_TOOLS or not info.all_paths:
            return
        hit = self.taint.check(info.strings())
        if hit is not None:
            for path in info.all_paths:
                self.taint.add_written(path, hit.sources)

    def untrusted(self, text: str, source: Source) -> None:
        """Content the agent read outside a tool result (retrieved memory, a fetched page): it taints."""
        if self.taint is not None:
            self.taint.add_untrusted(text, source)

    def trust(self, text: str) -> None:
        """Text from the user (the task): indicators in it do not taint."""
        if self.taint is not None:
            self.taint.add_trusted(text)

    def observe(self, event: Any) -> None:
        """An event subscriber: everything tools return is untrusted content for taint tracking."""
        if self.taint is not None and isinstance(event, ToolResult):
            self.taint.add_untrusted(event.output, _UNTRUSTED_SOURCE.get(event.name, "tool_output"))
