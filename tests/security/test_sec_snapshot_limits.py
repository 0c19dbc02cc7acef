"""Class 19 (snapshots): planted huge sparse files cannot keep a run past its wall limit."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from branchwise.sandbox.workspace.snapshots import ShadowGitWorkspace, SnapshotDeadline
from tests.conftest import finish, make_repo, write_script

SPARSE_GB = 16


def plant_sparse(repo: Path, count: int) -> None:
    for i in range(count):
        with open(repo / f"zeros-{i}.bin", "wb") as f:
            f.truncate(SPARSE_GB * 1024**3)  # no disk used, but every byte has to be read to hash it


def test_a_snapshot_stops_at_its_deadline(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    plant_sparse(repo, 2)
    snaps = ShadowGitWorkspace(repo, git_dir=tmp_path / "shadow", session="s", watch=False)
    snaps.deadline = time.monotonic() + 2
    started = time.monotonic()
    with pytest.raises(SnapshotDeadline):
        snaps.snapshot()
    assert time.monotonic() - started < 15  # the deadline, plus killing git and the machine's load


@pytest.mark.slow
def test_a_run_over_huge_sparse_files_ends_at_its_wall_limit(cli, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    plant_sparse(repo, 8)
    script = write_script(tmp_path / "r.yaml", [finish()])
    started = time.monotonic()
    res = cli("run", "x", "-m", f"scripted:{script}", "--max-wall", "10", "-o", "json", cwd=repo, timeout=300)
    took = time.monotonic() - started
    result = json.loads(res.stdout)
    assert res.returncode == 3 and result["limit"] == "wall", res.stderr
    assert "Traceback" not in res.stderr
    assert took < 10 + 10 + 25, took  # the limit, the end snapshot's grace, start-up and load
