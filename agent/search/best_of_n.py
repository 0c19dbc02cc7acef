"""best-of-n: independent attempts from the start, each the plain loop; the one whose checks pass is kept."""

from __future__ import annotations

from branchwise.agent.models.base import Message
from branchwise.agent.run.gate import classify_calls
from branchwise.agent.search.context import Pending, SearchResult
from branchwise.agent.search.engine import Search
from branchwise.agent.search.tree import Node


class BestOfN(Search):
    """n independent attempts from the start, each the plain loop; the one that verifies is kept."""

    name = "best-of-n"

    def run(self, messages: list[Message]) -> SearchResult:
        root = self.make_root(messages)
        attempts = self.sc.settings.attempts
        stop = None
        for attempt in range(attempts):
            calls = self.budget.calls_left() // (attempts - attempt)
            nodes = self.budget.steps_left() // (attempts - attempt)
            self.attempt(root, max(1, min(calls, nodes)))
            stop = self.out_of_budget() or self.enough_verified()
            if stop or self.tree.commit_root != 0:
                break
        return self.finalize(stop or f"{attempts} attempts made")

    def attempt(self, root: Node, steps: int) -> None:
        node, rejections = root, 0
        for _ in range(steps):
            if self.out_of_budget():
                return
            reply = self.propose(node, 1, None)[0]
            irreversible = classify_calls(reply.tool_calls, self.sc.actor.toolbox) == "irreversible"
            node = self.add_child(node, reply, None, dedupe=False)
            if irreversible:
                self.tree.commit_root = node.id
            if node.status in ("verified", "finished"):
                return
            if node.status == "failed":
                rejections += 1
                if rejections > self.sc.max_finish_rejections:
                    return

    def wants_judge(self, pending: Pending) -> bool:
        """Only finished candidates: attempts never steer by intermediate values, so judging them wastes calls."""
        return pending.node.status in ("finished", "verified") and super().wants_judge(pending)
