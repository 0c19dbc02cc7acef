"""Steering a running search from outside it: the REPL's `/tree pick N`, `/tree prune N`, `/tree expand N`.

Commands arrive from another thread and wait in a thread-safe inbox; the MCTS selection consults it each
time it picks a node. `prune N` drops node N and its subtree from selection, `pick N` keeps the search inside
N's subtree from now on, `expand N` makes N the next node expanded (once). A command about a node that does
not exist (yet) or cannot be expanded any more stays unapplied and is reported by `status`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from branchwise.agent.search.tree import Node, SearchTree

Verb = Literal["pick", "prune", "expand"]


@dataclass
class Steering:
    """The user's standing orders for the current search (cleared when a new task starts)."""

    pruned: set[int] = field(default_factory=set)
    picked: int | None = None
    expand_next: list[int] = field(default_factory=list)
    applied: list[str] = field(default_factory=list)
    """What the search did with the orders, newest last (for the REPL to show)."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def post(self, verb: Verb, node: int) -> None:
        """Queue an order (any thread)."""
        with self._lock:
            if verb == "prune":
                self.pruned.add(node)
            elif verb == "pick":
                self.picked = node
            else:
                self.expand_next.append(node)

    def clear(self) -> None:
        with self._lock:
            self.pruned.clear()
            self.picked = None
            self.expand_next.clear()
            self.applied.clear()

    def steer(self, tree: SearchTree, candidates: Sequence[Node]) -> tuple[list[Node], Node | None]:
        """The candidates left once the orders are applied, and the node to expand now if one was asked for."""
        with self._lock:
            if not (self.pruned or self.picked is not None or self.expand_next):
                return list(candidates), None
            excluded = self._excluded(tree)
            kept = [n for n in candidates if n.id not in excluded]
            if self.picked is not None and 0 <= self.picked < len(tree.nodes):
                inside = {n.id for n in tree.subtree(self.picked)}
                kept = [n for n in kept if n.id in inside]
            forced = None
            by_id = {n.id: n for n in kept}
            while self.expand_next and forced is None:
                wanted = self.expand_next.pop(0)
                forced = by_id.get(wanted)
                self.applied.append(f"expand #{wanted}" if forced else f"cannot expand #{wanted} (not expandable)")
            return kept, forced

    def _excluded(self, tree: SearchTree) -> set[int]:
        out: set[int] = set()
        for node in self.pruned:
            if 0 <= node < len(tree.nodes):
                out |= {n.id for n in tree.subtree(node)}
        return out


inbox = Steering()
"""The one inbox of this process (one interactive session runs one search at a time)."""
