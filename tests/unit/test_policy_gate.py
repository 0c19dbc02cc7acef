from __future__ import annotations

from pathlib import Path

from branchwise.agent.record.events import EventBus, ToolCallRecord
from branchwise.agent.run.gate import PolicyGate
from branchwise.sandbox.policy.engine import Policy, TaintTracker
from branchwise.sandbox.settings import PolicySettings, SandboxSettings


def gate(tmp_path: Path, approver=None):
    bus, events = EventBus(), []
    bus.subscribe(events.append)
    policy = Policy.from_settings(PolicySettings(), SandboxSettings(), tmp_path)
    return PolicyGate(policy, bus, taint=TaintTracker(tmp_path), approver=approver), events


PUSH = ToolCallRecord(id="c1", name="shell", arguments={"command": "git push origin main"})


def test_an_ask_is_put_to_the_approver_and_recorded(tmp_path):
    asked = []
    g, events = gate(tmp_path, approver=lambda call, decision: asked.append(decision.rule) or True)
    assert g(PUSH) is None
    assert asked == ["default:git-push"]
    assert (events[0].decision, events[0].rule, events[0].approved) == ("ask", "default:git-push", True)


def test_a_declined_ask_says_the_user_declined(tmp_path):
    g, events = gate(tmp_path, approver=lambda call, decision: False)
    assert g(PUSH).startswith("the user did not approve it")
    assert events[0].approved is False


def test_without_an_approver_an_ask_is_refused_headless(tmp_path):
    g, _ = gate(tmp_path)
    assert "nobody can approve it in this run" in g(PUSH)
