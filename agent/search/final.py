"""Final selection: verified candidates first, duplicates (same diff) merged, an LLM chooser for ties.

Everything here works on the tree and two narrow functions: the patch of a node against the root, and
(optionally) a judge call.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable

from branchwise.agent.models.base import Message, Reply
from branchwise.agent.search.tree import Node, SearchTree

_ID = re.compile(r"\{.*\}", re.DOTALL)
MAX_PATCH_CHARS = 6000

PatchOf = Callable[[Node], str]
"""The node's change against the root, as a patch."""
Ask = Callable[[list[Message]], Reply]


def diff_key(node: Node, patch_of: PatchOf) -> str:
    """A hash of the node's change against the root: two candidates with the same diff are one."""
    if node.diff_key is None:
        node.diff_key = hashlib.sha256(patch_of(node).encode()).hexdigest()[:16]
    return node.diff_key


def distinct(nodes: list[Node], patch_of: PatchOf) -> list[Node]:
    """One node per diff, the best rewarded first."""
    seen: set[str] = set()
    out = []
    for node in sorted(nodes, key=lambda n: (-(n.reward or 0.0), n.id)):
        key = diff_key(node, patch_of)
        if key not in seen:
            seen.add(key)
            out.append(node)
    return out


def verified_nodes(tree: SearchTree) -> list[Node]:
    """Finished candidates below the commit root (verified by checks, or finished with none to run)."""
    return [n for n in tree.subtree(tree.commit_root) if n.status in ("verified", "finished")]


def pick(tree: SearchTree, patch_of: PatchOf, choose: Ask | None, task: str) -> tuple[Node, list[Node]]:
    """The node to keep and the distinct verified alternatives to it."""
    passing = distinct(verified_nodes(tree), patch_of)
    if not passing:
        return fallback(tree), []
    chosen = passing[0] if len(passing) == 1 or choose is None else choose_one(choose, task, passing, patch_of)
    return chosen, [n for n in passing if n.id != chosen.id]


def fallback(tree: SearchTree) -> Node:
    """Nothing passed: the finish whose checks came closest, else the best state reached."""
    nodes = [n for n in tree.subtree(tree.commit_root) if n.status != "duplicate"]
    failed = [n for n in nodes if n.status == "failed"]
    pool = failed or nodes
    return max(pool, key=lambda n: (n.reward or 0.0, n.depth, -n.id))


def verdict(chosen: Node, stop_reason: str, *, out_of_budget: bool) -> tuple[str, str]:
    """The search's status and summary for the node it kept."""
    if chosen.status in ("verified", "finished"):
        return "completed", chosen.summary
    if chosen.status == "failed":
        return "failed", f"no candidate passed the checks ({stop_reason}); kept the closest: node {chosen.id}"
    if out_of_budget:
        return "budget_exceeded", f"{stop_reason} before any candidate finished; kept node {chosen.id}"
    return "failed", f"{stop_reason} before any candidate finished; kept node {chosen.id}"


def choose_one(ask: Ask, task: str, candidates: list[Node], patch_of: PatchOf) -> Node:
    """Several distinct candidates pass: the judge picks one, else the best rewarded (then the smallest)."""
    parts = [
        f"## Candidate {node.id}\nSummary: {node.summary}\nPatch:\n{patch_of(node)[:MAX_PATCH_CHARS]}"
        for node in candidates
    ]
    messages: list[Message] = [
        {
            "role": "system",
            "content": "Several candidate changes all pass the task's checks. Pick the one that best solves the task "
            'with the least risk. Reply with one JSON object: {"id": <candidate id>, "explanation": "..."}',
        },
        {"role": "user", "content": f"Task:\n{task}\n\n" + "\n\n".join(parts)},
    ]
    reply = ask(messages)
    match = _ID.search(reply.content or "")
    try:
        picked = int(json.loads(match.group(0))["id"]) if match else None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        picked = None
    return next((n for n in candidates if n.id == picked), candidates[0])
