"""The planner-executor loop with the scripted model: plans, the ledger, re-planning, working memory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import PLANNING, ROOT, finish, make_repo, shell, write_script

INVENTORY = ROOT / "examples" / "inventory"
CHECK = "python3 -m unittest discover -s tests -q"


def plan_reply(*subgoals: dict, facts: list[str] | None = None) -> dict:
    return {"tool_calls": [{"name": "submit_plan", "arguments": {"subgoals": list(subgoals), "facts": facts or []}}]}


def events_of(res) -> list[dict]:
    return [json.loads(line) for line in res.stdout.splitlines()]


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "inventory", source=INVENTORY)


def test_three_subgoal_example_replans_once_and_completes(cli, inventory):
    res = cli("run", "-f", "task.toml", "-o", "stream-json", cwd=inventory, env=PLANNING)
    assert res.returncode == 0, res.stderr
    events = events_of(res)
    kinds = [e["type"] for e in events]
    assert {"plan", "progress", "replan", "condense"} <= set(kinds)
    plans = [e for e in events if e["type"] == "plan"]
    assert [len(p["subgoals"]) for p in plans] == [3, 4] and plans[1]["revision"] == 1
    replans = [e for e in events if e["type"] == "replan"]
    assert len(replans) == 1 and replans[0]["subgoal"] == 1 and "no progress" in replans[0]["reason"]
    assert any("test_cli.py expects" in f for f in replans[0]["facts"])
    progress = [e for e in events if e["type"] == "progress"]
    assert [p["subgoal"] for p in progress if p["decision"] == "advance"] == [0, 1, 2, 3]
    assert any(p["looping"] for p in progress)
    condensed = [e for e in events if e["type"] == "condense"]
    assert all(e["tokens_after"] < e["tokens_before"] for e in condensed) and len(condensed) == 3
    assert events[-1]["status"] == "completed"
    assert "low THRESHOLD" in (inventory / "README.md").read_text()
    assert "cmd_low" not in (INVENTORY / "inventory" / "cli.py").read_text()  # the example itself is untouched


def test_plan_only_prints_the_plan_and_runs_nothing(cli, inventory):
    res = cli("run", "-f", "task.toml", "--plan-only", "-o", "json", cwd=inventory, env=PLANNING)
    assert res.returncode == 0, res.stderr
    result = json.loads(res.stdout)
    assert result["plan"][0]["title"].startswith("Fix parse_line")
    assert result["steps"] == 0 and result["changed_files"] == []
    text = cli("run", "-f", "task.toml", "--plan-only", cwd=inventory, env=PLANNING)
    assert "1. Fix parse_line" in text.stderr and "done when: python3 -m unittest tests.test_store -q" in text.stderr


def test_a_plan_from_the_task_file_is_used_as_given(cli, inventory, tmp_path):
    script = write_script(tmp_path / "r.yaml", [shell("echo hello > greeting.txt")])
    task = tmp_path / "task.toml"
    task.write_text(
        'prompt = "write a greeting"\n'
        f'model = "scripted:{script}"\n'
        '[[plan]]\ntitle = "Write greeting.txt"\ndone_check = "grep -q hello greeting.txt"\n'
    )
    res = cli("run", "-f", str(task), "-C", str(inventory), "-o", "stream-json", cwd=inventory, env=PLANNING)
    assert res.returncode == 0, res.stderr
    events = events_of(res)
    plan = next(e for e in events if e["type"] == "plan")
    assert plan["given"] and plan["subgoals"] == [
        {"title": "Write greeting.txt", "done_check": "grep -q hello greeting.txt"}
    ]
    assert not any(e["type"] == "model_reply" and e["purpose"] == "plan" for e in events)


def test_an_invalid_plan_in_the_task_file_is_a_config_error(cli, inventory, tmp_path):
    task = tmp_path / "task.toml"
    task.write_text('prompt = "x"\nmodel = "scripted:x.yaml"\n[[plan]]\ndone_check = "true"\n')
    res = cli("run", "-f", str(task), cwd=inventory, env=PLANNING)
    assert res.returncode == 2 and "task.toml: plan.0.title: Field required" in res.stderr


def test_running_out_of_replans_fails_the_run(cli, tmp_path):
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    sub = {"title": "make b.txt", "done_check": "test -e b.txt"}
    script = write_script(tmp_path / "r.yaml", [plan_reply(sub), shell("ls"), shell("ls"), shell("ls")])
    env = {**PLANNING, "BRANCHWISE_PLANNER_STALL_STEPS": "2", "BRANCHWISE_PLANNER_MAX_REPLANS": "0"}
    res = cli("run", "make b.txt", "-m", f"scripted:{script}", "-o", "json", cwd=repo, env=env)
    result = json.loads(res.stdout)
    assert res.returncode == 1 and result["status"] == "failed"
    assert "still stuck after 0 re-plans: no progress in 2 steps" in result["summary"]


def test_failing_task_checks_after_the_last_subgoal_trigger_a_replan(cli, tmp_path):
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    first = plan_reply({"title": "create b.txt", "done_check": "test -e b.txt"})
    second = plan_reply({"title": "put ok into b.txt", "done_check": "grep -q ok b.txt"}, facts=["b.txt exists"])
    script = write_script(tmp_path / "r.yaml", [first, shell("touch b.txt"), second, shell("echo ok > b.txt")])
    res = cli("run", "b.txt must say ok", "-m", f"scripted:{script}", "--check", "grep -q ok b.txt",
              "-o", "stream-json", cwd=repo, env=PLANNING)  # fmt: skip
    events = events_of(res)
    assert res.returncode == 0, res.stderr
    replan = next(e for e in events if e["type"] == "replan")
    assert "the task's check `grep -q ok b.txt` fails" in replan["reason"] and replan["subgoal"] == 1
    assert events[-1]["status"] == "completed"


def test_planned_runs_with_search_per_subgoal(cli, tmp_path):
    # In a search, a subgoal ends with a finish that its check verifies; each subgoal has its own tree.
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    plan = plan_reply(
        {"title": "create b.txt", "done_check": "test -e b.txt"},
        {"title": "write ok into c.txt", "done_check": "grep -q ok c.txt"},
    )
    script = write_script(
        tmp_path / "r.yaml", [plan, shell("touch b.txt"), finish("b"), shell("echo ok > c.txt"), finish("c")]
    )
    # One attempt each, searched all the same (the fit to the budget would run a one-attempt best-of-n as the loop).
    res = cli("run", "b and c", "-m", f"scripted:{script}", "--search", "best-of-n", "--attempts", "1", "-o", "json",
              cwd=repo, env={**PLANNING, "BRANCHWISE_SEARCH_FIT_BUDGET": "false"})  # fmt: skip
    result = json.loads(res.stdout)
    assert res.returncode == 0, res.stderr
    assert result["summary"] == "c" and sorted(result["changed_files"]) == ["b.txt", "c.txt"]
    trees = sorted(p.name for p in (repo / ".branchwise" / "runs" / result["run_id"]).glob("tree-*.json"))
    assert trees == ["tree-1-0.json", "tree-2-0.json"]
    drawn = cli("tree", result["run_id"], cwd=repo)
    assert drawn.returncode == 0 and "subgoal 1" in drawn.stdout and "subgoal 2" in drawn.stdout


def test_planned_runs_replay(cli, inventory):
    run_id = json.loads(cli("run", "-f", "task.toml", "-o", "json", cwd=inventory, env=PLANNING).stdout)["run_id"]
    replay = cli("replay", run_id, cwd=inventory, env=PLANNING)
    assert replay.returncode == 0, replay.stdout + replay.stderr


def test_a_finish_without_checks_is_accepted_for_a_question_subgoal(cli, tmp_path):
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    sub = {"title": "understand a.txt", "done_question": "Is a.txt understood?"}
    script = write_script(tmp_path / "r.yaml", [plan_reply(sub), shell("cat a.txt"), finish("it holds an a")])
    res = cli("run", "read a.txt", "-m", f"scripted:{script}", "-o", "json", cwd=repo, env=PLANNING)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["summary"] == "it holds an a"
