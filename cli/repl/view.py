"""The REPL's live view: an event subscriber like the text output, drawing compact panels above the prompt.

It keeps what the bottom toolbar shows (model, step, tokens, cost, search state), the line that is streaming
in (shown live, above the prompt, until it is complete), and the search tree that `/tree` draws. Everything
untrusted goes through `inert()` and rich's markup escaping before it reaches the terminal.
"""

from __future__ import annotations

import difflib
import io
import re
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from branchwise.cli.render.inert import inert

FOLD_HEAD = 6
FOLD_TAIL = 4
EDIT_TOOLS = ("create", "str_replace", "insert")
SHOWN_PURPOSES = ("act", "plan")
"""Replies whose text is shown (a judge's or reflection's words are not the conversation)."""
_EXIT_TRAILER = re.compile(r"\n?\[exit code: -?\d+\]\s*$")


@dataclass
class TreeNode:
    id: int
    parent: int | None
    action: str
    reward: float | None
    status: str
    children: list[int] = field(default_factory=list)


@dataclass
class Totals:
    """The session's running totals (all tasks), for the toolbar and /cost."""

    steps: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    tasks: int = 0


class LiveView:
    """Renders events; `write` receives finished ANSI text (the REPL prints it above the prompt)."""

    def __init__(self, write: Callable[[str], None], *, width: Callable[[], int] | None = None,
                 redraw: Callable[[], None] | None = None) -> None:  # fmt: skip
        self.write = write
        self.width = width or (lambda: shutil.get_terminal_size((80, 24)).columns)
        self.redraw = redraw or (lambda: None)
        self.lock = threading.Lock()
        self.model = "…"
        self.strategy = "none"
        self.state = "idle"
        self.step = 0
        self.totals = Totals()
        self.run_tokens = (0, 0)
        self.run_cost = 0.0
        self.partial = ""
        """The line being streamed in, not yet complete."""
        self.running = ""
        """The tool call that is running now (shown live until its result comes)."""
        self.calls: dict[int, list[str]] = {}
        self.nodes: dict[int, TreeNode] = {}
        self.chosen: int | None = None
        self.last_run: Any = None
        self.last_plan: list[dict[str, Any]] | None = None
        self.last_reply = ""

    # -- output helpers

    def render(self, *renderables: Any) -> str:
        from rich.console import Console

        buf = io.StringIO()
        console = Console(file=buf, width=max(20, self.width()), force_terminal=True, color_system="standard",
                          highlight=False, soft_wrap=False)  # fmt: skip
        for r in renderables:
            console.print(r)
        return buf.getvalue()

    def show(self, *renderables: Any) -> None:
        self.flush_partial()
        self.write(self.render(*renderables))

    def markup(self, text: str) -> None:
        self.show(text)

    def flush_partial(self) -> None:
        if self.partial:
            line, self.partial = self.partial, ""
            self.write(self.render(f"[italic]{_esc(line)}[/]"))
            self.redraw()

    # -- the subscriber

    def __call__(self, event: Any) -> None:
        with self.lock:
            handler = getattr(self, f"on_{event.type}", None)
            if handler is not None:
                handler(event)
        self.redraw()

    def on_run_started(self, e: Any) -> None:
        self.model, self.state, self.step = e.model, "running", 0
        self.strategy = str((e.config.get("search") or {}).get("strategy", "none"))
        self.nodes, self.chosen, self.calls, self.running = {}, None, {}, ""
        self.run_tokens, self.run_cost = (0, 0), 0.0
        sandbox = e.sandbox
        where = f"{sandbox.get('kind')} {sandbox.get('mode', '')}, network {sandbox.get('network', '?')}"
        self.show(f"[dim]run {e.run_id} · {_esc(e.model)} · {_esc(where)}[/]")

    def on_model_delta(self, e: Any) -> None:
        if e.purpose not in SHOWN_PURPOSES:
            return
        if e.index is None:
            self._streamed = True
            text = self.partial + e.content
            *done, self.partial = text.split("\n")
            if done:
                self.write(self.render(*(f"[italic]{_esc(line)}[/]" for line in done)))
        else:
            parts = self.calls.setdefault(e.index, ["", ""])
            parts[0] = parts[0] or (e.name or "")
            parts[1] += e.arguments

    def streaming_line(self) -> str:
        """What is streaming in now (text, or the tool call being written), for the live line."""
        if self.partial:
            return self.partial
        if self.calls:
            name, args = self.calls[max(self.calls)]
            return f"→ {name} {args[-60:]}"
        if self.running:
            return f"⋯ running {self.running}"
        return ""

    def on_model_reply(self, e: Any) -> None:
        if e.purpose not in SHOWN_PURPOSES:
            return
        if e.content and e.content.strip():
            self.last_reply = e.content
        self.calls = {}
        if self._streamed:
            self.flush_partial()
        elif e.content and e.content.strip():
            self.show(f"[italic]{_esc(e.content.strip())}[/]")
        self._streamed = False

    _streamed = False

    def on_tool_call(self, e: Any) -> None:
        self._pending_call = e.call
        args = e.call.arguments or {}
        detail = str(args.get("command") or args.get("path") or args.get("summary") or "")
        self.running = f"{e.call.name}: {detail.strip().splitlines()[0] if detail.strip() else ''}"

    def on_tool_result(self, e: Any) -> None:
        self.running = ""
        if e.name == "finish" and not e.is_error:
            return  # the run's ending says it
        call = getattr(self, "_pending_call", None)
        call = call if call is not None and call.id == e.call_id else None
        self.show(tool_panel(e, call, self.width()))

    def on_policy(self, e: Any) -> None:
        if e.decision == "deny" or (e.decision == "ask" and not e.approved):
            self.show(f"[yellow]! {e.decision} ({_esc(e.rule)}): {_esc(e.reason)}[/]")

    def on_check(self, e: Any) -> None:
        r = e.result
        mark = "[green]✓[/]" if r.passed else "[red]✗[/]"
        self.show(f"{mark} check {_esc(r.command)} [dim](exit {r.exit_code})[/]")

    def on_step_finished(self, e: Any) -> None:
        self.step = e.step
        self.run_tokens = (e.usage.prompt, e.usage.completion)
        self.run_cost = e.cost_usd

    def on_node(self, e: Any) -> None:
        node = TreeNode(e.node, e.parent, e.action, e.reward, e.status)
        old = self.nodes.get(e.node)
        if old is not None:
            node.children = old.children
        self.nodes[e.node] = node
        if e.parent is not None and e.parent in self.nodes and e.node not in self.nodes[e.parent].children:
            self.nodes[e.parent].children.append(e.node)
        if e.parent is not None:
            reward = "-" if e.reward is None else f"{e.reward:.2f}"
            self.show(f"[magenta]◆ #{e.node}[/] [dim]from #{e.parent}[/] {_esc(e.action[:60])} "
                      f"[dim]reward {reward} {e.status}[/]")  # fmt: skip

    def on_search(self, e: Any) -> None:
        self.chosen = e.chosen
        self.show(f"[bold magenta]search ({e.strategy})[/]: kept #{e.chosen} of {e.nodes}; {_esc(e.stop_reason)}")

    def on_plan(self, e: Any) -> None:
        self.last_plan = e.subgoals
        lines = ["[bold]plan[/]" if not e.revision else f"[bold]new plan[/] (revision {e.revision})"]
        for i, sub in enumerate(e.subgoals, 1):
            check = f" [dim]done when: {_esc(sub['done_check'])}[/]" if sub.get("done_check") else ""
            lines.append(f"  {i}. {_esc(sub['title'])}{check}")
        self.show("\n".join(lines))

    def on_progress(self, e: Any) -> None:
        if e.decision == "advance":
            self.show(f"[green]✓ subgoal {e.subgoal + 1} done[/]")

    def on_format_error(self, e: Any) -> None:
        self.show(f"[yellow]! {_esc(e.message)}[/]")

    def on_warning(self, e: Any) -> None:
        self.show(f"[bold yellow]warning:[/] {_esc(e.message)}")

    def on_condense(self, e: Any) -> None:
        self.show(f"[dim]condensed the conversation ({e.tokens_before} → {e.tokens_after} tokens)[/]")

    def on_run_finished(self, e: Any) -> None:
        self.state, self.last_run = "idle", e
        t = self.totals
        t.steps += e.steps
        t.prompt_tokens += e.tokens.prompt
        t.completion_tokens += e.tokens.completion
        t.cost_usd += e.cost_usd
        t.tasks += 1
        self.run_tokens, self.run_cost = (0, 0), 0.0
        colour = {"completed": "green", "interrupted": "yellow"}.get(e.status, "red")
        lines = [f"[bold {colour}]{_esc(e.status)}[/]" + (f": {_esc(e.summary)}" if e.summary else "")]
        files = ", ".join(e.changed_files) if e.changed_files else "(none)"
        lines.append(f"[dim]{e.steps} steps · ${e.cost_usd:.4f} · changed: {_esc(files)}[/]")
        if e.branch:
            lines.append(f"[dim]committed on {_esc(e.branch)}; /undo puts the files back[/]")
        self.show("\n".join(lines))

    # -- the toolbar and the tree

    def toolbar(self) -> str:
        """model · step · tokens · cost · search state (plain text)."""
        t = self.totals
        prompt, completion = t.prompt_tokens + self.run_tokens[0], t.completion_tokens + self.run_tokens[1]
        search = self.strategy
        if self.nodes:
            search += f" {len(self.nodes)} nodes"
        model = self.model
        if model.startswith("scripted:"):  # the file's name is enough here
            model = "scripted:" + model.rsplit("/", 1)[-1]
        # The model last: at 80 columns a long name is what gets cut, not the figures.
        return (f" step {self.step} │ {_tokens(prompt + completion)} tok │ ${t.cost_usd + self.run_cost:.4f} │ "
                f"search {search} │ {self.state} │ {model} ")  # fmt: skip

    def tree_text(self, marks: dict[int, str] | None = None) -> str:
        """The search tree as indented lines: id, action, reward, status (chosen and steered nodes marked)."""
        if not self.nodes:
            return "no search tree yet (run a task with /search mcts or best-of-n)"
        marks = marks or {}
        lines: list[str] = []
        roots = [n for n in self.nodes.values() if n.parent is None or n.parent not in self.nodes]

        def walk(node: TreeNode, depth: int) -> None:
            reward = "-" if node.reward is None else f"{node.reward:.2f}"
            mark = " ★" if node.id == self.chosen else ""
            mark += f" [{marks[node.id]}]" if node.id in marks else ""
            action = inert(node.action or "(root)", one_line=True)[: max(10, self.width() - 40 - 2 * depth)]
            lines.append(f"{'  ' * depth}#{node.id} {action}  r={reward} {node.status}{mark}")
            for child in node.children:
                if child in self.nodes:
                    walk(self.nodes[child], depth + 1)

        for root in roots:
            walk(root, 0)
        return "\n".join(lines)


