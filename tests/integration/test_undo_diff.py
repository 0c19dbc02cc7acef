"""`branchwise diff` and `branchwise undo` after a real run that created, deleted, chmod-ed and git-mv-ed files."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from tests.conftest import PLANNING, finish, git, make_repo, shell, write_script


def tree_state(root: Path) -> dict[str, tuple[bytes, bool]]:
    """Every file outside .git and .branchwise: content and executable bit."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if p.is_file() and rel.parts[0] not in (".git", ".branchwise"):
            out[str(rel)] = (p.read_bytes(), bool(p.stat().st_mode & stat.S_IXUSR))
    return out


@pytest.mark.slow
def test_undo_restores_the_start_and_diff_shows_the_run(cli, tmp_path):
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n", "b.txt": "b\n", "run.sh": "echo\n", "keep/k.txt": "k\n"})
    (repo / "notes.txt").write_text("untracked, mine\n")  # the user's untracked file survives
    before = tree_state(repo)
    act = "echo new > created.txt && rm b.txt && chmod +x run.sh && git mv a.txt moved.txt && rm notes.txt"
    script = write_script(tmp_path / "r.yaml", [shell(act), finish("moved a, removed b")])
    res = cli("run", "reorganise", "-m", f"scripted:{script}", "-o", "json", cwd=repo)
    assert res.returncode == 0, res.stderr
    run_id = json.loads(res.stdout)["run_id"]
    assert not (repo / "b.txt").exists() and (repo / "moved.txt").exists()

    stat_out = cli("diff", "--stat", cwd=repo)
    assert stat_out.returncode == 0, stat_out.stderr
    assert stat_out.stdout.split("\n")[:-1] == [
        "deleted       a.txt",
        "deleted       b.txt",
        "added         created.txt",
        "added         moved.txt",
        "deleted       notes.txt",
        "mode-changed  run.sh",
    ]
    patch = cli("diff", run_id, cwd=repo).stdout
    assert "+new" in patch and "old mode 100644" in patch and "-b" in patch

    undone = cli("undo", cwd=repo)
    assert undone.returncode == 0, undone.stderr
    assert tree_state(repo) == before
    assert f"before run {run_id}: 6 file(s) put back" in undone.stdout
    assert "git restore --staged" in undone.stderr  # the run's git mv is still staged; we say so
    assert "branch" not in git(repo, "status", "--porcelain").split("\n")[0]

    # The undo itself can be undone, from the snapshot it printed.
    snapshot = undone.stdout.split("branchwise undo --to ")[1].split()[0]
    redo = cli("undo", "--to", snapshot, cwd=repo)
    assert redo.returncode == 0, redo.stderr
    assert (repo / "moved.txt").exists() and not (repo / "b.txt").exists()


def test_undo_and_diff_say_so_when_there_is_no_run(cli, tmp_path):
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    for command in (["undo"], ["diff"], ["undo", "nosuchrun"]):
        res = cli(*command, cwd=repo)
        assert res.returncode == 2 and res.stderr.count("\n") == 1 and "branchwise: error:" in res.stderr


@pytest.mark.slow
def test_the_demo_fix_is_committed_on_a_branch_and_undo_restores_the_start(cli, example_repo, clean_env, monkeypatch):
    """What the run path does at its end (until the lead wires it in): end snapshot, commit_run; then undo."""
    from branchwise.agent.config.schema import GitSettings
    from branchwise.agent.record.events import RunStarted
    from branchwise.agent.record.trajectory import read_events
    from branchwise.sandbox.workspace.snapshots import ShadowGitWorkspace
    from branchwise.tools.git.commit import commit_run, start_state

    before = tree_state(example_repo)
    head = start_state(example_repo).head
    res = cli("run", "-f", "task.toml", "-o", "json", cwd=example_repo, env=PLANNING)
    assert res.returncode == 0, res.stderr
    finished = json.loads(res.stdout)
    events = read_events(example_repo / ".branchwise" / "runs" / finished["run_id"] / "events.jsonl")
    start = next(e.start_snapshot for e in events if isinstance(e, RunStarted))
    monkeypatch.setenv("XDG_STATE_HOME", clean_env["XDG_STATE_HOME"])  # the run's shadow repository
    snaps = ShadowGitWorkspace(example_repo, session="end-of-run")
    result = commit_run(snaps, start_head=head, start_snapshot=start, end_snapshot=snaps.snapshot("end"),
                        summary=finished["summary"], run_id=finished["run_id"], settings=GitSettings(),
                        task="Fix median() for even-length lists")  # fmt: skip
    assert result is not None and result.branch.startswith("branchwise/fix-median")
    assert result.files == ("calc/stats.py",)
    assert "ordered[middle - 1] + ordered[middle]" in git(example_repo, "show", f"{result.branch}:calc/stats.py")
    assert git(example_repo, "branch", "--show-current").strip() == "main"
    assert git(example_repo, "rev-parse", "HEAD").strip() == head
    assert git(example_repo, "status", "--porcelain").strip() == "M calc/stats.py"  # still in the working tree

    undone = cli("undo", cwd=example_repo)
    assert undone.returncode == 0, undone.stderr
    assert tree_state(example_repo) == before and git(example_repo, "status", "--porcelain") == ""
