"""A batch's outcome for people and machines: a progress bar while it runs, the summary table, a final JSON
object with -o json, and a self-contained HTML report (pass rates, costs, times, links to each run)."""

from __future__ import annotations

import html
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from branchwise.cli.render.inert import inert
from branchwise.cli.render.tables import print_table


class Progress:
    """A progress bar on a terminal's stderr; elsewhere one line per finished task."""

    def __init__(self, total: int, *, enabled: bool) -> None:
        self.total, self.enabled, self.done = total, enabled, 0
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> Progress:
        if self.enabled and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as Bar

            self._bar = Bar(TextColumn("batch"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            TextColumn("{task.description}"), transient=True,
                            console=Console(file=sys.stderr, highlight=False))  # fmt: skip
            self._bar.__enter__()
            self._task = self._bar.add_task("", total=self.total)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)

    def notify(self, what: str, task: Any, result: dict[str, Any] | None) -> None:
        if what in ("finished", "skipped"):
            self.done += 1
        if not self.enabled:
            return
        line = _progress_line(what, task.id, result, self.done, self.total)
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done, description=inert(task.id, one_line=True))
            if what != "started":
                self._bar.console.print(line, markup=False, highlight=False)
        elif what != "started":
            print(line, file=sys.stderr, flush=True)


def _progress_line(what: str, task_id: str, result: dict[str, Any] | None, done: int, total: int) -> str:
    result = result or {}
    if what == "retry":
        return f"[{done}/{total}] {inert(task_id, one_line=True)}: environment failure, trying again"
    mark = "✓" if result.get("passed") else "✗"
    tail = " (finished earlier)" if what == "skipped" else ""
    return f"[{done}/{total}] {mark} {inert(task_id, one_line=True)}: {result.get('status')}{tail}"


def render_outcome(outcome: Any, tasks: list[Any], out_dir: Path, *, title: str, output_format: str) -> int:
    """Write the report, print the table (text) or the final object (json); returns the batch's exit code."""
    rows = [outcome.results.get(t.id) or {"task_id": t.id, "status": "not run", "passed": False} for t in tasks]
    trees = {r["task_id"]: _tree_page(r, out_dir) for r in rows if r.get("run_id")}
    summary = summarize(rows, outcome)
    report = out_dir / "report.html"
    report.write_text(report_html(title, rows, summary, trees, out_dir), encoding="utf-8")
    summary.update(results=str(out_dir / "results.jsonl"), report=str(report))
    if output_format == "json":
        print(json.dumps(summary, ensure_ascii=False))
        return outcome.exit_code
    columns = ["task", "status", "passed", "checks", "steps", "cost", "time", "branch"]
    print_table(sys.stdout, columns, [_row(r) for r in rows], wrap=("task",))
    print(_totals_line(summary))
    for g in summary["by_model"]:
        model = inert(g["model"], one_line=True)
        print(f"pass@1 {g['pass_at_1'] * 100:.0f}% ({g['passed']}/{g['tasks']})  model {model}  "
              f"strategy {g['strategy']}  cost ${g['cost_usd']:.4f}")  # fmt: skip
    print(f"results: {summary['results']}\nreport:  {summary['report']}")
    return outcome.exit_code


def summarize(rows: list[dict[str, Any]], outcome: Any) -> dict[str, Any]:
    ran = [r for r in rows if r.get("status") != "not run"]
    passed = sum(1 for r in ran if r.get("passed"))
    status = "budget_exceeded" if outcome.exit_code == 3 else "completed"
    return {
        "status": "interrupted" if outcome.interrupted else status,
        "exit_code": outcome.exit_code,
        "tasks": len(rows),
        "passed": passed,
        "failed": len(ran) - passed,
        "not_run": len(rows) - len(ran),
        "skipped": len(outcome.skipped),
        "pass_rate": round(passed / len(rows), 4) if rows else 0.0,
        "cost_usd": round(sum(float(r.get("cost_usd") or 0) for r in ran), 6),
        "wall_s": outcome.wall_s,
        "budget": outcome.budget,
        "by_model": by_model(ran),
    }