def tool_panel(result: Any, call: Any, width: int) -> Any:
    """A compact panel: the command (or the edit as a coloured diff), exit code, and the output folded."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.text import Text

    args = (call.arguments or {}) if call is not None else {}
    title = result.name
    head = ""
    if result.name == "shell":
        head = str(args.get("command", ""))
    elif args.get("path"):
        head = str(args["path"])
    exit_code = result.data.get("exit_code")
    status = f"exit {exit_code}" if exit_code is not None else ("error" if result.is_error else "ok")
    parts: list[Any] = []
    if head:
        parts.append(Text(inert(head.strip().splitlines()[0] if head.strip() else "", one_line=True)[:width * 2],
                          style="bold"))  # fmt: skip
    if call is not None and result.name in EDIT_TOOLS:
        parts.append(diff_text(call_diff(call)))
    body = fold(_EXIT_TRAILER.sub("", result.output) if result.name == "shell" else result.output)
    if body:
        parts.append(Text(body, style="red" if result.is_error else "dim"))
    border = "red" if result.is_error or (isinstance(exit_code, int) and exit_code != 0) else "cyan"
    return Panel(Group(*parts), title=f"{title} · {status} · {result.duration_s:.1f}s", title_align="left",
                 border_style=border, expand=True, padding=(0, 1))  # fmt: skip


def fold(output: str, head: int = FOLD_HEAD, tail: int = FOLD_TAIL) -> str:
    """First and last lines of an output; the middle is folded into one line saying how much was left out."""
    lines = inert(output.rstrip("\n")).split("\n") if output.strip() else []
    if len(lines) <= head + tail + 1:
        return "\n".join(lines)
    return "\n".join([*lines[:head], f"… {len(lines) - head - tail} lines folded …", *lines[-tail:]])


def call_diff(call: Any, read: Callable[[str], str | None] | None = None) -> str:
    """A unified diff of what an edit call will do (or did), from its arguments alone when the file is unknown."""
    args = call.arguments or {}
    path = str(args.get("path", "?"))
    if call.name == "create":
        old, new = (read(path) if read else None) or "", str(args.get("file_text", ""))
    elif call.name == "str_replace":
        old, new = str(args.get("old_str", "")), str(args.get("new_str", ""))
    elif call.name == "insert":
        old, new = "", str(args.get("new_str", ""))
    else:
        return ""
    lines = difflib.unified_diff(old.splitlines(), new.splitlines(), f"a/{path}", f"b/{path}", lineterm="", n=2)
    return "\n".join(lines)


def diff_text(diff: str, limit: int = 40) -> Any:
    """A diff coloured for the terminal: additions green, removals red, hunks cyan; long diffs folded."""
    from rich.text import Text

    out = Text()
    lines = inert(diff).split("\n")
    if len(lines) > limit:
        lines = [*lines[: limit - 1], f"… {len(lines) - limit + 1} more diff lines"]
    for line in lines:
        style = next((s for prefix, s in (("+", "green"), ("-", "red"), ("@@", "cyan")) if line.startswith(prefix)), "")
        out.append(line + "\n", style=style)
    out.rstrip()
    return out


def _tokens(n: int) -> str:
    return f"{n / 1000:.1f}k" if n >= 1000 else str(n)


def _esc(text: str) -> str:
    from rich.markup import escape

    return escape(inert(text, one_line=True))
