"""Tags of one file: its definitions (name, kind, lines, enclosing definition, source line) and references.

`read_tags` is what the process pool runs: it reads one file beneath the workspace root, decides whether
it is worth parsing (not binary, not huge, not minified), parses it with tree-sitter and returns a
`FileRecord` ready for the cache. Nothing here keeps a syntax tree alive after it returns.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import marshal
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from branchwise.tools.repomap.languages import BY_NAME, GrammarMissing, language_for, queries

FORMAT = 4  # bump when what is extracted changes: the cache drops records of other formats
MAX_REF_LINES = 20  # lines kept per referenced name and file; the count is kept in full
MAX_TEXT = 160  # characters kept of a definition's source line
_NEWLINE = re.compile(b"\n")
_MINIFIED_SUFFIXES = (".min.js", ".min.mjs", ".min.cjs", ".bundle.js", "-bundle.js", ".pack.js")


@dataclass(frozen=True)
class Definition:
    """A named definition: where it starts and ends (1-based lines), what encloses it, its first line."""

    name: str
    kind: str
    line: int
    end_line: int
    parent: int  # index of the enclosing definition in the file's list, -1 at top level
    text: str


@dataclass
class FileTags:
    """Everything the map knows about one parsed file."""

    lang: str
    defs: list[Definition] = field(default_factory=list)
    refs: dict[str, tuple[int, list[int]]] = field(default_factory=dict)  # name -> (count, first lines)
    has_errors: bool = False

    def payload(self) -> bytes:
        """The whole record (marshal: fast, and the cache is ours alone)."""
        defs = [(d.name, d.kind, d.line, d.end_line, d.parent, d.text) for d in self.defs]
        return marshal.dumps((self.lang, defs, self.refs, self.has_errors))

    @classmethod
    def from_payload(cls, blob: bytes) -> FileTags:
        lang, defs, refs, has_errors = marshal.loads(blob)
        return cls(lang, [Definition(*d) for d in defs], refs, has_errors)

    def summary(self) -> bytes:
        """What ranking needs: defined names, referenced names and their counts."""
        names = tuple(self.refs)
        return marshal.dumps((tuple(d.name for d in self.defs), names, tuple(self.refs[n][0] for n in names)))


@dataclass(frozen=True)
class FileRecord:
    """One row of the cache: the file's identity, how it went (`status`) and its tags when parsed."""

    path: str
    size: int
    mtime_ns: int
    digest: str
    lang: str
    status: str  # ok | syntax-errors | binary | too-large | generated | unreadable | no-grammar
    summary: bytes = b""
    payload: bytes = b""


