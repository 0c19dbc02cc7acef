"""`branchwise run`: build a session from the layered configuration, run the task, render, exit."""

from __future__ import annotations

import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from branchwise.agent.config.layers import LoadedConfig, load_config
from branchwise.agent.errors import UsageError
from branchwise.agent.memory.service import open_memory
from branchwise.agent.models.factory import make_model
from branchwise.agent.record.events import EventBus, Warning
from branchwise.agent.run.session import Session
from branchwise.agent.run.wiring import make_sandbox_for
from branchwise.agent.run.workspace import check_size, find_workspace, starting_point
from branchwise.cli.render.output import FORMATS, Output


@dataclass
class RunOptions:
    """What the command line asked for."""

    task: str | None = None
    task_file: Path | None = None
    output_format: str = "text"
    cd: Path | None = None
    flags: dict[str, Any] = field(default_factory=dict)
    full_access: bool = False
    plan_only: bool = False
    no_git: bool = False
    model: Any = None
    """A model to use instead of making one from the configuration (the REPL keeps one across its tasks)."""
    params: dict[str, str] = field(default_factory=dict)
    """--param NAME=VALUE: fills the task file's [params] (a recipe)."""


def run_command(options: RunOptions, out: Output | None = None) -> int:
    """Run one task; returns the exit code (errors before the run raise, and `main` renders them)."""
    if options.output_format not in FORMATS:
        Output()
        raise UsageError(f"--output-format must be one of {', '.join(FORMATS)}")
    out = out or Output(options.output_format)
    session = build_session(options, out)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        with session:
            finished = session.run(resolve_task(options, session.loaded), plan_only=options.plan_only)
    finally:
        signal.signal(signal.SIGTERM, previous)
        session.memory.close()
    if finished.error:
        out.error(finished.error)
    out.result(finished)
    return finished.exit_code


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def build_session(options: RunOptions, out: Output) -> Session:
    task_file = options.task_file.resolve() if options.task_file else None
    start = starting_point(options.cd, task_file)
    # The user's own config may allow a non-git workspace; a directory that is not a repository has no other.
    first = load_config(start, task_file=task_file, flags=options.flags, params=options.params)
    allow = options.no_git or first.config.workspace.allow_non_git
    workspace = find_workspace(start, allow_non_git=allow)
    loaded = load_config(workspace, task_file=task_file, flags=options.flags, params=options.params)
    resolve_task(options, loaded)  # fail on a missing task before anything is started
    check_size(workspace, loaded.config.workspace.max_files)
    sandbox = make_sandbox_for(loaded.config, workspace, full_access=options.full_access)
    bus = EventBus()
    bus.subscribe(out.event, display=True)
    try:
        # Retry notices from the model layer become warning events of the run.
        model = options.model or make_model(loaded.config, notify=lambda message: bus.emit(Warning(message=message)))
    except BaseException:
        sandbox.close()
        raise
    approver = out.approve if out.can_ask() else None
    try:
        memory = open_memory(loaded, workspace, bus=bus)
        return Session(loaded=loaded, workspace=workspace, sandbox=sandbox, model=model, bus=bus, workdir=start,
                       approver=approver, memory=memory)  # fmt: skip
    except BaseException:
        sandbox.close()
        raise


def resolve_task(options: RunOptions, loaded: LoadedConfig) -> str:
    """The task text: the argument (or stdin for -), else the task file's prompt."""
    if options.task == "-":
        options.task = sys.stdin.read()
    task = options.task or loaded.task.get("prompt")
    if not task or not str(task).strip():
        raise UsageError('no task given: pass it as an argument (branchwise run "...") or in a task file (-f)')
    return str(task)
