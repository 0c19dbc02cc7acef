"""The repository map of one workspace: keeps the tag cache current and answers map and symbol queries.

One `RepoMap` per session, shared by the map in the system prompt and the `repo_map`, `find_symbol`,
`find_references` and `outline` tools. Every query first brings the index up to date (a stat per file;
only files whose size, mtime or content changed are parsed again), so an edit made by any step, shell
commands included, shows in the next answer.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from branchwise.sandbox.globs import glob_regex
from branchwise.tools.repomap import rank as ranking
from branchwise.tools.repomap.cache import PARSED, Row, TagCache, default_cache_path
from branchwise.tools.repomap.files import list_files
from branchwise.tools.repomap.focus import mentions
from branchwise.tools.repomap.languages import language_for
from branchwise.tools.repomap.render import fit
from branchwise.tools.repomap.tags import Definition, FileRecord, FileTags, cpu_count, read_many, read_tags
from branchwise.tools.repomap.tokens import default_counter

POOL_MIN_FILES = 300  # below this many files to parse, starting a process pool costs more than it saves
BATCH = 16
RACY_NS = 2_000_000_000  # a file modified this recently may change again within the same mtime tick
MAX_USERS_SHOWN = 8  # files shown using each name the focus mentions
HEADER = "Repository map (most relevant first; definitions as line│source):"


@dataclass
class IndexStats:
    """What the last refresh saw: files considered, parsed now, reused, and skipped by reason."""

    files: int = 0
    parsed: int = 0
    reused: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    with_errors: int = 0  # parsed with syntax errors: what did parse is used
    truncated: int = 0
    seconds: float = 0.0

    def describe(self) -> str:
        skipped = ", ".join(f"{n} {why}" for why, n in sorted(self.skipped.items()))
        more = f", {self.with_errors} with syntax errors" if self.with_errors else ""
        more += f"; {self.truncated} files beyond the file limit not read" if self.truncated else ""
        return f"{self.files} source files ({self.parsed} parsed, {self.reused} cached{more})" + (
            f"; skipped: {skipped}" if skipped else ""
        )


@dataclass
class MapResult:
    """A rendered map and how it was made."""

    text: str
    tokens: int
    budget: int
    counter: str
    files_shown: int
    stats: IndexStats
    seconds: float


class RepoMap:
    """Tags of every source file in `root`, cached in SQLite, ranked and fitted on demand."""

    def __init__(
        self,
        root: Path,
        *,
        cache_path: Path | None = None,
        max_file_bytes: int = 1_000_000,
        max_files: int = 50_000,
        deny_read: Sequence[str] = (),
        workers: int | None = None,
    ) -> None:
        self.root = Path(root).resolve()
        self.max_file_bytes = max_file_bytes
        self.max_files = max_files
        self.workers = workers or cpu_count()
        self.cache = TagCache(cache_path or default_cache_path(self.root))
        self._masks = [glob_regex(str(self.root / Path(p).expanduser())) for p in deny_read]
        self._summaries: dict[str, ranking.Summary] | None = None  # loaded when first needed
        self._graph: ranking.Graph | None = None  # rebuilt (or loaded from the cache) when the state changes
        self._state = ""  # digest of every parsed file's path and content
        self._tags: OrderedDict[str, FileTags] = OrderedDict()
        self.stats = IndexStats()
        self.pool_usage: tuple[float, float] = (0.0, 0.0)  # peak RSS of one parse worker (MB), their CPU seconds
        self._lock = threading.Lock()

    def refresh(self) -> IndexStats:
        """Bring the index up to the files as they are now; returns what it did."""
        with self._lock:
            return self._refresh()

    def build(
        self, budget: int, *, text: str = "", paths: Sequence[str] = (), symbols: Sequence[str] = ()
    ) -> MapResult:
        """The map within `budget` tokens, personalised to files and names in `text`, `paths`, `symbols`."""
        started = time.monotonic()
        loader = threading.Thread(target=default_counter, daemon=True)  # loading the encoding takes ~0.4 s
        loader.start()
        stats = self.refresh()
        focus = self.focus(text, paths, symbols)
        ranked = self.graph().rank(focus)
        files = sorted(ranked.file_rank, key=lambda p: (-ranked.file_rank[p], p))
        usages = self._usages(focus, files)
        candidates = ranked.definitions[: ranked.named] + usages + ranked.definitions[ranked.named :]
        loader.join()
        counter = default_counter()
        if counter.count(HEADER + "\n") > budget:
            return MapResult("", 0, budget, counter.name, 0, stats, time.monotonic() - started)
        sel = fit(HEADER, candidates, files, self.tags, budget, counter)
        out = sel.text() if not sel.is_empty else ""
        tokens = counter.count(out) if out else 0
        shown = len(sel.order) + len(sel.bare_files)
        return MapResult(out, tokens, budget, counter.name, shown, stats, time.monotonic() - started)

    def focus(self, text: str = "", paths: Sequence[str] = (), symbols: Sequence[str] = ()) -> ranking.Focus:
        """Files and identifiers the map should centre on, from free text and explicit lists."""
        graph = self.graph()
        defined = graph.defines
        files, idents = mentions(text, graph.paths, defined)
        for p in paths:
            rel = os.path.normpath(p.removeprefix(str(self.root) + "/"))
            files |= {f for f in graph.paths if f == rel or f.startswith(rel.rstrip("/") + "/")}
        idents |= {s for s in symbols if s in defined}
        return ranking.Focus(frozenset(files), frozenset(idents))

    def _usages(self, focus: ranking.Focus, files_by_rank: list[str]) -> list[tuple[str, str]]:
        """For each name the focus mentions, the definitions that use it (best-ranked files first)."""
        out: list[tuple[str, str]] = []
        for name in sorted(focus.idents):
            referencing = set(self.graph().referencers(name))
            users = [p for p in files_by_rank if p in referencing][:MAX_USERS_SHOWN]
            for path in users:
                tags = self.tags(path)
                if tags is None or name not in tags.refs:
                    continue
                for line in tags.refs[name][1]:
                    enclosing = _innermost(tags.defs, line)
                    if enclosing is not None and (path, enclosing) not in out:
                        out.append((path, enclosing))
                        break
        return out

    def defined_names(self) -> set[str]:
        return set(self.graph().defines)

    def graph(self) -> ranking.Graph:
        """The reference graph of the current state: kept, loaded from the cache, or built and saved."""
        if self._graph is None:
            saved = self.cache.get_blob("graph")
            if saved is not None and saved[0] == self._state:
                self._graph = ranking.Graph.from_bytes(saved[1])
            else:
                self._graph = ranking.Graph(self.summaries())
                self.cache.put_blob("graph", self._state, self._graph.to_bytes())
        return self._graph

    def summaries(self) -> dict[str, ranking.Summary]:
        """Defined and referenced names of every parsed file (read from the cache once per session)."""
        import marshal

        if self._summaries is None:
            self._summaries = {path: marshal.loads(blob) for path, blob in self.cache.summaries()}
        return self._summaries

    def tags(self, path: str) -> FileTags | None:
        """The full tags of one indexed file (kept for the most recently used files)."""
        found = self._tags.get(path)
        if found is not None:
            self._tags.move_to_end(path)
            return found
        blob = self.cache.payload(path)
        if blob is None:
            return None
        found = FileTags.from_payload(blob)
        self._tags[path] = found
        if len(self._tags) > 512:
            self._tags.popitem(last=False)
        return found

    def outline(self, rel: str) -> tuple[FileTags | None, str]:
        """A file's tags, parsed now if the index does not hold it (ignored files too), and its status."""
        if self.is_masked(rel):
            return None, "hidden by deny_read"
        self.refresh()
        tags = self.tags(rel)
        if tags is not None:
            return tags, "ok"
        record = read_tags(str(self.root), rel, self.max_file_bytes)
        if record is None:
            return None, "no such file"
        if record.status in ("ok", "syntax-errors"):
            return FileTags.from_payload(record.payload), record.status
        return None, {"no-grammar": "not a supported language"}.get(record.status, record.status)

    def similar_names(self, name: str, n: int = 5) -> list[str]:
        """Defined names close to `name` (for a helpful miss)."""
        import difflib

        defined = self.defined_names()
        folded = [d for d in defined if d.lower() == name.lower()]
        return folded + [d for d in difflib.get_close_matches(name, defined, n=n, cutoff=0.75) if d not in folded]

    def find_symbol(self, name: str) -> list[tuple[str, Definition]]:
        """Definitions named `name` (exactly), by file and line."""
        self.refresh()
        out = []
        graph = self.graph()
        for path in sorted(graph.paths[i] for i in graph.defines.get(name, ())):
            tags = self.tags(path)
            out += [(path, d) for d in (tags.defs if tags else []) if d.name == name]
        return out

    def find_references(self, name: str) -> list[tuple[str, int, list[int]]]:
        """Files that use `name`: (path, occurrences, first lines), most uses first."""
        self.refresh()
        out = []
        for path, (_, names, counts) in self.summaries().items():
            if name in names:
                tags = self.tags(path)
                count, lines = tags.refs[name] if tags and name in tags.refs else (counts[names.index(name)], [])
                out.append((path, count, list(lines)))
        return sorted(out, key=lambda item: (-item[1], item[0]))

    def close(self) -> None:
        self.cache.close()

    def is_masked(self, rel: str) -> bool:
        """Whether a deny_read pattern hides this path (or a directory above it)."""
        if not self._masks:
            return False
        full = self.root / rel
        return any(r.fullmatch(str(p)) for p in (full, *full.parents) if p != self.root for r in self._masks)

    def _refresh(self) -> IndexStats:
        started = time.monotonic()
        stats = IndexStats()
        listed = [p for p in list_files(self.root) if language_for(p) and not self.is_masked(p)]
        stats.truncated = max(0, len(listed) - self.max_files)
        listed = listed[: self.max_files]
        rows = self.cache.rows()
        jobs, now = [], time.time_ns()
        for rel in listed:
            try:
                st = os.lstat(self.root / rel)
            except OSError:
                continue
            row = rows.get(rel)
            if (
                row is not None
                and (row.size, row.mtime_ns) == (st.st_size, st.st_mtime_ns)
                and now - st.st_mtime_ns > RACY_NS
            ):
                stats.reused += 1
                if row.status not in ("ok", "syntax-errors"):
                    stats.skipped[row.status] += 1
                continue
            jobs.append((rel, (row.size, row.mtime_ns, row.digest) if row else None))
        records = self._parse(jobs)  # written to the cache as they come
        gone = set(rows) - set(listed)
        self.cache.delete(gone)
        self._update_summaries(records, gone, stats, {r for r, _ in jobs}, rows)
        stats.files = len(listed)
        stats.seconds = time.monotonic() - started
        self.stats = stats
        return stats

    def _parse(self, jobs: list[tuple[str, tuple[int, int, str] | None]]) -> list[FileRecord]:
        """Tag the files of `jobs`, store each batch in the cache at once, return the records without payloads."""
        root = str(self.root)
        out: list[FileRecord] = []
        if len(jobs) < POOL_MIN_FILES or self.workers < 2:
            found = [read_tags(root, rel, self.max_file_bytes, known) for rel, known in jobs]
            self._keep([r for r in found if r is not None], out)
            return out
        from concurrent.futures import ProcessPoolExecutor

        from branchwise.tools.repomap.tags import pool_context

        batches = [jobs[i : i + BATCH] for i in range(0, len(jobs), BATCH)]
        workers: dict[int, tuple[int, float]] = {}
        pending: list[FileRecord] = []
        with ProcessPoolExecutor(max_workers=self.workers, mp_context=pool_context()) as pool:
            args = [root] * len(batches), batches, [self.max_file_bytes] * len(batches)
            for batch, pid, rss_kb, cpu_s in pool.map(read_many, *args):
                pending += [r for r in batch if r is not None]
                workers[pid] = (rss_kb, cpu_s)
                if len(pending) >= 512:  # memory stays bounded however large the repository
                    self._keep(pending, out)
                    pending = []
        self._keep(pending, out)
        self.pool_usage = (max(kb for kb, _ in workers.values()) / 1024, sum(cpu for _, cpu in workers.values()))
        return out

    def _keep(self, records: list[FileRecord], out: list[FileRecord]) -> None:
        self.cache.put(records)
        out += [dataclasses.replace(r, payload=b"") for r in records]

    def _update_summaries(
        self, records: list[FileRecord], gone: set[str], stats: IndexStats, requested: set[str], rows: dict[str, Row]
    ) -> None:
        import marshal

        parsed = {p: r.digest for p, r in rows.items() if r.status in PARSED and p not in gone}
        for path in gone:
            self._tags.pop(path, None)
            if self._summaries is not None:
                self._summaries.pop(path, None)
        for r in records:
            if r.status == "unchanged":
                stats.reused += 1
                continue
            self._tags.pop(r.path, None)
            if r.status in PARSED:
                stats.parsed += 1
                stats.with_errors += r.status == "syntax-errors"
                parsed[r.path] = r.digest
                if self._summaries is not None:
                    self._summaries[r.path] = marshal.loads(r.summary)
            else:
                stats.skipped[r.status] += 1
                parsed.pop(r.path, None)
                if self._summaries is not None:
                    self._summaries.pop(r.path, None)
        for path in requested - {r.path for r in records}:  # vanished between listing and reading
            parsed.pop(path, None)
            if self._summaries is not None:
                self._summaries.pop(path, None)
        state = hashlib.blake2b("\n".join(f"{p}\0{d}" for p, d in sorted(parsed.items())).encode(), digest_size=16)
        if state.hexdigest() != self._state:
            self._state = state.hexdigest()
            self._graph = None


def _innermost(defs: list[Definition], line: int) -> str | None:
    """The name of the innermost definition spanning `line`."""
    best: Definition | None = None
    for d in defs:
        if d.line <= line <= d.end_line and (best is None or d.line >= best.line):
            best = d
    return best.name if best else None
