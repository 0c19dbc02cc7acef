"""Ranking: a graph of files linked by the identifiers one references and another defines, ranked with a
personalised PageRank, and each file's rank handed on to the definitions its referencers use.

This follows Aider's repository map (weights for specific and private names, the task's files and names
first) with changes for large repositories: names defined in more than `MAX_DEFINERS` files (`get`,
`save`) and names nearly every file uses (`django` in imports) carry little information; each file keeps
only its `MAX_OUT_EDGES` heaviest edges, so memory grows with files, not with files times names; the
graph is flat numpy arrays (about 30 bytes per edge, no graph library), built once per state of the
index and reused for every personalisation, which only changes the teleport vector.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DAMPING = 0.85
MAX_ITERATIONS = 100
TOLERANCE = 1e-8
MAX_DEFINERS = 40
MAX_OUT_EDGES = 100
MAX_CANDIDATES = 5000

Summary = tuple[tuple[str, ...], tuple[str, ...], tuple[int, ...]]  # (defined, referenced, counts)


@dataclass(frozen=True)
class Focus:
    """What the map is personalised to: files and identifiers named by the task, the plan, recent steps."""

    files: frozenset[str] = frozenset()
    idents: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.files or self.idents)


@dataclass
class Ranking:
    """Files by rank, and (file, name) definitions by how much their referencers' rank flows to them."""

    file_rank: dict[str, float]
    definitions: list[tuple[str, str]]
    named: int = 0  # how many leading definitions are those of names the focus mentions


def ident_weight(name: str, definers: int, users: int, files: int) -> float:
    """How much a reference to `name` says about the files that define it.

    `users` of `files` reference the name: one that nearly every file uses (a package name in imports,
    `i`, `_`) is a stop word and says little; below a third of the files there is no penalty.
    """
    weight = min(1.0, math.log((files + 1) / (users + 1))) ** 2 + 0.0001
    if len(name) < 3:
        weight *= 0.1
    if len(name) >= 8 and ("_" in name.strip("_") or (name[0].islower() and not name.islower())):
        weight *= 10  # long snake_case or camelCase names are specific
    if name.startswith("_"):
        weight *= 0.1
    return weight / definers  # a reference points at one of the definers, not at all of them


