"""Snapshots that ask git only about what changed agree with a walk of the whole tree; the index and the
repository are kept and collected between runs."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from branchwise.sandbox.workspace.gc import collect, list_shadows, remove_orphans
from branchwise.sandbox.workspace.snapshots import ShadowGitWorkspace
from tests.support.trees import tree_state


def tree_of(ws: ShadowGitWorkspace, snap: str) -> str:
    out = subprocess.run(["git", "--git-dir", str(ws.git_dir), "rev-parse", f"{snap}^{{tree}}"],
                         capture_output=True, text=True, check=True)  # fmt: skip
    return out.stdout.strip()


def walked(root: Path, shadow: Path) -> tuple[str, tuple[str, ...]]:
    """(tree, empty dirs) from a workspace with no change watcher: every snapshot walks the whole tree."""
    ws = ShadowGitWorkspace(root, shadow, watch=False)
    snap = ws.snapshot()
    return tree_of(ws, snap), ws.info(snap).empty_dirs


def _nested_repo(root: Path) -> None:
    (root / "vendor" / "lib").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(root / "vendor" / "lib")], check=True)
    (root / "vendor" / "lib" / "x.c").write_text("int x;\n")


EDITS: list[tuple[str, Callable[[Path], object]]] = [
    ("modify", lambda r: (r / "src" / "a.py").write_text("changed\n")),
    (
        "create in new dirs",
        lambda r: (r / "new" / "deep").mkdir(parents=True) or (r / "new" / "deep" / "n.txt").write_text("n"),
    ),
    ("empty dir", lambda r: (r / "new" / "empty" / "inner").mkdir(parents=True)),
    ("delete a file", lambda r: (r / "src" / "b.py").unlink()),
    ("chmod", lambda r: (r / "src" / "a.py").chmod(0o755)),
    ("symlink", lambda r: (r / "link").symlink_to("src/a.py")),
    ("dir becomes file", lambda r: shutil.rmtree(r / "new" / "deep") or (r / "new" / "deep").write_text("f")),
    ("empty the last file of a dir", lambda r: (r / "only" / "o.txt").unlink()),
    ("move a dir", lambda r: (r / "src").rename(r / "moved")),
    ("edit below the moved dir", lambda r: (r / "moved" / "sub" / "c.py").write_text("after the move\n")),
    ("ignored file", lambda r: (r / "moved" / "x.log").write_text("ignored\n")),
    ("gitignore edited", lambda r: (r / ".gitignore").write_text("*.txt\n")),
    ("nested repository", _nested_repo),
    ("remove the empty dirs", lambda r: shutil.rmtree(r / "new" / "empty")),
]


def test_each_incremental_snapshot_equals_a_walk_of_the_whole_tree(tmp_path: Path):
    root = tmp_path / "ws"
    (root / "src" / "sub").mkdir(parents=True)
    (root / "only").mkdir()
    (root / "src" / "a.py").write_text("a\n")
    (root / "src" / "b.py").write_text("b\n")
    (root / "src" / "sub" / "c.py").write_text("c\n")
    (root / "only" / "o.txt").write_text("o\n")
    (root / ".gitignore").write_text("*.log\n")
    ws = ShadowGitWorkspace(root, tmp_path / "shadow")
    ws.snapshot("start")
    for i, (what, change) in enumerate(EDITS):
        change(root)
        snap = ws.snapshot(what)
        assert (tree_of(ws, snap), ws.info(snap).empty_dirs) == walked(root, tmp_path / f"oracle{i}"), what
    assert ws.stats()["incremental"] >= 8, ws.stats()  # the watcher, not a walk, answered most of them
    ws.restore(ws.snapshots()[0])
    left = sorted(p for p in tree_state(root) if not p.startswith("vendor/lib/"))  # a nested repository stays
    assert left == [".gitignore", "only", "only/o.txt", "src", "src/a.py", "src/b.py",
                                        "src/sub", "src/sub/c.py", "vendor", "vendor/lib"]  # fmt: skip


def test_nothing_changed_costs_no_new_snapshot(tmp_path: Path):
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "f").write_text("x")
    ws = ShadowGitWorkspace(tmp_path / "ws", tmp_path / "shadow")
    first = ws.snapshot()
    (tmp_path / "ws" / "f").read_text()
    assert ws.snapshot() == first and ws.stats()["unchanged"] == 1
    (tmp_path / "ws" / "f").write_text("y")
    assert ws.snapshot() != first


def test_a_later_run_starts_from_the_index_the_last_run_left(tmp_path: Path):
    root = tmp_path / "ws"
    root.mkdir()
    for i in range(30):
        (root / f"f{i}.txt").write_text(f"{i}\n")
    first = ShadowGitWorkspace(root, tmp_path / "shadow", session="run1")
    start = first.snapshot("start")
    first.keep_only([start])
    kept = list((tmp_path / "shadow").glob("index-base-*"))
    assert len(kept) == 1 and not (tmp_path / "shadow" / "index-run1").exists()
    (root / "f3.txt").write_text("changed between runs\n")  # no session was watching
    os.utime(root / "f3.txt", (1, 1))  # and its time says it is old: git must compare content (size differs)
    (root / "f4.txt").unlink()
    later = ShadowGitWorkspace(root, tmp_path / "shadow", session="run2")
    snap = later.snapshot("start")
    assert (tree_of(later, snap), later.info(snap).empty_dirs) == walked(root, tmp_path / "oracle")
    assert sorted(later.changed_paths(start, snap)) == ["f3.txt", "f4.txt"]


def test_gc_keeps_kept_runs_and_the_indexes_blobs_and_drops_dead_runs(tmp_path: Path):
    root = tmp_path / "ws"
    root.mkdir()
    (root / "f").write_text("one\n")
    shadow = tmp_path / "shadow"
    dead = ShadowGitWorkspace(root, shadow, session="dead")
    dead_snap = dead.snapshot()
    dead.keep_only([dead_snap])
    alive = ShadowGitWorkspace(root, shadow, session="alive")
    (root / "f").write_text("two\n")
    alive_snap = alive.snapshot()
    (root / "g").write_text("staged, never snapshotted\n")
    alive.changed_paths(alive_snap)  # stages g into the index
    alive.close()  # leaves that index for the next run
    collect(shadow, live_sessions={"alive"})
    cat = ["git", "--git-dir", str(shadow), "cat-file", "-e"]
    assert subprocess.run([*cat, alive_snap], check=False).returncode == 0
    refs = subprocess.run(["git", "--git-dir", str(shadow), "for-each-ref", "--format=%(refname)"],
                          capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    assert not [r for r in refs if r.startswith("refs/branchwise/dead/")] and dead_snap not in refs
    assert any(r.startswith("refs/branchwise/alive/") for r in refs)  # (its objects go at a prune an hour on)
    later = ShadowGitWorkspace(root, shadow, session="later")
    assert tree_of(later, later.snapshot()) == walked(root, tmp_path / "oracle")[0]


def test_shadow_repositories_of_deleted_workspaces_are_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    kept, gone = tmp_path / "kept", tmp_path / "gone"
    for root in (kept, gone):
        root.mkdir()
        (root / "f").write_text("x")
        ws = ShadowGitWorkspace(root)
        ws.keep_only([ws.snapshot()])
    shutil.rmtree(gone)
    assert {r.workspace for r in list_shadows() if r.orphaned} == {gone.resolve()}
    assert [r.workspace for r in remove_orphans(dry_run=True)] == [gone.resolve()]
    removed = remove_orphans()
    assert [r.workspace for r in removed] == [gone.resolve()] and not removed[0].git_dir.exists()
    assert [r.workspace for r in list_shadows()] == [kept.resolve()]


@pytest.mark.parametrize("beside", ["fifo", "nested repository"])
def test_changes_deep_in_the_tree_are_seen_beside_a_path_the_snapshots_leave_out(tmp_path: Path, beside: str):
    # git 2.39's ls-files answers nothing for `-- a/b/c :(exclude)x`: a FIFO or a nested repository anywhere made
    # the incremental snapshots blind to deletions and edits below a shared leading directory.
    root = tmp_path / "ws"
    (root / "deep" / "er").mkdir(parents=True)
    (root / "deep" / "er" / "gone.txt").write_text("gone\n")
    (root / "deep" / "er" / "edited.txt").write_text("before\n")
    (root / "deep" / "kept.txt").write_text("kept\n")
    ws = ShadowGitWorkspace(root, tmp_path / "shadow")
    start = ws.snapshot("start")
    if beside == "fifo":
        os.mkfifo(root / "pipe")
    else:
        _nested_repo(root)
    ws.snapshot("beside")
    (root / "deep" / "er" / "gone.txt").unlink()
    (root / "deep" / "er" / "edited.txt").write_text("after, longer\n")
    snap = ws.snapshot("changed")
    assert ws.stats()["incremental"] >= 1
    assert (tree_of(ws, snap), ws.info(snap).empty_dirs) == walked(root, tmp_path / "oracle")
    assert sorted(ws.changed_paths(start, snap)) == ["deep/er/edited.txt", "deep/er/gone.txt"]
    ws.restore(start)
    assert (root / "deep" / "er" / "gone.txt").read_text() == "gone\n"
    assert (root / "deep" / "er" / "edited.txt").read_text() == "before\n"
