"""The `branchwise` command. Only typer is imported here; each subcommand loads its own code when it runs."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

EXIT_CODES_HELP = (
    "Exit codes: 0 success; 1 task not completed or checks failed; 2 usage or configuration error; "
    "3 budget exceeded; 4 environment problem (missing dependency, sandbox or model service unavailable); "
    "130 interrupted."
)

app = typer.Typer(
    name="branchwise",
    help="A coding agent that plans, searches over actions in a sandbox, and verifies with your checks.\n\n"
    + EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
config_app = typer.Typer(help="Show or create configuration files.", no_args_is_help=True)
app.add_typer(config_app, name="config")


def _version(value: bool) -> None:
    if value:
        from branchwise.agent import version

        typer.echo(f"branchwise {version()}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Root options."""


CdOption = Annotated[Path | None, typer.Option("--cd", "-C", help="Work in this directory (default: the current one).")]
SandboxOption = Annotated[
    str | None, typer.Option("--sandbox", help="read-only, workspace-write (default) or full-access.")
]
NetworkOption = Annotated[
    str | None, typer.Option("--network", help="off (default: a private loopback only), proxy or on.")
]
FullAccessOption = Annotated[
    bool,
    typer.Option(
        "--dangerously-full-access",
        help="Run commands with no sandbox at all (also when bubblewrap is missing). Only inside a throwaway VM.",
    ),
]
sandbox_app = typer.Typer(help="Use the agent's sandbox directly.", no_args_is_help=True)
app.add_typer(sandbox_app, name="sandbox")


@app.command()
def run(
    task: Annotated[str | None, typer.Argument(help="What to do. Use - to read it from standard input.")] = None,
    task_file: Annotated[
        Path | None,
        typer.Option("--file", "-f", help="A task file (TOML): prompt, model, limits, checks, ..."),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Any litellm model name, or scripted:PATH.")
    ] = None,
    output_format: Annotated[
        str,
        typer.Option("--output-format", "-o", help="text, json (one final object) or stream-json (events)."),
    ] = "text",
    check: Annotated[
        list[str] | None, typer.Option("--check", help="A command that must exit 0 for success (repeatable).")
    ] = None,
    max_steps: Annotated[int | None, typer.Option(help="Stop after this many model calls.")] = None,
    max_cost: Annotated[float | None, typer.Option(help="Stop after spending this many dollars.")] = None,
    max_wall: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
    search: Annotated[
        str | None,
        typer.Option("--search", help="none (one trajectory), best-of-n (independent attempts) or mcts (tree search)."),
    ] = None,
    attempts: Annotated[int | None, typer.Option(help="best-of-n: number of attempts.")] = None,
    plan: Annotated[
        bool | None, typer.Option("--plan/--no-plan", help="Plan the task into checkable subgoals first (default).")
    ] = None,
    plan_only: Annotated[bool, typer.Option("--plan-only", help="Print the plan and exit without running it.")] = False,
    sandbox: SandboxOption = None,
    network: NetworkOption = None,
    approval: Annotated[
        str | None,
        typer.Option(
            "--approval",
            help="untrusted (ask for all but reads), on-request (ask to leave the sandbox) or never (refuse instead).",
        ),
    ] = None,
    allow_domain: Annotated[
        list[str] | None,
        typer.Option("--allow-domain", help="Proxy mode: a host commands may reach (repeatable; replaces the list)."),
    ] = None,
    dangerously_full_access: FullAccessOption = False,
    cd: CdOption = None,
) -> None:
    """Run a task headless: plan, act in the sandbox, verify with the checks, and exit with a status code."""
    from branchwise.cli.commands.run import RunOptions, run_command

    options = RunOptions(
        task=task,
        task_file=task_file,
        output_format=output_format,
        cd=cd,
        flags={
            "model": model,
            "checks": check or None,
            "limits.max_steps": max_steps,
            "limits.max_cost_usd": max_cost,
            "limits.max_wall_s": max_wall,
            "search.strategy": search,
            "search.attempts": attempts,
            "planner.enabled": plan,
            "sandbox.mode": sandbox,
            "sandbox.network": network,
            "sandbox.allowed_domains": allow_domain or None,
            "policy.approval": approval,
        },
        full_access=dangerously_full_access,
        plan_only=plan_only,
    )
    _exit(run_command(options))


@config_app.command("show")
def config_show(
    task_file: Annotated[Path | None, typer.Option("--file", "-f", help="Include this task file's settings.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (values and sources).")] = False,
    cd: CdOption = None,
) -> None:
    """Print the merged configuration and where each value came from."""
    from branchwise.cli.commands.config import show

    _exit(show(task_file=task_file, as_json=as_json, cd=cd))


