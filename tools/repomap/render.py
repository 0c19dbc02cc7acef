"""Fitting the ranked definitions into a token budget, and writing the map.

Entries are taken best first while their estimated cost fits (an entry that does not fit is passed over,
so a smaller one further down may still go in); the finished text is then counted exactly and entries
are dropped from the end until it fits. The exact count is the last word, so the map is never over
budget, whatever the tokenizer does at line boundaries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from branchwise.tools.repomap.tags import FileTags
from branchwise.tools.repomap.tokens import TokenCounter

MAX_SAME_NAME = 3  # definitions of one name shown per file (overloads, one per class)
GIVE_UP_AFTER = 400  # candidates in a row that did not fit before the fitting stops looking


@dataclass
class Selection:
    """What goes into the map: per file (in order of first selection) the definition indexes shown."""

    header: str
    order: list[str] = field(default_factory=list)
    shown: dict[str, set[int]] = field(default_factory=dict)
    tags: dict[str, FileTags] = field(default_factory=dict)
    bare_files: list[str] = field(default_factory=list)
    steps: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)  # (path, added), to undo in order

    def add(self, path: str, tags: FileTags, indexes: Iterable[int]) -> None:
        if path not in self.shown:
            self.order.append(path)
            self.shown[path] = set()
            self.tags[path] = tags
        new = tuple(i for i in indexes if i not in self.shown[path])
        self.shown[path].update(new)
        self.steps.append((path, new))

    def undo_last(self) -> None:
        if self.bare_files:
            self.bare_files.pop()
            return
        path, added = self.steps.pop()
        self.shown[path].difference_update(added)
        if not self.shown[path] and not any(p == path for p, _ in self.steps):
            del self.shown[path], self.tags[path]
            self.order.remove(path)

    def text(self) -> str:
        out = [self.header]
        for path in self.order:
            out.append(f"{path}:")
            out.extend(file_lines(self.tags[path], self.shown[path]))
        out.extend(self.bare_files)
        return "\n".join(out) + "\n"

    @property
    def is_empty(self) -> bool:
        return not (self.order or self.bare_files)


def entry_line(line: int, text: str) -> str:
    return f"{line}│{text}"


def file_lines(tags: FileTags, indexes: Iterable[int]) -> list[str]:
    """The shown definitions of one file in line order, one entry per source line."""
    lines = {tags.defs[i].line: tags.defs[i].text for i in indexes}
    return [entry_line(n, lines[n]) for n in sorted(lines)]


def with_ancestors(tags: FileTags, indexes: Iterable[int]) -> list[int]:
    """The definitions and every definition that encloses them (a method shows under its class)."""
    out: set[int] = set()
    for i in indexes:
        while i >= 0 and i not in out:
            out.add(i)
            i = tags.defs[i].parent
    return sorted(out)


def fit(
    header: str,
    candidates: Iterable[tuple[str, str]],
    ranked_files: Iterable[str],
    load: Callable[[str], FileTags | None],
    budget: int,
    counter: TokenCounter,
) -> Selection:
    """Choose what fits in `budget` tokens; the selection's text is guaranteed to count at most `budget`."""
    sel = Selection(header)
    costs: dict[str, int] = {}

    def cost(line: str) -> int:
        known = costs.get(line)
        if known is None:
            known = costs[line] = counter.count(line + "\n")
        return known

    used = cost(header)
    misses = 0
    for path, name in candidates:
        if misses >= GIVE_UP_AFTER or used >= budget:
            break
        tags = load(path)
        if tags is None:
            continue
        matching = [i for i, d in enumerate(tags.defs) if d.name == name][:MAX_SAME_NAME]
        have = sel.shown.get(path, set())
        new = [i for i in with_ancestors(tags, matching) if i not in have]
        if not new:
            continue
        have_lines = {tags.defs[i].line for i in have}
        new_lines = {tags.defs[i].line: tags.defs[i].text for i in new if tags.defs[i].line not in have_lines}
        extra = sum(cost(entry_line(n, text)) for n, text in new_lines.items())
        extra += 0 if path in sel.shown else cost(f"{path}:")
        if used + extra > budget:
            misses += 1
            continue
        misses = 0
        sel.add(path, tags, new)
        used += extra
    for path in ranked_files:  # files with nothing to show by name, while room is left
        if used >= budget:
            break
        if path in sel.shown:
            continue
        extra = cost(path)
        if used + extra <= budget:
            sel.bare_files.append(path)
            used += extra
    _shrink_to_fit(sel, budget, counter)
    return sel


def _shrink_to_fit(sel: Selection, budget: int, counter: TokenCounter) -> None:
    """Drop the last-chosen entries until the exact count of the whole text is within budget."""
    while not sel.is_empty and counter.count(sel.text()) > budget:
        sel.undo_last()
