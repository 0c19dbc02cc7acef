"""Acceptance: `branchwise batch examples/` runs every example task on a local Ray, each in its own copy, and
prints the summary; the examples themselves are untouched."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from branchwise.agent.batch.tasks import discover
from tests.conftest import BRANCHWISE, ROOT
from tests.support.netns import loopback_only, require_netns

pytestmark = [pytest.mark.slow, pytest.mark.timeout(630)]  # the batch's own 600 s limit fires first
EXAMPLES = ROOT / "examples"


def digest() -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(EXAMPLES.rglob("*")) if p.is_file()}


def test_batch_runs_every_example_task(clean_env, tmp_path):
    require_netns()
    before = digest()
    expected = {t.id for t in discover([str(EXAMPLES)])}
    out = tmp_path / "out"
    env = {k: v for k, v in clean_env.items() if k != "BRANCHWISE_PLANNER_ENABLED"}  # the examples' own settings
    res = subprocess.run(loopback_only([str(BRANCHWISE), "batch", str(EXAMPLES), "--out", str(out), "-j", "2"]),
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert {r["task_id"] for r in rows} == expected and all(r["passed"] for r in rows)
    table = res.stdout.splitlines()
    assert table[0].split()[:2] == ["task", "status"] and f"{len(expected)} tasks: {len(expected)} passed" in res.stdout
    assert all(any(line.startswith(task_id) for line in table) for task_id in expected)
    assert (out / "report.html").is_file() and digest() == before
    assert not (Path(clean_env["HOME"]) / ".ray").exists()  # the local Ray's token stayed in its session dir
