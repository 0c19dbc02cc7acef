"""`branchwise tree RUN_ID`: draw a run's search tree in the terminal, or write it as an HTML page."""

from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path

from branchwise.agent.errors import UsageError
from branchwise.agent.record.trajectory import is_real_runs_dir, runs_dir
from branchwise.agent.search.tree import Node, SearchTree
from branchwise.cli.common import workspace_for
from branchwise.cli.render.inert import inert
from branchwise.cli.render.output import Output
from branchwise.sandbox.base import SandboxError
from branchwise.sandbox.workspace.safefs import read_regular

MAX_TREE_BYTES = 256 * 1024 * 1024
MAX_TREE_NODES = 100_000
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_TREE_FILE = re.compile(r"tree-(\d{1,6})-(\d{1,6})\.json")
_PICTURE = re.compile(r"browser/[A-Za-z0-9][A-Za-z0-9._-]{0,100}\.(jpg|png)")
_MAGIC = {b"\xff\xd8\xff": "image/jpeg", b"\x89PNG\r\n\x1a\n": "image/png"}
MAX_PICTURE_BYTES = 4 * 1024 * 1024
MAX_PICTURES_BYTES = 64 * 1024 * 1024

STATUS_MARK = {
    "verified": "✓ verified",
    "finished": "✓ finished",
    "failed": "✗ checks failed",
    "duplicate": "= duplicate",
    "terminal": "■ terminal",
    "open": "",
}


