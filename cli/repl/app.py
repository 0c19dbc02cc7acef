"""The interactive terminal: `branchwise` with no arguments in a repository.

The prompt stays live while a task runs: the task runs in a worker thread through the same run path as
`branchwise run` (build_session, Session.run), and the live view is one more event subscriber. So the prompt
can answer an approval, steer a running search (/tree prune 3), show the cost, or stop the step (Ctrl-C,
Esc). Nothing heavy is imported before the prompt shows: the agent, the configuration and litellm are loaded
in a background thread once it is up.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prompt_toolkit import PromptSession
from prompt_toolkit.enums import EditingMode
from prompt_toolkit.filters import Condition
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.styles import Style

from branchwise.cli.render.inert import inert
from branchwise.cli.render.output import Output
from branchwise.cli.repl import commands as C
from branchwise.cli.repl.asking import Approvals, Plans, Question
from branchwise.cli.repl.complete import ReplCompleter, attach_mentions
from branchwise.cli.repl.conversation import Conversation
from branchwise.cli.repl.view import LiveView

STYLE = Style.from_dict({
    "bottom-toolbar": "noreverse bg:#303030 #d0d0d0",
    "live": "italic #a0a0a0",
    "ask": "bold #ffaf00",
    "busy": "#5fafff",
    "prompt": "bold #5fd75f",
})  # fmt: skip


@dataclass
class ReplOptions:
    """What the command line asked for (the same flags as `run` where they apply)."""

    cd: Path | None = None
    flags: dict[str, Any] = field(default_factory=dict)
    resume: str | None = None
    """Continue from this run ("latest" for the newest); None starts fresh."""
    vi: bool = False
    full_access: bool = False
    no_git: bool = False
    history: Path | None = None
    """Where the input history is kept (default: per repository, under the XDG state directory)."""


class _Stream:
    """A file-like object that hands whole lines to the REPL's writer (for the reused commands' Output)."""

    def __init__(self, write: Any) -> None:
        self._write, self._buf = write, ""

    def write(self, text: str) -> int:
        self._buf += text
        if "\n" in self._buf:
            done, self._buf = self._buf.rsplit("\n", 1)
            self._write(done + "\n")
        return len(text)

    def flush(self) -> None:
        if self._buf:
            self._write(self._buf + "\n")
            self._buf = ""

    def isatty(self) -> bool:
        return False


class ReplOutput(Output):
    """The run's Output in the REPL: events go to the live view, questions to the prompt."""

    def __init__(self, repl: Repl) -> None:
        super().__init__("text", out=repl.stream, err=repl.stream)
        self.repl = repl

    def event(self, event: Any) -> None:
        self.repl.view(event)

    def can_ask(self) -> bool:
        return True

    def approve(self, call: Any, decision: Any) -> bool:
        return self.repl.approve(call, decision)

    def error(self, message: str) -> None:
        self.repl.note(f"[red]error:[/] {_esc(message)}")

    def warn(self, message: str) -> None:
        self.repl.note(f"[yellow]warning:[/] {_esc(message)}")


