"""A session: everything one run needs (sandbox, model, tools, events, trajectory, budget), and the run itself.

`Session.run` is the one run path: start the budget, snapshot the workspace, give the task to the driver with
the configured solver, and turn however it ends (done, failed, out of budget, interrupted, an error) into one
`run_finished` event. The trajectory is written as events happen, so nothing is lost whatever ends the run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from branchwise.agent import version
from branchwise.agent.config.layers import LoadedConfig
from branchwise.agent.errors import (
    STATUS_EXIT,
    BranchwiseError,
    BudgetExceeded,
    Completed,
    EnvironmentProblem,
    StopRun,
    UsageError,
)
from branchwise.agent.memory.base import Memory, NoMemory
from branchwise.agent.models.base import Model
from branchwise.agent.plan.condense import WorkingMemory, context_budget, make_counter
from branchwise.agent.record.events import CheckResult, EventBus, RunFinished, RunStarted, Warning
from branchwise.agent.record.trajectory import TrajectoryWriter, new_run_id, prepare_runs_dir
from branchwise.agent.run.actor import Actor
from branchwise.agent.run.budget import Budget, Caps
from branchwise.agent.run.context import Checker, RunContext
from branchwise.agent.run.driver import Driver
from branchwise.agent.run.gate import Approver
from branchwise.agent.run.learning import Learning
from branchwise.agent.run.loop import LoopSolver
from branchwise.agent.run.prompts import find_instructions, system_prompt
from branchwise.agent.run.query import Asker
from branchwise.agent.run.repository import Repository
from branchwise.agent.run.solver import Solver
from branchwise.agent.run.wiring import EgressRecorder, make_gate
from branchwise.agent.run.workspace import git_branch
from branchwise.agent.search.solver import SearchSolver
from branchwise.sandbox.base import Sandbox, SandboxError
from branchwise.sandbox.workspace.safefs import WorkspaceFS
from branchwise.sandbox.workspace.snapshots import ShadowGitWorkspace, SnapshotDeadline
from branchwise.tools import ToolBox, ToolContext, default_tools
from branchwise.tools.browser import attach_browser, outside_state

END_SNAPSHOT_GRACE_S = 10.0  # seconds past the wall limit the end snapshot may take


@dataclass(frozen=True)
class Ending:
    """How a run ended, before its last event is written."""

    status: str = "error"
    exit_code: int = 1
    summary: str = ""
    error: str | None = None
    limit: str | None = None


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
    carry: str = ""
    """What earlier tasks of an interactive session did (the REPL's conversation), for the system prompt."""

    def __post_init__(self) -> None:
        self.config = self.loaded.config
        try:
            self.run_dir = prepare_runs_dir(self.workspace) / self.run_id
            self.writer = TrajectoryWriter(self.run_dir)
        except OSError as exc:
            where = exc.filename or self.workspace / ".branchwise"
            raise UsageError(f"cannot write the run log in {where}: {exc.strerror or exc}") from None
        self.bus.run_id = self.run_id
        self.bus.subscribe(self.writer, first=True)
        caps = Caps(steps=self.config.limits.max_steps, tokens=self.config.limits.max_tokens,
                    cost_usd=self.config.limits.max_cost_usd)  # fmt: skip
        self.budget = Budget(caps, self.config.limits.max_wall_s)
        self.bus.subscribe(self.budget, first=True)
        tools = self.config.tools
        self.ctx = ToolContext(
            sandbox=self.sandbox,
            fs=WorkspaceFS(self.workspace, hidden=self.config.sandbox.deny_read),
            shell_timeout_s=tools.shell_timeout_s,
            output_limit_bytes=tools.output_limit_bytes,
            cwd=self.workdir,
            deadline=self.budget.deadline,
        )
        self.toolbox = ToolBox(default_tools())
        self.browser = attach_browser(self.config.browser, self.toolbox, self.ctx, self.run_dir / "browser")
        self.gate = make_gate(self.config, self.workspace, self.bus, approver=self.approver, tools=self.toolbox)

        self.egress = EgressRecorder(self.sandbox, self.bus)
        self.bus.subscribe(self.egress)
        self.start_snapshot: str | None = None
        self.end_snapshot: str | None = None
        try:
            self.snapshots = ShadowGitWorkspace(self.workspace, session=self.run_id)
        except SandboxError as exc:
            raise EnvironmentProblem(f"cannot keep snapshots of {self.workspace}: {exc}") from None
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            raise EnvironmentProblem(f"cannot keep snapshots of {self.workspace}: {where}{exc.strerror}") from None
        # Snapshot work counts against the wall limit too (a tree of huge sparse files must not hold the run).
        self.snapshots.deadline = self.budget.deadline
        # The search's snapshots also hold the browser's page and the background processes (replayed, restarted).
        self.outside = outside_state(self.snapshots, self.toolbox, self.ctx, self.browser)
        self.learning = Learning(self.memory, self.model, self.toolbox, self.ctx, self.bus, self.gate, self.snapshots)
        self.repository = Repository(self.config, self.workspace, self.toolbox, self.bus)
        self.repository.add_tools()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.writer.close()
        self.repository.close()
        self.toolbox.close()
        self.sandbox.close()
        self.snapshots.deadline = None  # clean-up (refs, the index kept for the next run) is not the run's work
        try:  # only the start state is needed later (replay, undo); the rest of the snapshots can go
            self.snapshots.keep_only([s for s in (self.start_snapshot, self.end_snapshot) if s])
        except SandboxError:
            pass

    def run(self, task: str, *, plan_only: bool = False) -> RunFinished:
        """Run the task to its end; every way of stopping is handled here and recorded."""
        started = time.monotonic()
        ending = Ending()
        driver: Driver | None = None
        try:
            self.start_snapshot = self.snapshots.snapshot("start")
            self.emit_start(task, self.repository.start())
            for warning in self.snapshots.warnings:  # workspace: e.g. no change watcher, snapshots walk the tree
                self.bus.emit(Warning(message=warning))
            self.add_mcp_tools()
            # Only the user's own words are trusted: AGENTS.md comes with the repository, like any of its files.
            self.gate.trust(task)
            notes = "\n".join(filter(None, [self.repository.map_text(task), self.learning.recall(task), self.carry]))
            if self.carry:  # earlier replies and results: written by the model and the tools, not the user
                self.gate.untrusted(self.carry, "tool_output")
            driver = self.driver(task, notes)
            if plan_only:
                plan = driver.make_plan()
                raise Completed(f"planned {len(plan.subgoals)} subgoal(s); nothing was run (--plan-only)")
            driver.run()
        except StopRun as stop:
            ending = Ending(stop.status, STATUS_EXIT[stop.status], stop.reason,
                            limit=stop.limit if isinstance(stop, BudgetExceeded) else None)  # fmt: skip
        except SnapshotDeadline as late:
            reason = f"the wall-clock limit ran out while snapshotting the workspace ({late})"
            ending = Ending("budget_exceeded", STATUS_EXIT["budget_exceeded"], reason, limit="wall")
        except (BranchwiseError, SandboxError) as err:
            code = err.exit_code if isinstance(err, BranchwiseError) else EnvironmentProblem.exit_code
            ending = Ending("error", code, str(err), error=str(err))
        except KeyboardInterrupt:
            ending = Ending("interrupted", STATUS_EXIT["interrupted"], "interrupted by the user")
        checks = self.final_checks(driver, ending)
        self.egress.flush()  # background processes may have gone on using the network
        memory = self.learning.learn(self.run_dir, ending.status, checks) if self.start_snapshot else {}
        finished = self.finish(ending, checks, time.monotonic() - started, memory, task)
        self.bus.emit(finished)
        return finished

    def final_checks(self, driver: Driver | None, ending: Ending) -> list[CheckResult]:
        """The checks the run ended with; run now when it stopped before they ran (failed, out of budget),
        unless the wall-time limit stopped it: then there is no time left for them."""
        checks = driver.last_checks if driver is not None else None
        if checks is None and ending.limit == "wall" and self.config.checks:
            self.bus.emit(Warning(message="the wall-time limit was reached, so the task's checks were not run"))
            return []
        if checks is None and ending.status in ("failed", "budget_exceeded") and self.config.checks:
            # They get their own time: the run's deadline may be what ended it.
            checker = Checker(self.sandbox, self.workspace, self.bus, float("inf"), self.config.tools.check_timeout_s)
            try:
                checks = checker.run(self.config.checks)
            except SandboxError:
                checks = None
        return checks or []

    def finish(
        self, ending: Ending, checks: list[CheckResult], duration_s: float, memory: dict[str, Any], task: str
    ) -> RunFinished:
        """The run's last event: its end snapshot taken, and a verified result committed on a branch."""
        # The end snapshot gets a short grace past the wall limit (it is what undo and the commit need), no more.
        self.snapshots.deadline = max(self.budget.deadline, time.monotonic()) + END_SNAPSHOT_GRACE_S
        try:
            # Background processes end with the run; while one ran, bwrap's mount-point files for missing
            # protected paths (.envrc, .vscode, ...) had to stay, and must not get into the end snapshot.
            self.sandbox.stop_background()
            # full: the one walk of the tree per run, for writes no change watcher sees (shared mmap, hard links)
            self.end_snapshot = self.snapshots.snapshot("end", full=True) if self.start_snapshot else None
        except SandboxError:
            self.end_snapshot = None
        branch = None
        verified = ending.status == "completed" and bool(checks) and all(c.passed for c in checks)
        if verified and self.start_snapshot and self.end_snapshot:
            branch = self.repository.commit(self.snapshots, self.start_snapshot, self.end_snapshot, ending.summary,
                                            self.run_id, task)  # fmt: skip
        tally = self.budget.tally
        return RunFinished(
            status=ending.status,
            exit_code=ending.exit_code,
            summary=ending.summary,
            error=ending.error,
            steps=tally.steps,
            tokens=tally.usage,
            cost_usd=tally.cost_usd,
            changed_files=self.changed_files(),
            checks=checks,
            duration_s=round(duration_s, 3),
            limit=ending.limit,
            model_calls=tally.model_calls,
            start_snapshot=self.start_snapshot,
            end_snapshot=self.end_snapshot,
            memory=memory,
            branch=branch,
            model=self.model.name,
            strategy=self.config.search.strategy,
        )

    def emit_start(self, task: str, start_head: str | None = None) -> None:
        info = self.sandbox.describe()
        self.bus.emit(
            RunStarted(
                start_head=start_head,
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

    def add_mcp_tools(self) -> None:
        """The configured MCP servers' tools (servers start now, in the session's sandbox by default)."""
        if not self.config.mcp.servers:
            return
        from branchwise.tools.mcp.manager import McpManager

        manager = McpManager(self.config.mcp, self.sandbox, self.workspace,
                             warn=lambda message: self.bus.emit(Warning(message=message)))  # fmt: skip
        for tool in manager.tools():
            self.toolbox.add(tool)
            self.gate.untrusted(tool.description, "tool_output")  # server-written text the model reads

    def judge(self) -> Model | None:
        """The model that judges and chooses when executable signals do not decide (None: nobody)."""
        setting = self.config.search.judge
        if setting == "off" or (setting == "auto" and self.model.kind == "scripted"):
            return None
        return self.model

    def context(self) -> RunContext:
        """What the driver and the solvers of this run work with."""
        counter = make_counter(self.model, self.toolbox.schemas())
        condense = WorkingMemory(counter, context_budget(self.model, self.config.planner.context_tokens), self.bus,
                                 enabled=self.config.planner.condense)  # fmt: skip
        return RunContext(
            config=self.config,
            model=self.model,
            judge=self.judge(),
            asker=Asker(self.bus, self.budget),
            actor=Actor(self.toolbox, self.ctx, self.bus, self.gate),
            toolbox=self.toolbox,
            tools=self.ctx,
            bus=self.bus,
            workspace=self.outside,
            budget=self.budget,
            condense=condense,
            checker=Checker(
                self.sandbox, self.workspace, self.bus, self.budget.deadline, self.config.tools.check_timeout_s
            ),
            run_dir=self.run_dir,
        )

    def driver(self, task: str, notes: str = "") -> Driver:
        rc = self.context()
        strategy = self.config.search.strategy
        solver: Solver = LoopSolver(rc) if strategy == "none" else SearchSolver(rc, strategy)
        if self.browser is not None:  # the search tree's view shows each browser step's page
            self.browser.thumbnails = strategy != "none"
        found = find_instructions(self.workspace, self.config.instructions, deny_read=self.config.sandbox.deny_read)
        instructions = (found[0].name, found[1]) if found else None
        given = self.loaded.task.get("plan")
        return Driver(rc, solver, task, system=self.system_prompt(found, notes), planning=self.config.planner.enabled,
                      given_plan=given, memory=self.memory, instructions=instructions)  # fmt: skip

    def system_prompt(self, instructions: tuple[Path, str] | None, notes: str = "") -> str:
        prompt = system_prompt(
            self.workspace,
            sandbox=self.sandbox.describe(),
            instructions=instructions,
            checks=self.config.checks,
            git_branch=git_branch(self.workspace),
        )
        return f"{prompt}\n{notes}" if notes else prompt

    def changed_files(self) -> list[str]:
        """Files that differ from the start of the run (nothing is known if the start was never recorded)."""
        if self.start_snapshot is None:
            return []
        try:
            return self.snapshots.changed_paths(self.start_snapshot, self.end_snapshot)
        except SandboxError:
            return []
