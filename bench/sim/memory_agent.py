"""A simulated agent at the Model seam for the memory benchmark: it knows how to do each family's task, but
learns this repository's particulars only by trying, or from memory when retrieval offers it.

What it reads is exactly what the run gives it: the notes block in the system prompt and the tools it is
offered. Without notes it explores (guesses the test runner, reproduces the failure, searches for the code);
a tip it can apply saves the step the tip is about; an offered shortcut whose arguments it can fill is
tried first (one step), and if the shortcut fails the agent goes on by hand.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from branchwise.agent.models.base import Message, Reply, estimate_tokens
from branchwise.agent.record.events import ToolCallRecord

from .memory_world import FamilyTask

_TIP = re.compile(r"^- \[(tip-[0-9a-f]+)[^\]]*\] (.*)$", re.MULTILINE)
_TICKED = re.compile(r"`([^`]+)`")
_LIKE = re.compile(r"like '([^']*)'")


@dataclass
class Knowledge:
    """What the notes told the agent."""

    runner: str | None = None
    layout: bool = False
    fix: bool = False
    used_tips: set[str] = field(default_factory=set)


def read_notes(text: str, task: FamilyTask) -> Knowledge:
    """The tips this agent can act on: a working test command, where the change goes, what the fix is."""
    know = Knowledge()
    for tip_id, body in _TIP.findall(text):
        ticked = _TICKED.findall(body)
        if "works instead" in body and ticked and "unittest" in ticked[-1]:
            know.runner = ticked[-1]
            know.used_tips.add(tip_id)
        elif task.family == "subcommand" and "notes/cli.py" in body and "notes/commands/" in body:
            know.layout = True
            know.used_tips.add(tip_id)
        elif task.family == "fix" and "→" in body and any("//" in t for t in ticked):
            know.fix = True
            know.used_tips.add(tip_id)
    return know


class FamilyPolicy:
    """Plays one task; `steps` tells which calls it made (for the benchmark's bookkeeping)."""

    kind = "simulated"
    supports_n = True
    supports_images = False
    keep_images = 0

    def __init__(self, task: FamilyTask) -> None:
        self.name = f"sim-{task.family}"
        self.task = task
        self.queue: list[tuple[str, dict[str, Any]]] | None = None
        self.know = Knowledge()
        self.shortcut_tried: str | None = None
        self.calls = 0

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind}

    def count_tokens(self, messages: list[Message], tools: list[dict[str, Any]]) -> int:
        return estimate_tokens(messages, tools)

    def context_window(self) -> int | None:
        return None

    def query(self, messages: list[Message], tools: list[dict[str, Any]], *, n: int = 1,
              temperature: float | None = None, deadline: float | None = None) -> list[Reply]:  # fmt: skip
        if self.queue is None:
            self.know = read_notes(str(messages[0].get("content") or ""), self.task)
            self.queue = self.start(tools)
        last = messages[-1]
        said = str(last.get("content", "")).split("\n", 1)[0]
        if last.get("role") == "tool" and said.startswith(f"Shortcut {self.shortcut_tried} failed"):
            self.queue = self.manual()
        name, args = self.queue.pop(0) if self.queue else ("finish", {"summary": "Done."})
        self.calls += 1
        call = ToolCallRecord(id=f"sim_{self.calls}", name=name, arguments=args)
        return [Reply(tool_calls=[call]) for _ in range(n)]

    def start(self, tools: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
        for tool in tools:
            fn = tool["function"]
            if fn["name"].startswith("shortcut_"):
                args = self.fill(fn["parameters"])
                if args is not None:
                    self.shortcut_tried = fn["name"].removeprefix("shortcut_")
                    return [(fn["name"], args), ("finish", {"summary": "Done with a shortcut."})]
        return self.manual()

    def fill(self, schema: dict[str, Any]) -> dict[str, Any] | None:
        """Arguments for a shortcut by analogy: a property named like the word next to a value in this task
        ("the `wave` subcommand" fills `subcommand`) takes that value; else the value most like its example."""
        values = _TICKED.findall(self.task.prompt)  # what the task itself says, nothing hidden
        args = {}
        for prop, spec in schema.get("properties", {}).items():
            word = re.escape(prop.rstrip("_"))
            near = re.search(rf"`([^`]+)`\s+{word}\b|\b{word}\s+`([^`]+)`", self.task.prompt, re.IGNORECASE)
            if near:
                args[prop] = near.group(1) or near.group(2)
                continue
            example = _LIKE.search(spec.get("description", ""))
            best = max(values, key=lambda v: _likeness(v, example.group(1)), default=None) if example else None
            if best is None or example is None or _likeness(best, example.group(1)) <= 0:
                return None
            args[prop] = best
        return args

    def manual(self) -> list[tuple[str, dict[str, Any]]]:
        return self.by_hand_subcommand() if self.task.family == "subcommand" else self.by_hand_fix()

    def test_command(self) -> str:
        return self.task.checks[0]

    def guess_runner(self) -> list[tuple[str, dict[str, Any]]]:
        """Without a note on how tests run here, the agent tries pytest first (not installed) and learns."""
        module = self.test_command().split("tests.test_")[1].split()[0]
        return [] if self.know.runner else [("shell", {"command": f"pytest -q tests/test_{module}.py"})]

    def by_hand_subcommand(self) -> list[tuple[str, dict[str, Any]]]:
        name, message = self.task.values["name"], self.task.values["message"]
        plan = self.guess_runner()
        if not self.know.layout:
            plan += [("shell", {"command": self.test_command()}), ("grep", {"pattern": "COMMANDS"})]
        plan += [
            ("view", {"path": "notes/cli.py"}),
            ("view", {"path": "notes/commands/hello.py"}),
            ("create", {"path": f"notes/commands/{name}.py", "file_text": f'def run(args):\n    return "{message}"\n'}),
            ("str_replace", {"path": "notes/cli.py", "old_str": "from notes.commands import hello\n",
                             "new_str": f"from notes.commands import hello\nfrom notes.commands import {name}\n"}),
            ("str_replace", {"path": "notes/cli.py", "old_str": '    "hello": hello.run,\n',
                             "new_str": f'    "hello": hello.run,\n    "{name}": {name}.run,\n'}),
            ("shell", {"command": self.test_command()}),
            ("finish", {"summary": f"Added the {name} subcommand."}),
        ]  # fmt: skip
        return plan

    def by_hand_fix(self) -> list[tuple[str, dict[str, Any]]]:
        module, bug, fix = self.task.values["module"], self.task.values["bug"], self.task.values["fix"]
        plan = self.guess_runner()
        if not self.know.fix:
            plan.append(("shell", {"command": self.test_command()}))
        plan += [
            ("view", {"path": f"geometry/{module}.py"}),
            ("str_replace", {"path": f"geometry/{module}.py", "old_str": f"return {bug}", "new_str": f"return {fix}"}),
            ("shell", {"command": self.test_command()}),
            ("finish", {"summary": f"Fixed the division in geometry/{module}.py."}),
        ]  # fmt: skip
        return plan


def _likeness(value: str, example: str) -> float:
    """How alike two argument values look: the same shape (path, word, phrase), then a shared prefix."""
    shape = ("/" in value) == ("/" in example) and (" " in value) == (" " in example)
    if not shape:
        return 0.0
    prefix = len(_common_prefix(value, example))
    return 1.0 + prefix / max(len(example), 1)


def _common_prefix(a: str, b: str) -> str:
    i = 0
    while i < min(len(a), len(b)) and a[i] == b[i]:
        i += 1
    return a[:i]
