"""The one run path through the real CLI: one budget for every strategy, a plan-less model, every event reaching
every output, and bad input that never ends in a traceback."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
from pathlib import Path

import pytest

from branchwise.agent.record.trajectory import read_events
from tests.conftest import BRANCHWISE, PLANNING, finish, make_repo, shell, write_script

STRATEGIES = ["none", "best-of-n", "mcts"]


def many_shells(count: int) -> list[dict]:
    return [shell(f"echo step {i}") for i in range(count)]


def plan_of_one(title: str = "Do the task") -> dict:
    return {"tool_calls": [{"name": "submit_plan", "arguments": {"subgoals": [{"title": title}]}}]}


def events_of(repo: Path, run_id: str) -> list:
    return read_events(repo / ".branchwise" / "runs" / run_id / "events.jsonl")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo", {"README.md": "hello\n"})


@pytest.mark.parametrize("planner", [False, True], ids=["no-plan", "plan"])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_max_steps_holds_for_every_strategy_with_and_without_the_planner(cli, repo, tmp_path, strategy, planner):
    replies = ([plan_of_one()] if planner else []) + many_shells(80)
    script = write_script(tmp_path / "r.yaml", replies)
    env = {"BRANCHWISE_PLANNER_ENABLED": "true" if planner else "false", "BRANCHWISE_PLANNER_STALL_STEPS": "50",
           "BRANCHWISE_PLANNER_MAX_STEPS_PER_SUBGOAL": "50"}  # fmt: skip
    res = cli("run", "keep going", "-m", f"scripted:{script}", "--search", strategy, "--max-steps", "3", "-o", "json",
              cwd=repo, env=env)  # fmt: skip
    result = json.loads(res.stdout)
    assert res.returncode == 3, res.stderr
    assert result["status"] == "budget_exceeded" and result["limit"] == "steps"
    assert result["steps"] == 3
    executed = [e for e in events_of(repo, result["run_id"]) if e.type == "tool_result"]
    assert len(executed) == 3
    assert "step limit reached (3 steps)" in result["summary"]


def test_a_reply_file_without_a_plan_still_runs_with_the_planner_on(cli, repo, tmp_path):
    script = write_script(tmp_path / "r.yaml", [shell("echo first"), finish("did it")])
    res = cli("run", "say hi", "-m", f"scripted:{script}", "-o", "stream-json", cwd=repo, env=PLANNING)
    assert res.returncode == 0, res.stderr
    events = [json.loads(line) for line in res.stdout.splitlines()]
    warnings = [e["message"] for e in events if e["type"] == "warning"]
    assert any("no plan" in w and "one subgoal" in w for w in warnings)
    results = [e for e in events if e["type"] == "tool_result"]
    assert results[0]["output"].startswith("first")  # the reply given to the planner was the first step
    assert events[-1]["type"] == "run_finished" and events[-1]["summary"] == "did it"


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_event_of_the_trajectory_reaches_stream_json(cli, repo, tmp_path, strategy):
    script = write_script(tmp_path / "r.yaml", [*many_shells(3), finish("done"), finish("done"), *many_shells(20)])
    res = cli("run", "x", "-m", f"scripted:{script}", "--search", strategy, "--max-steps", "6", "-o", "stream-json",
              cwd=repo)  # fmt: skip
    streamed = [json.loads(line) for line in res.stdout.splitlines()]
    recorded = events_of(repo, streamed[0]["run_id"])
    assert [e["type"] for e in streamed] == [e.type for e in recorded]
    assert {"tool_call", "tool_result", "run_finished"} <= {e["type"] for e in streamed}
    if strategy != "none":
        assert {"node", "search"} <= {e["type"] for e in streamed}


# -- bad input: one line, a documented exit code, a JSON object with -o json --------------------------------


def one_line_error(res: subprocess.CompletedProcess[str], code: int) -> str:
    assert res.returncode == code, (res.returncode, res.stderr)
    assert "Traceback" not in res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("branchwise: error: ")]
    assert len(errors) == 1, res.stderr
    return errors[0]


@pytest.mark.parametrize("command", [["run", "x", "-m", "scripted:/dev/null"], ["runs"], ["config", "show"],
                                     ["doctor"], ["tree", "r1"], ["sandbox", "run", "--", "true"]])  # fmt: skip
def test_a_missing_cd_directory_is_a_usage_error_for_every_command(cli, tmp_path, command):
    at = 2 if command[0] in ("config", "sandbox") else 1
    res = cli(*command[:at], "-C", str(tmp_path / "nope"), *command[at:], cwd=tmp_path)
    assert "not a directory" in one_line_error(res, 2)


def test_json_output_always_ends_with_an_object_errors_included(cli, tmp_path):
    res = cli("run", "x", "-m", "scripted:/dev/null", "-C", str(tmp_path / "nope"), "-o", "json", cwd=tmp_path)
    obj = json.loads(res.stdout)
    assert obj["status"] == "error" and obj["exit_code"] == 2 and "not a directory" in obj["error"]
    bad_flag = cli("run", "x", "--max-steps", "many", "-o", "json", cwd=tmp_path)
    assert bad_flag.returncode == 2 and json.loads(bad_flag.stdout)["exit_code"] == 2


def test_tree_html_into_a_missing_directory_is_one_line(cli, repo, tmp_path):
    script = write_script(tmp_path / "r.yaml", [shell("echo hi"), finish()])
    run = json.loads(cli("run", "x", "-m", f"scripted:{script}", "--search", "mcts", "-o", "json", cwd=repo).stdout)
    res = cli("tree", run["run_id"], "--html", str(tmp_path / "no" / "such" / "dir" / "t.html"), cwd=repo)
    assert "cannot write" in one_line_error(res, 2)


def test_config_init_when_the_path_is_taken_by_a_directory_is_one_line(cli, repo, clean_env):
    target = Path(clean_env["XDG_CONFIG_HOME"]) / "branchwise" / "config.toml"
    target.mkdir(parents=True)
    assert "config.toml" in one_line_error(cli("config", "init", "--force", cwd=repo), 2)


def test_a_branchwise_file_instead_of_a_directory_is_one_line(cli, repo, tmp_path):
    (repo / ".branchwise").write_text("not a directory\n")
    script = write_script(tmp_path / "r.yaml", [finish()])
    assert "run log" in one_line_error(cli("run", "x", "-m", f"scripted:{script}", cwd=repo), 2)


def test_an_unwritable_state_directory_is_one_line(cli, repo, tmp_path, clean_env):
    state = tmp_path / "state-file"
    state.write_text("a file where the state directory should be\n")
    script = write_script(tmp_path / "r.yaml", [finish()])
    res = cli("run", "x", "-m", f"scripted:{script}", cwd=repo, env={"XDG_STATE_HOME": str(state)})
    assert "snapshots" in one_line_error(res, 4)


# -- which workspace ----------------------------------------------------------------------------------------


def test_outside_git_a_run_is_refused_unless_the_user_says_so(cli, tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "a.txt").write_text("a\n")
    script = write_script(tmp_path / "r.yaml", [finish("ok")])
    refused = cli("run", "x", "-m", f"scripted:{script}", cwd=plain)
    assert "not inside a git repository" in one_line_error(refused, 2)
    assert not (plain / ".branchwise").exists()
    allowed = cli("run", "x", "-m", f"scripted:{script}", "--no-git", "-o", "json", cwd=plain)
    assert allowed.returncode == 0 and json.loads(allowed.stdout)["status"] == "completed"


def test_a_task_files_directory_chooses_the_workspace(cli, tmp_path):
    project = make_repo(tmp_path / "project", {"README.md": "p\n"})
    elsewhere = make_repo(tmp_path / "elsewhere", {"README.md": "e\n"})
    write_script(project / "r.yaml", [shell("touch made-here"), finish()])
    (project / "task.toml").write_text('prompt = "make a file"\nmodel = "scripted:r.yaml"\n')
    res = cli("run", "-f", str(project / "task.toml"), "-o", "json", cwd=elsewhere)
    assert res.returncode == 0, res.stderr
    assert (project / "made-here").exists() and not (elsewhere / "made-here").exists()
    assert (project / ".branchwise" / "runs").is_dir() and not (elsewhere / ".branchwise").exists()


def test_a_tree_larger_than_the_limit_is_refused_before_its_first_snapshot(cli, repo, tmp_path, clean_env):
    for i in range(30):
        (repo / f"f{i}.txt").write_text("x\n")
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    script = write_script(tmp_path / "r.yaml", [finish()])
    res = cli("run", "x", "-m", f"scripted:{script}", cwd=repo, env={"BRANCHWISE_WORKSPACE_MAX_FILES": "20"})
    assert "more than 20 files" in one_line_error(res, 2)
    assert not (Path(clean_env["XDG_STATE_HOME"]) / "branchwise" / "shadow").exists()


# -- tables that fit the terminal -----------------------------------------------------------------------------


def run_in_terminal(args: list[str], cwd: Path, env: dict[str, str], columns: int) -> str:
    """The command's output as a terminal `columns` wide shows it."""
    import fcntl
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    proc = subprocess.Popen([str(BRANCHWISE), *args], cwd=cwd, env={**env, "COLUMNS": str(columns)},
                            stdin=follower, stdout=follower, stderr=follower)  # fmt: skip
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    os.close(leader)
    return b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.parametrize("command", [["runs"], ["config", "show"], ["doctor"]])
def test_listings_fit_an_80_column_terminal(cli, repo, tmp_path, clean_env, command):
    script = write_script(tmp_path / "r.yaml", [finish("a long summary " * 10)])
    cli("run", "a task with a long description " * 5, "-m", f"scripted:{script}", cwd=repo)
    text = re.sub(r"\x1b\[[0-9;]*m", "", run_in_terminal(command, repo, clean_env, 80))
    lines = [line for line in text.replace("\r", "").split("\n") if line.strip()]
    assert lines and max(len(line) for line in lines) <= 80, max(lines, key=len)


def test_listings_are_plain_aligned_text_when_not_a_terminal(cli, repo, tmp_path):
    script = write_script(tmp_path / "r.yaml", [finish()])
    cli("run", "first", "-m", f"scripted:{script}", cwd=repo)
    out = cli("runs", cwd=repo).stdout.splitlines()
    assert out[0].split() == ["run", "started", "status", "steps", "cost", "model", "task"]
    assert out[1].index("completed") == out[0].index("status")
    assert "\x1b[" not in "\n".join(out)