def digest_of(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def skip_reason(path: str, data: bytes, max_bytes: int) -> str | None:
    """Why a file is not parsed (binary, too large, minified or generated), or None."""
    if len(data) > max_bytes:
        return "too-large"
    head = data[:8192]
    if b"\0" in head:
        return "binary"
    if path.lower().endswith(_MINIFIED_SUFFIXES):
        return "generated"
    if len(data) > 20_000:
        lines = data.count(b"\n") + 1
        if len(data) / lines > 300:  # minified or machine-written: no line structure to show
            return "generated"
    return None


def read_tags(root: str, rel: str, max_bytes: int, known: tuple[int, int, str] | None = None) -> FileRecord | None:
    """Read and tag one file beneath `root`; None if it vanished. `known` = (size, mtime_ns, digest) cached."""
    from branchwise.sandbox.workspace.safefs import WorkspaceFS

    fs = WorkspaceFS(Path(root))
    try:
        info = fs.stat(rel)
        if info is None:
            return None
        data = fs.read_bytes(rel) if info.st_size <= max_bytes else b""
    except (OSError, ValueError):
        return FileRecord(rel, 0, 0, "", "", "unreadable")
    spec = language_for(rel)
    lang = spec.name if spec else ""
    if info.st_size > max_bytes:
        return FileRecord(rel, info.st_size, info.st_mtime_ns, "", lang, "too-large")
    digest = digest_of(data)
    if known is not None and known[2] == digest:
        return FileRecord(rel, len(data), info.st_mtime_ns, digest, lang, "unchanged")
    reason = skip_reason(rel, data, max_bytes) if spec else "no-grammar"
    if reason is not None:
        return FileRecord(rel, len(data), info.st_mtime_ns, digest, lang, reason)
    try:
        tags = extract(data, lang)
    except GrammarMissing:
        return FileRecord(rel, len(data), info.st_mtime_ns, digest, lang, "no-grammar")
    status = "syntax-errors" if tags.has_errors else "ok"
    return FileRecord(rel, len(data), info.st_mtime_ns, digest, lang, status, tags.summary(), tags.payload())


def read_many(
    root: str, jobs: list[tuple[str, tuple[int, int, str] | None]], max_bytes: int
) -> tuple[list[FileRecord | None], int, int, float]:
    """A batch of `read_tags` calls (one pool task): (records, worker pid, its peak RSS in kB, its CPU seconds).

    Vanished files come back as None. The worker reports its own usage: pool workers are not our children
    (they are forked by the forkserver), so the parent cannot see it otherwise."""
    import resource

    records = [read_tags(root, rel, max_bytes, known) for rel, known in jobs]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return records, os.getpid(), usage.ru_maxrss, usage.ru_utime + usage.ru_stime


@functools.cache
def _parser(lang: str) -> Any:
    from tree_sitter import Parser

    return Parser(queries(lang)[0])


def extract(data: bytes, lang: str) -> FileTags:
    """Parse `data` as `lang` and collect its definitions and references."""
    _, defs_query, refs_query = queries(lang)  # GrammarMissing first, if tree-sitter itself is missing
    from tree_sitter import QueryCursor

    tree = _parser(lang).parse(data)
    root = tree.root_node
    found: dict[int, tuple[int, int, int, str, str]] = {}  # name start byte -> (start, -end, pattern, kind, name)
    spans: dict[int, tuple[int, int]] = {}
    for pattern, caps in QueryCursor(defs_query).matches(root):
        names = caps.get("name")
        node = next((v[0] for k, v in caps.items() if k.startswith("definition.")), None)
        if not names or node is None:
            continue
        name_node = names[0]
        key = name_node.start_byte
        if key in found and found[key][2] <= pattern:
            continue  # the same name matched by a more specific, earlier pattern
        kind = next(k for k in caps if k.startswith("definition."))[len("definition.") :]
        name = data[name_node.start_byte : name_node.end_byte].decode("utf-8", "replace")
        node = _whole_definition(node)
        found[key] = (node.start_byte, -node.end_byte, pattern, kind, name)
        spans[key] = (node.start_point[0], node.end_point[0])
    tags = FileTags(lang, _definitions(data, found, spans), has_errors=root.has_error)
    tags.refs = _references(data, refs_query, root, set(found), BY_NAME[lang].builtins)
    return tags


_DECLARATORS = frozenset({"pointer_declarator", "reference_declarator", "parenthesized_declarator"})


def _whole_definition(node: Any) -> Any:
    """C and C++ tag a function by its declarator: span the whole function definition instead."""
    if node.type != "function_declarator":
        return node
    up = node.parent
    while up is not None and up.type in _DECLARATORS:
        up = up.parent
    return up if up is not None and up.type == "function_definition" else node


def _definitions(
    data: bytes, found: dict[int, tuple[int, int, int, str, str]], spans: dict[int, tuple[int, int]]
) -> list[Definition]:
    """Definitions in source order, each pointing at the definition that encloses it."""
    lines = data.split(b"\n") if found else []
    ordered = sorted(found.items(), key=lambda item: (item[1][0], item[1][1]))
    out: list[Definition] = []
    stack: list[tuple[int, int]] = []  # (end byte, index) of the open enclosing definitions
    for key, (start, neg_end, _pattern, kind, name) in ordered:
        while stack and stack[-1][0] <= start:
            stack.pop()
        parent = stack[-1][1] if stack else -1
        if kind == "function" and parent >= 0 and out[parent].kind in ("class", "interface", "impl"):
            kind = "method"
        row, end_row = spans[key]
        text = _line(lines, row)
        out.append(Definition(name, kind, row + 1, end_row + 1, parent, text))
        stack.append((-neg_end, len(out) - 1))
    return out


def _references(
    data: bytes, query: Any, root: Any, def_names: set[int], builtins: frozenset[str]
) -> dict[str, tuple[int, list[int]]]:
    """Every identifier that is not a definition's name: name -> (occurrences, first distinct lines)."""
    from tree_sitter import QueryCursor

    starts_of: dict[bytes, list[int]] = {}
    for node in QueryCursor(query).captures(root).get("ref", ()):
        start, end = node.byte_range
        if start in def_names:
            continue
        name = data[start:end]
        starts = starts_of.get(name)
        if starts is None:
            starts_of[name] = [start]
        else:
            starts.append(start)
    line_starts = [m.end() for m in _NEWLINE.finditer(data)]
    out = {}
    for name, starts in starts_of.items():
        text = name.decode("utf-8", "replace")
        if not text or text in builtins:
            continue
        starts.sort()  # captures come in no particular order
        rows = sorted({bisect.bisect_right(line_starts, s) + 1 for s in starts[:MAX_REF_LINES]})
        out[text] = (len(starts), rows[:MAX_REF_LINES])
    return out


def _line(lines: list[bytes], row: int) -> str:
    text = lines[row].decode("utf-8", "replace").rstrip().expandtabs(4) if row < len(lines) else ""
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def pool_context() -> Any:
    """The multiprocessing context for the parse pool: forkserver (no fork of a threaded agent process)."""
    import multiprocessing

    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["branchwise.tools.repomap.tags"])
    return ctx


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