class Graph:
    """The reference graph of one state of the index, as arrays (numpy is imported here, not before)."""

    def __init__(self, summaries: Mapping[str, Summary]) -> None:
        import numpy as np

        self.paths = sorted(summaries)
        self.index = {p: i for i, p in enumerate(self.paths)}
        self.summaries = summaries  # only while building: a graph loaded from the cache has none
        self.defines: dict[str, list[int]] = {}
        for i, path in enumerate(self.paths):
            for name in set(summaries[path][0]):
                self.defines.setdefault(name, []).append(i)
        weights = self._name_weights()
        self.names = list(weights)
        name_id = {n: k for k, n in enumerate(self.names)}
        src: list[int] = []
        dst: list[int] = []
        nid: list[int] = []
        w: list[float] = []
        for i, path in enumerate(self.paths):
            _, names, counts = summaries[path]
            for name, count in zip(names, counts, strict=True):
                weight = weights.get(name)
                if weight is None:
                    continue
                targets = self.defines[name]
                k = len(targets)
                dst += targets
                src += [i] * k
                nid += [name_id[name]] * k
                w += [weight * math.sqrt(count)] * k
        self.n = len(self.paths)
        s, d = np.array(src, np.int32), np.array(dst, np.int32)
        other = s != d  # a file's references to its own definitions say nothing about it
        self._flows(s[other], d[other], np.array(nid, np.int32)[other], np.array(w)[other])
        self.summaries = {}
        self._file_defs: dict[int, list[str]] | None = None

    _ARRAYS = ("edge_src", "edge_dst", "edge_share", "dangling", "flow_src", "flow_dst", "flow_name", "flow_share",
               "def_pairs", "flow_pair")  # fmt: skip

    def to_bytes(self) -> bytes:
        """The graph as one blob (numpy arrays and a JSON header), for the cache."""
        import numpy as np

        header = json.dumps({"paths": self.paths, "names": self.names, "defines": self.defines}).encode()
        buffer = io.BytesIO()
        np.savez(buffer, header=np.frombuffer(header, np.uint8), **{k: getattr(self, k) for k in self._ARRAYS})
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes) -> Graph:
        """A graph saved by `to_bytes`."""
        import numpy as np

        graph = cls.__new__(cls)
        with np.load(io.BytesIO(blob)) as arrays:
            header = json.loads(arrays["header"].tobytes())
            for key in cls._ARRAYS:
                setattr(graph, key, arrays[key])
        graph.paths, graph.names, graph.defines = header["paths"], header["names"], header["defines"]
        graph.index = {p: i for i, p in enumerate(graph.paths)}
        graph.n = len(graph.paths)
        graph.summaries = {}
        graph._file_defs = None
        return graph

    def referencers(self, name: str) -> list[str]:
        """Files that reference `name` where it links files (names defined in too many files do not)."""
        import numpy as np

        k = self._name_ids().get(name)
        if k is None:
            return []
        return [self.paths[i] for i in np.unique(self.flow_src[self.flow_name == k]).tolist()]

    def _name_ids(self) -> dict[str, int]:
        ids = getattr(self, "_ids", None)
        if ids is None:
            ids = self._ids = {n: k for k, n in enumerate(self.names)}
        return ids

    def file_defs(self, path: str) -> list[str]:
        """The names a file defines."""
        if self._file_defs is None:
            by_file: dict[int, list[str]] = {}
            for name, ids in self.defines.items():
                for i in ids:
                    by_file.setdefault(i, []).append(name)
            self._file_defs = by_file
        return self._file_defs.get(self.index.get(path, -1), [])

    def _name_weights(self) -> dict[str, float]:
        """The weight of every name that links files (defined somewhere, referenced somewhere)."""
        users: dict[str, int] = {}
        defines = self.defines
        for path in self.paths:
            for name in self.summaries[path][1]:
                if name in defines:
                    users[name] = users.get(name, 0) + 1
        n = len(self.paths)
        return {
            name: ident_weight(name, len(defines[name]), count, n)
            for name, count in users.items()
            if len(defines[name]) <= MAX_DEFINERS and not (name.startswith("__") and name.endswith("__"))
        }

    def _flows(self, src: Any, dst: Any, nid: Any, w: Any) -> None:
        """Aggregate (source, target, name) flows into edges; keep each source's heaviest edges."""
        import numpy as np

        n = self.n
        pair = src.astype(np.int64) * n + dst
        edges, inverse = np.unique(pair, return_inverse=True)
        edge_w = np.bincount(inverse, weights=w, minlength=len(edges))
        edge_src, edge_dst = (edges // n).astype(np.int32), (edges % n).astype(np.int32)
        order = np.lexsort((-edge_w, edge_src))  # by source, heaviest first
        first = np.searchsorted(edge_src[order], edge_src[order], side="left")
        keep_sorted = (np.arange(len(order)) - first) < MAX_OUT_EDGES
        keep = np.zeros(len(edges), bool)
        keep[order[keep_sorted]] = True
        out_total = np.bincount(edge_src[keep], weights=edge_w[keep], minlength=n)
        self.edge_src, self.edge_dst = edge_src[keep], edge_dst[keep]
        self.edge_share = edge_w[keep] / out_total[self.edge_src]
        self.dangling = out_total == 0
        flow_keep = keep[inverse]
        self.flow_src, self.flow_dst, self.flow_name = src[flow_keep], dst[flow_keep], nid[flow_keep]
        self.flow_share = w[flow_keep] / out_total[self.flow_src] if flow_keep.any() else w[flow_keep]
        fpair = self.flow_dst.astype(np.int64) * max(1, len(self.names)) + self.flow_name
        self.def_pairs, self.flow_pair = np.unique(fpair, return_inverse=True)

    def rank(self, focus: Focus = Focus()) -> Ranking:
        """Personalised PageRank over the files, then the definitions their rank flows to, best first."""
        import numpy as np

        if not self.n:
            return Ranking({}, [])
        teleport = self._teleport(focus)
        scores = teleport.copy()
        for _ in range(MAX_ITERATIONS):
            restart = (1 - DAMPING) + DAMPING * scores[self.dangling].sum()
            spread = np.bincount(self.edge_dst, weights=scores[self.edge_src] * self.edge_share, minlength=self.n)
            new = restart * teleport + DAMPING * spread
            delta = np.abs(new - scores).sum()
            scores = new
            if delta < TOLERANCE * self.n:
                break
        file_rank = dict(zip(self.paths, scores.tolist(), strict=True))
        named = sum(len(self.defines.get(name, ())) for name in focus.idents)
        return Ranking(file_rank, self._definition_order(scores, focus), named)

    def _teleport(self, focus: Focus) -> Any:
        """Where the random surfer restarts: uniform, or the focus files, definers and users of focus names."""
        import numpy as np

        vector = np.zeros(self.n)
        for path in focus.files:
            if path in self.index:
                vector[self.index[path]] += 1.0
        named = [name for name in focus.idents if name in self.defines]
        for name in named:
            definers = self.defines[name]
            vector[definers] += 1.0 / len(definers)
        for name in named:
            for path in self.referencers(name):
                vector[self.index[path]] += 0.2 / len(named)
        total = vector.sum()
        return vector / total if total else np.full(self.n, 1.0 / self.n)

    def _definition_order(self, scores: Any, focus: Focus) -> list[tuple[str, str]]:
        """(file, name) pairs, best first: a referencer's rank is split over its edges, then over their names."""
        import numpy as np

        width = max(1, len(self.names))
        value = np.bincount(
            self.flow_pair, weights=scores[self.flow_src] * self.flow_share, minlength=len(self.def_pairs)
        )
        best = np.argsort(-value, kind="stable")[:MAX_CANDIDATES]
        ranked = [(self.paths[int(p // width)], self.names[int(p % width)]) for p in self.def_pairs[best].tolist()]
        # What the task names comes first: its definitions, then what the focus files define.
        top = float(scores.max())
        first: dict[tuple[str, str], float] = {}
        for name in focus.idents:
            for target in self.defines.get(name, ()):
                first[(self.paths[target], name)] = 2 * top + float(scores[target])
        for path in focus.files:
            if path in self.index:
                for name in self.file_defs(path):
                    first.setdefault((path, name), top + float(scores[self.index[path]]))
        lead = sorted(first, key=lambda key: (-first[key], key))
        return lead + [pair for pair in ranked if pair not in first]


def rank(summaries: Mapping[str, Summary], focus: Focus = Focus()) -> Ranking:
    """Build the graph of `summaries` and rank it for `focus` (callers that rank often keep the Graph)."""
    return Graph(summaries).rank(focus)
