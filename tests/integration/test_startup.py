"""--help and --version stay light: no litellm, playwright, tree-sitter or the MCP SDK on the start-up path."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("litellm", "playwright", "tree_sitter", "tree_sitter_language_pack", "openai", "mcp", "mcp_types")

PROBE = """
import json, sys
from branchwise.cli.main import app
sys.argv = ["branchwise", *json.loads(sys.argv[1])]
try:
    app()
except SystemExit:
    pass
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
"""


@pytest.mark.parametrize(
    "args",
    [["--help"], ["--version"], ["run", "--help"], ["config", "--help"], ["mcp", "--help"], ["mcp", "list", "--help"]],
)
def test_startup_imports_nothing_heavy(args):
    out = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args)], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    loaded = set(json.loads(out[-1]))
    assert "branchwise" in loaded  # the probe really ran the app
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_version():
    out = subprocess.run([sys.executable, "-m", "branchwise.cli.main", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("branchwise 0.")
