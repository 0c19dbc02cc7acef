"""The page as the model reads it: Playwright's AI snapshot (an accessibility tree with `[ref=eN]` per element),
capped in tokens, and the part of it that an action changed.

Refs resolve only against the latest snapshot of the page, so every action takes a fresh one after it acts:
the refs the model sees are always current.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

_REF = re.compile(r"\[ref=([a-z0-9]+)\]")
_LINE = re.compile(r'^\s*-\s+(?P<role>[\w-]+)(?:\s+"(?P<name>(?:[^"\\]|\\.)*)")?')
_CHARS_PER_TOKEN = 4  # the tree is mostly ASCII words and punctuation; a stable estimate, no tokenizer load


def tokens(text: str) -> int:
    """Estimated tokens of snapshot text."""
    return (len(text) + _CHARS_PER_TOKEN - 1) // _CHARS_PER_TOKEN


@dataclass(frozen=True)
class Element:
    """What one ref names, as the snapshot shows it."""

    ref: str
    role: str
    name: str
    line: str


def elements(snapshot: str) -> dict[str, Element]:
    """Every ref of a snapshot, with its role and accessible name."""
    found: dict[str, Element] = {}
    for line in snapshot.splitlines():
        ref = _REF.search(line)
        head = _LINE.match(line)
        if ref and head:
            found[ref.group(1)] = Element(ref.group(1), head.group("role"), head.group("name") or "", line.strip())
    return found


def cap(snapshot: str, max_tokens: int) -> str:
    """The snapshot cut to `max_tokens`, at a line, with a note saying how much was left out."""
    if tokens(snapshot) <= max_tokens:
        return snapshot
    budget = max_tokens * _CHARS_PER_TOKEN
    lines = snapshot.splitlines()
    kept: list[str] = []
    used = 0
    for line in lines:
        if used + len(line) + 1 > budget:
            break
        kept.append(line)
        used += len(line) + 1
    left = len(lines) - len(kept)
    note = (f"[snapshot cut at {max_tokens} tokens: {left} more lines; use browser_snapshot with `ref` to see "
            "one part, or browser_wait_for/browser_press to scroll]")  # fmt: skip
    return "\n".join([*kept, note])


def changes(before: str, after: str, max_tokens: int) -> str:
    """What an action changed in the page: the changed lines with one line of context, or a note that nothing did."""
    if before == after:
        return "(the page did not change)"
    old, new = before.splitlines(), after.splitlines()
    diff = list(difflib.unified_diff(old, new, lineterm="", n=1))[2:]
    if not diff or tokens("\n".join(diff)) >= tokens(after):  # a new page: the whole tree says more than a diff
        return cap(after, max_tokens)
    return cap("\n".join(line for line in diff if not line.startswith("@@")), max_tokens)
