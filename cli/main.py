"""The `branchwise` command. Only typer is imported here; each subcommand loads its own code when it runs.

Errors end here, in `main`: a BranchwiseError (or a sandbox or OS error that escaped translation) becomes one
line on stderr and its documented exit code, and with `-o json` also a final JSON object on stdout.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from branchwise.cli.groups import LazyTyper
from branchwise.cli.groups import light_typer as _typer

EXIT_CODES_HELP = (
    "Exit codes: 0 success; 1 task not completed or checks failed; 2 usage or configuration error; "
    "3 budget exceeded; 4 environment problem (missing dependency, sandbox or model service unavailable); "
    "130 interrupted."
)

app = LazyTyper(
    name="branchwise",
    help="A coding agent that plans, searches over actions in a sandbox, and verifies with your checks.\n\n"
    + EXIT_CODES_HELP
    + "\n\nWith no command, `branchwise` opens an interactive session (a REPL) in a terminal, or runs the task it "
    "reads from standard input when that is not a terminal.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
config_app = _typer(help="Show or create configuration files.", no_args_is_help=True)
app.add_typer(config_app, name="config")


def _version(value: bool) -> None:
    if value:
        from branchwise.agent import version

        typer.echo(f"branchwise {version()}")
        raise typer.Exit()


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    resume: Annotated[
        str | None,
        typer.Option("--resume", help="REPL: continue from a saved run (default: the latest; see `branchwise runs`)."),
    ] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="REPL: the model to start with.")] = None,
    search: Annotated[str | None, typer.Option("--search", help="REPL: none, best-of-n or mcts.")] = None,
    vi: Annotated[bool, typer.Option("--vi", help="REPL: vi key bindings (default: emacs).")] = False,
    dangerously_full_access: Annotated[
        bool, typer.Option("--dangerously-full-access", help="REPL: run commands with no sandbox at all.")
    ] = False,
    cd: Annotated[Path | None, typer.Option("--cd", "-C", help="REPL: work in this directory's repository.")] = None,
    no_git: Annotated[bool, typer.Option("--no-git", help="REPL: allow a workspace outside git.")] = False,
) -> None:
    """Root options; with no command, the interactive session (or a headless run of the task on stdin)."""
    if ctx.invoked_subcommand is not None:
        return
    from branchwise.cli.repl import start

    flags = {"model": model, "search.strategy": search, "workspace.allow_non_git": True if no_git else None}
    _exit(start(cd=cd, flags=flags, resume=resume, vi=vi, full_access=dangerously_full_access, no_git=no_git))


CdOption = Annotated[
    Path | None,
    typer.Option(
        "--cd",
        "-C",
        help="Work in the git repository of this directory (default: the task file's, else the current one).",
    ),
]
NoGitOption = Annotated[
    bool,
    typer.Option("--no-git", help="Allow a workspace that is not inside a git repository (it is used as it is)."),
]
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
ParamOption = Annotated[
    list[str] | None,
    typer.Option("--param", "-p", help="NAME=VALUE for a parameter the task file declares in [params.NAME]."),
]
sandbox_app = _typer(help="Use the agent's sandbox directly.", no_args_is_help=True)
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
    no_git: NoGitOption = False,
    param: ParamOption = None,
) -> None:
    """Run a task headless: plan, act in the sandbox, verify with the checks, and exit with a status code.

    The workspace is the git repository of -C, else of the task file's directory, else of the current
    directory."""
    from branchwise.agent.config.params import parse_param_flags
    from branchwise.cli.commands.run import RunOptions, run_command

    options = RunOptions(
        task=task,
        task_file=task_file,
        output_format=output_format,
        cd=cd,
        no_git=no_git,
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
            "workspace.allow_non_git": True if no_git else None,
        },
        full_access=dangerously_full_access,
        plan_only=plan_only,
        params=parse_param_flags(param),
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


runs_app = _typer(help="List past runs of this repository (from .branchwise/runs), or prune them.")
app.add_typer(runs_app, name="runs")


@runs_app.callback(invoke_without_command=True)
def runs(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    cd: CdOption = None,
) -> None:
    """List past runs of this repository (from .branchwise/runs); `runs prune` removes what is not needed."""
    if ctx.invoked_subcommand is None:
        from branchwise.cli.commands.runs import list_command

        _exit(list_command(as_json=as_json, cd=cd))


@runs_app.command("prune")
def runs_prune(
    keep: Annotated[
        int | None, typer.Option("--keep", min=0, help="Also delete all but the newest N run logs.")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would go; delete nothing.")] = False,
    cd: CdOption = None,
) -> None:
    """Garbage-collect this repository's shadow snapshot repository (the snapshots of deleted runs go; the
    start and end snapshots of kept runs stay, for replay and undo), and delete every shadow repository whose
    workspace no longer exists. Shadow repositories are also collected automatically past 256 MB."""
    from branchwise.cli.commands.runs import prune_command

    _exit(prune_command(keep=keep, dry_run=dry_run, cd=cd))


@app.command("replay")
def replay(
    run_id: Annotated[str, typer.Argument(help="The run to replay (see `branchwise runs`).")],
    keep: Annotated[bool, typer.Option("--keep", help="Keep the scratch copy instead of removing it.")] = False,
    dangerously_full_access: FullAccessOption = False,
    cd: CdOption = None,
) -> None:
    """Re-execute a run with its recorded model replies, in a scratch copy, and report whether each step's
    observation still matches. Exits 0 when every step matches, 1 otherwise. The sandbox and the policy are
    your configuration's (the recording's are ignored); the scratch copy is removed unless --keep."""
    from branchwise.cli.commands.runs import replay_command

    _exit(replay_command(run_id, cd=cd, keep=keep, full_access=dangerously_full_access))


@app.command("tree")
def tree(
    run_id: Annotated[str, typer.Argument(help="A run made with --search best-of-n or mcts.")],
    html: Annotated[
        Path | None,
        typer.Option("--html", help="Write a self-contained HTML page instead (browser steps show URL and thumbnail)."),
    ] = None,
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
    no_git: NoGitOption = False,
) -> None:
    """Run one command in exactly the sandbox the agent would use, print its output, exit with its exit code.

    Example: branchwise sandbox run --network off -- curl -sS https://example.com"""
    from branchwise.cli.commands.sandbox import sandbox_run_command

    flags = {"sandbox.mode": mode, "sandbox.network": network, "sandbox.allowed_domains": allow_domain or None}
    flags["workspace.allow_non_git"] = True if no_git else None
    _exit(sandbox_run_command(command, flags=flags, timeout=timeout, full_access=dangerously_full_access, cd=cd))


