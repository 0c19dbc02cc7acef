"""Steps whose tools only read take no snapshot: check that such steps, run for real in the sandbox, change
nothing a snapshot would capture, and that a step that writes after them is still seen."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from branchwise.agent.record.events import ToolCallRecord
from branchwise.agent.run.gate import classify_calls
from branchwise.sandbox.workspace.snapshots import ShadowGitWorkspace
from branchwise.tools import ToolBox, default_tools
from tests.conftest import finish, shell, write_script
from tests.support.trees import tree_state

READS = [
    {"tool_calls": [{"name": "view", "arguments": {"path": "calc/stats.py"}}]},
    {"tool_calls": [{"name": "grep", "arguments": {"pattern": "def median"}}]},
    {"tool_calls": [{"name": "glob", "arguments": {"pattern": "**/*.py"}}]},
    shell("ls -la calc && cat calc/stats.py && git status && git log --oneline -3 && wc -l calc/*.py"),
]


def _tree(root: Path, shadow: Path) -> str:
    ws = ShadowGitWorkspace(root, shadow, watch=False)  # a walk of the whole tree: no watcher to trust
    snap = ws.snapshot()
    return subprocess.run(["git", "--git-dir", str(shadow), "rev-parse", f"{snap}^{{tree}}"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip


def test_the_file_tools_reads_are_judged_read_by_their_declared_effects():
    toolbox = ToolBox(default_tools())
    kinds = []
    for reply in READS:
        calls = [ToolCallRecord(id="c", name=c["name"], arguments=c["arguments"]) for c in reply["tool_calls"]]
        kinds.append(classify_calls(calls, toolbox))
    # A shell command is never skipped by its words: its snapshot is taken, and costs nothing when the change
    # watcher saw no write (the same snapshot id comes back; see test_workspace_incremental).
    assert kinds == ["read", "read", "read", "ephemeral"]


@pytest.mark.slow
def test_read_only_steps_change_nothing_and_a_later_write_is_seen(cli, example_repo, tmp_path):
    before_state, before_tree = tree_state(example_repo), _tree(example_repo, tmp_path / "before")
    script = write_script(tmp_path / "r.yaml", [*READS, finish("looked only")])
    res = cli("run", "look around", "-m", f"scripted:{script}", "-o", "json", cwd=example_repo)
    result = json.loads(res.stdout)
    assert res.returncode == 0, res.stderr
    assert result["steps"] == len(READS) + 1 and result["changed_files"] == []
    # .branchwise/runs is excluded from snapshots; everything else must be byte for byte what it was.
    after = {p: e for p, e in tree_state(example_repo).items() if not p.startswith(".branchwise")}
    assert after == {p: e for p, e in before_state.items() if not p.startswith(".branchwise")}
    assert _tree(example_repo, tmp_path / "after") == before_tree

    write = shell("echo appended >> calc/stats.py")
    script = write_script(tmp_path / "w.yaml", [*READS[:2], write, READS[3], finish("wrote")])
    res = cli("run", "write once", "-m", f"scripted:{script}", "-o", "json", cwd=example_repo)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["changed_files"] == ["calc/stats.py"]


@pytest.mark.slow
def test_runs_prune_deletes_old_runs_their_snapshots_and_orphaned_shadows(cli, example_repo, tmp_path, clean_env):
    script = write_script(tmp_path / "r.yaml", [finish("nothing")])
    for _ in range(2):
        assert cli("run", "noop", "-m", f"scripted:{script}", "-o", "json", cwd=example_repo).returncode == 0
    gone = tmp_path / "gone"
    gone.mkdir()
    assert (
        cli(
            "run",
            "noop",
            "-m",
            f"scripted:{script}",
            "-o",
            "json",
            cwd=gone,
            env={"BRANCHWISE_WORKSPACE_ALLOW_NON_GIT": "true"},
        ).returncode
        == 0
    )
    shutil.rmtree(gone)
    shadow_base = Path(clean_env["XDG_STATE_HOME"]) / "branchwise" / "shadow"
    assert len(list(shadow_base.iterdir())) == 2
    runs = sorted(p.name for p in (example_repo / ".branchwise" / "runs").iterdir())
    res = cli("runs", "prune", "--keep", "1", cwd=example_repo)
    assert res.returncode == 0, res.stderr
    assert "deleted 1 run log" in res.stdout + res.stderr and "is gone" in res.stdout + res.stderr
    assert sorted(p.name for p in (example_repo / ".branchwise" / "runs").iterdir()) == runs[1:]
    (shadow,) = shadow_base.iterdir()  # the deleted workspace's repository went
    refs = subprocess.run(["git", "--git-dir", str(shadow), "for-each-ref", "--format=%(refname)", "refs/branchwise/"],
                          capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    assert refs and {r.split("/")[2] for r in refs} == {runs[1]}
    assert json.loads(cli("runs", "--json", cwd=example_repo).stdout)[0]["run_id"] == runs[1]
