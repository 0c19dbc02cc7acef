"""Run one simulated task with one strategy through the project's real code: the plain loop, BestOfN or MCTS."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from branchwise.agent.config.schema import Config, SearchSettings
from branchwise.agent.errors import StopRun
from branchwise.agent.plan.condense import WorkingMemory
from branchwise.agent.record.events import CheckResult, EventBus
from branchwise.agent.run.actor import Actor
from branchwise.agent.run.budget import Budget, Caps
from branchwise.agent.run.context import RunContext
from branchwise.agent.run.loop import LoopSolver
from branchwise.agent.run.query import Asker
from branchwise.agent.run.solver import Goal
from branchwise.agent.search.solver import SearchSolver
from branchwise.sandbox.workspace.safefs import WorkspaceFS
from branchwise.tools import ToolBox, ToolContext, default_tools

from .agents import CountingModel, SimJudge, SimPolicy
from .world import CHECK_COMMAND, Noise, SimSandbox, SimWorkspace, Task, World

STRATEGIES = ("none", "best-of-n", "mcts")
SYSTEM = "You are a coding agent. Use the tools to work on the task; call finish when done."
TEMPERATURE = 0.7
CALLS_PER_ATTEMPT = 10


@dataclass
class Outcome:
    """How one run went, judged against the hidden truth."""

    success: bool
    """The run says it completed and the workspace holds the correct solution."""
    coverage: bool
    """A finish was called on the correct solution somewhere in the run."""
    calls: int
    """Replies of the policy and the judge together."""
    judge_calls: int


@dataclass
class Rig:
    """One task's simulated world wired to the real tools."""

    world: World
    sandbox: SimSandbox
    workspace: SimWorkspace
    ctx: ToolContext
    policy: CountingModel
    judge: CountingModel

    @classmethod
    def build(cls, task: Task, noise: Noise, seed: str, root: Path) -> Rig:
        world = World(task, noise, random.Random(f"{seed}:checks"))
        sandbox = SimSandbox(world, root)
        ctx = ToolContext(sandbox=sandbox, fs=WorkspaceFS(root))
        policy = CountingModel(SimPolicy(task, noise, random.Random(f"{seed}:policy")))
        judge = CountingModel(SimJudge(task, noise, random.Random(f"{seed}:judge")))
        return cls(world, sandbox, SimWorkspace(world, root), ctx, policy, judge)

    def verify(self) -> list[CheckResult]:
        """The task's checks, run through the sandbox as Session.run_checks does."""
        res = self.sandbox.run(["bash", "--noprofile", "--norc", "-c", CHECK_COMMAND], cwd=self.sandbox.workspace)
        return [CheckResult(command=CHECK_COMMAND, exit_code=res.exit_code, passed=res.ok, output=res.output)]


def run_task(
    strategy: str, task: Task, noise: Noise, budget: int, seed: int, root: Path, search: dict[str, Any]
) -> Outcome:
    """Run `task` once; `budget` is the model-call budget, `search` overrides SearchSettings fields."""
    # Common random numbers: every strategy draws from the same streams for a task, so where two strategies run
    # the same code (best-of-n that fell back to the plain loop) they score the same, and paired differences
    # measure the strategies, not the luck of separate streams.
    rig = Rig.build(task, noise, f"{seed}:{task.name}", root)
    prompt = f"Task {task.name}: make the failing check `{CHECK_COMMAND}` pass."
    if strategy == "none":
        status = _run_plain(rig, prompt, budget)
        covered = any(task.solved(s) for s in rig.world.check_log)  # the plain loop checks only at finish
    else:
        status, covered = _run_search(rig, strategy, prompt, budget, search)
    calls = rig.policy.calls + rig.judge.calls
    return Outcome(status == "completed" and task.solved(rig.world.state), covered, calls, rig.judge.calls)


def _context(rig: Rig, settings: SearchSettings, budget: Budget) -> RunContext:
    """The real run context, with the simulated model, judge and workspace plugged into its seams."""
    bus = EventBus()
    bus.subscribe(budget)
    toolbox = ToolBox(default_tools())
    config = Config(search=settings, planner={"condense": False})
    memory = WorkingMemory(lambda m: 0, 10**9, bus, enabled=False)
    return RunContext(config=config, model=rig.policy, judge=rig.judge, asker=Asker(bus, budget),
                      actor=Actor(toolbox, rig.ctx, bus), toolbox=toolbox, tools=rig.ctx, bus=bus,
                      workspace=rig.workspace, budget=budget, condense=memory,  # type: ignore[arg-type]
                      checker=None, run_dir=rig.ctx.workspace)  # type: ignore[arg-type]  # fmt: skip


def _goal(prompt: str) -> Goal:
    return Goal(index=0, title=prompt, task=prompt,
                opening=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}])  # fmt: skip


def _run_plain(rig: Rig, prompt: str, budget: int) -> str:
    """The plain loop (strategy none): its step limit is the call budget; it has no judge."""
    meter = Budget(Caps(steps=budget), wall_s=3600)
    rc = _context(rig, SearchSettings(temperature=TEMPERATURE), meter)
    rc.config.llm.temperature = TEMPERATURE
    try:
        outcome = LoopSolver(rc).solve(_goal(prompt), lambda _c: rig.verify(), meter.view("task"))
    except StopRun as stop:
        return stop.status
    return "completed" if outcome.status == "done" else "failed"


def _run_search(rig: Rig, strategy: str, prompt: str, budget: int, search: dict[str, Any]) -> tuple[str, bool]:
    """best-of-n or mcts through the product's SearchSolver, fitted to its budget as a run fits it."""
    if strategy == "best-of-n":
        # Attempts scale with the budget (3 at 30, the default), so that best-of-n can use what it is given.
        search = {"attempts": max(1, budget // CALLS_PER_ATTEMPT), **search}
    settings = SearchSettings(
        strategy=strategy,  # type: ignore[arg-type]
        max_model_calls=budget,
        max_nodes=max(2, budget),
        temperature=TEMPERATURE,
        **search,
    )
    meter = Budget(Caps(model_calls=budget), wall_s=3600)
    rc = _context(rig, settings, meter)
    rc.config.llm.temperature = TEMPERATURE  # the plain loop's, when the search falls back to it
    view = meter.view("search", steps=settings.max_nodes, model_calls=settings.max_model_calls)
    solver = SearchSolver(rc, strategy)
    try:
        outcome = solver.solve(_goal(prompt), lambda _c: rig.verify(), view)
        status = "completed" if outcome.status == "done" else "failed"
    except StopRun as stop:
        status = stop.status
    assert meter.tally.model_calls == rig.policy.calls + rig.judge.calls, "the budget and the wrapper disagree on calls"
    if solver.search is None:  # fell back to the plain loop, which checks only at a finish
        return status, any(rig.world.task.solved(s) for s in rig.world.check_log)
    states = rig.workspace.states
    covered = any(n.finished and rig.world.task.solved(states[n.snapshot]) for n in solver.search.tree.nodes)
    return status, covered
