"""Batch pieces without Ray: which files are tasks and where they run, the crash-safe results file, exit codes."""

from __future__ import annotations

import json
import os

import pytest

from branchwise.agent.batch.results import ResultsFile
from branchwise.agent.batch.runner import BatchOutcome
from branchwise.agent.batch.tasks import Task, discover
from branchwise.agent.errors import UsageError
from tests.conftest import make_repo


def test_discovery_finds_task_files_and_decides_their_repository(tmp_path):
    repo = make_repo(tmp_path / "proj", {"README.md": "x\n", "pyproject.toml": "[project]\nname = 'x'\n"})
    (repo / ".branchwise" / "tasks").mkdir(parents=True)
    (repo / ".branchwise" / "tasks" / "nightly.toml").write_text('prompt = "n"\n')
    (repo / ".branchwise" / "config.toml").write_text('prompt = "not a task"\n')
    (repo / ".branchwise" / "batch" / "work" / "t").mkdir(parents=True)
    (repo / ".branchwise" / "batch" / "work" / "t" / "task.toml").write_text('prompt = "a copy"\n')
    (repo / "examples" / "demo").mkdir(parents=True)
    (repo / "examples" / "demo" / "task.toml").write_text('prompt = "d"\n')
    (repo / "examples" / "notes.toml").write_text('title = "no prompt: not a task"\n')
    (repo / "node_modules" / "m").mkdir(parents=True)
    (repo / "node_modules" / "m" / "t.toml").write_text('prompt = "vendored"\n')
    tasks = {t.id: t for t in discover([str(repo)])}
    assert set(tasks) == {".branchwise/tasks/nightly", "examples/demo/task"}
    nightly, demo = tasks[".branchwise/tasks/nightly"], tasks["examples/demo/task"]
    assert nightly.repo == repo.resolve() and not nightly.copy_dir  # its repository, cloned
    assert demo.repo == (repo / "examples" / "demo").resolve() and demo.copy_dir  # its directory, copied


def test_repo_and_ref_keys_and_their_errors(tmp_path):
    make_repo(tmp_path / "r", {"a": "1\n"})
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "ok.toml").write_text('prompt = "x"\nrepo = "../r"\nref = "main"\n')
    (tmp_path / "t" / "bad.toml").write_text('prompt = "x"\nrepo = "../nowhere"\n')
    tasks = {t.id: t for t in discover([str(tmp_path / "t")])}
    assert tasks["ok"].repo == (tmp_path / "r").resolve() and tasks["ok"].ref == "main" and not tasks["ok"].error
    assert "is not the top of a git repository" in (tasks["bad"].error or "")


def test_jsonl_tasks_ids_and_malformed_lines(tmp_path):
    make_repo(tmp_path / "r", {"a": "1\n"})
    lines = [json.dumps({"id": "one", "prompt": "p", "repo": "r"}), "", "{broken", json.dumps([1]),
             json.dumps({"prompt": "{{ n }}", "repo": "r", "params": {"n": {"type": "int"}}, "param_values": {"n": 2}}),
             json.dumps({"repo": "r"})]  # fmt: skip
    (tmp_path / "t.jsonl").write_text("\n".join(lines) + "\n")
    tasks = {t.id: t for t in discover([str(tmp_path / "t.jsonl")])}
    assert set(tasks) == {"one", "t:3", "t:4", "t:5", "t:6"}
    assert "not JSON" in (tasks["t:3"].error or "") and "not a JSON object" in (tasks["t:4"].error or "")
    assert tasks["t:5"].data["prompt"] == "2" and not tasks["t:5"].error
    assert "a task needs a prompt" in (tasks["t:6"].error or "")


def test_duplicate_ids_are_a_usage_error(tmp_path):
    make_repo(tmp_path / "r", {"a": "1\n"})
    line = json.dumps({"id": "same", "prompt": "p", "repo": "r"})
    (tmp_path / "t.jsonl").write_text(f"{line}\n{line}\n")
    with pytest.raises(UsageError, match="two tasks have the id 'same'"):
        discover([str(tmp_path / "t.jsonl")])


def test_slug_is_a_safe_unique_file_name(tmp_path):
    assert Task(id="calc/task", source=tmp_path).slug.startswith("calc_task-")
    assert Task(id="plain", source=tmp_path).slug == "plain"
    assert Task(id="a/b", source=tmp_path).slug != Task(id="a_b", source=tmp_path).slug


def test_results_file_drops_a_line_cut_short_and_keeps_the_rest(tmp_path):
    path = tmp_path / "results.jsonl"
    first = ResultsFile(path)
    first.append({"task_id": "a", "exit_code": 0, "passed": True})
    first.append({"task_id": "env", "exit_code": 4, "passed": False})
    first.close()
    with open(path, "a") as f:
        f.write('{"task_id": "b", "exit_co')  # a write a SIGKILL cut short
    again = ResultsFile(path)
    assert again.finished("a") and not again.finished("env") and not again.finished("b")
    again.append({"task_id": "b", "exit_code": 1, "passed": False})
    again.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["task_id"] for r in lines] == ["a", "env", "b"]


@pytest.mark.parametrize(
    ("codes", "budget", "not_run", "interrupted", "expected"),
    [
        ([0, 0], None, [], False, 0),
        ([0, 1], None, [], False, 1),
        ([0, 2], None, [], False, 1),
        ([0, 3], None, [], False, 1),  # a task over its own budget failed; the batch's budget is another thing
        ([0, 4, 1], None, [], False, 4),
        ([0], "cost", ["x"], False, 3),
        ([0], "wall", [], False, 0),  # the budget ran out exactly as the last task finished
        ([0], None, ["x"], True, 130),
    ],
)
def test_batch_exit_codes(codes, budget, not_run, interrupted, expected):
    results = {str(i): {"exit_code": c, "passed": c == 0} for i, c in enumerate(codes)}
    outcome = BatchOutcome(results=results, not_run=not_run, budget=budget, interrupted=interrupted)
    assert outcome.exit_code == expected


def test_stale_ray_session_dirs_of_dead_batches_are_swept(tmp_path):
    import subprocess

    from branchwise.agent.batch.executors import sweep_stale_temps

    dead = subprocess.Popen(["true"])
    dead.wait()
    for name, pid in (("bw-ray-dead", dead.pid), ("bw-ray-alive", os.getpid())):
        (tmp_path / name).mkdir()
        (tmp_path / name / "branchwise.pid").write_text(str(pid))
    (tmp_path / "bw-ray-nopid").mkdir()
    sweep_stale_temps(str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bw-ray-alive", "bw-ray-nopid"]
