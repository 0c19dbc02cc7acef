"""Task recipes: [params.NAME] filled by --param into the prompt and the checks; `branchwise validate`."""

from __future__ import annotations

import json

import pytest

from branchwise.agent.config.params import fill_task, parse_param_flags
from branchwise.agent.errors import ConfigError, UsageError
from tests.conftest import finish, make_repo, shell, write_script

RECIPE = """prompt = "Write {{ word }} into {{ file }}"
model = "scripted:replies.yaml"
checks = ["grep -qx {{ word }} {{ file }}"]

[params.word]
type = "string"
description = "What to write"

[params.file]
type = "string"
default = "out.txt"
choices = ["out.txt", "other.txt"]

[params.times]
type = "int"
default = 1
"""


@pytest.fixture
def recipe_repo(tmp_path):
    repo = make_repo(tmp_path / "repo", {"task.toml": RECIPE})
    write_script(repo / "replies.yaml", [shell("echo 'two words' > out.txt"), finish()])
    return repo


def test_params_fill_prompt_and_checks_shell_quoted():
    data = fill_task(
        {"prompt": "say {{word}}", "checks": ["grep -q {{ word }} f"], "params": {"word": {"type": "string"}}},
        {"word": "a b; rm -rf x"},
        "t.toml",
    )
    assert data["prompt"] == "say a b; rm -rf x"
    assert data["checks"] == ["grep -q 'a b; rm -rf x' f"]
    assert "params" not in data


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({}, "t.toml: parameter 'n' is required: pass --param n=VALUE"),
        ({"n": "three"}, "t.toml: parameter 'n' must be an integer (got 'three')"),
        ({"n": "5"}, "t.toml: parameter 'n' must be one of 1, 2, 3 (got 5)"),
        ({"n": "1", "m": "2"}, "t.toml: unknown parameter 'm' (declared: n)"),
    ],
)
def test_bad_params_are_one_line_errors(given, message):
    with pytest.raises(ConfigError) as err:
        fill_task({"prompt": "{{ n }}", "params": {"n": {"type": "int", "choices": [1, 2, 3]}}}, given, "t.toml")
    assert str(err.value) == message


def test_placeholder_without_param_and_bad_flag():
    with pytest.raises(ConfigError, match=r"\{\{ nope \}\} names no declared parameter"):
        fill_task({"prompt": "{{ nope }}"}, {}, "t.toml")
    with pytest.raises(UsageError, match="expected NAME=VALUE"):
        parse_param_flags(["novalue"])
    assert parse_param_flags(["a=b=c", "x="]) == {"a": "b=c", "x": ""}


def test_run_fills_the_recipe(cli, recipe_repo):
    res = cli("run", "-f", "task.toml", "--param", "word=two words", "-o", "json", cwd=recipe_repo)
    assert res.returncode == 0, res.stderr
    final = json.loads(res.stdout)
    assert final["checks"] == [{"command": "grep -qx 'two words' out.txt", "exit_code": 0, "passed": True}]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "parameter 'word' is required: pass --param word=VALUE"),
        (["--param", "word=x", "--param", "times=many"], "parameter 'times' must be an integer (got 'many')"),
        (["--param", "word=x", "--param", "file=etc.txt"], "parameter 'file' must be one of out.txt, other.txt"),
    ],
)
def test_run_with_a_missing_or_mistyped_param_is_one_line_exit_2(cli, recipe_repo, args, message):
    res = cli("run", "-f", "task.toml", *args, cwd=recipe_repo)
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and message in res.stderr and "Traceback" not in res.stderr


def test_param_without_task_file_is_exit_2(cli, recipe_repo):
    res = cli("run", "do it", "--param", "a=b", cwd=recipe_repo)
    assert res.returncode == 2 and "parameters need a task file" in res.stderr


def test_validate_reports_every_problem_one_line_each(cli, tmp_path):
    good = tmp_path / "good"
    good.mkdir()
    (good / "task.toml").write_text(RECIPE)
    write_script(good / "replies.yaml", [finish()])
    res = cli("validate", str(good / "task.toml"), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("ok  task")

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.toml").write_text('prompt = "fix {{ thing }}"\nmodel = "scripted:missing.yaml"\n')
    (bad / "b.toml").write_text('prompt = "x"\n[params.n]\ntype = "int"\ndefault = "many"\n')
    (bad / "c.toml").write_text('prompt = "x"\n[limits]\nmax_stepz = 3\n')
    (bad / "d.toml").write_text("prompt = \n")
    res = cli("validate", str(bad), cwd=tmp_path)
    assert res.returncode == 2
    lines = res.stderr.splitlines()
    assert all(line.startswith("branchwise: invalid: ") for line in lines)
    text = res.stderr
    assert "a.toml: prompt: {{ thing }} names no declared parameter" in text
    assert "a.toml: model: the scripted reply file" in text
    assert "b.toml: parameter 'n' must be an integer (got 'many')" in text
    assert "unknown key 'limits.max_stepz'" in text
    assert "d.toml: cannot read the task file" in text
    assert len(lines) == 5

    res = cli("validate", str(good / "task.toml"), "--param", "word=w", "--param", "times=x", cwd=tmp_path)
    assert res.returncode == 2 and "parameter 'times' must be an integer" in res.stderr
