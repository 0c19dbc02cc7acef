"""Restore is exact across every transition between kinds of entry: missing, file, executable file, symlink,
empty directory, directory with a file, named pipe (issue 9, class 17)."""

from __future__ import annotations

import itertools
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from branchwise.sandbox.workspace.snapshots import ShadowGitWorkspace

KINDS = ("missing", "file", "exec", "symlink", "emptydir", "dir", "fifo")


def make(path: Path, kind: str, tag: str = "") -> None:
    if kind in ("file", "exec"):
        path.write_text(f"{kind}{tag}\n")
        path.chmod(0o755 if kind == "exec" else 0o644)
    elif kind == "symlink":
        path.symlink_to(f"target-{path.name}{tag}")
    elif kind == "emptydir":
        path.mkdir()
    elif kind == "dir":
        path.mkdir()
        (path / "inner").write_text(f"inner{tag}\n")
    elif kind == "fifo":
        os.mkfifo(path)
        path.chmod(0o640)


def clear(path: Path) -> None:
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def describe(root: Path) -> dict[str, tuple]:
    """Every entry below root (.git aside): its kind, permission bits and content or link target."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if ".git" in dirnames:
            dirnames.remove(".git")
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st_ = os.lstat(path)
            rel, bits = str(path.relative_to(root)), stat.S_IMODE(st_.st_mode)
            if stat.S_ISLNK(st_.st_mode):
                out[rel] = ("link", str(path.readlink()))
            elif stat.S_ISDIR(st_.st_mode):
                out[rel] = ("dir", bits)
            elif stat.S_ISFIFO(st_.st_mode):
                out[rel] = ("fifo", bits)
            else:
                out[rel] = ("file", bits & 0o100, path.read_bytes())  # git keeps the exec bit of files
    return out


@pytest.fixture
def workspace(tmp_path: Path) -> tuple[Path, ShadowGitWorkspace]:
    ws = tmp_path / "ws"
    ws.mkdir()
    subprocess.run(["git", "init", "-q", str(ws)], check=True)
    (ws / "keep.txt").write_text("keep\n")
    (ws / "sub").mkdir()
    (ws / "sub" / "tracked.txt").write_text("t\n")
    return ws, ShadowGitWorkspace(ws, git_dir=tmp_path / "shadow", session="s")


@pytest.mark.parametrize(("before", "after"), [p for p in itertools.product(KINDS, KINDS) if p[0] != p[1]])
@pytest.mark.parametrize("where", ["x", "sub/x"])
def test_restore_is_exact_between_two_kinds(workspace, before: str, after: str, where: str) -> None:
    ws, snaps = workspace
    path = ws / where
    make(path, before)
    first, first_state = snaps.snapshot(), describe(ws)
    clear(path)
    make(path, after)
    second, second_state = snaps.snapshot(), describe(ws)
    snaps.restore(first)
    assert describe(ws) == first_state
    snaps.restore(second)
    assert describe(ws) == second_state


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "sub/c"]), st.sampled_from(KINDS)), min_size=2, max_size=8),
       st.data())  # fmt: skip
def test_any_sequence_of_changes_restores_to_every_snapshot(workspace, changes, data) -> None:
    ws, snaps = workspace
    for name in ("a", "b", "sub/c"):
        clear(ws / name)
    taken = []
    for i, (name, kind) in enumerate(changes):
        clear(ws / name)
        make(ws / name, kind, tag=str(i))
        taken.append((snaps.snapshot(), describe(ws)))
    for index in data.draw(st.lists(st.integers(0, len(taken) - 1), min_size=1, max_size=4)):
        snapshot, state = taken[index]
        snaps.restore(snapshot)
        assert describe(ws) == state
