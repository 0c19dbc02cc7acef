"""The gate between a tool call and its execution: the policy engine decides, an approver answers `ask`,
and every decision becomes an event naming the rule that made it.

What the policy knows about a call comes from the tool's own declaration (`Tool.effect_of(args)`,
`path_args`, `output_source`), so tools added to a session (browser, MCP) are judged by what they
declare, and a tool nobody declared is treated as acting outside the machine.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

from branchwise.agent.record.events import EventBus, PolicyDecision, ToolCallRecord, ToolResult
from branchwise.sandbox.policy.effects import Kind, call_kind, most_severe
from branchwise.sandbox.policy.engine import CallInfo, Decision, Policy, TaintTracker
from branchwise.sandbox.policy.taint import Source
from branchwise.tools import Tool, ToolBox, default_tools

# Returns None to let the call run, or the reason it may not (that reason goes back to the model).
Gate = Callable[[ToolCallRecord], str | None]
# Answers a policy `ask`: True runs the call. Headless runs have none, so every ask is refused.
Approver = Callable[[ToolCallRecord, Decision], bool]


@functools.cache
def _core_tools() -> ToolBox:
    """The core tool set's declarations, for callers without a session ToolBox (built once)."""
    return ToolBox(default_tools())


def call_info(call: ToolCallRecord, args: dict[str, Any], tools: ToolBox | None = None) -> CallInfo:
    """The call as the policy sees it, with the effect and path arguments its tool declares."""
    tool = _tool(call.name, tools)
    command = args.get("command") if isinstance(args.get("command"), str) else None
    if tool is None:  # not a tool of this session: it may do anything
        return CallInfo(tool=call.name, args=args, command=command, paths=_paths(args, ("path",)),
                        declared="external")  # fmt: skip
    facts: dict[str, Any] = {}
    try:
        parsed = tool.Args.model_validate(args)
        effect = tool.effect_of(parsed)
        facts = tool.policy_facts(parsed)
    except Exception:  # invalid arguments never run (the actor refuses them); judge by the declaration
        effect = tool.effect
    return CallInfo(tool=call.name, args=args, command=command if effect == "exec" else None,
                    paths=_paths(args, tool.path_args), declared=effect, facts=facts)  # fmt: skip


def classify_calls(calls: Iterable[ToolCallRecord], tools: ToolBox | None = None) -> Kind:
    """The most consequential kind among a reply's calls (read, ephemeral, file, stateful, irreversible),
    from each tool's declared effect and, for commands, `effects.command_effect`: what the search branches on."""
    kinds = []
    for call in calls:
        info = call_info(call, call.arguments or {}, tools)
        kinds.append(call_kind(info.effect, info.shell_command))
    return most_severe(kinds)


def _tool(name: str, tools: ToolBox | None) -> Tool | None:
    return (tools or _core_tools()).tools.get(name)


def _paths(args: dict[str, Any], names: Iterable[str]) -> list[str]:
    return [str(args[k]) for k in names if isinstance(args.get(k), str) and args[k]]


class PolicyGate:
    """A Gate backed by the policy engine, taint tracking and an optional approver.

    `tools` is the session's ToolBox (tools added to it later are seen too); without one the core tools'
    declarations are used and any other tool counts as external."""

    def __init__(
        self,
        policy: Policy,
        bus: EventBus,
        *,
        taint: TaintTracker | None,
        approver: Approver | None = None,
        tools: ToolBox | None = None,
    ) -> None:
        self.policy, self.bus, self.taint, self.approver, self.tools = policy, bus, taint, approver, tools

    def __call__(self, call: ToolCallRecord) -> str | None:
        args = call.arguments or {}
        info = call_info(call, args, self.tools)
        decision = self.policy.decide(info, self.taint)
        approved: bool | None = None
        if decision.action == "ask":
            before = call.args_key()
            approved = self.approver(call, decision) if self.approver else False
            if approved and call.args_key() != before:  # approved as edited: the edit is judged again
                args = call.arguments or {}
                info = call_info(call, args, self.tools)
                edited = self.policy.decide(info, self.taint)
                if edited.action == "deny":
                    decision, approved = edited, False
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
        if self.taint is None or info.effect != "file" or not info.all_paths:
            return
        hit = self.taint.check(info.strings())
        if hit is not None:
            for path in info.all_paths:
                self.taint.add_written(path, hit.sources)

    def untrusted(self, text: str, source: Source) -> None:
        """Content the agent read outside a tool result (retrieved memory, a fetched page, the project's
        instruction files): it taints."""
        if self.taint is not None:
            self.taint.add_untrusted(text, source)

    def trust(self, text: str) -> None:
        """Text from the user (the task): indicators in it do not taint."""
        if self.taint is not None:
            self.taint.add_trusted(text)

    def observe(self, event: Any) -> None:
        """An event subscriber: everything tools return is untrusted content, of the kind the tool declares."""
        if self.taint is not None and isinstance(event, ToolResult):
            tool = _tool(event.name, self.tools)
            self.taint.add_untrusted(event.output, tool.output_source if tool is not None else "tool_output")
