"""Benchmark the repository map on real code that registries ship as source: the Django sdist (PyPI) and
three.js (npm).

Measures, each map built in a fresh process so that times and peak memory (the process and its parse
workers) are honest: cold map (empty cache), warm map in a new session, warm map in the same session,
the map after one file is edited; tokens against the budget at several budgets; how cold time grows
from 10% to 100% of the tree; and quality: questions of the form "which file defines X / uses Y" on
Django, a hit when the map at 1,024 tokens names the right file among its first five. Baselines from
the same run: tree-sitter parsing alone (serial), and `find` against the `glob` tool.

Usage: python bench/repomap.py [--quick] [--data DIR]. The last line of output is a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

BUDGET = 1024
TOP_FILES = 5  # a question is answered when the right file is among the map's first files
DEFINES = [
    ("QuerySet", "django/db/models/query.py", "Which file defines the class QuerySet?"),
    ("Model", "django/db/models/base.py", "Where is `Model`, the base class of all models, defined?"),
    ("HttpResponse", "django/http/response.py", "Find where HttpResponse is defined."),
    ("slugify", "django/utils/text.py", "Which file defines slugify?"),
    ("CsrfViewMiddleware", "django/middleware/csrf.py", "Where is CsrfViewMiddleware implemented?"),
    ("ModelAdmin", "django/contrib/admin/options.py", "Which file has the ModelAdmin class?"),
    ("reverse", "django/urls/base.py", "Where is the reverse() function for URLs defined?"),
    ("Paginator", "django/core/paginator.py", "Which file defines Paginator?"),
    ("Signal", "django/dispatch/dispatcher.py", "Where is the Signal class of the dispatcher?"),
    ("WSGIHandler", "django/core/handlers/wsgi.py", "Which file defines WSGIHandler?"),
    ("Template", "django/template/base.py", "Where is the Template class defined?"),
    ("get_user_model", "django/contrib/auth/__init__.py", "Where is get_user_model defined?"),
    ("cached_property", "django/utils/functional.py", "Which file defines cached_property?"),
    ("BaseCommand", "django/core/management/base.py", "Where is BaseCommand for management commands?"),
    ("Migration", "django/db/migrations/migration.py", "Which file defines the Migration class?"),
    ("JsonResponse", "django/http/response.py", "Which file defines JsonResponse?"),
    ("ForeignKey", "django/db/models/fields/related.py", "Where is the ForeignKey field defined?"),
    ("escape", "django/utils/html.py", "Which file defines the escape() function for HTML?"),
    ("parse_date", "django/utils/dateparse.py", "Where is parse_date defined?"),
    ("make_password", "django/contrib/auth/hashers.py", "Which file defines make_password?"),
]
USES = [
    ("get_valid_filename", "Which files use get_valid_filename?"),
    ("parse_duration", "Which code calls parse_duration?"),
    ("punycode", "Which files use punycode?"),
    ("urlsafe_base64_encode", "Who uses urlsafe_base64_encode?"),
    ("get_random_string", "Which modules call get_random_string?"),
    ("constant_time_compare", "Where is constant_time_compare used?"),
]


def child(args: argparse.Namespace) -> None:
    """One measurement in this (fresh) process; prints one JSON object."""
    from branchwise.tools.repomap.service import RepoMap

    root, cache = Path(args.root), Path(args.cache)
    started, cpu = time.perf_counter(), _cpu()
    index = RepoMap(root, cache_path=cache)
    result = index.build(BUDGET)
    out: dict[str, object] = {"first_s": time.perf_counter() - started, "first_cpu_s": _cpu() - cpu}
    out["tokens"] = result.tokens
    out["files"], out["parsed"], out["skipped"] = result.stats.files, result.stats.parsed, dict(result.stats.skipped)
    if args.mode == "warm":
        started, cpu = time.perf_counter(), _cpu()
        index.build(BUDGET, text="fix the pagination of querysets")
        out["same_session_s"], out["same_session_cpu_s"] = time.perf_counter() - started, _cpu() - cpu
        from branchwise.tools.repomap.languages import language_for

        target = next(p for p in sorted(root.rglob("*")) if language_for(p.name) and p.stat().st_size > 2000)
        original = target.read_bytes()
        try:
            target.write_bytes(original + b"\n\ndef bench_added_function():\n    return 1\n")
            started, cpu = time.perf_counter(), _cpu()
            edited = index.build(BUDGET, text="bench_added_function")
            out["after_edit_s"], out["after_edit_cpu_s"] = time.perf_counter() - started, _cpu() - cpu
            out["edit_seen"] = "bench_added_function" in edited.text
        finally:
            target.write_bytes(original)
        over = []
        for budget in (64, 256, 1024, 4096, 8192):
            for text in ("", "QuerySet filter", "fix the admin changelist"):
                r = index.build(budget, text=text)
                over.append(r.tokens / budget)
        out["max_tokens_over_budget"] = max(over)
    if args.mode == "quality":
        out.update(quality(index, root))
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    worker_mb, worker_cpu = index.pool_usage
    out["first_cpu_s"] = float(out["first_cpu_s"]) + worker_cpu  # type: ignore[arg-type]
    out["peak_rss_mb"] = round(self_kb / 1024, 1)
    out["peak_worker_rss_mb"] = round(worker_mb, 1)
    index.close()
    print(json.dumps(out))


def _cpu() -> float:
    """CPU seconds of this process and its finished children (the parse pool): steadier than wall time on a
    shared machine."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _files_in_map(text: str) -> list[str]:
    return [line[:-1] for line in text.splitlines()[1:] if line.endswith(":") and "│" not in line]


