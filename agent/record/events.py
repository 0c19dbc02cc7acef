"""Typed events: every step emits them; the trajectory, the renderers and replay all read the same ones."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter


class ToolCallRecord(BaseModel):
    """A tool call as the model made it (arguments may be unparsable text)."""

    id: str
    name: str
    arguments: dict[str, Any] | None = None
    raw_arguments: str | None = None

    def args_key(self) -> str:
        """The arguments in a canonical form, for comparing calls (key order does not matter)."""
        if self.raw_arguments is not None and self.arguments is None:
            try:
                return json.dumps(json.loads(self.raw_arguments), sort_keys=True)
            except json.JSONDecodeError:
                return self.raw_arguments
        return json.dumps(self.arguments or {}, sort_keys=True)


class Usage(BaseModel):
    """Tokens of one model call or of a whole run."""

    prompt: int = 0
    completion: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(prompt=self.prompt + other.prompt, completion=self.completion + other.completion)


class CheckResult(BaseModel):
    """One task check: a shell command whose exit status says whether the task succeeded."""

    command: str
    exit_code: int
    passed: bool
    output: str = ""
    duration_s: float = 0.0


class _Event(BaseModel):
    run_id: str = ""
    step: int = 0
    ts: float = Field(default_factory=time.time)


class RunStarted(_Event):
    type: Literal["run_started"] = "run_started"
    task: str
    model: str
    workspace: str
    sandbox: dict[str, Any] = {}
    config: dict[str, Any] = {}
    start_snapshot: str | None = None
    version: str = ""
    start_head: str | None = None
    """The commit HEAD pointed at when the run started (in a git repository with commits)."""


Purpose = Literal["act", "judge", "choose", "plan", "reflect"]


class ModelReply(_Event):
    type: Literal["model_reply"] = "model_reply"
    content: str | None = None
    tool_calls: list[ToolCallRecord] = []
    usage: Usage = Usage()
    cost_usd: float = 0.0
    model: str = ""
    purpose: Purpose = "act"
    truncated: bool = False
    """The reply stopped at the output-token limit."""


class ModelDelta(_Event):
    """A piece of a reply while it streams in (text, or a fragment of tool call `index`). Transient: renderers
    show it, the trajectory does not keep it (the whole reply follows as `model_reply`)."""

    type: Literal["model_delta"] = "model_delta"
    content: str = ""
    index: int | None = None
    """The tool call this fragment belongs to (None: text)."""
    name: str | None = None
    arguments: str = ""
    purpose: Purpose = "act"


TRANSIENT_TYPES = frozenset({"model_delta"})
"""Events for live views only: not written to the trajectory, not part of `Event`."""


class ToolCall(_Event):
    type: Literal["tool_call"] = "tool_call"
    call: ToolCallRecord


class PolicyDecision(_Event):
    type: Literal["policy"] = "policy"
    call_id: str
    tool: str
    decision: Literal["allow", "ask", "deny"]
    rule: str
    reason: str = ""
    approved: bool | None = None


class Egress(_Event):
    """One decision of the sandbox's network proxy (network = proxy): which host, allowed or not, and why."""

    type: Literal["egress"] = "egress"
    method: str
    host: str
    port: int
    action: Literal["allow", "deny"]
    reason: str = ""


class ToolResult(_Event):
    type: Literal["tool_result"] = "tool_result"
    call_id: str
    name: str
    output: str
    is_error: bool = False
    data: dict[str, Any] = {}
    duration_s: float = 0.0


class FormatError(_Event):
    type: Literal["format_error"] = "format_error"
    message: str


class Check(_Event):
    type: Literal["check"] = "check"
    result: CheckResult


class StepFinished(_Event):
    type: Literal["step_finished"] = "step_finished"
    usage: Usage = Usage()
    cost_usd: float = 0.0


class SearchNode(_Event):
    type: Literal["node"] = "node"
    node: int
    parent: int | None = None
    depth: int = 0
    action: str = ""
    kind: str = ""
    reward: float | None = None
    visits: int = 0
    status: str = "open"


class SearchDone(_Event):
    type: Literal["search"] = "search"
    strategy: str
    chosen: int | None = None
    alternatives: list[int] = []
    nodes: int = 0
    stop_reason: str = ""


class PlanMade(_Event):
    type: Literal["plan"] = "plan"
    subgoals: list[dict[str, Any]]
    facts: list[str] = []
    revision: int = 0
    """0 for the first plan, then one more per re-plan."""
    given: bool = False
    """True when the task file supplied the plan."""


