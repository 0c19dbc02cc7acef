"""--help and --version stay light: no litellm, playwright, tree-sitter or the MCP SDK on the start-up path; a
subcommand's --help loads no pydantic, and `sandbox run` loads the sandbox and the configuration, not the agent.

These guard the import weight (which modules load), not the time: timed assertions flake on a loaded machine;
bench/startup.py measures the time."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("litellm", "playwright", "tree_sitter", "tree_sitter_language_pack", "openai", "mcp", "mcp_types", "ray")

PROBE = """
import json, sys
from branchwise.cli.main import app
sys.argv = ["branchwise", *json.loads(sys.argv[1])]
try:
    app()
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)))
"""

# The agent proper: the model layer, the run loop, the search, events and the policy gate.
AGENT = ("litellm", "branchwise.agent.models", "branchwise.agent.search", "branchwise.agent.run.session",
         "branchwise.agent.run.loop", "branchwise.agent.run.gate", "branchwise.agent.record.events",
         "branchwise.agent.plan", "branchwise.agent.memory", "branchwise.tools.shell")  # fmt: skip


def loaded_by(args: list[str], cwd: str | None = None) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args)], capture_output=True, text=True, check=True, cwd=cwd
    ).stdout.splitlines()
    loaded = set(json.loads(out[-1]))
    assert "branchwise.cli.main" in loaded  # the probe really ran the app
    return loaded


def heavy(loaded: set[str], names: tuple[str, ...]) -> set[str]:
    return {m for m in loaded if any(m == n or m.startswith(n + ".") for n in names)}


@pytest.mark.parametrize(
    "args",
    [["--help"], ["--version"], ["run", "--help"], ["config", "--help"], ["mcp", "--help"], ["mcp", "list", "--help"]],
)
def test_startup_imports_nothing_heavy(args):
    assert not heavy(loaded_by(args), HEAVY)


@pytest.mark.parametrize("args", [["run", "--help"], ["sandbox", "run", "--help"], ["memory", "--help"], ["--help"]])
def test_help_imports_no_pydantic(args):
    # typer coerces an unset --help flag through pydantic unless the group says otherwise (cli/main.py).
    assert not heavy(loaded_by(args), ("pydantic", "pydantic_core", "branchwise.agent.config"))


def test_sandbox_run_loads_the_sandbox_not_the_agent(tmp_path):
    loaded = loaded_by(["sandbox", "run", "--no-git", "--", "true"], cwd=str(tmp_path))
    assert "branchwise.sandbox.isolation.bwrap" in loaded  # it really ran the command in the sandbox
    assert not heavy(loaded, HEAVY + AGENT), heavy(loaded, HEAVY + AGENT)


def test_version():
    out = subprocess.run([sys.executable, "-m", "branchwise.cli.main", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("branchwise 0.")


BUILT = """
import json, sys
import branchwise.cli.groups as groups
built = []
build = groups.LazyTyper._build
groups.LazyTyper._build = lambda self, name, **kw: built.append(name) or build(self, name, **kw)
from branchwise.cli.main import app
sys.argv = ["branchwise", *json.loads(sys.argv[1])]
try:
    app()
except SystemExit:
    pass
print(json.dumps(built))
"""


@pytest.mark.parametrize(
    ("args", "built"),
    [(["--help"], []), (["--version"], []), (["run", "--help"], ["run"]), (["config", "show", "--help"], ["config"])],
)
def test_only_the_named_subcommand_is_built(args, built):
    # typer would build all thirty commands' parsers (their signatures and type hints) for any command line.
    out = subprocess.run([sys.executable, "-c", BUILT, json.dumps(args)], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.splitlines()[-1]) == built


def test_the_command_list_reads_as_the_built_commands_would():
    from branchwise.cli.main import app

    root = app.command_tree()
    names = list(root.commands)
    assert {"run", "config", "sandbox", "runs", "mcp", "memory", "batch", "eval", "tree", "doctor"} <= set(names)
    previews = {name: root.commands.preview(name) for name in names}
    for name in names:  # now build each one: its listing must not change
        built = root.commands[name]
        assert built.name == name
        assert (previews[name].get_short_help_str(60), previews[name].hidden) == (
            built.get_short_help_str(60),
            built.hidden,
        )
