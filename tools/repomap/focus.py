"""What a task, a plan or recent steps name: files (by path, file name or dotted module) and identifiers.

An English word that happens to be defined somewhere (`name`, `value`, `test`) is not taken as a
mention unless it is written as code (`backticks`, a call, snake_case or camelCase), so that prose does
not pull the map towards every file that defines a common word.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable

_WORD = re.compile(r"`([^`\n]{1,200})`|([A-Za-z_][A-Za-z0-9_]*)(\()?")
_PATHLIKE = re.compile(r"[A-Za-z0-9_./-]*[A-Za-z0-9_](?:\.[A-Za-z0-9]{1,8}|/)")
_DOTTED = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+\b")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

_COMMON_WORDS_TEXT = """
    a about add after all also an and any are as at be been before but by call can change check class code
    config count create data date default define defined defines definition delete do does each else end error
    errors event field file files find fix for form from function get has have help how if implement import in
    index info is it item items key keys line lines list load log main make message method model models module
    name names new no node none not object of old on one open option options or out output page parse path
    print read remove request response result results return run save send set should show size start state
    status stop string take test tests text that the then this time to tree true false type types update use
    used user uses using value values view views what when where which while why with write"""
COMMON_WORDS = frozenset(_COMMON_WORDS_TEXT.split())


def is_code_like(word: str) -> bool:
    """snake_case, camelCase, CapWords with a second capital, digits, or a leading underscore."""
    core = word.strip("_")
    return word.startswith("_") or "_" in core or any(c.isdigit() for c in core) or any(c.isupper() for c in core[1:])


def mentions(text: str, paths: Iterable[str], defined: Collection[str]) -> tuple[set[str], set[str]]:
    """(files, identifiers) that `text` names, among the indexed `paths` and the `defined` names."""
    if not text:
        return set(), set()
    idents: set[str] = set()
    for quoted, word, call in _WORD.findall(text):
        if quoted:
            idents.update(w for w in _IDENT.findall(quoted) if w in defined)
        elif word in defined and (call or is_code_like(word) or (word.lower() not in COMMON_WORDS and len(word) > 3)):
            idents.add(word)
    return _named_files(text, list(paths)), idents


def _named_files(text: str, paths: list[str]) -> set[str]:
    """Indexed files named by path, by a path suffix (`models/query.py`), or as a dotted module."""
    # A directory is not a mention of every file in it: only files and modules count.
    wanted: set[str] = {t.strip("./") for t in _PATHLIKE.findall(text) if not t.endswith("/")} - {""}
    for dotted in _DOTTED.findall(text):
        module = dotted.replace(".", "/")
        wanted.update((module, f"{module}/__init__"))
    if not wanted or not paths:
        return set()
    by_last: dict[str, list[str]] = {}
    for path in paths:
        name = path.rsplit("/", 1)[-1]
        by_last.setdefault(name, []).append(path)
        by_last.setdefault(name.rsplit(".", 1)[0], []).append(path)
    found = set()
    for w in wanted:
        last = w.rsplit("/", 1)[-1]
        for path in by_last.get(last, ()):
            stem = path.rsplit(".", 1)[0]
            if any(c == w or c.endswith("/" + w) for c in (path, stem)):
                found.add(path)
    return found
