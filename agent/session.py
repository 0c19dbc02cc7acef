"""A session: everything one run needs (sandbox, model, tools, events, trajectory), and the run itself."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from branchwise.sandbox.base import Sandbox
from branchwise.sandbox.safefs import WorkspaceFS
from branchwise.tools import ToolBox, ToolContext, default_tools

from .config import LoadedConfig
from .errors import STATUS_EXIT, BranchwiseError, Completed, StopRun
from .events import Check, CheckResult, EventBus, RunFinished, RunStarted, Warning
from .executor import Executor
from .model import Model
from .prompts import find_instructions, system_prompt
from .trajectory import TrajectoryWriter, new_run_id, prepare_runs_dir

VERSION = "0.1.0"


def find_workspace(start: Path) -> Path:
    """The git top level containing `start`, or `start` itself outside git."""
    try:
        out = subprocess.run(
            ["git", "-C", str(start), "rev-parse", "--show-toplevel"],
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError:
        return start.resolve()
    return Path(out.stdout.strip()).resolve() if out.returncode == 0 else start.resolve()


def git_branch(workspace: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(workspace), "branch", "--show-current"],
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError:
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


@dataclass
class Session:
    """Owns the resources of one run; use as a context manager so the sandbox is always closed."""

    loaded: LoadedConfig
    workspace: Path
    sandbox: Sandbox
    model: Model
    bus: EventBus = field(default_factory=EventBus)
    run_id: str = field(default_factory=new_run_id)
    workdir: Path | None = None

    def __post_init__(self) -> None:
        self.config = self.loaded.config
        self.run_dir = prepare_runs_dir(self.workspace) / self.run_id
        self.bus.run_id = self.run_id
        self.writer = TrajectoryWriter(self.run_dir)
        self.bus.subscribe(self.writer, first=True)
        tools = self.config.tools
        self.ctx = ToolContext(
            sandbox=self.sandbox,
            fs=WorkspaceFS(self.workspace),
            shell_timeout_s=tools.shell_timeout_s,
            output_limit_bytes=tools.output_limit_bytes,
            cwd=self.workdir,
        )
        self.toolbox = ToolBox(default_tools())

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.writer.close()
        self.sandbox.close()

    def run(self, task: str) -> RunFinished:
        """Run the task to its end; every way of stopping is handled here and recorded."""
        started = time.monotonic()
        info = self.sandbox.describe()
        self.bus.emit(
            RunStarted(
                task=task,
                model=self.model.name,
                workspace=str(self.workspace),
                sandbox=info,
                config=self.config.model_dump(mode="json"),
                version=VERSION,
            )
        )
        if not info.get("isolated"):
            self.bus.emit(Warning(message="running UNSANDBOXED: commands run directly on this machine"))
        executor = Executor(
            self.model,
            self.toolbox,
            self.ctx,
            self.bus,
            self.config.limits,
            temperature=self.config.llm.temperature,
            run_checks=self.run_checks if self.config.checks else None,
        )
        status, summary, error, exit_code = "error", "", None, 1
        try:
            executor.run(self.system_prompt(), task)
        except StopRun as stop:
            status, summary = stop.status, stop.reason
            exit_code = STATUS_EXIT[status]
            if not isinstance(stop, Completed) and stop.status != "interrupted" and self.config.checks:
                executor.last_checks = self.run_checks()
        except BranchwiseError as err:
            error, summary, exit_code = str(err), str(err), err.exit_code
        except KeyboardInterrupt:
            status, summary, exit_code = "interrupted", "interrupted by the user", STATUS_EXIT["interrupted"]
        finished = RunFinished(
            status=status,
            exit_code=exit_code,
            summary=summary,
            error=error,
            steps=executor.steps,
            tokens=executor.usage,
            cost_usd=executor.cost_usd,
            changed_files=self.changed_files(),
            checks=executor.last_checks or [],
            duration_s=round(time.monotonic() - started, 3),
        )
        self.bus.emit(finished)
        return finished

    def system_prompt(self) -> str:
        return system_prompt(
            self.workspace,
            sandbox=self.sandbox.describe(),
            instructions=find_instructions(self.workspace, self.config.instructions),
            checks=self.config.checks,
            git_branch=git_branch(self.workspace),
        )

    def run_checks(self) -> list[CheckResult]:
        """Run every task check in the sandbox; each result is an event."""
        results = []
        for command in self.config.checks:
            res = self.sandbox.run(
                ["bash", "--noprofile", "--norc", "-c", command],
                cwd=self.workspace,
                timeout=self.config.tools.check_timeout_s,
            )
            result = CheckResult(
                command=command,
                exit_code=res.exit_code,
                passed=res.ok,
                output=res.output[-4000:],
                duration_s=round(res.duration_s, 3),
            )
            self.bus.emit(Check(result=result))
            results.append(result)
        return results

    def changed_files(self) -> list[str]:
        return []
