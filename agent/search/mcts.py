"""MCTS over actions: select the most promising node, expand it with hindsight feedback, value, backpropagate.

The selection is SWE-Search's: UCT on [0, 1] values with a small exploration constant, a depth penalty so that
shallow alternatives stay in reach, and penalties for nodes whose children repeat each other; a node whose last
step failed gets a small bonus, because its next step is likely a correction. Re-expanding a node tells the
model what its earlier children tried and how that went, so the next proposal differs.
"""

from __future__ import annotations

import math

from branchwise.agent.models.base import Message, Reply
from branchwise.agent.run.gate import classify_calls
from branchwise.agent.search.context import SearchResult
from branchwise.agent.search.engine import Search
from branchwise.agent.search.steer import inbox
from branchwise.agent.search.tree import Node

# Selection weights on [0, 1] rewards: SWE-Search's penalties (its values run from -100 to 100), scaled down.
DUPLICATE_PENALTY = 0.125
REPEAT_PENALTY = 0.25
CORRECTION_BONUS = 0.1
OWN_WEIGHT = 0.5


class MCTS(Search):
    """Select the most promising node, expand it (with hindsight feedback), value, backpropagate; repeat."""

    name = "mcts"

    def run(self, messages: list[Message]) -> SearchResult:
        self.make_root(messages)
        while True:
            stop = self.out_of_budget() or self.enough_verified()
            if stop:
                break
            node = self.select()
            if node is None:
                stop = "no node left to expand"
                break
            self.expand(node)
        return self.finalize(stop)

    def expand(self, node: Node) -> None:
        feedback = self.hindsight(node)
        room = self.sc.settings.max_expansions - len(node.children)
        replies = self.propose(node, min(self.sc.settings.branching, room), feedback)
        kinds = [classify_calls(r.tool_calls, self.sc.actor.toolbox) for r in replies]
        cut = kinds.index("irreversible") if "irreversible" in kinds else len(replies)
        self.add_children(node, replies[:cut], feedback)
        if cut < len(replies) and not self.enough_verified():
            self.commit(node, replies[cut], feedback)

    def commit(self, node: Node, reply: Reply, feedback: str | None) -> None:
        """An irreversible reply: run it once and never branch above it again."""
        child = self.add_child(node, reply, feedback, dedupe=False)
        self.tree.commit_root = child.id

    def expandable(self, node: Node) -> bool:
        s = self.sc.settings
        return node.status in ("open", "failed") and len(node.children) < s.max_expansions and node.depth < s.max_depth

    def select(self) -> Node | None:
        """Best-first by a UCT score (value plus an exploration bonus that shrinks with visits) with a small
        exploration constant, so the search mostly deepens its best branch."""
        candidates = [n for n in self.tree.subtree(self.tree.commit_root) if self.expandable(n)]
        candidates, forced = inbox.steer(self.tree, candidates)  # the user's /tree pick, prune, expand
        if forced is not None:
            return forced
        if not candidates:
            return None
        return max(candidates, key=lambda n: (self.score(n), -n.id))

    def value(self, node: Node) -> float:
        """Q: half the node's own reward, half the mean over its subtree; the root's own reward."""
        # The judge rates states, so every judged descendant is one more noisy reading of whether this node is on
        # track: the subtree mean keeps one lucky rating from holding the search, and the own half keeps a node
        # whose children went wrong in reach (a bad child does not make its parent bad). The root is on track by
        # definition: its reward stands for a fresh attempt, which the other attempts' failures say nothing about.
        own = node.reward or 0.0
        if node.parent is None or node.id == self.tree.commit_root:
            return own
        return OWN_WEIGHT * own + (1 - OWN_WEIGHT) * node.mean_value

    def score(self, node: Node) -> float:
        s = self.sc.settings
        parent_visits = self.tree.nodes[node.parent].visits if node.parent is not None else node.visits
        explore = s.exploration * math.sqrt(math.log(parent_visits + 1) / (node.visits + 1))
        children = [self.tree.nodes[c] for c in node.children]
        duplicates = sum(c.status == "duplicate" for c in children)
        repeats = len(children) - len({c.action_key for c in children})
        score = self.value(node) + explore - s.depth_penalty * math.sqrt(node.depth)
        score -= DUPLICATE_PENALTY * duplicates**2 + REPEAT_PENALTY * repeats**2
        if _expects_correction(node):
            score += CORRECTION_BONUS / (1 + len(children) ** 2)
        return score


def _expects_correction(node: Node) -> bool:
    sig = node.signals
    tests = sig.get("tests") or {}
    return bool(sig.get("tool_errors") or sig.get("nonzero_exits") or tests.get("failed") or node.status == "failed")
