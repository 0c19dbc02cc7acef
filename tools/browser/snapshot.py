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


# Roles whose elements the tools act on (click, type, select, wait on): these keep their ref in what the model
# reads. Structure (lists, paragraphs, generic boxes, cells) is shown without one; the session still resolves
# every ref of the full snapshot.
INTERACTIVE = frozenset(
    {
        *("link", "button", "textbox", "searchbox", "combobox", "listbox", "option", "checkbox", "radio"),
        *("switch", "slider", "spinbutton", "tab", "menuitem", "menuitemcheckbox", "menuitemradio", "treeitem"),
        *("gridcell", "columnheader", "rowheader", "dialog", "alertdialog"),
    }
)
_CURSOR = re.compile(r" \[cursor=pointer\]")
_SPACED_REF = re.compile(r" \[ref=[a-z0-9]+\]")
_WRAPPER = re.compile(r"^(\s*)- generic:$")


def compact(snapshot: str) -> str:
    """The snapshot as the model reads it: refs (and focus marks) only on elements it can act on, no cursor notes,
    and nameless generic boxes left out (their children move up a level). Nothing the model can address is lost."""
    out: list[str] = []
    dropped: list[int] = []  # indents of the wrappers left out above the current line
    for line in snapshot.splitlines():
        indent = len(line) - len(line.lstrip(" "))
        while dropped and dropped[-1] >= indent:
            dropped.pop()
        line = _CURSOR.sub("", line)
        head = _LINE.match(line)
        if head and head.group("role") not in INTERACTIVE:
            line = _SPACED_REF.sub("", line).replace(" [active]", "")  # focus moving off the body is no change
        if _WRAPPER.match(line):
            dropped.append(indent)
            continue
        out.append(line[2 * len(dropped) :] if dropped else line)
    return "\n".join(out)


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
    note = f"[snapshot cut at {max_tokens} tokens: {left} more lines not shown (browser.snapshot_tokens)]"
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