def tree_command(run_id: str, *, html_path: Path | None, cd: Path | None, out: Output | None = None) -> int:
    out = out or Output()
    workspace = workspace_for(cd)
    if not _RUN_ID.fullmatch(run_id) or not is_real_runs_dir(workspace):
        raise UsageError(f"run {inert(run_id, one_line=True)} has no search tree: no such run")
    try:
        trees = load_trees(runs_dir(workspace) / run_id)
    except TreeFileError as exc:
        raise UsageError(inert(str(exc), one_line=True)) from None
    if not trees:
        known = (runs_dir(workspace) / run_id).is_dir()
        reason = "it ran without search (--search none)" if known else "no such run"
        raise UsageError(f"run {run_id} has no search tree: {reason}")
    if html_path is not None:
        try:
            html_path.write_text(render_html(trees, run_id, runs_dir(workspace) / run_id), encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write {html_path}: {exc.strerror or exc}") from None
        out.info(f"wrote {html_path}")
        return 0
    from rich.console import Console

    console = Console(file=out.out, highlight=False, soft_wrap=False)
    for title, tree in trees:
        console.print(render_rich(tree, title))
    return 0


class TreeFileError(Exception):
    """A tree file that is not what a search writes (it may come with a repository)."""


def load_trees(run_dir: Path) -> list[tuple[str, SearchTree]]:
    """The run's trees: one for a plain search, one per subgoal (and plan revision) for a planned one."""
    if run_dir.is_symlink() or not run_dir.is_dir():
        return []
    if (run_dir / "tree.json").is_file():
        return [("search tree", load_tree(run_dir / "tree.json"))]
    found = []
    for path in run_dir.glob("tree-*-*.json"):
        match = _TREE_FILE.fullmatch(path.name)
        if match is None:
            continue
        subgoal, revision = int(match.group(1)), int(match.group(2))
        title = f"subgoal {subgoal}" + (f" (plan revision {revision})" if revision else "")
        found.append(((revision, subgoal), title, load_tree(path)))
    return [(title, tree) for _, title, tree in sorted(found, key=lambda f: f[0])]


def load_tree(path: Path) -> SearchTree:
    """One tree file, read only as a regular file of bounded size and checked to be a tree: every parent
    comes before its child (so no cycle, no self-parent), and children, chosen and commit_root agree."""
    try:
        tree = SearchTree.model_validate(json.loads(read_regular(path, limit=MAX_TREE_BYTES, follow_symlinks=False)))
    except (OSError, SandboxError, ValueError) as exc:  # ValueError: bad JSON, bad UTF-8, pydantic
        raise TreeFileError(f"{path}: not a search tree ({str(exc).splitlines()[0][:200]})") from None
    problem = _tree_problem(tree)
    if problem:
        raise TreeFileError(f"{path}: not a search tree ({problem})")
    return tree


def _tree_problem(tree: SearchTree) -> str:
    count = len(tree.nodes)
    if count > MAX_TREE_NODES:
        return f"{count} nodes"
    for index, node in enumerate(tree.nodes):
        if node.id != index:
            return f"node {index} has id {node.id}"
        if (node.parent is None) != (index == 0) or (node.parent is not None and not 0 <= node.parent < index):
            return f"node {index} has parent {node.parent}"
        if len(set(node.children)) != len(node.children) or any(
            not index < c < count or tree.nodes[c].parent != index for c in node.children
        ):
            return f"node {index} lists children {node.children[:5]} that are not its own"
    if count and sum(len(n.children) for n in tree.nodes) != count - 1:
        return "a node is missing from its parent's children"
    if any(v is not None and not 0 <= v < max(count, 1) for v in (tree.chosen, tree.commit_root, *tree.alternatives)):
        return "chosen, commit_root or alternatives name a node that does not exist"
    return ""


def chosen_path(tree: SearchTree) -> set[int]:
    return {n.id for n in tree.path(tree.chosen)} if tree.chosen is not None else set()


def label(node: Node) -> str:
    reward = "-" if node.reward is None else f"{node.reward:.2f}"
    mark = STATUS_MARK.get(node.status, node.status)
    kind = f" [{node.kind}]" if node.kind in ("stateful", "irreversible") else ""
    return f"#{node.id} {node.action}{kind}  reward {reward}  visits {node.visits}" + (f"  {mark}" if mark else "")


def render_rich(tree: SearchTree, title: str = "search tree"):  # type: ignore[no-untyped-def]
    from rich.markup import escape
    from rich.tree import Tree

    on_path = chosen_path(tree)

    def style(node: Node) -> str:
        text = escape(inert(label(node), one_line=True))
        if node.id == tree.chosen:
            return f"[bold green]{text}  ◀ chosen[/]"
        if node.id in on_path:
            return f"[green]{text}[/]"
        if node.status in ("duplicate", "failed"):
            return f"[dim]{text}[/]"
        return text

    heading = f"{inert(title, one_line=True)} ({inert(tree.strategy, one_line=True)}, {len(tree.nodes)} nodes; "
    root = Tree(escape(heading + f"stopped: {inert(tree.stop_reason or '?', one_line=True)})"))
    if tree.nodes:  # iteratively: a valid tree can still be deeper than Python's recursion limit
        stack = [(root, 0)]
        while stack:
            parent, node_id = stack.pop()
            branch = parent.add(style(tree.nodes[node_id]))
            stack.extend((branch, child) for child in reversed(tree.nodes[node_id].children))
    return root


def render_html(trees: list[tuple[str, SearchTree]], run_id: str, run_dir: Path | None = None) -> str:
    """A self-contained page (no scripts, no external files): nested lists, the chosen path highlighted, and for
    browser steps the page's URL and picture (embedded as data: images, read from the run's browser/ directory)."""
    pictures = _Pictures(run_dir)
    sections = "\n".join(_html_tree(title, tree, pictures) for title, tree in trees)
    return f"""<!doctype html>
<html lang=en><head><meta charset=utf-8><title>branchwise search tree {html.escape(run_id)}</title>
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<style>
body{{font:14px/1.4 ui-monospace,Menlo,Consolas,monospace;margin:2em;color:#222}}
ul.tree,ul.tree ul{{list-style:none;padding-left:1.4em;border-left:1px dotted #bbb}}
summary{{cursor:pointer}} pre{{margin:.2em 0 .4em 1em;color:#555;white-space:pre-wrap}}
li.path>details>summary{{color:#1a7f37}} li.chosen>details>summary{{font-weight:bold;background:#dafbe1}}
li.duplicate>details>summary,li.failed>details>summary{{color:#999}}
img.page{{display:block;margin:.2em 0 .6em 1em;width:320px;border:1px solid #ccc}}
</style></head><body>
<h1>Search of run {html.escape(run_id)}</h1>
{sections}
</body></html>
"""


class _Pictures:
    """Pictures of browser steps as data: URIs: only a plain JPEG or PNG file in the run's browser/ directory
    (no link followed, bounded in size each and in total), so a tree file cannot make the page show anything else."""

    def __init__(self, run_dir: Path | None) -> None:
        self.run_dir, self.spent = run_dir, 0

    def uri(self, name: str | None) -> str | None:
        if self.run_dir is None or not name or not _PICTURE.fullmatch(name) or self.spent > MAX_PICTURES_BYTES:
            return None
        folder = self.run_dir / "browser"
        try:
            if folder.is_symlink():
                return None
            data = read_regular(folder / name.split("/", 1)[1], limit=MAX_PICTURE_BYTES, follow_symlinks=False)
        except (OSError, SandboxError):
            return None
        mime = next((m for magic, m in _MAGIC.items() if data.startswith(magic)), None)
        if mime is None:
            return None
        self.spent += len(data)
        return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def _html_tree(title: str, tree: SearchTree, pictures: _Pictures | None = None) -> str:
    pictures = pictures or _Pictures(None)
    on_path = chosen_path(tree)

    def item(node: Node) -> str:
        classes = [node.status]
        if node.id in on_path:
            classes.append("path")
        if node.id == tree.chosen:
            classes.append("chosen")
        details = html.escape(
            "\n".join(
                filter(
                    None,
                    [
                        f"kind: {node.kind}; depth {node.depth}",
                        f"page: {inert(node.url, one_line=True)}" if node.url else "",
                        f"summary: {node.summary}" if node.summary else "",
                        f"judge: {(node.judge or {}).get('explanation', '')}" if node.judge else "",
                        f"signals: {node.signals}" if node.signals else "",
                    ],
                )
            )
        )
        uri = pictures.uri(node.screenshot)
        alt = html.escape(inert(node.url or "page", one_line=True), quote=True)
        picture = f'<img class=page alt="{alt}" src="{uri}">' if uri else ""
        return (
            f'<li class="{html.escape(" ".join(classes))}"><details open><summary>{html.escape(label(node))}'
            f"</summary><pre>{details}</pre>{picture}</details>"
        )

    def items(root: int) -> str:  # iteratively, like render_rich
        parts: list[str] = []
        stack: list[int | str] = [root]
        while stack:
            entry = stack.pop()
            if isinstance(entry, str):
                parts.append(entry)
                continue
            node = tree.nodes[entry]
            parts.append(item(node))
            stack.append("</li>")
            if node.children:
                stack.append("</ul>")
                stack.extend(reversed(node.children))
                stack.append("<ul>")
        return "".join(parts)

    body = f"<ul class=tree>{items(0)}</ul>" if tree.nodes else "<p>(empty)</p>"
    return (
        f"<h2>{html.escape(title)}</h2><p>strategy {html.escape(tree.strategy)} · {len(tree.nodes)} nodes · "
        f"stopped: {html.escape(tree.stop_reason)} · chosen node: {tree.chosen}</p>\n{body}"
    )
