"""Final selection: verified candidates first, duplicates (same diff) merged, an LLM chooser for ties."""

from __future__ import annotations

import hashlib
import json
import re
from typing import TYPE_CHECKING

from branchwise.agent.record.events import SearchDone
from branchwise.agent.search.tree import Node

if TYPE_CHECKING:
    from branchwise.agent.search.context import SearchResult
    from branchwise.agent.search.engine import Search

_ID = re.compile(r"\{.*\}", re.DOTALL)
MAX_PATCH_CHARS = 6000


def diff_key(search: Search, node: Node) -> str:
    """A hash of the node's change against the root: two candidates with the same diff are one."""
    if node.diff_key is None:
        patch = search.sc.workspace.diff(search.tree.nodes[0].snapshot, node.snapshot).patch
        node.diff_key = hashlib.sha256(patch.encode()).hexdigest()[:16]
    return node.diff_key


def distinct(search: Search, nodes: list[Node]) -> list[Node]:
    """One node per diff, the best rewarded first."""
    seen: set[str] = set()
    out = []
    for node in sorted(nodes, key=lambda n: (-(n.reward or 0.0), n.id)):
        key = diff_key(search, node)
        if key not in seen:
            seen.add(key)
            out.append(node)
    return out


def verified_nodes(search: Search) -> list[Node]:
    return [n for n in search.tree.subtree(search.tree.commit_root) if n.status in ("verified", "finished")]


def finalize(search: Search, stop_reason: str) -> SearchResult:
    """Choose a node, leave the workspace on it, record the alternatives and the tree."""
    from branchwise.agent.search.context import SearchResult

    tree = search.tree
    tree.stop_reason = stop_reason
    passing = distinct(search, verified_nodes(search))
    chosen = _fallback(search) if not passing else passing[0] if len(passing) == 1 else choose(search, passing)
    tree.chosen = chosen.id
    tree.alternatives = [n.id for n in passing if n.id != chosen.id]
    search.restore(chosen)
    search.sc.bus.emit(
        SearchDone(
            strategy=tree.strategy,
            chosen=chosen.id,
            alternatives=tree.alternatives,
            nodes=len(tree.nodes),
            stop_reason=stop_reason,
        )
    )
    search.save()
    status, summary = _verdict(chosen, stop_reason)
    return SearchResult(
        status=status,
        summary=summary,
        chosen=chosen,
        tree=tree,
        checks=chosen.checks,
        messages=tree.conversation(chosen.id),
    )


def _fallback(search: Search) -> Node:
    """Nothing passed: the finish whose checks came closest, else the best state reached."""
    nodes = [n for n in search.tree.subtree(search.tree.commit_root) if n.status != "duplicate"]
    failed = [n for n in nodes if n.status == "failed"]
    pool = failed or nodes
    return max(pool, key=lambda n: (n.reward or 0.0, n.depth, -n.id))


def _verdict(chosen: Node, stop_reason: str) -> tuple[str, str]:
    if chosen.status in ("verified", "finished"):
        return "completed", chosen.summary
    if chosen.status == "failed":
        return "failed", f"no candidate passed the checks ({stop_reason}); kept the closest: node {chosen.id}"
    if "budget" in stop_reason or "limit" in stop_reason:
        return "budget_exceeded", f"{stop_reason} before any candidate finished; kept node {chosen.id}"
    return "failed", f"{stop_reason} before any candidate finished; kept node {chosen.id}"


def choose(search: Search, candidates: list[Node]) -> Node:
    """Several distinct candidates pass: the judge picks one, else the best rewarded (then the smallest)."""
    judge = search.sc.judge
    if judge is None or search.budget.calls_left() <= 0:
        return candidates[0]
    root = search.tree.nodes[0].snapshot
    parts = []
    for node in candidates:
        patch = search.sc.workspace.diff(root, node.snapshot).patch[:MAX_PATCH_CHARS]
        parts.append(f"## Candidate {node.id}\nSummary: {node.summary}\nPatch:\n{patch}")
    messages = [
        {
            "role": "system",
            "content": "Several candidate changes all pass the task's checks. Pick the one that best solves the task "
            'with the least risk. Reply with one JSON object: {"id": <candidate id>, "explanation": "..."}',
        },
        {"role": "user", "content": f"Task:\n{search.sc.task}\n\n" + "\n\n".join(parts)},
    ]
    reply = judge.query(messages, [], n=1, temperature=0.0)[0]
    search.record(reply, judge, "choose")
    match = _ID.search(reply.content or "")
    try:
        picked = int(json.loads(match.group(0))["id"]) if match else None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        picked = None
    return next((n for n in candidates if n.id == picked), candidates[0])