class Repl(Approvals, Plans):
    """One interactive session: a prompt, a worker for the running task, and the conversation between tasks."""

    def __init__(self, options: ReplOptions, *, input: Any = None, output: Any = None, write: Any = None) -> None:
        self.options = options
        self.flags: dict[str, Any] = {k: v for k, v in options.flags.items() if v is not None}
        self.workspace = find_repository(options.cd or Path.cwd())
        self.direct = write is None  # print through prompt_toolkit's patched stdout
        self._write = write or _stdout_write
        self.view = LiveView(self._write, redraw=self.invalidate, width=self._columns)  # the terminal's own size
        self.stream = _Stream(self._write)
        self.conversation = Conversation()
        self.worker: threading.Thread | None = None
        self.question: Question | None = None
        self.editing: Question | None = None
        self.plan_draft: tuple[str, list[dict[str, Any]]] | None = None
        self.plan_editing = False
        self.always: set[tuple[str, str, str]] = set()
        self.queue: list[str] = []
        self.last_run_id: str | None = None
        self.exit_requested = False
        self.terminated = False
        self.armed = False
        self.hidden: list[str] = []
        self.models: dict[str | None, Any] = {}
        self._warmed = False
        self.prompt: PromptSession[str] = PromptSession(
            history=self._history(),
            completer=ReplCompleter(lambda: self.workspace, self._command_names),
            complete_while_typing=True,
            key_bindings=self._bindings(),
            bottom_toolbar=self.toolbar,
            editing_mode=EditingMode.VI if options.vi else EditingMode.EMACS,
            enable_history_search=False,
            mouse_support=False,
            refresh_interval=0.25,
            style=STYLE,
            input=input,
            output=output,
        )

    # -- running

    def run(self) -> int:
        """The session until /exit, Ctrl-D or Ctrl-C twice; 130 after SIGTERM (the running task saved first)."""
        from prompt_toolkit.patch_stdout import patch_stdout

        previous = signal.signal(signal.SIGTERM, self._sigterm) if _main_thread() else None
        try:
            if self.direct:
                with patch_stdout(raw=True):
                    asyncio.run(self.loop())
            else:
                asyncio.run(self.loop())
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        return 130 if self.terminated else 0

    async def loop(self) -> None:
        self.banner()
        if self.options.resume is not None:
            self.safely(C._resume, self.options.resume if self.options.resume != "latest" else "")
        while not self.exit_requested and not self.terminated:
            try:
                text = await self.prompt.prompt_async(self.message, default=self.default_text(),
                                                      pre_run=self._warm_up)  # fmt: skip
            except EOFError:
                break
            except KeyboardInterrupt:
                continue
            self.armed = False
            self.handle(text)
        await asyncio.to_thread(self.shutdown)

    def shutdown(self) -> None:
        """Stop a running task and wait for it to write its ending (the trajectory is complete)."""
        from branchwise.agent import cancel

        worker = self.worker
        if worker is not None and worker.is_alive():
            if not cancel.requested():  # SIGTERM and Ctrl-C have asked already
                self.interrupt()
            worker.join(timeout=120)

    def busy(self) -> bool:
        return self.worker is not None and self.worker.is_alive()

    def interrupt(self) -> None:
        from branchwise.agent import cancel

        cancel.request()
        question = self.question or self.editing
        if question is not None:
            self.question = self.editing = None
            question.answer = False
            question.done.set()
        self.view.state = "stopping"
        self.note("[yellow]stopping the step…[/] [dim](the session and its trajectory are kept)[/]")

    def request_exit(self) -> None:
        self.exit_requested = True
        app = self.prompt.app
        if app.is_running:
            app.exit(exception=EOFError())

    def _sigterm(self, signum: int, frame: Any) -> None:
        self.terminated = True
        if self.busy():
            self.interrupt()
        self.request_exit()

    # -- input

    def handle(self, text: str) -> None:
        """One line the user sent: an answer to a pending question, a slash command, or a task."""
        if self.editing is not None:
            return self._edited(text)
        if self.question is not None:
            return self._answer(text)
        if self.plan_editing:
            return self._plan_edited(text)
        if self.plan_draft is not None and text.strip().lower() in ("y", "yes", "e", "edit", "n", "no", ""):
            return self._plan_answer(text.strip().lower())
        self.plan_draft = None
        if not text.strip():
            return None
        if text.startswith("/"):
            return self.slash(text)
        self.start_task(text)
        return None

    def slash(self, text: str) -> None:
        name, _, arg = text[1:].strip().partition(" ")
        name = C.ALIASES.get(name, name)
        command = C.COMMANDS.get(name)
        if command is None:
            project = C.project_commands(self.workspace).get(name)
            if project is not None:
                self.safely(lambda repl, a: repl.start_task(C.expand_template(project, a), label=f"/{name}"), arg)
                return
            known = " ".join(f"/{n}" for n in C.names(self.workspace))
            self.note(f"unknown command /{_esc(name)}; the commands are: {known}")
            return
        if self.busy() and not command.while_running:
            self.note(f"/{name} waits until the task ends (Ctrl-C or Esc stops it)")
            return
        self.safely(command.run, arg.strip())

    def safely(self, fn: Any, arg: str) -> None:
        """Run a command; our errors are one line, as on the command line."""
        from branchwise.agent.errors import BranchwiseError
        from branchwise.sandbox.base import SandboxError

        try:
            fn(self, arg)
        except (BranchwiseError, SandboxError, OSError) as exc:
            self.note(f"[red]error:[/] {_esc(str(exc))}")

    # -- tasks

    def start_task(self, task: str, *, plan_only: bool = False, plan: list[dict[str, Any]] | None = None,
                   label: str = "") -> None:  # fmt: skip
        if self.busy():
            self.queue.append(task)
            self.note(f"[dim]queued; it runs when the current task ends ({len(self.queue)} waiting)[/]")
            return
        if label:
            self.note(f"[dim]{_esc(label)}: {_esc(task.strip().splitlines()[0] if task.strip() else '')}[/]")
        self.view.state = "starting"
        self.worker = threading.Thread(target=self._run_task, args=(task, plan_only, plan), name="branchwise-task",
                                       daemon=True)  # fmt: skip
        self.worker.start()

    def _run_task(self, task: str, plan_only: bool, plan: list[dict[str, Any]] | None) -> None:
        from branchwise.agent import cancel
        from branchwise.agent.errors import BranchwiseError
        from branchwise.agent.record.events import Warning
        from branchwise.agent.search.steer import inbox
        from branchwise.cli.commands.run import RunOptions, build_session
        from branchwise.sandbox.base import SandboxError

        cancel.clear()
        inbox.clear()
        try:
            out = ReplOutput(self)
            options = RunOptions(task=task, cd=self.workspace or self.options.cd, flags=dict(self.flags),
                                 full_access=self.options.full_access, no_git=self.options.no_git,
                                 plan_only=plan_only, model=self.models.get(self.flags.get("model")))  # fmt: skip
            session = build_session(options, out)
            self.models[self.flags.get("model")] = session.model  # the next task goes on with the same model
            if hasattr(session.model, "notify"):  # its retry notices belong to this task's run now
                session.model.notify = lambda message: session.bus.emit(Warning(message=message))
            self.hidden = list(session.config.sandbox.deny_read)
            note = ""
            if self.workspace is not None:
                note, attached, problems = attach_mentions(task, self.workspace, self.hidden)
                for problem in problems:
                    self.note(f"[yellow]not attached:[/] {_esc(problem)}")
                if attached:
                    self.note(f"[dim]attached {', '.join(attached)}[/]")
            session.carry = "\n\n".join(filter(None, [self.conversation.carry(), note]))
            session.bus.wants_deltas = True
            if plan is not None:
                session.loaded.task["plan"] = plan
            try:
                with session:
                    finished = session.run(task, plan_only=plan_only)
            finally:
                session.memory.close()
            self.last_run_id = finished.run_id  # (an error is shown with the run's ending)
            if plan_only and self.view.last_plan:
                self.plan_draft = (task, self.view.last_plan)
                self.note("run this plan? [bold]y[/]es · [bold]e[/]dit · [bold]n[/]o")
            elif not plan_only:
                self.conversation.add(task, finished, self.view.last_reply)
        except (BranchwiseError, SandboxError, OSError) as exc:
            self.note(f"[red]error:[/] {_esc(str(exc))}")
        except KeyboardInterrupt:
            self.note("[yellow]interrupted[/]")
        except Exception as exc:  # a bug must not end the session: say what it was, keep the prompt
            self.note(f"[red]internal error:[/] {_esc(type(exc).__name__)}: {_esc(str(exc))}")
        finally:
            self.view.state = "idle"
            self.invalidate()
            if self.queue and not self.terminated and not self.exit_requested:
                nxt = self.queue.pop(0)
                self.worker = None
                self.start_task(nxt)

    # -- drawing

    def message(self) -> FormattedText:
        parts: list[tuple[str, str]] = []
        live = self.view.streaming_line() if self.busy() else ""
        if live:
            width = max(20, self._columns() - 1)
            parts.append(("class:live", inert(live, one_line=True)[-width:] + "\n"))
        if self.question is not None:
            parts.append(("class:ask", "approve? [y/n/a/e] › "))
        elif self.editing is not None:
            parts.append(("class:ask", "edit the command › "))
        elif self.plan_editing:
            parts.append(("class:ask", "edit the plan › "))
        elif self.plan_draft is not None:
            parts.append(("class:ask", "run this plan? [y/e/n] › "))
        elif self.busy():
            parts.append(("class:busy", "working (Ctrl-C stops) › "))
        else:
            parts.append(("class:prompt", "› "))
        return FormattedText(parts)

    def toolbar(self) -> FormattedText:
        text = self.view.toolbar()
        width = self._columns()
        return FormattedText([("class:bottom-toolbar", text[: max(10, width - 1)])])

    def banner(self) -> None:
        """Plain ANSI, not rich: nothing more is imported before the prompt shows."""
        where = str(self.workspace) if self.workspace else f"{Path.cwd()} (not a git repository)"
        self._write(f"\x1b[1mbranchwise\x1b[0m · {inert(where, one_line=True)}\n\x1b[2mtype a task · /help for "
                    "commands · @path attaches a file · Ctrl-C stops a step, twice exits\x1b[0m\n")  # fmt: skip

    def note(self, markup: str) -> None:
        self.view.markup(markup)

    def text_output(self) -> Output:
        return Output("text", out=self.stream, err=self.stream)

    def invalidate(self) -> None:
        app = self.prompt.app
        if app.is_running:
            try:
                app.invalidate()
            except (RuntimeError, AttributeError):  # the prompt ended (its loop gone) while asked: no redraw
                pass

    def _columns(self) -> int:
        try:
            return self.prompt.app.output.get_size().columns
        except Exception:  # no terminal size (a dummy output)
            return 80

    def _command_names(self) -> list[tuple[str, str]]:
        builtin = [(c.name, c.help) for c in C.COMMANDS.values()]
        return builtin + [(name, "project command") for name in C.project_commands(self.workspace)]

    def _bindings(self) -> KeyBindings:
        kb = KeyBindings()
        busy = Condition(self.busy)

        @kb.add("c-c")
        def _ctrl_c(event: KeyPressEvent) -> None:
            buffer = event.app.current_buffer
            if self.busy():
                buffer.reset()
                self.interrupt()
            elif buffer.text:
                buffer.reset()
                self.armed = False
            elif self.armed:
                self.request_exit()
            else:
                self.armed = True
                self.note("[dim]press Ctrl-C again to exit (or /exit)[/]")

        @kb.add("escape", filter=busy)
        def _esc_key(event: KeyPressEvent) -> None:
            self.interrupt()

        @kb.add("escape", "enter")
        @kb.add("c-j")
        def _newline(event: KeyPressEvent) -> None:
            event.app.current_buffer.insert_text("\n")

        return kb

    def _history(self) -> History:
        path = self.options.history or history_path(self.workspace or Path.cwd())
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return FileHistory(str(path))
        except OSError:
            return InMemoryHistory()

    def _warm_up(self) -> None:
        """Once the prompt is drawn: load the configuration and the agent, then litellm, in the background (not
        before: the import would compete with the first drawing)."""
        if self._warmed:
            return
        self._warmed = True
        app = self.prompt.app

        def drawn(_: object) -> None:
            app.after_render -= drawn
            threading.Thread(target=self._load, name="branchwise-warm-up", daemon=True).start()

        app.after_render += drawn

    def _load(self) -> None:
        try:
            from branchwise.agent.config.layers import load_config
            from branchwise.cli.commands import run as _run  # noqa: F401  (the agent, imported ahead of use)

            if self.workspace is None:
                return
            config = load_config(self.workspace, flags=dict(self.flags)).config
            if self.view.model == "…":
                self.view.model = config.model or "(no model configured)"
            self.view.strategy = self.flags.get("search.strategy") or config.search.strategy
            self.hidden = list(config.sandbox.deny_read)
            self.invalidate()
            if config.model and not config.model.startswith("scripted:"):
                from branchwise.agent.models.litellm_model import import_litellm

                import_litellm()
        except Exception as exc:  # a broken config is reported when a task runs; the prompt stays usable
            self.view.model = f"(config: {type(exc).__name__})"


def find_repository(start: Path) -> Path | None:
    """The git top level containing `start` (a walk up to `.git`: no git process before the prompt)."""
    current = start.resolve()
    for folder in (current, *current.parents):
        if (folder / ".git").exists():
            return folder
    return None


def history_path(workspace: Path) -> Path:
    """Input history, one file per repository, outside it (a repository cannot plant or read it)."""
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    digest = hashlib.sha256(str(workspace.resolve()).encode()).hexdigest()[:16]
    return base / "branchwise" / "history" / f"{workspace.name[:40]}-{digest}"


def _stdout_write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _esc(text: str) -> str:
    from rich.markup import escape

    return escape(inert(text, one_line=True))
