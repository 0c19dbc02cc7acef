"""Slash commands of the REPL, and the project's own commands (`.branchwise/commands/NAME.md`).

A project command is a prompt template: `/NAME words` runs the file's text as a task, with `$ARGUMENTS`
replaced by the words. Built-in commands win over project commands of the same name.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Repl = Any  # the REPL (cli/repl/app.py), which imports this module: not imported back

MAX_TEMPLATE_BYTES = 64 * 1024
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class Command:
    name: str
    usage: str
    help: str
    run: Callable[[Repl, str], None]
    while_running: bool = False
    """Whether it may be used while a task runs (the others wait for the prompt to be idle)."""


def _help(repl: Repl, arg: str) -> None:
    lines = ["[bold]commands[/]"]
    for c in COMMANDS.values():
        lines.append(f"  [cyan]{c.usage:<26}[/] {c.help}")
    project = project_commands(repl.workspace)
    if project:
        lines.append("[bold]project commands[/] [dim](.branchwise/commands/*.md)[/]")
        for name, path in project.items():
            lines.append(f"  [cyan]/{name:<25}[/] {_first_line(path)}")
    lines.append("[bold]keys[/] Enter sends · Alt-Enter or Ctrl-J new line · Ctrl-R history · Tab completes · "
                 "@path attaches a file · Ctrl-C or Esc stops the running step · Ctrl-C twice exits")  # fmt: skip
    repl.view.markup("\n".join(lines))


def _search(repl: Repl, arg: str) -> None:
    choices = ("none", "best-of-n", "mcts")
    if arg not in choices:
        current = repl.flags.get("search.strategy") or "(from the configuration)"
        repl.view.markup(f"search: {current}; use /search {' | '.join(choices)}")
        return
    repl.flags["search.strategy"] = arg
    repl.view.strategy = arg
    repl.view.markup(f"the next tasks search with [bold]{arg}[/]")


def _model(repl: Repl, arg: str) -> None:
    if not arg:
        repl.view.markup(f"model: {repl.flags.get('model') or repl.view.model}; use /model NAME (any litellm name, "
                         "or scripted:PATH)")  # fmt: skip
        return
    repl.flags["model"] = arg
    repl.view.model = arg
    repl.view.markup(f"the next tasks use the model [bold]{arg}[/]")


def _tree(repl: Repl, arg: str) -> None:
    from branchwise.agent.search.steer import inbox

    words = arg.split()
    if not words:
        marks = dict.fromkeys(inbox.pruned, "pruned")
        if inbox.picked is not None:
            marks[inbox.picked] = "picked"
        from rich.text import Text

        repl.view.show(Text(repl.view.tree_text(marks)))
        if inbox.applied:
            repl.view.markup("[dim]steering: " + "; ".join(inbox.applied[-5:]) + "[/]")
        return
    if len(words) != 2 or words[0] not in ("pick", "prune", "expand") or not words[1].lstrip("#").isdigit():
        repl.view.markup("usage: /tree, /tree pick N, /tree prune N, /tree expand N")
        return
    verb, node = words[0], int(words[1].lstrip("#"))
    inbox.post(verb, node)
    note = "" if repl.view.strategy == "mcts" else " [dim](only an mcts search is steered)[/]"
    repl.view.markup(f"steering: {verb} #{node}, applied at the search's next selection{note}")


def _cost(repl: Repl, arg: str) -> None:
    t = repl.view.totals
    repl.view.markup(f"this session: {t.tasks} task(s), {t.steps} steps, {t.prompt_tokens} prompt + "
                     f"{t.completion_tokens} completion tokens, ${t.cost_usd:.4f}")  # fmt: skip


def _plan(repl: Repl, arg: str) -> None:
    if arg:
        repl.start_task(arg, plan_only=True)
    elif repl.view.last_plan:
        repl.view.markup(repl.plan_text(repl.view.last_plan))
    else:
        repl.view.markup("no plan yet: /plan TASK plans a task and lets you edit and accept the plan before it runs")


def _last_run(repl: Repl) -> str | None:
    if repl.last_run_id is None:
        repl.view.markup("no task has run in this session yet (branchwise runs lists earlier ones)")
    return repl.last_run_id


def _diff(repl: Repl, arg: str) -> None:
    from branchwise.cli.commands.undo import diff_command

    run_id = arg or _last_run(repl)
    if run_id:
        diff_command(run_id, stat=False, cd=repl.workspace, out=repl.text_output())


def _undo(repl: Repl, arg: str) -> None:
    from branchwise.cli.commands.undo import undo_command

    run_id = arg or _last_run(repl)
    if run_id:
        undo_command(run_id, to=None, force=False, cd=repl.workspace, out=repl.text_output())


def _config(repl: Repl, arg: str) -> None:
    from branchwise.cli.commands.config import show

    show(task_file=None, as_json=False, cd=repl.workspace, out=repl.text_output())


def _memory(repl: Repl, arg: str) -> None:
    from branchwise.cli.commands.memory import list_command

    list_command(as_json=False, all_statuses=False, status=None, kind=None, all_repos=False, cd=repl.workspace,
                 out=repl.text_output())  # fmt: skip


def _runs(repl: Repl, arg: str) -> None:
    from branchwise.cli.commands.runs import list_command

    list_command(as_json=False, cd=repl.workspace, out=repl.text_output())


def _compact(repl: Repl, arg: str) -> None:
    before, after = repl.conversation.compact()
    repl.view.markup(f"condensed the session's conversation: {before} → {after} characters")


def _clear(repl: Repl, arg: str) -> None:
    repl.conversation.clear()
    repl.view.markup("started fresh: the next task knows nothing of the earlier ones")


def _resume(repl: Repl, arg: str) -> None:
    turn = repl.conversation.resume(repl.workspace, arg or None)
    repl.last_run_id = turn.run_id
    repl.view.markup(f"resumed run {turn.run_id}: {turn.line()[2:]}")


def _exit(repl: Repl, arg: str) -> None:
    repl.request_exit()


COMMANDS: dict[str, Command] = {
    c.name: c
    for c in (
        Command("help", "/help", "this list", _help, True),
        Command("plan", "/plan [TASK]", "plan a task, then edit or accept the plan before it runs", _plan),
        Command("search", "/search none|best-of-n|mcts", "how the next tasks search", _search, True),
        Command("tree", "/tree [pick|prune|expand N]", "the live search tree; steer the running search", _tree, True),
        Command("diff", "/diff [RUN]", "what the last task changed", _diff),
        Command("undo", "/undo [RUN]", "put the files back as before the last task (shell effects too)", _undo),
        Command("model", "/model [NAME]", "show or change the model", _model, True),
        Command("cost", "/cost", "tokens and cost of this session", _cost, True),
        Command("config", "/config", "the merged configuration and where each value came from", _config),
        Command("memory", "/memory", "the tips and shortcuts learned in this repository", _memory),
        Command("compact", "/compact", "condense what the next task is told about earlier ones", _compact),
        Command("runs", "/runs", "past runs of this repository", _runs, True),
        Command("clear", "/clear", "start a fresh conversation", _clear),
        Command("resume", "/resume [RUN]", "continue from a saved run (default: the latest)", _resume),
        Command("exit", "/exit", "leave (a running task is stopped first)", _exit, True),
    )
}
ALIASES = {"quit": "exit", "q": "exit", "?": "help"}


def project_commands(workspace: Path | None) -> dict[str, Path]:
    """The project's commands: `.branchwise/commands/NAME.md` files (regular files only, no links)."""
    if workspace is None:
        return {}
    folder = workspace / ".branchwise" / "commands"
    try:
        if folder.is_symlink() or (workspace / ".branchwise").is_symlink() or not folder.is_dir():
            return {}
        entries = sorted(folder.iterdir())
    except OSError:
        return {}
    found = {}
    for path in entries:
        if path.suffix == ".md" and _NAME.match(path.stem) and path.stem not in COMMANDS and not path.is_symlink():
            found[path.stem] = path
    return found


def expand_template(path: Path, arguments: str) -> str:
    """A project command's task text: the template with $ARGUMENTS replaced (appended when it has none)."""
    from branchwise.agent.errors import UsageError
    from branchwise.sandbox.base import SandboxError
    from branchwise.sandbox.workspace.safefs import read_regular

    try:
        text = read_regular(path, limit=MAX_TEMPLATE_BYTES, follow_symlinks=False).decode("utf-8")
    except (OSError, SandboxError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read the command: {exc}") from None
    if text.startswith("---\n") and "\n---\n" in text[4:]:  # front matter (description: ...) is not the prompt
        text = text[4:].split("\n---\n", 1)[1]
    if "$ARGUMENTS" in text:
        return text.replace("$ARGUMENTS", arguments)
    return f"{text.rstrip()}\n\n{arguments}".strip() if arguments else text


def _first_line(path: Path) -> str:
    try:
        with path.open(encoding="utf-8", errors="replace") as f:
            for line in f:
                line = line.strip()
                if line and line != "---":
                    return line.removeprefix("description:").strip()[:70]
    except OSError:
        pass
    return ""


def names(workspace: Path | None) -> list[str]:
    """Every command a user can type, for completion."""
    return [*COMMANDS, *project_commands(workspace)]
