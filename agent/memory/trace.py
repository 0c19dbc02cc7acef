"""A run's trajectory as the reflector reads it: the task, each tool call with its outcome, the checks, the end.

Built from the run's events (`.branchwise/runs/<id>/events.jsonl`: run_started with the task and the start
snapshot, model_reply, tool_call, tool_result, check, run_finished with status and checks) and from the
memory events of the run (which items were retrieved, which shortcuts were called).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from branchwise.agent.memory.content import Provenance
from branchwise.agent.memory.records import SHORTCUT_TOOL_PREFIX, Verification
from branchwise.agent.record.events import CheckResult, ToolCallRecord

SHORTCUT_STEP_PREFIX = "sc."
"""Call ids of the steps a shortcut runs start with this, so a trace can tell them from the model's calls."""
_FILE_TOOLS = frozenset({"view", "grep", "glob"})
_EDIT_TOOLS = frozenset({"create", "str_replace", "insert"})
_WEB_TOOLS = ("browser", "fetch", "web")


@dataclass
class TraceStep:
    """One tool call and what came of it."""

    index: int
    step: int
    call: ToolCallRecord
    output: str = ""
    is_error: bool = False
    exit_code: int | None = None
    refused: bool = False
    answered: bool = False

    @property
    def ok(self) -> bool:
        """It ran and succeeded: no tool error, no refusal, exit code 0 for commands."""
        return self.answered and not self.is_error and not self.refused and self.exit_code in (None, 0)

    @property
    def args(self) -> dict[str, Any]:
        return self.call.arguments or {}

    @property
    def inner(self) -> bool:
        """A step a shortcut ran (not a call the model made)."""
        return self.call.id.startswith(SHORTCUT_STEP_PREFIX)

    @property
    def is_shortcut(self) -> bool:
        return self.call.name.startswith(SHORTCUT_TOOL_PREFIX)


@dataclass
class Trace:
    """What the reflector and the feedback step know about one run."""

    run_id: str = ""
    task: str = ""
    model: str = ""
    workspace: str = ""
    start_snapshot: str | None = None
    configured_checks: list[str] = field(default_factory=list)
    steps: list[TraceStep] = field(default_factory=list)
    checks: list[CheckResult] = field(default_factory=list)
    status: str = "incomplete"
    model_calls: int = 0
    retrieved: list[str] = field(default_factory=list)
    network_used: bool = False
    untrusted: list[tuple[str, str]] = field(default_factory=list)
    """(source, text) of everything the run read: file contents, command output, web pages."""
    verified_as: Verification | None = None
    """Set when the caller knows better than the events (the user accepted the run in the REPL, or the run has
    not emitted run_finished yet)."""

    @property
    def calls(self) -> list[TraceStep]:
        """The calls the model made (not the steps shortcuts ran for it), finish excluded."""
        return [s for s in self.steps if not s.inner and s.call.name != "finish"]

    def verification(self) -> Verification:
        """checks when the run completed and every check it ran at the end passed; none otherwise."""
        if self.verified_as is not None:
            return self.verified_as
        if self.status == "completed" and self.checks and all(c.passed for c in self.checks):
            return "checks"
        return "none"

    def provenance(self) -> Provenance:
        """The user's words as trusted text, everything the run read as untrusted."""
        prov = Provenance(Path(self.workspace) if self.workspace else None)
        prov.add_trusted(self.task)
        for check in self.configured_checks:
            prov.add_trusted(check)
        for source, text in self.untrusted:
            prov.add_untrusted(text, source)
        for step in self.steps:
            if step.ok and step.call.name in _EDIT_TOOLS:
                for key in ("old_str", "new_str", "file_text"):
                    if isinstance(step.args.get(key), str):
                        prov.add_data(step.args[key])
        return prov

    def trace_ref(self, step: int | None = None) -> str:
        ref = f".branchwise/runs/{self.run_id}/events.jsonl"
        return f"{ref}#step{step}" if step is not None else ref


def trace_of(events: Iterable[Any]) -> Trace:
    """Fold a run's events (pydantic events or their dicts) into a Trace."""
    from branchwise.agent.record.events import EVENT_ADAPTER

    trace = Trace()
    by_id: dict[str, TraceStep] = {}
    for raw in events:
        event = EVENT_ADAPTER.validate_python(raw) if isinstance(raw, dict) else raw
        _fold(trace, by_id, event)
    return trace


def load_trace(path: Path) -> Trace:
    """The trace of a run from its events.jsonl."""
    from branchwise.agent.record.trajectory import read_events

    return trace_of(read_events(path))


def _fold(trace: Trace, by_id: dict[str, TraceStep], e: Any) -> None:
    kind = e.type
    if kind == "run_started":
        trace.run_id, trace.task, trace.model, trace.workspace = e.run_id, e.task, e.model, e.workspace
        trace.start_snapshot = e.start_snapshot
        trace.configured_checks = [str(c) for c in (e.config or {}).get("checks", [])]
    elif kind == "model_reply" and e.purpose in ("act", "plan"):
        trace.model_calls += 1
    elif kind == "tool_call":
        step = TraceStep(index=len(trace.steps), step=e.step, call=e.call)
        trace.steps.append(step)
        by_id[e.call.id] = step
    elif kind == "policy" and e.decision != "allow" and not e.approved and e.call_id in by_id:
        by_id[e.call_id].refused = True
    elif kind == "tool_result" and e.call_id in by_id:
        _answer(trace, by_id[e.call_id], e)
    elif kind == "egress":
        trace.network_used = trace.network_used or e.action == "allow"
    elif kind == "check":
        trace.checks.append(e.result)
    elif kind == "memory_retrieved":
        trace.retrieved.extend(i for i in e.ids if i not in trace.retrieved)
    elif kind == "run_finished":
        trace.status = e.status
        if e.checks:
            trace.checks = list(e.checks)


def _answer(trace: Trace, step: TraceStep, e: Any) -> None:
    step.answered = True
    step.output, step.is_error = e.output, e.is_error
    code = e.data.get("exit_code")
    step.exit_code = code if isinstance(code, int) else None
    step.refused = step.refused or bool(e.data.get("refused"))
    name = e.name
    source = "web" if name.startswith(_WEB_TOOLS) else "file" if name in _FILE_TOOLS else "tool_output"
    if e.output.strip():
        trace.untrusted.append((f"{source} ({name} step {e.step})", e.output))
