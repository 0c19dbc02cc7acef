"""What the REPL asks at its prompt: approvals (asked from the worker thread, answered by the next line typed)
and plans (shown after `/plan TASK`, then accepted, edited or dropped). Mixed into `Repl`."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from branchwise.cli.render.inert import inert
from branchwise.cli.repl.view import call_diff, diff_text


@dataclass
class Question:
    """An approval the worker waits for."""

    call: Any
    decision: Any
    done: threading.Event = field(default_factory=threading.Event)
    answer: bool = False


class Approvals:
    """Inline approvals: the call is shown, the prompt takes y / n / a(lways) / e(dit)."""

    question: Question | None
    editing: Question | None
    always: set[tuple[str, str, str]]
    terminated: bool
    workspace: Any
    hidden: list[str]
    view: Any

    def note(self, markup: str) -> None: ...
    def invalidate(self) -> None: ...

    def approve(self, call: Any, decision: Any) -> bool:
        from branchwise.agent import cancel

        key = _always_key(call, decision)
        if key in self.always:
            self.note(f"[dim]approved ({_esc(decision.rule)}, always for this session)[/]")
            return True
        self.view.show(self.approval_panel(call, decision))
        question = Question(call, decision)
        self.question = question
        self.invalidate()
        while not question.done.wait(0.1):
            if cancel.requested() or self.terminated:
                self.question = self.editing = None
                return False
        return question.answer

    def approval_panel(self, call: Any, decision: Any) -> Any:
        from rich.console import Group
        from rich.panel import Panel
        from rich.text import Text

        args = call.arguments or {}
        parts: list[Any] = [Text(f"{decision.reason}", style="yellow"), Text(f"rule: {decision.rule}", style="dim")]
        if call.name in ("create", "str_replace", "insert"):
            parts.append(diff_text(call_diff(call, self._read)))
        else:
            what = str(args.get("command") or args.get("path") or call.raw_arguments or args)
            parts.append(Text("\n".join(f"│ {line}" for line in inert(what).split("\n")), style="bold"))
        parts.append(Text("[y]es  [n]o  [a]lways (this session)  [e]dit", style="bold"))
        return Panel(Group(*parts), title=f"approve {call.name}?", title_align="left", border_style="yellow")

    def _read(self, path: str) -> str | None:
        from branchwise.sandbox.base import SandboxError
        from branchwise.sandbox.workspace.safefs import WorkspaceFS

        if self.workspace is None:
            return None
        try:
            return WorkspaceFS(self.workspace, hidden=self.hidden).read_bytes(path, truncate=True).decode(
                "utf-8", errors="replace")  # fmt: skip
        except (SandboxError, OSError):
            return None

    def _answer(self, text: str) -> None:
        question = self.question
        assert question is not None
        answer = text.strip().lower()
        if answer in ("e", "edit"):
            if not isinstance((question.call.arguments or {}).get("command"), str):
                self.note("only a command can be edited here; answer y, n or a")
                return
            self.question, self.editing = None, question
            return
        if answer not in ("y", "yes", "a", "always", "n", "no", ""):
            self.note("answer y (yes), n (no), a (always, for this session) or e (edit the command)")
            return
        if answer in ("a", "always"):
            self.always.add(_always_key(question.call, question.decision))
        question.answer = answer in ("y", "yes", "a", "always")
        self.note("[green]approved[/]" if question.answer else "[yellow]refused[/]")
        self.question = None
        question.done.set()

    def _edited(self, text: str) -> None:
        question = self.editing
        assert question is not None
        self.editing = None
        if text.strip():
            question.call.arguments = {**(question.call.arguments or {}), "command": text}
            question.call.raw_arguments = None
            question.answer = True
            self.note(f"[green]approved as edited:[/] {_esc(text)}")
        else:
            self.note("[yellow]refused[/] (empty command)")
        question.done.set()


class Plans:
    """`/plan TASK`: the plan is shown, then run as it is (y), edited (e) or dropped (n)."""

    plan_draft: tuple[str, list[dict[str, Any]]] | None
    plan_editing: bool
    editing: Question | None

    def note(self, markup: str) -> None: ...
    def start_task(self, task: str, *, plan_only: bool = False, plan: list[dict[str, Any]] | None = None,
                   label: str = "") -> None: ...  # fmt: skip

    def plan_text(self, subgoals: list[dict[str, Any]]) -> str:
        lines = ["[bold]plan[/]"]
        for i, sub in enumerate(subgoals, 1):
            check = f" [dim]done when: {_esc(sub['done_check'])}[/]" if sub.get("done_check") else ""
            lines.append(f"  {i}. {_esc(sub['title'])}{check}")
        return "\n".join(lines)

    def _plan_answer(self, answer: str) -> None:
        assert self.plan_draft is not None
        task, subgoals = self.plan_draft
        if answer in ("y", "yes"):
            self.plan_draft = None
            self.start_task(task, plan=subgoals)
        elif answer in ("e", "edit"):
            self.plan_editing = True
            self.note("[dim]one subgoal a line: TITLE, or TITLE :: DONE-CHECK; Alt-Enter for a new line[/]")
        else:
            self.plan_draft = None
            self.note("plan dropped")

    def _plan_edited(self, text: str) -> None:
        assert self.plan_draft is not None
        task, _ = self.plan_draft
        self.plan_editing, self.plan_draft = False, None
        subgoals = []
        for line in text.splitlines():
            title, _, check = line.strip().lstrip("0123456789.) ").partition("::")
            if title.strip():
                sub: dict[str, Any] = {"title": title.strip()}
                if check.strip():
                    sub["done_check"] = check.strip()
                subgoals.append(sub)
        if not subgoals:
            self.note("the plan is empty: dropped")
            return
        self.start_task(task, plan=subgoals)

    def default_text(self) -> str:
        if self.editing is not None:
            return str((self.editing.call.arguments or {}).get("command", ""))
        if self.plan_editing and self.plan_draft is not None:
            return "\n".join(s["title"] + (f" :: {s['done_check']}" if s.get("done_check") else "")
                             for s in self.plan_draft[1])  # fmt: skip
        return ""


def _always_key(call: Any, decision: Any) -> tuple[str, str, str]:
    """What "always" approves: this tool, under this rule, for this program (a command's first word)."""
    command = (call.arguments or {}).get("command")
    program = command.split()[0] if isinstance(command, str) and command.split() else ""
    return (call.name, decision.rule, program)


def _esc(text: str) -> str:
    from rich.markup import escape

    return escape(inert(text, one_line=True))
