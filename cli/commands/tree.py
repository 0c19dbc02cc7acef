"""`branchwise tree RUN_ID`: draw a run's search tree in the terminal, or write it as an HTML page."""

from __future__ import annotations

import html
from pathlib import Path

from branchwise.agent.errors import UsageError
from branchwise.agent.record.trajectory import runs_dir
from branchwise.agent.search.tree import Node, SearchTree
from branchwise.cli.common import workspace_for
from branchwise.cli.render.output import Output

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
    trees = load_trees(runs_dir(workspace) / run_id)
    if not trees:
        known = (runs_dir(workspace) / run_id).is_dir()
        reason = "it ran without search (--search none)" if known else "no such run"
        raise UsageError(f"run {run_id} has no search tree: {reason}")
    if html_path is not None:
        try:
            html_path.write_text(render_html(trees, run_id), encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write {html_path}: {exc.strerror or exc}") from None
        out.info(f"wrote {html_path}")
        return 0
    from rich.console import Console

    console = Console(file=out.out, highlight=False, soft_wrap=False)
    for title, tree in trees:
        console.print(render_rich(tree, title))
    return 0


def load_trees(run_dir: Path) -> list[tuple[str, SearchTree]]:
    """The run's trees: one for a plain search, one per subgoal (and plan revision) for a planned one."""
    if (run_dir / "tree.json").is_file():
        return [("search tree", SearchTree.load(run_dir / "tree.json"))]
    found = []
    for path in run_dir.glob("tree-*-*.json"):
        subgoal, revision = (int(x) for x in path.stem.split("-")[1:3])
        title = f"subgoal {subgoal}" + (f" (plan revision {revision})" if revision else "")
        found.append(((revision, subgoal), title, SearchTree.load(path)))
    return [(title, tree) for _, title, tree in sorted(found, key=lambda f: f[0])]


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
        text = escape(label(node))
        if node.id == tree.chosen:
            return f"[bold green]{text}  ◀ chosen[/]"
        if node.id in on_path:
            return f"[green]{text}[/]"
        if node.status in ("duplicate", "failed"):
            return f"[dim]{text}[/]"
        return text

    heading = f"{title} ({tree.strategy}, {len(tree.nodes)} nodes; stopped: {tree.stop_reason or '?'})"
    root = Tree(heading)

    def add(parent, node: Node) -> None:  # type: ignore[no-untyped-def]
        branch = parent.add(style(node))
        for child in node.children:
            add(branch, tree.nodes[child])

    if tree.nodes:
        add(root, tree.nodes[0])
    return root


def render_html(trees: list[tuple[str, SearchTree]], run_id: str) -> str:
    """A self-contained page (no scripts, no external files): nested lists, the chosen path highlighted."""
    sections = "\n".join(_html_tree(title, tree) for title, tree in trees)
    return f"""<!doctype html>
<html lang=en><head><meta charset=utf-8><title>branchwise search tree {html.escape(run_id)}</title>
<style>
body{{font:14px/1.4 ui-monospace,Menlo,Consolas,monospace;margin:2em;color:#222}}
ul.tree,ul.tree ul{{list-style:none;padding-left:1.4em;border-left:1px dotted #bbb}}
summary{{cursor:pointer}} pre{{margin:.2em 0 .4em 1em;color:#555;white-space:pre-wrap}}
li.path>details>summary{{color:#1a7f37}} li.chosen>details>summary{{font-weight:bold;background:#dafbe1}}
li.duplicate>details>summary,li.failed>details>summary{{color:#999}}
</style></head><body>
<h1>Search of run {html.escape(run_id)}</h1>
{sections}
</body></html>
"""


def _html_tree(title: str, tree: SearchTree) -> str:
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
                        f"summary: {node.summary}" if node.summary else "",
                        f"judge: {(node.judge or {}).get('explanation', '')}" if node.judge else "",
                        f"signals: {node.signals}" if node.signals else "",
                    ],
                )
            )
        )
        children = "".join(item(tree.nodes[c]) for c in node.children)
        sub = f"<ul>{children}</ul>" if children else ""
        return (
            f'<li class="{" ".join(classes)}"><details open><summary>{html.escape(label(node))}</summary>'
            f"<pre>{details}</pre></details>{sub}</li>"
        )

    body = f"<ul class=tree>{item(tree.nodes[0])}</ul>" if tree.nodes else "<p>(empty)</p>"
    return (
        f"<h2>{html.escape(title)}</h2><p>strategy {html.escape(tree.strategy)} · {len(tree.nodes)} nodes · "
        f"stopped: {html.escape(tree.stop_reason)} · chosen node: {tree.chosen}</p>\n{body}"
    )
