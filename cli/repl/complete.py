"""Completion of slash commands and `@path` file mentions, and attaching the mentioned files to a task."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document

MENTION = re.compile(r"(?<![\w@])@([\w./\-]+)")
MAX_ATTACH_BYTES = 100 * 1024
_SKIP = {".git", ".branchwise", "node_modules", "__pycache__", ".venv"}


class ReplCompleter(Completer):
    def __init__(self, workspace: Callable[[], Path | None], commands: Callable[[], Iterable[tuple[str, str]]]) -> None:
        self.workspace, self.commands = workspace, commands

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterable[Completion]:
        text = document.text_before_cursor
        if text.startswith("/") and " " not in text:
            for name, meta in self.commands():
                if name.startswith(text[1:]):
                    yield Completion("/" + name, start_position=-len(text), display_meta=meta)
            return
        word = document.get_word_before_cursor(WORD=True)
        if word.startswith("@"):
            yield from self._paths(word)

    def _paths(self, word: str) -> Iterable[Completion]:
        root = self.workspace()
        if root is None:
            return
        typed = word[1:]
        folder, _, prefix = typed.rpartition("/")
        base = (root / folder).resolve()
        if base != root and root not in base.parents:
            return
        try:
            entries = sorted(os.scandir(base), key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            if entry.name in _SKIP or not entry.name.startswith(prefix):
                continue
            if entry.name.startswith(".") and not prefix.startswith("."):
                continue
            rel = f"{folder}/{entry.name}" if folder else entry.name
            is_dir = entry.is_dir(follow_symlinks=False)
            yield Completion("@" + rel + ("/" if is_dir else ""), start_position=-len(word),
                             display=entry.name + ("/" if is_dir else ""))  # fmt: skip


def attach_mentions(task: str, workspace: Path, hidden: list[str]) -> tuple[str, list[str], list[str]]:
    """The mentioned files' contents as a note for the system prompt; returns (note, attached, problems).

    The note is not part of the task: the task is the user's own words (trusted by the policy), a file is the
    repository's (untrusted, like any file the agent reads). Files are read through the workspace's safe
    access, so hidden paths (sandbox.deny_read) and links out of the workspace stay unreadable."""
    from branchwise.sandbox.base import SandboxError
    from branchwise.sandbox.workspace.safefs import WorkspaceFS

    fs: Any = WorkspaceFS(workspace, hidden=hidden)
    attached: list[str] = []
    problems: list[str] = []
    blocks = []
    for path in dict.fromkeys(MENTION.findall(task)):
        path = path.rstrip(".,;:")
        if not (workspace / path).is_file():
            continue
        try:
            data = fs.read_bytes(path, limit=MAX_ATTACH_BYTES, truncate=True)
        except (SandboxError, OSError) as exc:
            problems.append(f"@{path}: {exc}")
            continue
        text = data.decode("utf-8", errors="replace")
        blocks.append(f'<file path="{path}">\n{text}\n</file>')
        attached.append(path)
    note = ("Files the user attached to the task (@path):\n" + "\n".join(blocks)) if blocks else ""
    return note, attached, problems
