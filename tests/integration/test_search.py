"""Search runs on real repositories with the scripted model: branches, restores, final choice, the tree."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from branchwise.agent.search.tree import SearchTree
from tests.conftest import finish, make_repo, shell, write_script

CHECK = "python3 -m unittest discover -s tests -q"


def edit(old: str, new: str, path: str = "calc/stats.py") -> dict:
    return {"tool_calls": [{"name": "str_replace", "arguments": {"path": path, "old_str": old, "new_str": new}}]}


BUGGY = "(ordered[middle] + ordered[middle + 1])"
WRONG = edit(BUGGY, "(ordered[middle] + ordered[middle]) / 1 + 0")  # still fails the tests
RIGHT = edit(BUGGY, "(ordered[middle - 1] + ordered[middle])")
BREAKS_ODD = edit("return ordered[middle]\n", "return ordered[0]\n")  # odd counts now fail too
NOTE = {"tool_calls": [{"name": "create", "arguments": {"path": "NOTES.md", "file_text": "tried something\n"}}]}


def tree_of(repo: Path, run_id: str) -> SearchTree:
    return SearchTree.load(repo / ".branchwise" / "runs" / run_id / "tree.json")


def tree_digest(path: Path) -> dict[str, str]:
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def assert_git_untouched(git_dir: Path, before: dict[str, str]) -> None:
    """Nothing in the user's .git changed; what was added is only the result's commit on a branchwise/ branch."""
    after = tree_digest(git_dir)
    assert {name: after.get(name) for name in before} == before
    added = sorted(set(after) - set(before))
    assert all(n.startswith(("objects/", "refs/heads/branchwise/", "logs/refs/heads/branchwise/")) for n in added)


def test_best_of_n_keeps_exactly_the_passing_attempt(cli, example_repo, tmp_path):
    # Attempt 1 writes a note and a wrong fix; its finish fails the checks. Attempt 2 fixes it properly.
    script = write_script(tmp_path / "r.yaml", [NOTE, WRONG, finish("first try"), RIGHT, finish("second try")])
    git_before = tree_digest(example_repo / ".git")
    res = cli("run", "fix median", "-m", f"scripted:{script}", "--check", CHECK, "--search", "best-of-n",
              "--attempts", "2", "-o", "json", cwd=example_repo,
              env={"BRANCHWISE_LIMITS_MAX_FINISH_REJECTIONS": "0"})  # fmt: skip
    result = json.loads(res.stdout)
    assert res.returncode == 0, res.stderr
    assert result["status"] == "completed" and result["summary"] == "second try"
    stats = (example_repo / "calc" / "stats.py").read_text()
    assert "(ordered[middle - 1] + ordered[middle])" in stats and "/ 1 + 0" not in stats
    assert not (example_repo / "NOTES.md").exists()  # the first attempt's file is gone with its branch
    assert result["changed_files"] == ["calc/stats.py"]
    tree = tree_of(example_repo, result["run_id"])
    assert [n.status for n in tree.nodes if n.action.startswith("finish")] == ["failed", "verified"]
    assert tree.nodes[tree.chosen].summary == "second try"
    assert len(tree.nodes[0].children) == 2
    assert_git_untouched(example_repo / ".git", git_before)


def test_mcts_backs_off_a_failing_branch_and_uses_hindsight(cli, example_repo, tmp_path):
    # The first edit breaks a test that passed (the checks after it get worse than at the root), so the
    # search re-expands the root with hindsight feedback; the second edit makes every check pass.
    # One proposal per expansion, so that the second edit comes from a re-expansion.
    script = write_script(tmp_path / "r.yaml", [BREAKS_ODD, RIGHT, finish("fixed median")])
    res = cli("run", "fix median", "-m", f"scripted:{script}", "--check", CHECK, "--search", "mcts", "-o",
              "stream-json", cwd=example_repo, env={"BRANCHWISE_SEARCH_BRANCHING": "1"})  # fmt: skip
    events = [json.loads(line) for line in res.stdout.splitlines()]
    assert res.returncode == 0, res.stderr
    assert events[-1]["status"] == "completed"
    assert {e["node"] for e in events if e["type"] == "node"} == {0, 1, 2, 3}
    tree = tree_of(example_repo, events[-1]["run_id"])
    root, bad, good, done = tree.nodes
    assert root.children == [bad.id, good.id] and good.children == [done.id]
    assert bad.reward < root.reward < good.reward  # 3/5, 4/5, then 5/5 tests passing
    assert "already made from here" in good.feedback and bad.action in good.feedback
    assert tree.chosen == done.id and done.status == "verified"
    stats = (example_repo / "calc" / "stats.py").read_text()
    assert "(ordered[middle - 1] + ordered[middle])" in stats and "ordered[0]" not in stats


def judged(**rewards: int) -> dict:
    """A scripted judge reply rating candidates by number ({"1": 90, ...}) or one action (reward=...)."""
    if "reward" in rewards:
        return {"content": json.dumps({"explanation": "ok", "reward": rewards["reward"]})}
    rated = [{"id": int(i[1:]), "explanation": "", "reward": r} for i, r in rewards.items()]
    return {"content": json.dumps({"candidates": rated})}


def test_mcts_judges_the_proposals_of_one_expansion_in_one_call(cli, example_repo, tmp_path):
    # Two proposals per expansion, one judge call comparing them; the verified finish gets its own judgement,
    # which agrees, so the search stops there.
    replies = [WRONG, RIGHT, judged(c1=-60, c2=90), finish("fixed"), finish("fixed"), judged(reward=90)]
    script = write_script(tmp_path / "r.yaml", replies)
    res = cli("run", "fix median", "-m", f"scripted:{script}", "--check", CHECK, "--search", "mcts", "-o",
              "stream-json", cwd=example_repo, env={"BRANCHWISE_SEARCH_JUDGE": "model"})  # fmt: skip
    events = [json.loads(line) for line in res.stdout.splitlines()]
    assert res.returncode == 0, res.stderr
    purposes = [e["purpose"] for e in events if e["type"] == "model_reply"]
    assert purposes == ["act", "act", "judge", "act", "act", "judge"]
    tree = tree_of(example_repo, events[-1]["run_id"])
    wrong, right = (tree.nodes[c] for c in tree.nodes[0].children)
    assert (wrong.judge["value"], right.judge["value"]) == (0.2, 0.95)
    assert wrong.reward < right.reward
    assert tree.nodes[tree.chosen].parent == right.id and tree.nodes[tree.chosen].status == "verified"
    assert [tree.nodes[c].status for c in right.children] == ["verified", "duplicate"]


def test_mcts_spends_no_judge_call_on_a_step_all_proposals_agree_on(cli, example_repo, tmp_path):
    replies = [WRONG, NOTE, judged(c1=-60, c2=80), RIGHT, RIGHT, finish("fixed"), finish("fixed"), judged(reward=90)]
    script = write_script(tmp_path / "r.yaml", replies)
    res = cli("run", "fix median", "-m", f"scripted:{script}", "--check", CHECK, "--search", "mcts", "-o",
              "stream-json", cwd=example_repo, env={"BRANCHWISE_SEARCH_JUDGE": "model"})  # fmt: skip
    events = [json.loads(line) for line in res.stdout.splitlines()]
    assert res.returncode == 0, res.stderr
    purposes = [e["purpose"] for e in events if e["type"] == "model_reply"]
    assert purposes == ["act", "act", "judge", "act", "act", "act", "act", "judge"]
    tree = tree_of(example_repo, events[-1]["run_id"])
    note = tree.nodes[tree.nodes[0].children[1]]
    right = tree.nodes[note.children[0]]
    assert right.judge["value"] == note.judge["value"] == 0.9 and "agreed" in right.judge["explanation"]
    assert tree.nodes[note.children[1]].status == "duplicate"
    assert tree.nodes[tree.chosen].parent == right.id


def test_tree_command_draws_the_branches_and_writes_html(cli, example_repo, tmp_path):
    script = write_script(tmp_path / "r.yaml", [NOTE, WRONG, finish("first"), RIGHT, finish("second")])
    res = cli("run", "x", "-m", f"scripted:{script}", "--check", CHECK, "--search", "best-of-n", "--attempts", "2",
              "-o", "json", cwd=example_repo, env={"BRANCHWISE_LIMITS_MAX_FINISH_REJECTIONS": "0"})  # fmt: skip
    run_id = json.loads(res.stdout)["run_id"]
    drawn = cli("tree", run_id, cwd=example_repo)
    assert drawn.returncode == 0
    assert "chosen" in drawn.stdout and "checks failed" in drawn.stdout and "verified" in drawn.stdout
    page = tmp_path / "tree.html"
    assert cli("tree", run_id, "--html", str(page), cwd=example_repo).returncode == 0
    text = page.read_text()
    assert text.startswith("<!doctype html>") and 'class="verified path chosen"' in text and "<script" not in text


def test_tree_of_a_plain_run_is_explained(cli, example_repo, tmp_path):
    script = write_script(tmp_path / "r.yaml", [finish()])
    run_id = json.loads(cli("run", "x", "-m", f"scripted:{script}", "-o", "json", cwd=example_repo).stdout)["run_id"]
    res = cli("tree", run_id, cwd=example_repo)
    assert res.returncode == 2 and "ran without search" in res.stderr


def test_irreversible_action_is_a_commit_point(cli, tmp_path):
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    remote = tmp_path / "remote.git"
    make_repo(tmp_path / "seed", {"x": "x"})
    import subprocess

    subprocess.run(["git", "clone", "-q", "--bare", str(tmp_path / "seed"), str(remote)], check=True)
    script = write_script(
        tmp_path / "r.yaml",
        # Proposals come two at a time: the push's sibling is dropped when the search commits to the push.
        [shell(f"git push -q {remote} HEAD:refs/heads/agent 2>&1; echo pushed"), NOTE, NOTE, finish("pushed")],
    )
    res = cli("run", "push", "-m", f"scripted:{script}", "--search", "mcts", "-o", "json", cwd=repo,
              env={"BRANCHWISE_SEARCH_BRANCHING": "2"})  # fmt: skip
    result = json.loads(res.stdout)
    tree = tree_of(repo, result["run_id"])
    push = next(n for n in tree.nodes if n.kind == "irreversible")
    assert tree.commit_root == push.id
    assert all(n.id in {m.id for m in tree.subtree(push.id)} for n in tree.nodes if n.depth > push.depth)
    assert len(tree.nodes[0].children) == 1  # nothing else was tried beside the push


@pytest.mark.parametrize("strategy", ["best-of-n", "mcts"])
def test_search_runs_are_replayable(cli, example_repo, tmp_path, strategy):
    script = write_script(tmp_path / "r.yaml", [RIGHT, finish("fixed"), RIGHT, finish("fixed")])
    res = cli("run", "x", "-m", f"scripted:{script}", "--check", CHECK, "--search", strategy, "-o", "json",
              cwd=example_repo)  # fmt: skip
    run_id = json.loads(res.stdout)["run_id"]
    replay = cli("replay", run_id, cwd=example_repo)
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert "observations match" in replay.stdout


def test_an_edit_with_an_undefined_name_is_flagged_and_penalised(cli, example_repo, tmp_path):
    typo = edit(BUGGY, "(ordered[midle - 1] + ordered[middle])")
    script = write_script(tmp_path / "r.yaml", [typo, RIGHT, finish("fixed")])
    res = cli("run", "x", "-m", f"scripted:{script}", "--check", CHECK, "--search", "mcts", "-o", "json",
              cwd=example_repo, env={"BRANCHWISE_SEARCH_BRANCHING": "1"})  # fmt: skip
    assert res.returncode == 0, res.stderr
    tree = tree_of(example_repo, json.loads(res.stdout)["run_id"])
    flagged = tree.nodes[1]
    assert flagged.signals["lint_errors"] == ["calc/stats.py:19: undefined name 'midle'"]
    assert flagged.reward < tree.nodes[0].reward  # 4 of 5 tests still pass, but the typo costs it the lead


def test_mcts_below_one_judged_trajectory_runs_the_plain_loop_and_warns(cli, example_repo, tmp_path):
    # 6 model calls cannot pay for one mcts trajectory of 8 steps (8 x 2 proposals with no judge): the search
    # hands over to the plain loop, which spends the calls on acting and finishes; a warning says so.
    script = write_script(tmp_path / "r.yaml", [NOTE, RIGHT, finish("fixed median")])
    res = cli("run", "fix median", "-m", f"scripted:{script}", "--check", CHECK, "--search", "mcts", "-o",
              "stream-json", cwd=example_repo, env={"BRANCHWISE_SEARCH_MAX_MODEL_CALLS": "6"})  # fmt: skip
    events = [json.loads(line) for line in res.stdout.splitlines()]
    assert res.returncode == 0, res.stderr
    assert events[-1]["status"] == "completed"
    warnings = [e["message"] for e in events if e["type"] == "warning"]
    assert any("fewer than one judged trajectory costs (16)" in w and "plain loop" in w for w in warnings), warnings
    assert not [e for e in events if e["type"] == "node"]  # no search tree: the plain loop ran
    assert [e["purpose"] for e in events if e["type"] == "model_reply"] == ["act", "act", "act"]
    assert "(ordered[middle - 1] + ordered[middle])" in (example_repo / "calc" / "stats.py").read_text()


def test_mcts_with_room_for_two_attempts_runs_best_of_n(cli, example_repo, tmp_path):
    # 5 calls, trajectories of 2 steps: mcts would need 2 x 2 = 4 calls per trajectory... and fits; with
    # branching 3 it needs 6 and falls back to best-of-n with the 2 attempts of 2 calls that fit.
    script = write_script(tmp_path / "r.yaml", [WRONG, finish("first try"), RIGHT, finish("second try")])
    env = {"BRANCHWISE_SEARCH_MAX_MODEL_CALLS": "5", "BRANCHWISE_SEARCH_TRAJECTORY_STEPS": "2",
           "BRANCHWISE_SEARCH_BRANCHING": "3", "BRANCHWISE_LIMITS_MAX_FINISH_REJECTIONS": "0"}  # fmt: skip
    res = cli("run", "fix median", "-m", f"scripted:{script}", "--check", CHECK, "--search", "mcts", "-o",
              "stream-json", cwd=example_repo, env=env)  # fmt: skip
    events = [json.loads(line) for line in res.stdout.splitlines()]
    assert res.returncode == 0, res.stderr
    warnings = [e["message"] for e in events if e["type"] == "warning"]
    assert any("running best-of-n with 2 attempts" in w for w in warnings), warnings
    tree = tree_of(example_repo, events[-1]["run_id"])
    assert tree.strategy == "best-of-n" and len(tree.nodes[0].children) == 2
    assert tree.nodes[tree.chosen].summary == "second try"


def test_a_search_that_fits_its_budget_gives_no_warning(cli, example_repo, tmp_path):
    script = write_script(tmp_path / "r.yaml", [RIGHT, finish("fixed")])
    res = cli("run", "fix median", "-m", f"scripted:{script}", "--check", CHECK, "--search", "mcts", "-o",
              "stream-json", cwd=example_repo, env={"BRANCHWISE_SEARCH_BRANCHING": "1"})  # fmt: skip
    events = [json.loads(line) for line in res.stdout.splitlines()]
    assert res.returncode == 0, res.stderr
    assert not [e for e in events if e["type"] == "warning" and "fitted" in e["message"]]
    assert [e for e in events if e["type"] == "node"]
