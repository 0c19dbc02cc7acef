"""The planner's stall detection does not depend on the machine: examples/inventory under CPU load, 20 runs in a row."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import PLANNING, ROOT, make_repo

INVENTORY = ROOT / "examples" / "inventory"
RUNS = 20


@pytest.fixture
def busy_cores():
    """One spinning process per core for as long as the test runs."""
    spinners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(max(2, os.cpu_count() or 2))
    ]
    try:
        yield
    finally:
        for proc in spinners:
            proc.kill()
            proc.wait()


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_inventory_plans_progresses_replans_and_condenses_on_a_loaded_machine(cli, tmp_path, busy_cores):
    missing = {}
    for run in range(RUNS):
        repo = make_repo(tmp_path / f"inventory-{run}", source=INVENTORY)
        res = cli("run", "-f", "task.toml", "-o", "stream-json", cwd=repo, env=PLANNING)
        assert res.returncode == 0, res.stderr
        kinds = {json.loads(line)["type"] for line in res.stdout.splitlines()}
        lacking = {"plan", "progress", "replan", "condense"} - kinds
        if lacking:
            missing[run] = sorted(lacking)
    assert not missing, f"runs without the planner's events: {missing}"