def quality(index: object, root: Path) -> dict[str, object]:
    """Answer the questions with the 1,024-token map: is the right file among the first TOP_FILES?"""
    hits, misses, asked = 0, [], 0
    for name, expected, question in DEFINES:
        source = (root / expected).read_text(errors="replace") if (root / expected).is_file() else ""
        if not re.search(rf"^\s*(class|def)\s+{name}\b", source, re.MULTILINE):
            continue  # not defined there in this version: the question is void
        asked += 1
        shown = _files_in_map(index.build(BUDGET, text=question).text)[:TOP_FILES]  # type: ignore[attr-defined]
        hits += expected in shown
        if expected not in shown:
            misses.append(f"defines {name}: got {shown[:3]}")
    for name, question in USES:
        users = _grep_users(root, name)
        if not users:
            continue
        asked += 1
        shown = _files_in_map(index.build(BUDGET, text=question).text)[:TOP_FILES]  # type: ignore[attr-defined]
        hit = bool(users & set(shown))
        hits += hit
        if not hit:
            misses.append(f"uses {name}: got {shown[:3]}")
    return {"questions": asked, "hits": hits, "hit_rate": round(hits / max(1, asked), 3), "misses": misses}


def _grep_users(root: Path, name: str) -> set[str]:
    """Ground truth by regex, not by our own index: files outside tests that use `name` but do not define it."""
    word, defn = re.compile(rf"\b{name}\b"), re.compile(rf"^\s*(def|class)\s+{name}\b|^{name}\s*=", re.MULTILINE)
    users = set()
    for path in (root / "django").rglob("*.py"):
        text = path.read_text(errors="replace")
        if word.search(text) and not defn.search(text):
            users.add(str(path.relative_to(root)))
    return users


def measure(mode: str, root: Path, cache: Path) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--root", str(root), "--cache", str(cache)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"measurement {mode} on {root} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def fetch(data: Path) -> dict[str, Path]:
    """The Django sdist and the three npm package, unpacked under `data` (downloaded once)."""
    data.mkdir(parents=True, exist_ok=True)
    trees: dict[str, Path] = {}
    if not list(data.glob("django-*.tar.gz")):
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "django", "--no-binary", ":all:", "--no-deps",
                        "-d", str(data)], check=True, capture_output=True)  # fmt: skip
    if not list(data.glob("three-*.tgz")) and shutil.which("npm"):
        subprocess.run(["npm", "pack", "three", "--silent"], cwd=data, check=True, capture_output=True)
    archives = {"django": next(data.glob("django-*.tar.gz"), None), "three": next(data.glob("three-*.tgz"), None)}
    for name, archive in archives.items():
        if archive is None:
            continue
        target = data / name
        if not target.is_dir():
            with tarfile.open(archive) as tar:
                tar.extractall(target, filter="data")
        trees[name] = next(p for p in target.iterdir() if p.is_dir())
    return trees


