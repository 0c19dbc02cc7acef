"""What the driver and the solvers work with: the session's pieces, narrowed to what they use."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from branchwise.agent.config.schema import Config
from branchwise.agent.models.base import Model
from branchwise.agent.plan.condense import WorkingMemory
from branchwise.agent.record.events import Check, CheckResult, EventBus
from branchwise.agent.run.actor import Actor
from branchwise.agent.run.budget import Budget
from branchwise.agent.run.query import Asker
from branchwise.sandbox.base import ExecResult, Sandbox
from branchwise.sandbox.workspace.snapshots import Workspace
from branchwise.tools import ToolBox, ToolContext
from branchwise.tools.shell import COMMAND_ENV

CHECK_OUTPUT_CHARS = 4000


@dataclass
class RunContext:
    """One run's model, tools, events, snapshots and budget."""

    config: Config
    model: Model
    judge: Model | None
    """Who judges and chooses when executable signals do not decide (None: nobody)."""
    asker: Asker
    actor: Actor
    toolbox: ToolBox
    tools: ToolContext
    bus: EventBus
    workspace: Workspace
    budget: Budget
    condense: WorkingMemory
    checker: Checker
    run_dir: Path


class Checker:
    """Runs checks (task checks, done-checks) as bash commands in the sandbox at the workspace root."""

    def __init__(self, sandbox: Sandbox, workspace: Path, bus: EventBus, deadline: float, timeout_s: float) -> None:
        self.sandbox, self.workspace, self.bus = sandbox, workspace, bus
        self.deadline, self.timeout_s = deadline, timeout_s

    def run_command(self, command: str) -> ExecResult:
        """One check command; its time limit never reaches past the run's deadline (time.monotonic())."""
        timeout = max(0.1, min(self.timeout_s, self.deadline - time.monotonic()))
        return self.sandbox.run(
            ["bash", "--noprofile", "--norc", "-c", command], cwd=self.workspace, timeout=timeout, env=COMMAND_ENV
        )

    def run(self, commands: list[str], *, output_chars: int = CHECK_OUTPUT_CHARS) -> list[CheckResult]:
        """Run each command as a check; each result is an event."""
        results = []
        for command in commands:
            res = self.run_command(command)
            result = CheckResult(
                command=command,
                exit_code=res.exit_code,
                passed=res.ok,
                output=res.output[-output_chars:],
                duration_s=round(res.duration_s, 3),
            )
            self.bus.emit(Check(result=result))
            results.append(result)
        return results
