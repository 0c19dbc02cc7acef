"""`branchwise run` through the real entry point, on real git repositories, with the scripted model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from branchwise.agent.record.trajectory import read_events
from tests.conftest import BRANCHWISE, EXAMPLE, PLANNING, finish, make_repo, shell, write_script

CHECK = "python3 -m unittest discover -s tests -q"
FIX = {
    "tool_calls": [
        {
            "name": "str_replace",
            "arguments": {
                "path": "calc/stats.py",
                "old_str": "(ordered[middle] + ordered[middle + 1])",
                "new_str": "(ordered[middle - 1] + ordered[middle])",
            },
        }
    ]
}


def test_example_task_file_completes_with_json_result(cli, example_repo):
    res = cli("run", "-f", "task.toml", "-o", "json", cwd=example_repo, env=PLANNING)
    assert res.returncode == 0, res.stderr
    result = json.loads(res.stdout)
    assert result["status"] == "completed"
    assert result["steps"] == 4 and len(result["plan"]) == 2
    assert result["tokens"]["prompt"] > 0 and result["tokens"]["completion"] > 0
    assert result["cost_usd"] == 0
    assert result["checks"] == [{"command": CHECK, "exit_code": 0, "passed": True}]
    assert "Fix median()" in result["summary"]
    assert set(result) >= {
        "status",
        "run_id",
        "steps",
        "tokens",
        "cost_usd",
        "changed_files",
        "checks",
        "summary",
    }
    assert (example_repo / ".branchwise" / "runs" / result["run_id"] / "events.jsonl").is_file()
    # The example files in the repository itself are untouched: the run worked on a copy.
    assert "ordered[middle + 1]" in (EXAMPLE / "calc" / "stats.py").read_text()


def test_text_output_says_the_model_is_scripted(cli, example_repo):
    res = cli("run", "-f", "task.toml", cwd=example_repo, env=PLANNING)
    assert res.returncode == 0
    assert "a scripted model replaying a file, not an LLM" in res.stderr
    assert "status: completed" in res.stdout


def test_stream_json_prints_one_typed_event_per_line(cli, example_repo):
    res = cli("run", "-f", "task.toml", "-o", "stream-json", cwd=example_repo, env=PLANNING)
    assert res.returncode == 0
    events = [json.loads(line) for line in res.stdout.splitlines()]
    kinds = [e["type"] for e in events]
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished"
    assert {"model_reply", "plan", "tool_call", "tool_result", "step_finished", "progress", "check"} <= set(kinds)
    assert events[-1]["status"] == "completed"


def test_checks_that_keep_failing_exit_1(cli, example_repo, tmp_path):
    script = write_script(tmp_path / "r.yaml", [finish("nothing to do")] * 3)
    res = cli("run", "the task", "-m", f"scripted:{script}", "--check", CHECK, "-o", "json", cwd=example_repo,
              env={"BRANCHWISE_LIMITS_MAX_FINISH_REJECTIONS": "1"})  # fmt: skip
    result = json.loads(res.stdout)
    assert res.returncode == 1 and result["status"] == "failed"
    assert result["checks"][0]["exit_code"] == 1 and not result["checks"][0]["passed"]


def test_budget_exceeded_exits_3_and_still_reports_checks(cli, example_repo, tmp_path):
    script = write_script(tmp_path / "r.yaml", [shell("true")] * 5)
    res = cli("run", "loop", "-m", f"scripted:{script}", "--max-steps", "2", "--check", CHECK, "-o", "json",
              cwd=example_repo)  # fmt: skip
    result = json.loads(res.stdout)
    assert res.returncode == 3 and result["status"] == "budget_exceeded"
    assert result["steps"] == 2 and result["checks"][0]["exit_code"] == 1


def test_script_exhausted_is_a_one_line_error_exit_1(cli, example_repo, tmp_path):
    script = write_script(tmp_path / "r.yaml", [shell("true")])
    res = cli("run", "x", "-m", f"scripted:{script}", cwd=example_repo)
    assert res.returncode == 1
    errors = [line for line in res.stderr.splitlines() if line.startswith("branchwise: error:")]
    assert len(errors) == 1 and "ran out of scripted replies after 1" in errors[0]
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ({"config": "[limits]\nmax_stepz = 1\n"}, "unknown key 'limits.max_stepz'"),
        ({"config": "model = [\n"}, "invalid TOML"),
        ({"args": ["-m", "no-such-model-xyz"]}, "unknown model 'no-such-model-xyz'"),
        ({"args": ["-m", "openai/gpt-4o-mini"]}, "missing API key for openai/gpt-4o-mini"),
        ({"args": ["-m", "anthropic/claude-sonnet-4-5"]}, "set ANTHROPIC_API_KEY"),
        ({"args": []}, "no model configured"),
        ({"args": ["-m", "scripted:/nonexistent/replies.yaml"]}, "cannot read scripted replies"),
        ({"args": ["-o", "xml"]}, "--output-format must be one of"),
    ],
)
def test_configuration_problems_are_one_line_with_exit_2(cli, tmp_path, setup, expected):
    repo = make_repo(tmp_path / "repo", {"README.md": "r\n"})
    (repo / ".branchwise").mkdir(parents=True)
    if "config" in setup:
        (repo / ".branchwise" / "config.toml").write_text(setup["config"])
    res = cli("run", "do something", *setup.get("args", ["-m", "scripted:x.yaml"]), cwd=repo)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("branchwise: error:") and expected in lines[0], lines


def test_no_task_is_a_usage_error(cli, example_repo, tmp_path):
    script = write_script(tmp_path / "r.yaml", [finish()])
    res = cli("run", "-m", f"scripted:{script}", cwd=example_repo)
    assert res.returncode == 2 and "no task given" in res.stderr


def test_task_from_stdin(cli, example_repo, tmp_path):
    script = write_script(tmp_path / "r.yaml", [finish("read it")])
    res = cli(
        "run",
        "-",
        "-m",
        f"scripted:{script}",
        "-o",
        "stream-json",
        cwd=example_repo,
        input="task from stdin\n",
    )
    first = json.loads(res.stdout.splitlines()[0])
    assert res.returncode == 0 and first["task"] == "task from stdin\n"


def test_agents_md_reaches_the_system_prompt(cli, example_repo, tmp_path):
    script = write_script(tmp_path / "r.yaml", [finish()])
    cli("run", "x", "-m", f"scripted:{script}", cwd=example_repo)
    from branchwise.agent.run.prompts import find_instructions

    found = find_instructions(example_repo, ["AGENTS.md", "CLAUDE.md"])
    assert found is not None and "unittest discover" in found[1]


def _start(example_repo: Path, clean_env: dict[str, str], script: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(BRANCHWISE), "run", "x", "-m", f"scripted:{script}", "-o", "stream-json"],
        cwd=example_repo,
        env=clean_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_events(run_root: Path, predicate, timeout: float = 20.0) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in run_root.glob("*/events.jsonl"):
            if predicate(path.read_text()):
                return path
        time.sleep(0.05)
    raise AssertionError("the run did not get that far")


def test_sigkill_mid_run_leaves_a_parsable_trajectory(example_repo, clean_env, tmp_path):
    script = write_script(tmp_path / "r.yaml", [shell("echo one"), shell("echo two"), shell("sleep 30"), finish()])
    with _start(example_repo, clean_env, script) as proc:
        try:
            path = _wait_for_events(example_repo / ".branchwise" / "runs", lambda t: "sleep 30" in t)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=10)
    events = read_events(path)
    finished_steps = [e.step for e in events if e.type == "step_finished"]
    assert finished_steps == [1, 2]
    assert [e.output for e in events if e.type == "tool_result"] == [
        "one\n[exit code: 0]",
        "two\n[exit code: 0]",
    ]
    last_call = [e for e in events if e.type == "tool_call"][-1]
    assert last_call.call.arguments == {"command": "sleep 30"} and events[-1].step == 3
    from branchwise.agent.record.trajectory import list_runs

    assert list_runs(example_repo)[0].status == "incomplete"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_exits_130_and_records_it(example_repo, clean_env, tmp_path, sig):
    script = write_script(tmp_path / "r.yaml", [shell("sleep 30"), finish()])
    with _start(example_repo, clean_env, script) as proc:
        try:
            path = _wait_for_events(example_repo / ".branchwise" / "runs", lambda t: "sleep 30" in t)
            time.sleep(0.2)
        finally:
            os.kill(proc.pid, sig)
            out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 130
    assert json.loads(out.splitlines()[-1])["status"] == "interrupted"
    assert read_events(path)[-1].status == "interrupted"


def test_runs_lists_and_replay_matches_a_plain_run(cli, example_repo):
    res = cli("run", "-f", "task.toml", "-o", "json", cwd=example_repo, env=PLANNING)
    run_id = json.loads(res.stdout)["run_id"]
    listed = cli("runs", "--json", cwd=example_repo)
    runs = json.loads(listed.stdout)
    assert [r["run_id"] for r in runs] == [run_id] and runs[0]["status"] == "completed" and runs[0]["steps"] == 4
    assert run_id in cli("runs", cwd=example_repo).stdout
    # The workspace has moved on since the run (the fix is in); replay starts from the recorded start state.
    replay = cli("replay", run_id, cwd=example_repo)
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert "4 of 4 observations match" in replay.stdout and "status completed (recorded: completed)" in replay.stdout


def test_replay_reports_a_step_whose_observation_changed(cli, example_repo, tmp_path):
    script = write_script(tmp_path / "r.yaml", [shell("cat data.txt"), finish()])
    (example_repo / "data.txt").write_text("before\n")
    run_id = json.loads(cli("run", "x", "-m", f"scripted:{script}", "-o", "json", cwd=example_repo).stdout)["run_id"]
    events = example_repo / ".branchwise" / "runs" / run_id / "events.jsonl"
    # Rewrite history: pretend the command printed something else when it was recorded.
    events.write_text(events.read_text().replace("before\\n[exit code: 0]", "after\\n[exit code: 0]"))
    replay = cli("replay", run_id, cwd=example_repo)
    assert replay.returncode == 1
    assert "DIFFERS" in replay.stdout and "-after" in replay.stdout and "+before" in replay.stdout


def test_replay_of_an_unknown_run_is_a_usage_error(cli, example_repo):
    res = cli("replay", "nope", cwd=example_repo)
    assert res.returncode == 2 and "no run 'nope'" in res.stderr


def test_a_run_leaves_git_status_clean_apart_from_the_agents_changes(cli, example_repo):
    cli("run", "-f", "task.toml", cwd=example_repo, env=PLANNING)
    status = subprocess.run(["git", "status", "--porcelain"], cwd=example_repo, capture_output=True, text=True).stdout
    assert status.splitlines() == [" M calc/stats.py"]
    (example_repo / ".branchwise" / "config.toml").write_text("[limits]\nmax_steps = 9\n")
    status = subprocess.run(["git", "status", "--porcelain"], cwd=example_repo, capture_output=True, text=True).stdout
    assert "?? .branchwise/" in status.splitlines()  # a project config can still be committed


@pytest.mark.parametrize("fmt", ["stream-json", "json", "text"])
def test_a_reader_that_closes_stdout_early_loses_nothing(clean_env, example_repo, tmp_path, fmt):
    # `branchwise run -o stream-json ... | head -1`: the run once died at the next event with exit 1, no word
    # on stderr, and a trajectory without its ending.
    script = write_script(tmp_path / "r.yaml", [shell("echo one"), shell("echo two"), finish("said it")])
    argv = [str(BRANCHWISE), "run", "say it", "-m", f"scripted:{script}", "--no-plan", "-o", fmt]
    proc = subprocess.Popen(argv, cwd=example_repo, env=clean_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    if fmt == "stream-json":
        assert json.loads(proc.stdout.readline())["type"] == "run_started"
    proc.stdout.close()
    with proc.stderr:
        err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, err  # the run's own exit code: it completed
    assert "standard output was closed; the run goes on" in err and "Traceback" not in err, err
    (run_dir,) = (example_repo / ".branchwise" / "runs").iterdir()
    last = read_events(run_dir / "events.jsonl")[-1]
    assert last.type == "run_finished" and last.status == "completed"
