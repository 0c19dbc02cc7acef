"""A session: everything one run needs (sandbox, model, tools, events, trajectory), and the run itself."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from branchwise.agent import version
from branchwise.agent.config.layers import LoadedConfig
from branchwise.agent.config.schema import LimitsSettings, SearchSettings
from branchwise.agent.errors import (
    STATUS_EXIT,
    BranchwiseError,
    BudgetExceeded,
    Completed,
    EnvironmentProblem,
    Failed,
    StopRun,
)
from branchwise.agent.memory.base import Memory, NoMemory
from branchwise.agent.models.base import Model
from branchwise.agent.record.events import Check, CheckResult, EventBus, RunFinished, RunStarted, Usage, Warning
from branchwise.agent.record.trajectory import TrajectoryWriter, new_run_id, prepare_runs_dir
from branchwise.agent.run.actor import Actor
from branchwise.agent.run.gate import Approver
from branchwise.agent.run.loop import Executor
from branchwise.agent.run.prompts import find_instructions, system_prompt
from branchwise.agent.run.wiring import EgressRecorder, make_gate
from branchwise.sandbox.base import ExecResult, Sandbox, SandboxError
from branchwise.sandbox.workspace.safefs import WorkspaceFS
from branchwise.sandbox.workspace.snapshots import ShadowGitWorkspace
from branchwise.tools import ToolBox, ToolContext, default_tools
from branchwise.tools.shell import COMMAND_ENV

if TYPE_CHECKING:
    from branchwise.agent.search import SearchContext
    from branchwise.agent.search.context import Verify


def _git(cwd: Path, *args: str) -> str | None:
    """A git command's output, or None when git is missing or the command fails."""
    try:
        out = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def find_workspace(start: Path) -> Path:
    """The git top level containing `start`, or `start` itself outside git."""
    top = _git(start, "rev-parse", "--show-toplevel")
    return Path(top).resolve() if top else start.resolve()