class Progress(_Event):
    type: Literal["progress"] = "progress"
    subgoal: int
    title: str = ""
    done: bool = False
    looping: bool = False
    progressing: bool = True
    stalled_steps: int = 0
    failures: int = 0
    decision: Literal["continue", "advance", "replan"] = "continue"
    reason: str = ""


class Replan(_Event):
    type: Literal["replan"] = "replan"
    subgoal: int
    reason: str
    facts: list[str] = []
    revision: int = 1


class Condense(_Event):
    type: Literal["condense"] = "condense"
    reason: str
    dropped: list[str] = []
    """What was replaced or removed, one line each."""
    kept: list[str] = []
    """What is pinned and never dropped."""
    messages_before: int = 0
    messages_after: int = 0
    tokens_before: int = 0
    tokens_after: int = 0


class MemoryRetrieved(_Event):
    """Items long-term memory offered a run: tips rendered into a prompt, shortcuts offered as tools."""

    type: Literal["memory_retrieved"] = "memory_retrieved"
    purpose: str = "act"
    """Who asked: plan (the planner), act (the executor's prompt), tools (shortcuts offered as tools)."""
    query: str = ""
    repo: str = ""
    ids: list[str] = []
    items: list[dict[str, Any]] = []
    """One entry per item: id, kind, trust, score, and the shortcut's tool name."""
    tokens: int = 0


class MemoryWritten(_Event):
    """A change to long-term memory: an item added, updated, promoted, retired, or its use counted."""

    type: Literal["memory_written"] = "memory_written"
    op: str
    """add, update, promote, deprecate, quarantine, merge, feedback, classify."""
    id: str = ""
    kind: str = ""
    status: str = ""
    trust: str = ""
    reason: str = ""


class Warning(_Event):
    type: Literal["warning"] = "warning"
    message: str


class RunFinished(_Event):
    type: Literal["run_finished"] = "run_finished"
    status: str
    exit_code: int
    summary: str = ""
    error: str | None = None
    steps: int = 0
    tokens: Usage = Usage()
    cost_usd: float = 0.0
    changed_files: list[str] = []
    checks: list[CheckResult] = []
    duration_s: float = 0.0
    limit: str | None = None
    """With status budget_exceeded: the limit that was reached (steps, model_calls, tokens, cost, wall)."""
    model_calls: int = 0
    start_snapshot: str | None = None
    end_snapshot: str | None = None
    """Snapshots of the workspace before and after the run (for diff and undo)."""
    memory: dict[str, Any] = {}
    """Long-term memory items the run retrieved, used and wrote (ids)."""
    branch: str | None = None
    """The branch a verified result was committed on (git.commit), or None."""
    model: str | None = None
    """The model's name (scripted:PATH for a scripted one)."""
    strategy: str | None = None
    """The search strategy: none, best-of-n or mcts."""


Event = Annotated[
    RunStarted
    | ModelReply
    | ToolCall
    | PolicyDecision
    | Egress
    | ToolResult
    | FormatError
    | Check
    | StepFinished
    | SearchNode
    | SearchDone
    | PlanMade
    | Progress
    | Replan
    | Condense
    | MemoryRetrieved
    | MemoryWritten
    | Warning
    | RunFinished,
    Field(discriminator="type"),
]
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)

Subscriber = Callable[[Any], None]


class EventBus:
    """Fans events out to subscribers, stamping each with the run id and current step."""

    def __init__(self, run_id: str = "") -> None:
        self.run_id = run_id
        self.step = 0
        self._subscribers: list[tuple[Subscriber, bool]] = []  # (subscriber, whether it is only a display)
        self.wants_deltas = False
        """A live view is subscribed: model calls stream and emit `model_delta` events."""

    def subscribe(self, subscriber: Subscriber, *, first: bool = False, display: bool = False) -> None:
        """Add a subscriber; `first` puts it before the others (the trajectory must see events first).
        A `display` only shows events: when it fails, it is dropped with a one-line notice on stderr and
        the run goes on (its events are still recorded); any other subscriber's error is the run's."""
        self._subscribers.insert(0 if first else len(self._subscribers), (subscriber, display))

    def emit(self, event: _Event) -> None:
        event.run_id = self.run_id
        if not event.step:
            event.step = self.step
        for subscriber, display in self._subscribers:  # a failed display rebinds the list, not this loop's
            if not display:
                subscriber(event)
                continue
            try:
                subscriber(event)
            except Exception as exc:
                self._subscribers = [pair for pair in self._subscribers if pair[0] is not subscriber]
                first = (str(exc).splitlines() or [""])[0]
                sys.stderr.write(f"branchwise: the display stopped ({type(exc).__name__}: {first}); the run goes "
                                 "on and its events are still saved\n")  # fmt: skip
