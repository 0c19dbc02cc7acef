"""Building the pieces of a session from the configuration: the sandbox and the policy gate."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from branchwise.agent.errors import ConfigError, EnvironmentProblem, UsageError
from branchwise.sandbox.base import Sandbox, SandboxUnavailable

if TYPE_CHECKING:  # the gate's pieces load with make_gate: `branchwise sandbox run` needs only the sandbox
    from branchwise.agent.config.schema import Config
    from branchwise.agent.record.events import EventBus
    from branchwise.agent.run.gate import Approver, PolicyGate
    from branchwise.tools import ToolBox


def make_sandbox_for(config: Config, workspace: Path, *, full_access: bool = False) -> Sandbox:
    """The sandbox the configuration asks for; full access only with the explicit command-line opt-out."""
    from branchwise.sandbox.isolation.bwrap import make_sandbox

    if config.sandbox.mode == "full-access" and not full_access:
        raise UsageError("sandbox mode full-access runs commands unisolated: it needs --dangerously-full-access")
    settings = config.sandbox.model_copy(update={"mode": "full-access"}) if full_access else config.sandbox
    try:
        return make_sandbox(settings, workspace, allow_unsandboxed=full_access)
    except SandboxUnavailable as exc:
        raise EnvironmentProblem(str(exc)) from None


def make_gate(
    config: Config, workspace: Path, bus: EventBus, *, approver: Approver | None, tools: ToolBox | None = None
) -> PolicyGate:
    """The policy gate: rules checked now (a bad rule is a config error), taint fed from tool results and from
    the project's instruction file (it comes with the repository: its words are not the user's). `tools` is the
    session's ToolBox, whose declarations tell the policy what each call can change."""
    from branchwise.agent.run.gate import PolicyGate
    from branchwise.agent.run.prompts import find_instructions
    from branchwise.sandbox.policy.engine import Policy, PolicyError, TaintTracker

    try:
        policy = Policy.from_settings(config.policy, config.sandbox, workspace)
    except PolicyError as exc:
        raise ConfigError(f"[policy]: {exc}") from None
    taint = TaintTracker(workspace) if config.policy.taint else None
    gate = PolicyGate(policy, bus, taint=taint, approver=approver, tools=tools)
    bus.subscribe(gate.observe)
    instructions = find_instructions(workspace, config.instructions, deny_read=config.sandbox.deny_read)
    if instructions is not None:
        gate.untrusted(instructions[1], "file")
    return gate


class EgressRecorder:
    """Puts the network proxy's decisions into the run's events: the proxy's own log dies with the sandbox.

    Subscribed to the bus, it reports the decisions made so far after every tool result (from the thread
    that emits events, never the proxy's); `flush()` reports the rest before the run ends.
    """

    def __init__(self, sandbox: Sandbox, bus: EventBus) -> None:
        self.sandbox, self.bus = sandbox, bus
        self.reported = 0

    def __call__(self, event: object) -> None:
        from branchwise.agent.record.events import ToolResult

        if isinstance(event, ToolResult):
            self.flush()

    def flush(self) -> None:
        from branchwise.agent.record.events import Egress

        log = getattr(self.sandbox, "egress_log", None)
        decisions = log() if log is not None else []
        new, self.reported = decisions[self.reported :], len(decisions)
        for d in new:
            self.bus.emit(Egress(method=d.method, host=d.host, port=d.port, action=d.action, reason=d.reason))
