"""The search tree: nodes are workspace states reached by one model reply each, saved with the run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from branchwise.agent.models.base import Message
from branchwise.agent.record.events import CheckResult

NodeStatus = Literal["open", "finished", "verified", "failed", "duplicate", "terminal"]


class Node(BaseModel):
    """One state of the search: the reply that led here, what it did, and how good it looks."""

    id: int
    parent: int | None = None
    children: list[int] = []
    depth: int = 0
    messages: list[Message] = []
    """Messages this node adds to its parent's conversation (feedback, the reply, tool results)."""
    action: str = ""
    """A one-line summary of the reply's tool calls, for people."""
    action_key: str = ""
    """Normalised calls, for spotting duplicates among siblings."""
    kind: str = "file"
    """The reply's most consequential effect: read, file, ephemeral, stateful or irreversible."""
    snapshot: str = ""
    cwd: str | None = None
    replay: list[str] = []
    """Stateful-external commands on the path from the root, re-run after a restore."""
    signals: dict[str, Any] = {}
    judge: dict[str, Any] | None = None
    reward: float | None = None
    visits: int = 0
    value_sum: float = 0.0
    value_max: float = 0.0
    status: NodeStatus = "open"
    checks: list[CheckResult] = []
    feedback: str | None = None
    summary: str = ""
    cost_usd: float = 0.0
    diff_key: str | None = None
    url: str | None = None
    """The page this node's browser actions ended on (None: the step used no browser)."""
    screenshot: str | None = None
    """A picture of that page (a thumbnail, or the step's browser_screenshot), relative to the run's directory."""

    @property
    def finished(self) -> bool:
        return self.status in ("finished", "verified", "failed")

    @property
    def mean_value(self) -> float:
        return self.value_sum / self.visits if self.visits else 0.0


class SearchTree(BaseModel):
    """All nodes of one search, the strategy that grew them, and which one was chosen."""

    strategy: str
    nodes: list[Node] = []
    chosen: int | None = None
    alternatives: list[int] = []
    commit_root: int = 0
    """The search never selects above this node: an irreversible action was committed to."""
    stop_reason: str = ""

    def add(self, node: Node) -> Node:
        node.id = len(self.nodes)
        self.nodes.append(node)
        if node.parent is not None:
            self.nodes[node.parent].children.append(node.id)
        return node

    def path(self, node_id: int) -> list[Node]:
        """Nodes from the root to `node_id`, inclusive."""
        out: list[Node] = []
        current: int | None = node_id
        while current is not None:
            node = self.nodes[current]
            out.append(node)
            current = node.parent
        return out[::-1]

    def conversation(self, node_id: int) -> list[Message]:
        return [m for node in self.path(node_id) for m in node.messages]

    def subtree(self, node_id: int) -> Iterator[Node]:
        stack = [node_id]
        while stack:
            node = self.nodes[stack.pop()]
            yield node
            stack.extend(node.children)

    def backpropagate(self, node_id: int, reward: float) -> None:
        for node in self.path(node_id):
            node.visits += 1
            node.value_sum += reward
            node.value_max = max(node.value_max, reward)

    def save(self, path: Path) -> None:
        """Write atomically, so a reader never sees half a tree."""
        tmp = path.with_suffix(".tmp")
        tmp.write_text(self.model_dump_json())
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> SearchTree:
        return cls.model_validate(json.loads(path.read_text()))
