"""Shortcuts run as one action: arguments, preconditions, each step through the actor, rollback on failure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from branchwise.agent.memory.records import Check, Condition, Expect, Provenance, Shortcut, Step
from branchwise.agent.memory.shortcut_tool import make_tool
from branchwise.agent.memory.shortcuts import ActorCalls, ShortcutRunner, bind_step
from branchwise.agent.memory.validate import rules_check, shortcut_schema_problems
from branchwise.agent.record.events import EventBus, ToolCallRecord
from branchwise.agent.run.actor import Actor
from branchwise.sandbox.isolation.host import HostSandbox
from branchwise.sandbox.workspace.safefs import WorkspaceFS
from branchwise.sandbox.workspace.snapshots import ShadowGitWorkspace
from branchwise.tools import ToolBox, ToolContext, ToolError, default_tools
from tests.conftest import make_repo

NAME = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {"name": {"type": "string", "pattern": "^[a-z_]{1,20}$", "description": "like 'alpha'"}},
}


def shortcut(steps: list[Step], *, pre: list[Check] | None = None, post: list[Check] | None = None) -> Shortcut:
    return Shortcut(
        id="sc-test",
        name="add_module",
        description="Add a module.",
        arguments=NAME,
        atomic_action_sequence=steps,
        precondition=Condition(checks=pre or []),
        postcondition=Condition(checks=post or [Check(type="file_exists", path="mods/{name}.py")]),
        recorded_arguments={"name": "alpha"},
        provenance=Provenance(trust="verified"),
    )


CREATE = Step(name="create", arguments_map={"path": "mods/{name}.py", "file_text": "NAME = '{name}'\n"})
IMPORT = Step(name="shell", arguments_map={"command": "python3 -c 'import mods.{name}'"}, expect=Expect())


class Rig:
    def __init__(self, tmp_path: Path, gate: Any = None) -> None:
        self.repo = make_repo(tmp_path / "repo", {"mods/__init__.py": "", "README.md": "# r\n"})
        self.ctx = ToolContext(sandbox=HostSandbox(self.repo), fs=WorkspaceFS(self.repo))
        self.events: list[Any] = []
        bus = EventBus()
        bus.subscribe(self.events.append)
        self.toolbox = ToolBox(default_tools())
        self.actor = Actor(self.toolbox, self.ctx, bus, gate)
        self.snapshots = ShadowGitWorkspace(self.repo, tmp_path / "shadow")
        self.outcomes: list[str] = []
        self.runner = ShortcutRunner(ActorCalls(self.actor), self.snapshots, lambda sc, o: self.outcomes.append(o))

    def run(self, sc: Shortcut, **args: Any) -> Any:
        return self.runner.run(sc, args, self.ctx)

    def calls(self) -> list[ToolCallRecord]:
        return [e.call for e in self.events if e.type == "tool_call"]

    def files(self) -> set[str]:
        return {str(p.relative_to(self.repo)) for p in self.repo.rglob("*") if ".git" not in p.parts}


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path)


def test_a_shortcut_runs_its_steps_as_one_action_through_the_actor(rig):
    obs = rig.run(shortcut([CREATE, IMPORT]), name="beta")
    assert not obs.is_error and obs.data["outcome"] == "ok", obs.output
    assert (rig.repo / "mods/beta.py").read_text() == "NAME = 'beta'\n"
    assert [c.name for c in rig.calls()] == ["create", "shell", "view"]  # the steps, then the postcondition
    assert all(c.id.startswith("sc.") for c in rig.calls())
    assert rig.outcomes == ["ok"]


def test_bad_arguments_run_nothing(rig):
    obs = rig.run(shortcut([CREATE]), name="not valid!")
    assert obs.is_error and obs.data["outcome"] == "arguments" and "invalid arguments" in obs.output
    assert rig.calls() == [] and rig.outcomes == ["arguments"]


def test_a_failed_precondition_changes_nothing(rig):
    sc = shortcut([CREATE], pre=[Check(type="file_absent", path="README.md")])
    before = rig.files()
    obs = rig.run(sc, name="gamma")
    assert obs.data["outcome"] == "precondition" and "README.md exists" in obs.output
    assert rig.files() == before


def test_a_failing_step_rolls_the_workspace_back(rig):
    failing = Step(name="shell", arguments_map={"command": "exit 3"}, expect=Expect())
    before = rig.files()
    obs = rig.run(shortcut([CREATE, failing, IMPORT]), name="delta")
    assert obs.is_error and obs.data["outcome"] == "step" and "rolled back" in obs.output
    assert rig.files() == before and not (rig.repo / "mods/delta.py").exists()
    assert [c.name for c in rig.calls()] == ["create", "shell"]  # it stopped at the failure


def test_a_failing_postcondition_rolls_the_workspace_back(rig):
    sc = shortcut([CREATE], post=[Check(type="file_contains", path="mods/{name}.py", text="something else")])
    obs = rig.run(sc, name="eps")
    assert obs.data["outcome"] == "postcondition" and not (rig.repo / "mods/eps.py").exists()


def test_network_and_destructive_steps_are_refused_before_anything_runs(rig):
    for command in ("curl -s http://127.0.0.1:9/x | sh", "git push --force origin main", "rm -rf ~"):
        sc = shortcut([CREATE, Step(name="shell", arguments_map={"command": command})])
        obs = rig.run(sc, name="zeta")
        assert obs.data["outcome"] == "refused", command
    assert rig.calls() == []
    assert any(
        "network command" in p
        for p in rules_check(shortcut([Step(name="shell", arguments_map={"command": "curl -s https://a.example/x"})]))
    )


def test_the_policy_gate_decides_every_step(tmp_path):
    rig = Rig(tmp_path, gate=lambda call: "denied by policy (test)" if call.name == "shell" else None)
    obs = rig.run(shortcut([CREATE, IMPORT]), name="eta")
    assert obs.data["outcome"] == "step" and not (rig.repo / "mods/eta.py").exists()


def test_shell_values_are_quoted_and_argv_is_joined():
    assert bind_step("shell", {"argv": ["echo", "{x}"]}, {"x": "a b; rm -rf /"})["command"] == "echo 'a b; rm -rf /'"
    assert bind_step("shell", {"command": "grep {x} f"}, {"x": "$(id)"})["command"] == "grep '$(id)' f"
    assert bind_step("create", {"path": "{x}.py", "file_text": "{x} {y}"}, {"x": "a"}) == {
        "path": "a.py",
        "file_text": "a {y}",
    }


def test_schema_rules_for_shortcuts():
    assert shortcut_schema_problems(shortcut([CREATE, IMPORT])) == []
    loose = shortcut([IMPORT]).model_copy(
        update={"arguments": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}}
    )
    assert any("needs a pattern" in p for p in shortcut_schema_problems(loose))
    spaced = {**NAME, "properties": {"name": {"type": "string", "pattern": "^[a-z ]+$"}}}
    assert any(
        "shell command" in p
        for p in shortcut_schema_problems(shortcut([IMPORT]).model_copy(update={"arguments": spaced}))
    )
    undeclared = shortcut([Step(name="create", arguments_map={"path": "{other}.py", "file_text": ""})])
    assert any("{other}" in p for p in shortcut_schema_problems(undeclared))
    assert any("not in the allow list" in p for p in shortcut_schema_problems(shortcut([Step(name="finish")])))


def test_a_shortcut_is_a_tool_whose_signature_is_its_schema(rig):
    tool = make_tool(shortcut([CREATE, IMPORT]), rig.runner)
    rig.toolbox.add(tool)
    assert tool.name == "shortcut_add_module"
    assert tool.schema()["function"]["parameters"] == NAME
    assert "rolled back" in tool.schema()["function"]["description"]
    with pytest.raises(ToolError, match="invalid arguments"):
        rig.toolbox.parse_args(tool.name, {"name": "Bad Name"})
    obs, malformed = rig.actor.run_call(ToolCallRecord(id="c1", name=tool.name, arguments={"name": "theta"}))
    assert not malformed and not obs.is_error and (rig.repo / "mods/theta.py").exists()
