"""`branchwise map` through the real entry point."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import make_repo
from tests.integration.test_startup import HEAVY, PROBE

FILES = {
    "app/core.py": "class Engine:\n    def start(self):\n        return ignite()\n\n\ndef ignite():\n    return 1\n",
    "app/cli.py": "from app.core import Engine\n\n\ndef main():\n    Engine().start()\n",
    "README.md": "# demo\n",
}


def test_map_prints_the_map_and_its_figures(cli, tmp_path):
    repo = make_repo(tmp_path / "repo", FILES)
    res = cli("map", cwd=repo)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[0].startswith("Repository map")
    assert "app/core.py:" in res.stdout and "1│class Engine:" in res.stdout
    assert "tokens (tiktoken cl100k_base)" in res.stderr and "2 source files (2 parsed" in res.stderr
    data = json.loads(cli("map", "app/cli.py", "--tokens", "60", "--json", cwd=repo).stdout)
    assert data["tokens"] <= 60 and data["cached"] == 2 and data["parsed"] == 0
    assert data["map"].splitlines()[1] == "app/cli.py:"


def test_map_usage_errors_are_one_line(cli, tmp_path):
    repo = make_repo(tmp_path / "repo", FILES)
    for args in (["map", "nowhere"], ["map", "--tokens", "0"], ["map", str(tmp_path)]):
        res = cli(*args, cwd=repo)
        assert res.returncode == 2 and res.stderr.count("\n") == 1, (args, res.stderr)


@pytest.mark.parametrize("command", ["map", "undo", "diff"])
def test_help_of_the_new_commands_imports_nothing_heavy(command):
    out = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps([command, "--help"])], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    loaded = set(json.loads(out[-1]))
    assert "branchwise" in loaded
    assert not loaded & {*HEAVY, "git", "numpy", "tiktoken", "gitdb"}
