"""Snapshot cost against tree size: does it follow the change or the tree?

On generated trees of 2k, 10k and 40k files (each a git repository, files dated an hour back like a checkout)
and on the Django sdist from PyPI, with the real `ShadowGitWorkspace`:

- read-only step: the loop and the search take no snapshot after a step whose tools only read (by their
  declared effect); what is timed is a snapshot taken anyway after reading every file (the upper bound);
- one-file and 100-file edit: the snapshot after the edit;
- restore: back to the snapshot before the 100-file edit;
- first run start (empty shadow repository) and later run start (the index left by the previous run), each
  including the workspace's set-up (its change watcher);
- end of run: the full-walk snapshot a run takes before committing;
- `git status` in the same repository as the baseline, and `glob`'s `rg --files` against `find`.

Each figure is the median of REPEAT runs. Targets at 40k files: read-only < 5 ms, one-file edit < 100 ms,
later run start < 300 ms. Slopes are in ms per 1,000 files from 2k to 40k. The last line is a JSON summary.

    .venv/bin/python bench/scale.py [--sizes 2000,10000,40000] [--no-django] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from branchwise.sandbox.workspace.snapshots import ShadowGitWorkspace

TARGETS_MS = {"read_only": 5.0, "edit_1": 100.0, "later_start": 300.0}
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "branchwise-bench"


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 2)


def generate(root: Path, files: int, seed: int = 7) -> None:
    """A source-like tree: ~12 files per directory, three levels, 0.2-6 KB of text each."""
    rng = random.Random(seed)
    per_dir, made = 12, 0
    while made < files:
        d = root / f"pkg{made // 1728}" / f"mod{(made // 144) % 12}" / f"sub{(made // per_dir) % 12}"
        d.mkdir(parents=True, exist_ok=True)
        for i in range(min(per_dir, files - made)):
            body = "".join(f"def f{j}(x):\n    return x + {j}\n" for j in range(rng.randint(4, 120)))
            (d / f"m{i}.py").write_text(body)
        made += per_dir
    (root / ".gitignore").write_text("*.pyc\nbuild/\n")


def age(root: Path, seconds: float = 3600) -> None:
    """Date every file back, as a checkout made a while ago (no file is 'racily clean' for git)."""
    then = time.time() - seconds
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in filenames:
            os.utime(Path(dirpath, name), (then, then), follow_symlinks=False)


def make_repo(root: Path) -> None:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}
    run = lambda *a: subprocess.run(["git", *a], cwd=root, env=env, check=True, capture_output=True)  # noqa: E731
    run("init", "-q")
    run("-c", "core.bigFileThreshold=1", "add", "-A")
    run("-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "init")


def django_tree(dest: Path) -> Path | None:
    """The Django sdist from PyPI (through pip), unpacked; None when it cannot be had."""
    CACHE.mkdir(parents=True, exist_ok=True)
    sdists = sorted(CACHE.glob("[Dd]jango-*.tar.gz"))
    if not sdists:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            "-q",
            "-d",
            str(CACHE),
            "django<6",
        ]
        if subprocess.run(cmd, capture_output=True, check=False, timeout=600).returncode != 0:
            return None
        sdists = sorted(CACHE.glob("[Dd]jango-*.tar.gz"))
    if not sdists:
        return None
    with tarfile.open(sdists[-1]) as tar:
        tar.extractall(dest, filter="data")
    return next(p for p in dest.iterdir() if p.is_dir())


def edit(files: list[Path], tag: str) -> None:
    for path in files:
        with path.open("a") as f:
            f.write(f"# edited {tag}\n")


def measure(root: Path, repeat: int) -> dict[str, float | int]:
    files = sorted(p for p in root.rglob("*.py") if ".git" not in p.parts)
    age(root)
    make_repo(root)
    work = Path(tempfile.mkdtemp(prefix="bw-scale-"))
    out: dict[str, float | int] = {"files": sum(1 for p in root.rglob("*") if p.is_file() and ".git" not in p.parts)}

    def first_start() -> None:
        shutil.rmtree(work / "shadow", ignore_errors=True)
        ws = ShadowGitWorkspace(root, work / "shadow", session="first")
        ws.snapshot("start")
        ws.keep_only([])

    out["first_start_ms"] = median_ms(first_start, max(1, min(repeat, 2)))
    ws = ShadowGitWorkspace(root, work / "shadow", session="s0")
    start = ws.snapshot("start")
    for path in files[:200]:
        path.read_bytes()
    out["read_only_ms"] = median_ms(lambda: ws.snapshot("read"), repeat)
    counter = iter(range(10**6))
    one = files[len(files) // 2]
    out["edit_1_ms"] = median_ms(lambda: (edit([one], str(next(counter))), ws.snapshot("edit")), repeat)
    hundred = files[:: max(1, len(files) // 100)][:100]
    before = ws.snapshot("before")
    out["edit_100_ms"] = median_ms(lambda: (edit(hundred, str(next(counter))), ws.snapshot("edit")), repeat)
    out["restore_ms"] = median_ms(lambda: ws.restore(before), 1)
    out["end_full_ms"] = median_ms(lambda: ws.snapshot("end", full=True), repeat)
    out["stages"] = sum(ws.stats().values())
    ws.keep_only([start])
    sessions = iter(range(10**6))

    def later_start() -> None:
        later = ShadowGitWorkspace(root, work / "shadow", session=f"later{next(sessions)}")
        later.snapshot("start")
        later.keep_only([])

    out["later_start_ms"] = median_ms(later_start, repeat)
    status = ["git", "-c", "core.untrackedCache=false", "status", "--porcelain"]
    out["git_status_ms"] = median_ms(lambda: subprocess.run(status, cwd=root, capture_output=True, check=True), repeat)
    if shutil.which("rg"):
        rg = ["rg", "--files", "--no-config", "--hidden", "-g", "!.git"]
        out["rg_files_ms"] = median_ms(lambda: subprocess.run(rg, cwd=root, capture_output=True, check=False), repeat)
    find = ["find", ".", "-path", "./.git", "-prune", "-o", "-type", "f", "-print"]
    out["find_ms"] = median_ms(lambda: subprocess.run(find, cwd=root, capture_output=True, check=True), repeat)
    for key in ("read_only_ms", "edit_1_ms", "edit_100_ms", "later_start_ms", "end_full_ms"):
        out[key.replace("_ms", "_x_status")] = round(float(out[key]) / float(out["git_status_ms"]), 3)
    shutil.rmtree(work, ignore_errors=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000,10000,40000")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-django", action="store_true")
    args = parser.parse_args()
    results: dict[str, dict[str, float | int]] = {}
    with tempfile.TemporaryDirectory(prefix="bw-scale-trees-") as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            root = Path(tmp) / f"gen{size}"
            generate(root, size)
            results[f"gen{size}"] = measure(root, args.repeat)
            print(f"gen{size}: {json.dumps(results[f'gen{size}'])}", flush=True)
            shutil.rmtree(root)
        if not args.no_django:
            django = django_tree(Path(tmp) / "django")
            if django is None:
                print("django: sdist not available (pip download failed); skipped", flush=True)
            else:
                results["django"] = measure(django, args.repeat)
                print(f"django ({django.name}): {json.dumps(results['django'])}", flush=True)
    gens = sorted((int(k[3:]), v) for k, v in results.items() if k.startswith("gen"))
    slopes: dict[str, float] = {}
    if len(gens) >= 2:
        (n0, small), (n1, big) = gens[0], gens[-1]
        for key in ("read_only_ms", "edit_1_ms", "edit_100_ms", "later_start_ms", "first_start_ms", "git_status_ms"):
            slopes[key.replace("_ms", "_ms_per_1k_files")] = round(
                (float(big[key]) - float(small[key])) / ((n1 - n0) / 1000), 3
            )
    largest = gens[-1][1] if gens else {}
    met = {k: bool(largest) and float(largest[f"{k}_ms"]) < v for k, v in TARGETS_MS.items()}
    print(
        f"targets at {gens[-1][0] if gens else 0} files: "
        + ", ".join(f"{k} < {v} ms: {'met' if met[k] else 'MISSED'}" for k, v in TARGETS_MS.items())
    )
    print(json.dumps({"bench": "scale", "results": results, "slopes": slopes, "targets_met": met}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