mcp_app = _typer(
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


memory_app = _typer(
    help="Long-term memory: tips and shortcuts learned from verified runs, scoped to this repository.",
    no_args_is_help=True,
)
app.add_typer(memory_app, name="memory")
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
ItemArgument = Annotated[str, typer.Argument(help="A memory item id (or a unique prefix of one).")]


@memory_app.command("list")
def memory_list(
    as_json: JsonOption = False,
    all_statuses: Annotated[bool, typer.Option("--all", help="Also retired and superseded items.")] = False,
    status: Annotated[str | None, typer.Option(help="Only this status (active, candidate, ...).")] = None,
    kind: Annotated[str | None, typer.Option(help="Only tips or shortcuts (tip, shortcut).")] = None,
    all_repos: Annotated[bool, typer.Option("--all-repos", help="Items of every repository.")] = False,
    cd: CdOption = None,
) -> None:
    """List this repository's tips and shortcuts with status, trust and provenance (UNTRUSTED is marked)."""
    from branchwise.cli.commands.memory import list_command

    _exit(list_command(as_json=as_json, all_statuses=all_statuses, status=status, kind=kind, all_repos=all_repos,
                       cd=cd))  # fmt: skip


@memory_app.command("show")
def memory_show(item_id: ItemArgument, as_json: JsonOption = False, cd: CdOption = None) -> None:
    """Show one item: its text or steps, provenance, evidence, statistics, validation and hash."""
    from branchwise.cli.commands.memory import show_command

    _exit(show_command(item_id, as_json=as_json, cd=cd))


@memory_app.command("search")
def memory_search(
    query: Annotated[str, typer.Argument(help="Words to search for, as a task would.")],
    as_json: JsonOption = False,
    cd: CdOption = None,
) -> None:
    """Rank this repository's active items for a query, the way a run retrieves them."""
    from branchwise.cli.commands.memory import search_command

    _exit(search_command(query, as_json=as_json, cd=cd))


@memory_app.command("promote")
def memory_promote(
    item_id: ItemArgument,
    force: Annotated[bool, typer.Option("--force", help="Promote even if it breaks the content rules.")] = False,
    cd: CdOption = None,
) -> None:
    """Make a candidate active by hand (your signature; untrusted items are only ever promoted this way)."""
    from branchwise.cli.commands.memory import promote_command

    _exit(promote_command(item_id, force=force, cd=cd))


@memory_app.command("retire")
def memory_retire(
    item_id: ItemArgument,
    reason: Annotated[str, typer.Option(help="Why, for the audit log.")] = "",
    cd: CdOption = None,
) -> None:
    """Deprecate an item: it is kept, but no longer retrieved."""
    from branchwise.cli.commands.memory import retire_command

    _exit(retire_command(item_id, reason=reason, cd=cd))


@memory_app.command("edit")
def memory_edit(
    item_id: ItemArgument,
    text: Annotated[str | None, typer.Option(help="A tip's new text.")] = None,
    trigger: Annotated[str | None, typer.Option(help="A tip's new trigger (when it applies).")] = None,
    category: Annotated[str | None, typer.Option(help="A tip's new category.")] = None,
    description: Annotated[str | None, typer.Option(help="A shortcut's new description.")] = None,
    cd: CdOption = None,
) -> None:
    """Write a new version of an item; the old one is kept (superseded) for rollback."""
    from branchwise.cli.commands.memory import edit_command

    changes = {"text": text, "trigger": trigger, "category": category, "description": description}
    _exit(edit_command(item_id, changes=changes, cd=cd))


@memory_app.command("export")
def memory_export(
    path: Annotated[Path | None, typer.Argument(help="File to write (default: standard output).")] = None,
    cd: CdOption = None,
) -> None:
    """Write every record (all repositories) as JSONL, with hashes and statistics."""
    from branchwise.cli.commands.memory import export_command

    _exit(export_command(path, cd=cd))


@memory_app.command("import")
def memory_import(
    path: Annotated[Path, typer.Argument(help="A JSONL export (- for standard input).")],
    as_candidates: Annotated[
        bool, typer.Option("--as-candidates", help="Someone else's memory: import as untrusted candidates.")
    ] = False,
    cd: CdOption = None,
) -> None:
    """Add records from a JSONL export; each hash must match its record. Exits 1 if a line was rejected."""
    from branchwise.cli.commands.memory import import_command

    _exit(import_command(path, as_candidates=as_candidates, cd=cd))


@memory_app.command("audit")
def memory_audit(
    item_id: Annotated[str | None, typer.Argument(help="Only this item's entries.")] = None,
    limit: Annotated[int, typer.Option(help="The newest N entries.")] = 50,
    verify: Annotated[bool, typer.Option("--verify", help="Also check every hash and audit trail.")] = False,
    as_json: JsonOption = False,
    cd: CdOption = None,
) -> None:
    """Show the append-only audit log of memory writes; --verify exits 1 on any integrity problem."""
    from branchwise.cli.commands.memory import audit_command

    _exit(audit_command(item_id, limit=limit, verify=verify, as_json=as_json, cd=cd))


@memory_app.command("rollback")
def memory_rollback(
    item_id: Annotated[str | None, typer.Argument(help="Undo this item's latest change.")] = None,
    to: Annotated[int | None, typer.Option("--to", help="Undo every change after audit entry SEQ.")] = None,
    cd: CdOption = None,
) -> None:
    """Restore earlier states from the audit log (the rollback is itself logged, so it can be undone)."""
    from branchwise.cli.commands.memory import rollback_command

    _exit(rollback_command(item_id, to=to, cd=cd))


@memory_app.command("stats")
def memory_stats(as_json: JsonOption = False, cd: CdOption = None) -> None:
    """Counts by kind and status, and how often this repository's items were retrieved, used and helped."""
    from branchwise.cli.commands.memory import stats_command

    _exit(stats_command(as_json=as_json, cd=cd))


@app.command("map")
def map_(
    path: Annotated[Path | None, typer.Argument(help="Centre the map on this file or directory.")] = None,
    tokens: Annotated[int | None, typer.Option("--tokens", "-t", help="Token budget (default: map.tokens).")] = None,
    focus: Annotated[str, typer.Option("--focus", help="Text (a task) to personalise the map to.")] = "",
    symbol: Annotated[
        list[str] | None, typer.Option("--symbol", "-s", help="A name to centre on (repeatable).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON: the map and the index's figures.")] = False,
    cd: CdOption = None,
) -> None:
    """Print the repository map the agent sees: the most relevant files and their definitions, ranked by how the
    code references itself and fitted to a token budget. Tags are cached, so later runs only reparse changes."""
    from branchwise.cli.commands.map import map_command

    _exit(map_command(path, tokens=tokens, focus=focus, symbols=symbol or [], as_json=as_json, cd=cd))


@app.command("undo")
def undo(
    run_id: Annotated[
        str | None, typer.Argument(help="The run to undo (default: the latest; see `branchwise runs`).")
    ] = None,
    to: Annotated[
        str | None, typer.Option("--to", help="Restore this snapshot id instead (e.g. the one an undo printed).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Undo even if files changed after the run ended.")] = False,
    cd: CdOption = None,
) -> None:
    """Put the working tree back exactly as it was before a run: files it changed, created, deleted or chmod-ed,
    by any tool or shell command. Ignored files are left alone; git branches and commits are not touched. The
    state before the undo is kept as a snapshot, so an undo can be undone."""
    from branchwise.cli.commands.undo import undo_command

    _exit(undo_command(run_id, to=to, force=force, cd=cd))


@app.command("diff")
def diff(
    run_id: Annotated[str | None, typer.Argument(help="The run (default: the latest; see `branchwise runs`).")] = None,
    stat: Annotated[bool, typer.Option("--stat", help="Only the changed files and how.")] = False,
    cd: CdOption = None,
) -> None:
    """Show what a run changed in the working tree, as a patch (from its start and end snapshots)."""
    from branchwise.cli.commands.undo import diff_command

    _exit(diff_command(run_id, stat=stat, cd=cd))


def _register_batch() -> None:
    """batch, validate and eval (their options live in cli/commands/batch.py, which imports only typer)."""
    from branchwise.cli.commands.batch import register

    register(app)


_register_batch()


def _exit(code: int) -> None:
    raise typer.Exit(code)


def main() -> None:
    """Console-script entry point: user errors are one line and an exit code, never a traceback."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    if not sys.argv[1:]:  # bare `branchwise`: straight to the REPL, without building every command's parser
        sys.exit(_bare())
    sys.exit(run_app(sys.argv[1:]))


def _bare() -> int:
    """`branchwise` with no arguments, with run_app's error handling."""
    from branchwise.cli.repl import start

    try:
        return start(cd=None, flags={}, resume=None, vi=False, full_access=False, no_git=False)
    except KeyboardInterrupt:
        return _fail([], "interrupted", 130)
    except Exception as exc:
        return _fail([], *_describe(exc))


def run_app(argv: list[str]) -> int:
    """Run the command line and turn however it ends into an exit code; errors are rendered once, here."""
    try:  # typer carries its own copy of click
        from typer._click import exceptions as click_errors
    except ImportError:  # pragma: no cover - older typer uses click itself
        from click import exceptions as click_errors  # type: ignore[no-redef]

    argv = _optional_resume(argv)
    try:
        result = app(args=argv, prog_name="branchwise", standalone_mode=False)
    except click_errors.NoArgsIsHelpError as exc:
        print(exc.ctx.get_help() if exc.ctx else "", file=sys.stderr)
        return 2
    except click_errors.ClickException as exc:
        return _fail(argv, exc.format_message(), exc.exit_code, usage=True)
    except (typer.Abort, KeyboardInterrupt):
        return _fail(argv, "interrupted", 130)
    except Exception as exc:
        return _fail(argv, *_describe(exc))
    return result if isinstance(result, int) else 0


def _optional_resume(argv: list[str]) -> list[str]:
    """`branchwise --resume` without a run id means the latest run."""
    if "--resume" in argv:
        i = argv.index("--resume")
        if i + 1 == len(argv) or argv[i + 1].startswith("-"):
            return [*argv[: i + 1], "latest", *argv[i + 1 :]]
    return argv


def _describe(exc: Exception) -> tuple[str, int]:
    """An error's one line and exit code; anything that is not ours is a bug or the environment's fault."""
    from branchwise.agent.errors import BranchwiseError
    from branchwise.sandbox.base import SandboxError

    if isinstance(exc, BranchwiseError):
        return str(exc), exc.exit_code
    if isinstance(exc, SandboxError):
        return str(exc), 4
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}", 4
    raise exc


def _fail(argv: list[str], message: str, code: int, *, usage: bool = False) -> int:
    from branchwise.cli.render.output import Output, requested_format

    out = Output.active or Output(requested_format(argv))
    out.fail(message, code)
    if usage:
        print("Try 'branchwise --help' (or COMMAND --help) for help.", file=sys.stderr)
    return code


if __name__ == "__main__":
    main()
