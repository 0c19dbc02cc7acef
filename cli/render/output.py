"""All terminal output goes through one object, so tests can drive it and headless modes swap it for JSON."""

from __future__ import annotations

import json
import os
import sys
from typing import Any, ClassVar, TextIO

from branchwise.cli.render.inert import inert

FORMATS = ("text", "json", "stream-json")
_PREVIEW_LINES = 8


def requested_format(argv: list[str]) -> str:
    """The output format a command line asks for (for errors found before the command itself ran)."""
    for i, arg in enumerate(argv):
        value = None
        if arg in ("-o", "--output-format") and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith("--output-format="):
            value = arg.split("=", 1)[1]
        if value in FORMATS:
            return value
    return "text"


class Output:
    """Renders events and messages in the chosen format: text (people), json (one final object), stream-json."""

    active: ClassVar[Output | None] = None
    """The output of the command that is running, so that `main` renders an error in its format."""

    def __init__(self, fmt: str = "text", *, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.fmt = fmt
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self._console: Any = None
        self.plan: list[dict[str, Any]] | None = None
        self.finished = False
        self.out_closed = False
        Output.active = self

    def fail(self, message: str, exit_code: int) -> None:
        """An error that ends the command: one line on stderr, and in json formats a final object on stdout."""
        self.error(message)
        if self.fmt == "json" and not self.finished:
            obj = {**EMPTY_RESULT, "status": "error", "exit_code": exit_code, "summary": message, "error": message}
            self._write_out(json.dumps(obj, ensure_ascii=False) + "\n")
            self.finished = True

    @property
    def console(self) -> Any:
        """A rich console on stderr for progress (created on first use: rich is not needed by --help)."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(file=self.err, highlight=False, soft_wrap=True)
        return self._console

    def error(self, message: str) -> None:
        if self.fmt == "stream-json":
            self._json_line({"type": "error", "message": message})
        print(f"branchwise: error: {inert(message, one_line=True)}", file=self.err)

    def warn(self, message: str) -> None:
        print(f"branchwise: warning: {inert(message, one_line=True)}", file=self.err)

    def info(self, message: str) -> None:
        self._write_out(message + "\n")

    def can_ask(self) -> bool:
        """Questions need a person: text output and a terminal on both ends."""
        return self.fmt == "text" and sys.stdin.isatty() and self.err.isatty()

    def approve(self, call: Any, decision: Any) -> bool:
        """Ask the person at the terminal whether a call the policy flagged may run.

        The call is shown exactly, and inert: control and invisible characters as escapes, every line of a
        multi-line command behind a bar, so the text cannot redraw itself or imitate this prompt."""
        from branchwise.cli.render.inert import has_hidden

        args = call.arguments or {}
        what = str(args.get("command") or args.get("path") or call.raw_arguments or "")
        self.console.print(f"[bold yellow]approval needed[/] ({_escape(decision.rule)}): {_escape(decision.reason)}")
        self.console.print(f"  {_escape(call.name)}:")
        for line in what.split("\n"):
            self.console.print(f"  [dim]│[/] {_escape(line)}", soft_wrap=True)
        if has_hidden(what):
            self.console.print("  [bold red]it contains control or invisible characters, shown as escapes[/]")
        try:
            answer = input("  run it? [y/N] ")
        except EOFError:
            return False
        return answer.strip().lower() in ("y", "yes")

    def data(self, obj: Any) -> None:
        """A machine-readable answer (config show --json, runs --json)."""
        self._write_out(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")

    def event(self, event: Any) -> None:
        """An event subscriber."""
        if event.type == "plan":
            self.plan = event.subgoals
        if self.fmt == "stream-json":
            self._json_line(event.model_dump(mode="json"))
        if event.type == "warning" and self.fmt != "text":
            self.warn(event.message)  # stdout is for machines; people still see warnings on stderr
        elif self.fmt == "text":
            render = getattr(self, f"_text_{event.type}", None)
            if render is not None:
                render(event)

    def result(self, finished: Any) -> None:
        """The end of a run: the final object (json), nothing more (stream-json had it), or a summary (text)."""
        self.finished = True
        if self.fmt == "json":
            obj = result_object(finished)
            if self.plan is not None:
                obj["plan"] = self.plan
            self._write_out(json.dumps(obj, ensure_ascii=False) + "\n")
        elif self.fmt == "text":
            self._text_summary(finished)

    def _json_line(self, obj: dict[str, Any]) -> None:
        self._write_out(json.dumps(obj, ensure_ascii=False) + "\n")

    def _write_out(self, text: str) -> None:
        """Everything for stdout. When its reader has gone (`| head -1`), the rest is dropped with one notice on
        stderr: the run goes on, its events are still saved, and its exit code is still the run's."""
        if self.out_closed:
            return
        try:
            self.out.write(text)
            self.out.flush()
        except BrokenPipeError:
            self.out_closed = True
            try:  # what is still buffered goes nowhere at exit, instead of failing again there
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, self.out.fileno())
                os.close(devnull)
            except (OSError, ValueError, AttributeError):  # not a file descriptor (a test's buffer)
                pass
            print("branchwise: standard output was closed; the run goes on and its events are still saved",
                  file=self.err)  # fmt: skip

    # Text rendering, one method per event type; progress goes to stderr, the final summary to stdout.

    def _text_run_started(self, e: Any) -> None:
        model = e.model
        if model.startswith("scripted:"):
            model = f"{model} [bold yellow](a scripted model replaying a file, not an LLM)[/]"
        sandbox = e.sandbox
        where = f"{sandbox.get('kind')} {sandbox.get('mode', '')}, network {sandbox.get('network', '?')}"
        self.console.print(f"[bold]branchwise[/] run {e.run_id}\n  model:   {model}\n  sandbox: {where}")
        self.console.print(f"  task:    {e.task.strip().splitlines()[0] if e.task.strip() else ''}")

    def _text_model_reply(self, e: Any) -> None:
        if e.content and e.content.strip():
            self.console.print(f"[dim]{_escape(e.content.strip())}[/]")

    def _text_tool_call(self, e: Any) -> None:
        args = e.call.arguments or {}
        detail = args.get("command") or args.get("path") or args.get("pattern") or args.get("summary") or ""
        first = str(detail).strip().splitlines()[0] if str(detail).strip() else ""
        self.console.print(f"[cyan]→ {e.call.name}[/] {_escape(first[:160])}")

    def _text_tool_result(self, e: Any) -> None:
        lines = e.output.rstrip("\n").split("\n")
        shown = lines[:_PREVIEW_LINES]
        if len(lines) > _PREVIEW_LINES:
            shown.append(f"… ({len(lines) - _PREVIEW_LINES} more lines)")
        style = "red" if e.is_error else "dim"
        self.console.print("\n".join(f"  [{style}]{_escape(line)}[/]" for line in shown))

    def _text_format_error(self, e: Any) -> None:
        self.console.print(f"[yellow]! malformed reply:[/] {_escape(e.message)}")

    def _text_policy(self, e: Any) -> None:
        if e.decision != "allow":
            self.console.print(f"[yellow]! policy {e.decision} ({e.rule}):[/] {_escape(e.reason)}")

    def _text_egress(self, e: Any) -> None:
        if e.action != "allow":
            where = f"{e.host}:{e.port}" if e.host else "(not a proxy request)"
            self.console.print(f"[yellow]! network deny {_escape(e.method)} {_escape(where)}:[/] {_escape(e.reason)}")

    def _text_check(self, e: Any) -> None:
        r = e.result
        mark = "[green]✓[/]" if r.passed else "[red]✗[/]"
        self.console.print(f"{mark} check: {_escape(r.command)} (exit {r.exit_code})")

    def _text_node(self, e: Any) -> None:
        if e.parent is None:
            return
        reward = "-" if e.reward is None else f"{e.reward:.2f}"
        status = "" if e.status == "open" else _escape(f" [{e.status}]")
        self.console.print(f"[magenta]◆ node #{e.node}[/] from #{e.parent}: reward {reward}{status}")

    def _text_search(self, e: Any) -> None:
        self.console.print(
            f"[bold magenta]search ({e.strategy})[/]: kept node #{e.chosen} of {e.nodes}; {_escape(e.stop_reason)}"
        )

    def _text_plan(self, e: Any) -> None:
        title = "plan" if not e.revision else f"new plan (revision {e.revision})"
        self.console.print(f"[bold]{title}[/]" + (" [dim](from the task file)[/]" if e.given else ""))
        for i, sub in enumerate(e.subgoals, 1):
            check = f"  [dim]done when: {_escape(sub['done_check'])}[/]" if sub.get("done_check") else ""
            self.console.print(f"  {i}. {_escape(sub['title'])}{check}")
        for fact in e.facts:
            self.console.print(f"  [dim]fact: {_escape(fact)}[/]")

    def _text_progress(self, e: Any) -> None:
        if e.decision == "advance":
            self.console.print(f"[green]✓ subgoal {e.subgoal + 1} done[/] ({_escape(e.reason)})")
        elif e.decision == "replan" or e.looping:
            self.console.print(f"[yellow]! subgoal {e.subgoal + 1}: {_escape(e.reason)}[/]")

    def _text_replan(self, e: Any) -> None:
        self.console.print(f"[bold yellow]re-planning[/] at subgoal {e.subgoal + 1}: {_escape(e.reason)}")

    def _text_condense(self, e: Any) -> None:
        self.console.print(
            f"[dim]condensed the conversation: {_escape(e.reason)} ({e.tokens_before} → {e.tokens_after} tokens)[/]"
        )

    def _text_warning(self, e: Any) -> None:
        self.console.print(f"[bold yellow]warning:[/] {_escape(e.message)}")

    def _text_summary(self, f: Any) -> None:
        tokens = f.tokens
        lines = [
            f"status: {f.status}",
            f"summary: {f.summary}" if f.summary else None,
            f"steps: {f.steps}  tokens: {tokens.prompt} prompt + {tokens.completion} completion"
            f"  cost: ${f.cost_usd:.4f}",
            f"changed files: {', '.join(f.changed_files) if f.changed_files else '(none)'}",
            f"committed on: {f.branch} (your branch is unchanged; `branchwise undo {f.run_id}` puts the files back)"
            if f.branch
            else None,
            f"run: {f.run_id} (branchwise replay {f.run_id})",
        ]
        self._write_out("\n".join(inert(line) for line in lines if line) + "\n")