def subset(root: Path, fraction: float, dest: Path) -> Path:
    """Hard links to every n-th file of the tree (all files, so ignore files and layout stay)."""
    files = sorted(p for p in root.rglob("*") if p.is_file())
    step = max(1, round(1 / fraction))
    for i, path in enumerate(files):
        if i % step == 0 or path.name.startswith("."):
            target = dest / path.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(path, target)
    return dest


def parse_baseline(root: Path) -> tuple[float, float]:
    """Wall and CPU seconds to parse every Python file once with tree-sitter, serially, nothing else."""
    import tree_sitter_python
    from tree_sitter import Language, Parser

    parser = Parser(Language(tree_sitter_python.language()))
    datas = [p.read_bytes() for p in root.rglob("*.py")]
    started, cpu = time.perf_counter(), time.process_time()
    for data in datas:
        parser.parse(data)
    return time.perf_counter() - started, time.process_time() - cpu


def glob_bench(root: Path) -> dict[str, float]:
    """The glob tool (rg --files in the sandbox) against `find` on the same tree."""
    from branchwise.sandbox.isolation.bwrap import BwrapSandbox
    from branchwise.sandbox.workspace.safefs import WorkspaceFS
    from branchwise.tools import ToolContext
    from branchwise.tools.code_search import Glob, GlobArgs
    from branchwise.tools.repomap.files import walk_unignored

    started = time.perf_counter()
    subprocess.run(["find", ".", "-name", "*.py", "-type", "f"], cwd=root, capture_output=True, check=True)
    find_s = time.perf_counter() - started
    with BwrapSandbox(root) as sandbox:
        ctx = ToolContext(sandbox=sandbox, fs=WorkspaceFS(root))
        Glob().run(GlobArgs(pattern="**/*.py"), ctx)  # the sandbox's first command pays its set-up
        started = time.perf_counter()
        Glob().run(GlobArgs(pattern="**/*.py"), ctx)
        glob_s = time.perf_counter() - started
    started = time.perf_counter()
    list(walk_unignored(root))  # the fallback without ripgrep
    walk_s = time.perf_counter() - started
    return {"find_s": round(find_s, 3), "glob_s": round(glob_s, 3), "glob_vs_find": round(glob_s / find_s, 2),
            "python_walk_vs_find": round(walk_s / find_s, 2)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the growth series and three.js")
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "branchwise-bench-repomap")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.mode = args.child
        child(args)
        return
    try:
        trees = fetch(args.data)
    except (subprocess.CalledProcessError, OSError, StopIteration) as exc:
        print(f"cannot get the source trees (no registry?): {exc}")
        print(json.dumps({"bench": "repomap", "skipped": True}))
        return
    django = trees["django"]
    summary: dict[str, object] = {"bench": "repomap", "budget": BUDGET}
    with tempfile.TemporaryDirectory(prefix="branchwise-repomap-") as tmp:
        work = Path(tmp)
        baseline, baseline_cpu = parse_baseline(django)
        cache = work / "django.sqlite"
        cold = measure("cold", django, cache)
        warm = measure("warm", django, cache)
        quality_run = measure("quality", django, cache)
        print(f"django: {cold['files']} source files; tree-sitter parse alone (serial): {baseline:.2f} s wall, "
              f"{baseline_cpu:.2f} s CPU")  # fmt: skip
        print(f"  cold map: {cold['first_s']:.2f} s wall, {cold['first_cpu_s']:.2f} s CPU in all processes "
              f"({cold['first_s'] / baseline:.2f}x parse alone in wall time, "  # type: ignore[operator]
              f"{cold['first_cpu_s'] / baseline_cpu:.2f}x in CPU); "  # type: ignore[operator]
              f"peak memory {cold['peak_rss_mb']} MB (main) and "
              f"{cold['peak_worker_rss_mb']} MB (each parse worker); skipped {cold['skipped']}")  # fmt: skip
        print(f"  warm map, new session: {warm['first_s']:.2f} s ({warm['first_cpu_s']:.2f} s CPU); same session: "
              f"{warm['same_session_s']:.2f} s ({warm['same_session_cpu_s']:.2f} s CPU); after editing one file: "
              f"{warm['after_edit_s']:.2f} s ({warm['after_edit_cpu_s']:.2f} s CPU; "
              f"edit seen: {warm['edit_seen']})")  # fmt: skip
        print(f"  tokens: {cold['tokens']} of {BUDGET}; worst tokens/budget over 15 maps: "
              f"{warm['max_tokens_over_budget']:.3f}")  # fmt: skip
        print(f"  quality: {quality_run['hits']}/{quality_run['questions']} questions answered in the first "
              f"{TOP_FILES} files of the {BUDGET}-token map ({quality_run['hit_rate']:.0%})")  # fmt: skip
        for miss in quality_run["misses"]:  # type: ignore[attr-defined]
            print(f"    miss: {miss}")
        summary.update(
            django_files=cold["files"], parse_alone_s=round(baseline, 3), parse_alone_cpu_s=round(baseline_cpu, 3),
            cold_s=round(cold["first_s"], 3),  # type: ignore[arg-type]
            cold_cpu_s=round(cold["first_cpu_s"], 3), warm_new_session_cpu_s=round(warm["first_cpu_s"], 3),  # type: ignore[arg-type]
            cold_vs_parse=round(cold["first_s"] / baseline, 2), peak_rss_mb=cold["peak_rss_mb"],  # type: ignore[operator]
            peak_worker_rss_mb=cold["peak_worker_rss_mb"],
            warm_new_session_s=round(warm["first_s"], 3), warm_same_session_s=round(warm["same_session_s"], 3),  # type: ignore[arg-type]
            after_edit_s=round(warm["after_edit_s"], 3), max_tokens_over_budget=warm["max_tokens_over_budget"],  # type: ignore[arg-type]
            quality_hits=quality_run["hits"], quality_questions=quality_run["questions"],
            quality_hit_rate=quality_run["hit_rate"],
        )  # fmt: skip
        if not args.quick:
            growth = {}
            for fraction in (0.1, 0.25, 0.5, 1.0):
                tree = django if fraction == 1.0 else subset(django, fraction, work / f"sub{fraction}")
                growth[fraction] = measure("cold", tree, work / f"sub{fraction}.sqlite")
            base, base_cpu = growth[0.1]["first_s"], growth[0.1]["first_cpu_s"]
            print("  cold map by share of the tree (wall, CPU): " + ", ".join(
                f"{int(f * 100)}% ({g['files']} files) {g['first_s']:.2f} s = {g['first_s'] / base:.1f}x, "  # type: ignore[operator]
                f"{g['first_cpu_s']:.2f} s = {g['first_cpu_s'] / base_cpu:.1f}x"  # type: ignore[operator]
                for f, g in growth.items()))  # fmt: skip
            summary["growth_s"] = {f"{int(f * 100)}%": round(g["first_s"], 3) for f, g in growth.items()}  # type: ignore[arg-type]
            summary["growth_cpu_s"] = {f"{int(f * 100)}%": round(g["first_cpu_s"], 3) for f, g in growth.items()}  # type: ignore[arg-type]
            if "three" in trees:
                js_cache = work / "three.sqlite"
                js_cold, js_warm = measure("cold", trees["three"], js_cache), measure("warm", trees["three"], js_cache)
                print(f"three.js: {js_cold['files']} source files; cold {js_cold['first_s']:.2f} s "
                      f"({js_cold['first_cpu_s']:.2f} s CPU), peak {js_cold['peak_rss_mb']} MB + "
                      f"{js_cold['peak_worker_rss_mb']} MB per worker; warm new session {js_warm['first_s']:.2f} s, "
                      "same session "
                      f"{js_warm['same_session_s']:.2f} s; tokens {js_cold['tokens']}/{BUDGET}; worst tokens/budget "
                      f"{js_warm['max_tokens_over_budget']:.3f}; skipped {js_cold['skipped']}")  # fmt: skip
                summary.update(three_files=js_cold["files"], three_cold_s=round(js_cold["first_s"], 3),  # type: ignore[arg-type]
                               three_warm_s=round(js_warm["first_s"], 3),  # type: ignore[arg-type]
                               three_max_tokens_over_budget=js_warm["max_tokens_over_budget"])  # fmt: skip
        globbed = glob_bench(django)
        print(f"glob '**/*.py' on django: find {globbed['find_s']:.3f} s, glob tool (rg --files in bwrap) "
              f"{globbed['glob_s']:.3f} s = {globbed['glob_vs_find']}x find; the Python fallback walk "
              f"{globbed['python_walk_vs_find']}x find")  # fmt: skip
        summary.update(glob=globbed)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