def git_branch(workspace: Path) -> str | None:
    return _git(workspace, "branch", "--show-current") or None


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
    approver: Approver | None = None
    memory: Memory = field(default_factory=NoMemory)

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
        self.gate = make_gate(self.config, self.workspace, self.bus, approver=self.approver)
        self.egress = EgressRecorder(self.sandbox, self.bus)
        self.bus.subscribe(self.egress)
        self.start_snapshot: str | None = None
        try:
            self.snapshots = ShadowGitWorkspace(self.workspace, session=self.run_id)
        except SandboxError as exc:
            raise EnvironmentProblem(f"cannot keep snapshots of {self.workspace}: {exc}") from None

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.writer.close()
        self.sandbox.close()
        try:  # only the start state is needed later (replay); the rest of the snapshots can go
            self.snapshots.keep_only([self.start_snapshot] if self.start_snapshot else [])
        except SandboxError:
            pass

    def run(self, task: str, *, plan_only: bool = False) -> RunFinished:
        """Run the task to its end; every way of stopping is handled here and recorded."""
        started = time.monotonic()
        tally = _Tally()
        status, summary, error, exit_code = "error", "", None, 1
        try:
            self.start_snapshot = self.snapshots.snapshot("start")
            self.emit_start(task)
            # Only the user's own words are trusted: AGENTS.md comes with the repository, like any of its files.
            self.gate.trust(task)
            if plan_only:
                self.run_plan_only(task)
            elif self.config.planner.enabled or self.loaded.task.get("plan") is not None:
                self.run_planned(task, tally)
            elif self.config.search.strategy == "none":
                self.run_plain(task, tally)
            else:
                self.run_search(task, tally)
        except StopRun as stop:
            status, summary = stop.status, stop.reason
            exit_code = STATUS_EXIT[status]
            if tally.checks is None and stop.status in ("failed", "budget_exceeded") and self.config.checks:
                tally.checks = self.run_checks()
        except (BranchwiseError, SandboxError) as err:
            error = summary = str(err)
            exit_code = err.exit_code if isinstance(err, BranchwiseError) else EnvironmentProblem.exit_code
        except KeyboardInterrupt:
            status, summary, exit_code = "interrupted", "interrupted by the user", STATUS_EXIT["interrupted"]
        self.egress.flush()  # background processes may have gone on using the network
        finished = RunFinished(
            status=status,
            exit_code=exit_code,
            summary=summary,
            error=error,
            steps=tally.steps,
            tokens=tally.usage,
            cost_usd=tally.cost_usd,
            changed_files=self.changed_files(),
            checks=tally.checks or [],
            duration_s=round(time.monotonic() - started, 3),
        )
        self.bus.emit(finished)
        return finished

    def emit_start(self, task: str) -> None:
        info = self.sandbox.describe()
        self.bus.emit(
            RunStarted(
                task=task,
                model=self.model.name,
                workspace=str(self.workspace),
                sandbox=info,
                config=self.config.model_dump(mode="json"),
                start_snapshot=self.start_snapshot,
                version=version(),
            )
        )
        if not info.get("isolated"):
            self.bus.emit(Warning(message="running UNSANDBOXED: commands run directly on this machine"))

    def run_plan_only(self, task: str) -> None:
        """Write the plan (an event) and stop before doing anything."""
        from branchwise.agent.run.driver import Orchestrator

        plan = Orchestrator(self, task).make_plan()
        raise Completed(f"planned {len(plan.subgoals)} subgoal(s); nothing was run (--plan-only)")

    def run_planned(self, task: str, tally: _Tally) -> None:
        """The planner-executor loop: subgoals, a progress ledger, re-planning, working memory."""
        from branchwise.agent.run.driver import Orchestrator

        orchestrator = Orchestrator(self, task)
        ex = orchestrator.executor
        try:
            orchestrator.run()
        finally:
            tally.steps, tally.usage, tally.cost_usd = ex.steps, ex.usage, ex.cost_usd
            tally.checks = ex.last_checks

    def judge(self) -> Model | None:
        """The model that judges and chooses when executable signals do not decide (None: nobody)."""
        setting = self.config.search.judge
        if setting == "off" or (setting == "auto" and _is_scripted(self.model)):
            return None
        return self.model

    def run_command(self, command: str) -> ExecResult:
        """A check or done-check: one bash command in the sandbox, at the workspace root."""
        return self.sandbox.run(
            ["bash", "--noprofile", "--norc", "-c", command],
            cwd=self.workspace,
            timeout=self.config.tools.check_timeout_s,
            env=COMMAND_ENV,
        )

    def run_plain(self, task: str, tally: _Tally) -> None:
        """The plain loop (search strategy none)."""
        executor = Executor(
            self.model,
            self.toolbox,
            self.ctx,
            self.bus,
            self.config.limits,
            temperature=self.config.llm.temperature,
            run_checks=self.run_checks if self.config.checks else None,
            gate=self.gate,
        )
        try:
            executor.run(self.system_prompt(), task)
        finally:
            tally.steps, tally.usage, tally.cost_usd = executor.steps, executor.usage, executor.cost_usd
            tally.checks = executor.last_checks

    def search_context(
        self, settings: SearchSettings, limits: LimitsSettings, verify: Verify | None, tree_path: Path, task: str
    ) -> SearchContext:
        """What a search of this session works with: its model, judge, tools, gate, snapshots and events."""
        from branchwise.agent.search import SearchContext

        return SearchContext(
            model=self.model,
            judge=self.judge(),
            actor=Actor(self.toolbox, self.ctx, self.bus, self.gate),
            ctx=self.ctx,
            workspace=self.snapshots,
            bus=self.bus,
            settings=settings,
            limits=limits,
            verify=verify,
            tree_path=tree_path,
            task=task,
        )

    def run_search(self, task: str, tally: _Tally) -> None:
        """best-of-n or mcts: explore branches from snapshots, verify, leave the workspace on the chosen one."""
        from branchwise.agent.search import make_search

        settings = self.config.search
        verify = self.run_checks if self.config.checks else None
        sc = self.search_context(settings, self.config.limits, verify, self.run_dir / "tree.json", task)
        search = make_search(settings.strategy, sc)
        messages = [{"role": "system", "content": self.system_prompt()}, {"role": "user", "content": task}]
        try:
            result = search.run(messages)
        finally:
            tally.steps = search.budget.nodes
            tally.usage, tally.cost_usd = search.budget.usage, search.budget.cost_usd
        tally.checks = result.checks or None
        raise {"completed": Completed, "failed": Failed, "budget_exceeded": BudgetExceeded}[result.status](
            result.summary
        )

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
            res = self.run_command(command)
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
        """Files that differ from the start of the run (nothing is known if the start was never recorded)."""
        if self.start_snapshot is None:
            return []
        try:
            return self.snapshots.changed_paths(self.start_snapshot)
        except SandboxError:
            return []


@dataclass
class _Tally:
    """What a run used and what its last checks said, however it ended."""

    steps: int = 0
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    checks: list[CheckResult] | None = None


def _is_scripted(model: Model) -> bool:
    return getattr(model, "kind", "") == "scripted"