def by_model(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """pass@1 per (model, strategy): one attempt per task, so pass@1 is the share of tasks passed."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r.get("status") != "invalid":  # never run: no model to credit or blame
            groups[(str(r.get("model") or "?"), str(r.get("strategy") or "?"))].append(r)
    return [{"model": m, "strategy": s, "tasks": len(g), "passed": sum(1 for r in g if r.get("passed")),
             "pass_at_1": round(sum(1 for r in g if r.get("passed")) / len(g), 4),
             "cost_usd": round(sum(float(r.get("cost_usd") or 0) for r in g), 6),
             "duration_s": round(sum(float(r.get("duration_s") or 0) for r in g), 3)}
            for (m, s), g in sorted(groups.items())]  # fmt: skip


def _row(r: dict[str, Any]) -> list[str]:
    checks = r.get("checks") or []
    score = r.get("score")
    if score is not None:
        tests = score.get("tests") or []
        check_text = f"tests {sum(1 for t in tests if t.get('passed'))}/{len(tests)}"
    else:
        check_text = f"{sum(1 for c in checks if c.get('passed'))}/{len(checks)}" if checks else "-"
    cost = r.get("cost_usd")
    return [
        str(r["task_id"]),
        str(r.get("status")),
        "yes" if r.get("passed") else "no",
        check_text,
        str(r.get("steps", "-")),
        f"${float(cost):.4f}" if cost is not None else "-",
        f"{float(r['duration_s']):.1f}s" if r.get("duration_s") is not None else "-",
        str(r.get("branch") or "-"),
    ]


def _totals_line(s: dict[str, Any]) -> str:
    extra = f", {s['not_run']} not run (batch {s['budget'] or 'stopped'})" if s["not_run"] else ""
    skipped = f", {s['skipped']} finished earlier" if s["skipped"] else ""
    return (f"{s['tasks']} tasks: {s['passed']} passed, {s['failed']} failed{extra}{skipped}; "
            f"pass rate {s['pass_rate'] * 100:.0f}%; cost ${s['cost_usd']:.4f}; wall {s['wall_s']:.1f}s")  # fmt: skip


def _tree_page(r: dict[str, Any], out_dir: Path) -> str | None:
    """The run's search tree as an HTML page beside the report (None when it ran without search)."""
    from branchwise.agent.batch.tasks import Task
    from branchwise.cli.commands.tree import TreeFileError, load_trees, render_html

    workdir = Path(str(r.get("workdir") or ""))
    run_dir = workdir / ".branchwise" / "runs" / str(r["run_id"])
    try:
        trees = load_trees(run_dir)
    except (TreeFileError, OSError):
        return None
    if not trees:
        return None
    page = out_dir / "trees" / f"{Task(id=str(r['task_id']), source=Path()).slug}.html"
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(render_html(trees, str(r["run_id"])), encoding="utf-8")
    return str(page)


CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#1f2328}
h1{font-size:20px;margin:0 0 4px} .sub{color:#59636e;margin-bottom:16px}
.cards{display:flex;gap:12px;margin:12px 0 20px} .card{border:1px solid #d1d9e0;border-radius:8px;padding:10px 16px}
.card b{display:block;font-size:22px} table{border-collapse:collapse;width:100%;margin-bottom:20px}
th,td{border-bottom:1px solid #e6eaef;padding:6px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa} tr.pass td.st{color:#1a7f37;font-weight:600} tr.fail td.st{color:#cf222e;font-weight:600}
tr.skip td.st{color:#9a6700} .bar{background:#eef1f4;border-radius:4px;height:8px;width:160px}
.bar i{display:block;height:8px;border-radius:4px;background:#1a7f37} code{font-size:12px} .err{color:#cf222e}
"""


def report_html(title: str, rows: list[dict[str, Any]], s: dict[str, Any], trees: dict[str, str | None],
                out_dir: Path) -> str:  # fmt: skip
    e = html.escape
    cards = [("tasks", s["tasks"]), ("passed", s["passed"]), ("failed", s["failed"]), ("not run", s["not_run"]),
             ("pass rate", f"{s['pass_rate'] * 100:.0f}%"), ("cost", f"${s['cost_usd']:.4f}"),
             ("wall", f"{s['wall_s']:.1f}s")]  # fmt: skip
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title><style>{CSS}</style>",
             f"</head><body><h1>{e(title)}</h1><div class='sub'>exit code {s['exit_code']} · {e(s['status'])}</div>",
             "<div class='cards'>" + "".join(f"<div class='card'>{e(k)}<b>{e(str(v))}</b></div>" for k, v in cards)
             + "</div>", "<h2>pass@1 by model and strategy</h2><table><tr><th>model</th><th>strategy</th>"
             "<th>tasks</th><th>passed</th><th>pass@1</th><th></th><th>cost</th><th>time</th></tr>"]  # fmt: skip
    for g in s["by_model"]:
        parts.append(f"<tr><td>{e(g['model'])}</td><td>{e(g['strategy'])}</td><td>{g['tasks']}</td>"
                     f"<td>{g['passed']}</td><td>{g['pass_at_1'] * 100:.0f}%</td><td><div class='bar'><i "
                     f"style='width:{g['pass_at_1'] * 100:.0f}%'></i></div></td><td>${g['cost_usd']:.4f}</td>"
                     f"<td>{g['duration_s']:.1f}s</td></tr>")  # fmt: skip
    parts.append(
        "</table><h2>tasks</h2><table><tr><th>task</th><th>status</th><th>checks / tests</th><th>steps</th>"
        "<th>cost</th><th>time</th><th>branch</th><th>links</th></tr>"
    )
    for r in rows:
        cls = "pass" if r.get("passed") else ("skip" if r.get("status") == "not run" else "fail")
        cells = _row(r)
        error = f"<div class='err'>{e(str(r['error']))}</div>" if r.get("error") else ""
        parts.append(f"<tr class='{cls}'><td><code>{e(cells[0])}</code>{error}</td><td class='st'>{e(cells[1])}"
                     f"</td><td>{e(cells[3])}</td><td>{e(cells[4])}</td><td>{e(cells[5])}</td><td>{e(cells[6])}"
                     f"</td><td><code>{e(cells[7])}</code></td><td>{_links(r, trees.get(r['task_id']), out_dir)}"
                     "</td></tr>")  # fmt: skip
    parts.append("</table></body></html>")
    return "\n".join(parts)


def _links(r: dict[str, Any], tree: str | None, out_dir: Path) -> str:
    links = []
    if tree:
        links.append(("tree", tree))
    if r.get("run_id") and r.get("workdir"):
        links.append(("trajectory", str(Path(r["workdir"]) / ".branchwise" / "runs" / r["run_id"] / "events.jsonl")))
    if r.get("log"):
        links.append(("log", str(r["log"])))
    out = []
    for name, target in links:
        try:
            href = Path(target).relative_to(out_dir).as_posix()
        except ValueError:
            href = Path(target).as_uri()
        out.append(f"<a href='{html.escape(href, quote=True)}'>{name}</a>")
    return " · ".join(out)
