"""`make demo` end to end: the example's failing test gets fixed in a copy; the example itself is untouched."""

from __future__ import annotations

import hashlib
import subprocess
import sys

from tests.conftest import EXAMPLE, ROOT


def digest() -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(EXAMPLE.rglob("*")) if p.is_file()}


def test_demo_fixes_the_example_on_a_copy(clean_env):
    before = digest()
    env = {k: v for k, v in clean_env.items() if k != "BRANCHWISE_PLANNER_ENABLED"}  # the demo runs with defaults
    res = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "run_demo.py")], env=env, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "a SCRIPTED model replays" in res.stdout and "(a scripted model replaying a file, not an LLM)" in res.stderr
    assert "status: completed" in res.stdout
    assert "+    return (ordered[middle - 1] + ordered[middle]) / 2" in res.stdout
    assert digest() == before


def test_mcts_example_explores_two_branches(cli, tmp_path):
    from tests.conftest import make_repo

    repo = make_repo(tmp_path / "calc", source=EXAMPLE)
    res = cli("run", "-f", "search.toml", "--search", "mcts", "--model", "scripted:replies-search.yaml", "-o", "json",
              cwd=repo)  # fmt: skip
    assert res.returncode == 0, res.stderr
    run_id = __import__("json").loads(res.stdout)["run_id"]
    drawn = cli("tree", run_id, cwd=repo).stdout
    assert drawn.count("str_replace") == 2 and "reward 0.70" in drawn and "verified" in drawn and "chosen" in drawn