@config_app.command("init")
def config_init(
    project: Annotated[
        bool, typer.Option("--project", help="Write <repo>/.branchwise/config.toml instead of the user file.")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    cd: CdOption = None,
) -> None:
    """Write a commented starter configuration file."""
    from branchwise.cli.commands.config import init

    _exit(init(project=project, force=force, cd=cd))


@app.command("runs")
def runs(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    cd: CdOption = None,
) -> None:
    """List past runs of this repository (from .branchwise/runs)."""
    from branchwise.cli.commands.runs import list_command

    _exit(list_command(as_json=as_json, cd=cd))


@app.command("replay")
def replay(
    run_id: Annotated[str, typer.Argument(help="The run to replay (see `branchwise runs`).")],
    cd: CdOption = None,
) -> None:
    """Re-execute a run with its recorded model replies, in a scratch copy, and report whether each step's
    observation still matches. Exits 0 when every step matches, 1 otherwise."""
    from branchwise.cli.commands.runs import replay_command

    _exit(replay_command(run_id, cd=cd))


@app.command("tree")
def tree(
    run_id: Annotated[str, typer.Argument(help="A run made with --search best-of-n or mcts.")],
    html: Annotated[Path | None, typer.Option("--html", help="Write a self-contained HTML page instead.")] = None,
    cd: CdOption = None,
) -> None:
    """Draw a run's search tree: each node's action, reward, visits and status, the chosen path highlighted."""
    from branchwise.cli.commands.tree import tree_command

    _exit(tree_command(run_id, html_path=html, cd=cd))


@sandbox_app.command("run", context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True})
def sandbox_run(
    command: Annotated[list[str], typer.Argument(help="The command and its arguments (put -- before them).")],
    mode: Annotated[
        str | None, typer.Option("--mode", "--sandbox", help="read-only, workspace-write (default) or full-access.")
    ] = None,
    network: NetworkOption = None,
    allow_domain: Annotated[
        list[str] | None, typer.Option("--allow-domain", help="Proxy mode: a host the command may reach (repeatable).")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Kill the command after this many seconds.")] = 120.0,
    dangerously_full_access: FullAccessOption = False,
    cd: CdOption = None,
) -> None:
    """Run one command in exactly the sandbox the agent would use, print its output, exit with its exit code.

    Example: branchwise sandbox run --network off -- curl -sS https://example.com"""
    from branchwise.cli.commands.sandbox import sandbox_run_command

    flags = {"sandbox.mode": mode, "sandbox.network": network, "sandbox.allowed_domains": allow_domain or None}
    _exit(sandbox_run_command(command, flags=flags, timeout=timeout, full_access=dangerously_full_access, cd=cd))


mcp_app = typer.Typer(
    help="MCP servers: list the configured ones, show a server's tools, or serve branchwise itself over MCP.",
    no_args_is_help=True,
)
app.add_typer(mcp_app, name="mcp")


@mcp_app.command("list")
def mcp_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    start: Annotated[
        bool, typer.Option("--start/--no-start", help="Start each server to show its state (default) or not.")
    ] = True,
    cd: CdOption = None,
) -> None:
    """List the configured MCP servers and their state, started as a run starts them (stdio servers inside the
    sandbox). Exits 4 when an enabled server cannot be started."""
    from branchwise.cli.commands.mcp import list_command

    _exit(list_command(as_json=as_json, start=start, cd=cd))


@mcp_app.command("tools")
def mcp_tools(
    name: Annotated[str, typer.Argument(help="The server, as named in [mcp.servers.NAME].")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON, with each tool's input schema.")] = False,
    cd: CdOption = None,
) -> None:
    """Start one MCP server and show its tools as the agent gets them (mcp__NAME__TOOL and their effect), its
    resources and its prompts."""
    from branchwise.cli.commands.mcp import tools_command

    _exit(tools_command(name, as_json=as_json, cd=cd))


@mcp_app.command("serve")
def mcp_serve() -> None:
    """Serve branchwise itself as an MCP server over stdio, with one tool: run_task (the options of `run`; it
    returns run's final JSON). Add it to an MCP client as the command `branchwise mcp serve`."""
    from branchwise.cli.commands.mcp import serve_command

    _exit(serve_command())


@app.command("doctor")
def doctor(cd: CdOption = None) -> None:
    """Check bubblewrap, user namespaces, seccomp, cgroups, chromium, git, ripgrep and the model settings.

    Exits 4 when the sandbox cannot be had (runs would refuse to start)."""
    from branchwise.cli.commands.doctor import doctor_command

    _exit(doctor_command(cd=cd))


def _exit(code: int) -> None:
    raise typer.Exit(code)


def main() -> None:
    """Console-script entry point: user errors are one line and an exit code, never a traceback."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        app()
    except KeyboardInterrupt:
        print("branchwise: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
