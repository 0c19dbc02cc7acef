"""The GitHub Action's scripts, run locally the way the runner runs them (what needs a real runner: the
setup-python and upload-artifact steps, and installing from the action's checkout; see README)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import BRANCHWISE, ROOT

ACTION = ROOT / "action.yml"
SCRIPTS = ROOT / ".github" / "action"
WORKFLOW = ROOT / "examples" / "github" / "branchwise.yml"


def outputs(path: Path) -> dict[str, str]:
    """Parse GITHUB_OUTPUT's NAME<<DELIMITER blocks."""
    found, lines = {}, path.read_text().splitlines()
    i = 0
    while i < len(lines):
        name, _, delimiter = lines[i].partition("<<")
        end = lines.index(delimiter, i + 1)
        found[name] = "\n".join(lines[i + 1 : end])
        i = end + 1
    return found


def run_scripts(cwd: Path, env: dict[str, str], tmp_path: Path, **inputs: str) -> dict[str, str]:
    out = tmp_path / "action-out"
    full = {
        **env,
        "BW_ACTION_OUT": str(out),
        "BW_ACTION_BIN": str(BRANCHWISE),
        "GITHUB_OUTPUT": str(tmp_path / "gh-output"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "gh-summary"),
    }
    full.update({f"INPUT_{k.upper()}": v for k, v in inputs.items()})
    res = subprocess.run(
        ["bash", str(SCRIPTS / "run.sh")], cwd=cwd, env=full, capture_output=True, text=True, timeout=180
    )
    assert res.returncode == 0, res.stderr
    res = subprocess.run(
        [sys.executable, str(SCRIPTS / "report.py"), str(out)],
        cwd=cwd,
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    return outputs(tmp_path / "gh-output")


def test_action_runs_a_task_file_and_sets_outputs_summary_and_artifact(example_repo, clean_env, tmp_path):
    got = run_scripts(example_repo, clean_env, tmp_path, task_file="search.toml", approval="never", max_cost="1")
    assert got["status"] == "completed" and got["exit-code"] == "0"
    assert got["branch"].startswith("branchwise/") and got["run-id"]
    artifact = tmp_path / "action-out" / "artifact"
    assert (artifact / f"run-{got['run-id']}" / "events.jsonl").is_file()
    assert (artifact / "tree.html").read_text().count("str_replace") >= 2  # the mcts tree of the run
    assert json.loads((artifact / "result.json").read_text())["run_id"] == got["run-id"]
    summary = (tmp_path / "gh-summary").read_text()
    assert summary.startswith("## ✅ branchwise: completed") and got["branch"] in summary
    assert Path(got["summary-file"]).read_text() == summary


def test_action_passes_task_text_and_params_without_a_shell(example_repo, clean_env, tmp_path):
    (example_repo / "recipe.toml").write_text(
        'prompt = "{{ what }}"\nmodel = "scripted:replies.yaml"\nchecks = ["test {{ what }} = {{ what }}"]\n'
        '[params.what]\ntype = "string"\n'
    )
    got = run_scripts(example_repo, clean_env, tmp_path, task_file="recipe.toml", params="what=$(touch pwned) `x`\n")
    assert got["exit-code"] in ("0", "1"), got
    assert not (example_repo / "pwned").exists()
    got = run_scripts(example_repo, clean_env, tmp_path, task="$(touch pwned2); fix median", model="nope-model")
    assert got["status"] == "error" and got["exit-code"] == "2"
    assert not (example_repo / "pwned2").exists()


def test_report_escapes_untrusted_text(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    result = {
        "status": "completed",
        "exit_code": 0,
        "run_id": "r1",
        "summary": "<img src=x> | [a](http://e)\nline",
        "branch": None,
        "checks": [{"command": "echo `x`", "passed": True}],
        "changed_files": ["a<b>.py"],
    }
    (out / "result.json").write_text(json.dumps(result))
    env = {**os.environ, "GITHUB_OUTPUT": str(tmp_path / "o.txt"), "GITHUB_STEP_SUMMARY": str(tmp_path / "s.md")}
    subprocess.run([sys.executable, str(SCRIPTS / "report.py"), str(out)], env=env, check=True, capture_output=True)
    summary = (tmp_path / "s.md").read_text()
    assert "<img" not in summary and "&lt;img src=x&gt; \\| \\[a\\](http://e)<br>line" in summary
    assert "a&lt;b&gt;.py" in summary
    assert outputs(tmp_path / "o.txt")["branch"] == ""
    (out / "result.json").write_text("")  # no result at all: still outputs, exit code from the file or 4
    (out / "exit_code").write_text("4\n")
    (tmp_path / "o.txt").unlink()
    subprocess.run([sys.executable, str(SCRIPTS / "report.py"), str(out)], env=env, check=True, capture_output=True)
    assert outputs(tmp_path / "o.txt")["exit-code"] == "4"


def test_action_and_workflow_are_consistent_and_never_expand_inputs_in_shell():
    action = yaml.safe_load(ACTION.read_text())
    declared = set(action["inputs"])
    text = ACTION.read_text()
    assert set(re.findall(r"inputs\.([a-z-]+)", text)) <= declared
    for step in action["runs"]["steps"]:
        if "run" in step:
            assert "${{" not in step["run"], step  # inputs reach scripts as environment variables only
            for script in re.findall(r"\.github/action/([\w.]+)", step["run"]):
                assert (SCRIPTS / script).is_file()
    report_keys = set(re.findall(r'"([a-z-]+)": str\(', (SCRIPTS / "report.py").read_text()))
    assert {v["value"].split(".")[-1].rstrip(" }") for v in action["outputs"].values()} <= report_keys
    workflow = yaml.safe_load(WORKFLOW.read_text())
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            assert "${{" not in step.get("run", "")
    used = set(re.findall(r"steps\.bw\.outputs\.([a-z-]+)", WORKFLOW.read_text()))
    assert used and used <= set(action["outputs"])