# The final object's keys when no run took place (an error before or instead of it).
EMPTY_RESULT: dict[str, Any] = {
    "status": "error",
    "exit_code": 1,
    "run_id": None,
    "summary": "",
    "error": None,
    "steps": 0,
    "tokens": {"prompt": 0, "completion": 0},
    "cost_usd": 0.0,
    "changed_files": [],
    "checks": [],
    "duration_s": 0.0,
    "limit": None,
    "memory": {},
    "branch": None,
}


def result_object(finished: Any) -> dict[str, Any]:
    """The `--output-format json` object: a stable, documented shape (keys are only ever added)."""
    return {
        "status": finished.status,
        "exit_code": finished.exit_code,
        "run_id": finished.run_id,
        "summary": finished.summary,
        "error": finished.error,
        "steps": finished.steps,
        "tokens": {"prompt": finished.tokens.prompt, "completion": finished.tokens.completion},
        "cost_usd": round(finished.cost_usd, 6),
        "changed_files": finished.changed_files,
        "checks": [{"command": c.command, "exit_code": c.exit_code, "passed": c.passed} for c in finished.checks],
        "duration_s": finished.duration_s,
        "limit": finished.limit,
        "memory": finished.memory,
        "branch": finished.branch,
        "model": getattr(finished, "model", None),
        "strategy": getattr(finished, "strategy", None),
    }


def _escape(text: str) -> str:
    """Untrusted text for the console: rich markup escaped, terminal controls inert (see render/inert.py)."""
    from rich.markup import escape

    from branchwise.cli.render.inert import inert

    return escape(inert(text))
