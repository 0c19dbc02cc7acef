"""Tree search over actions: strategies, the search tree, the value function and final selection."""

from __future__ import annotations

from branchwise.agent.search.context import SearchContext, SearchResult
from branchwise.agent.search.engine import Search
from branchwise.agent.search.strategies import MCTS, BestOfN
from branchwise.agent.search.tree import Node, SearchTree

STRATEGIES: dict[str, type[Search]] = {"best-of-n": BestOfN, "mcts": MCTS}


def make_search(strategy: str, sc: SearchContext) -> Search:
    """The search for a strategy name (`none` is the plain executor loop and has no Search)."""
    return STRATEGIES[strategy](sc)


__all__ = [
    "MCTS",
    "STRATEGIES",
    "BestOfN",
    "Node",
    "Search",
    "SearchContext",
    "SearchResult",
    "SearchTree",
    "make_search",
]
