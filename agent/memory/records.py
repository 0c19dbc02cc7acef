"""The records of long-term memory: tips (short lessons) and shortcuts (parameterised action sequences).

The fields follow the research note (search-and-memory.md, b.1): Mobile-Agent-E's tip list made into single
records that can be updated or retired, and its shortcut format (`name, arguments, description, precondition,
atomic_action_sequence[{name, arguments_map}]`) extended with a JSON Schema for the arguments, programmatic
pre- and postconditions, declared side effects, provenance, evidence, statistics and a sha256.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

Kind = Literal["tip", "shortcut"]
Status = Literal["candidate", "active", "deprecated", "quarantined", "superseded"]
"""candidate: written, not yet trusted; active: retrieved into runs; deprecated: retired (kept);
quarantined: broke a content or integrity rule; superseded: replaced by a newer version (kept for rollback)."""
Trust = Literal["verified", "observed", "untrusted"]
"""verified: from a run whose checks passed (or signed by the user); observed: from a run the user accepted
without checks, or imported; untrusted: derived from content nobody vouches for (web pages, tool output,
third-party files)."""
Category = Literal["environment", "error_prevention", "workflow", "tooling", "domain", "preference"]
Verification = Literal["checks", "accepted", "none"]
"""How a run was verified from outside the model: its checks passed, the user accepted it, or neither."""
SideEffects = Literal["none", "workspace", "external"]
HASH_EXCLUDED = frozenset({"sha256", "stats"})
"""Statistics change on every use; the hash covers what the record says, not how often it was used."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Scope(_Model):
    """Where an item applies. An empty repo means any repository (an item the user wrote for all of them)."""

    repo: str = ""
    """Root-commit hash of the repository (the first commit, which clones and forks share)."""
    paths: list[str] = []
    language: str | None = None
    tool: str | None = None
    site: str | None = None


class Evidence(_Model):
    """A run an item came from or was confirmed by."""

    run_id: str
    task: str = ""
    trace_ref: str = ""
    outcome: Literal["verified_success", "accepted", "failed"] = "verified_success"


class Provenance(_Model):
    """Who wrote an item, from what, and how far it is trusted."""

    source: Literal["reflector", "user", "import"] = "reflector"
    reflector: Literal["trace", "model", ""] = ""
    model: str | None = None
    created: float = Field(default_factory=time.time)
    trust: Trust = "observed"
    derived_from_untrusted_input: bool = False
    untrusted_sources: list[str] = []
    """Why it counts as derived from untrusted input: which content it shares with what the run read."""
    approved_by: str | None = None
    """Set when a person promoted the item (`branchwise memory promote`)."""


class Stats(_Model):
    """How an item fared: retrievals, uses, whether it helped; for shortcuts also their calls."""

    retrieved: int = 0
    used: int = 0
    helped: int = 0
    hurt: int = 0
    ignored: int = 0
    """Runs that failed where the item was retrieved but not followed (knowledge not followed)."""
    last_used: float | None = None
    calls: int = 0
    ok: int = 0
    precond_fail: int = 0
    step_fail: int = 0
    recent: list[str] = []
    """Outcomes of the last calls of a shortcut, newest last: ok, precondition, step, postcondition."""


class Validation(_Model):
    """The last time the item was checked, and what was wrong."""

    checked: float | None = None
    errors: list[str] = []
    replay: Literal["passed", "failed", "not_run"] = "not_run"
    note: str = ""


class _Record(_Model):
    id: str
    version: int = 1
    scope: Scope = Scope()
    provenance: Provenance = Provenance()
    evidence: list[Evidence] = []
    stats: Stats = Stats()
    status: Status = "candidate"
    supersedes: list[str] = []
    validation: Validation = Validation()
    sha256: str = ""

    def content_hash(self) -> str:
        """sha256 of the canonical JSON of everything but the statistics and the hash itself."""
        body = self.model_dump(mode="json", exclude=set(HASH_EXCLUDED))
        return hashlib.sha256(canonical(body).encode()).hexdigest()

    def sealed(self) -> Any:
        """A copy with its hash filled in."""
        copy = self.model_copy(deep=True)
        copy.sha256 = copy.content_hash()
        return copy

    def run_ids(self) -> set[str]:
        return {e.run_id for e in self.evidence}


class Tip(_Record):
    """A short lesson: when it applies (trigger) and what to do."""

    kind: Literal["tip"] = "tip"
    text: str
    category: Category = "workflow"
    trigger: str = ""

    def search_fields(self) -> tuple[str, str, str]:
        """(name, text, trigger) for the full-text index."""
        return "", self.text, self.trigger

    def summary(self) -> str:
        return self.text


class Check(_Model):
    """A programmatic pre- or postcondition."""

    type: Literal["file_exists", "file_absent", "file_contains", "cmd_succeeds", "stdout_regex"]
    path: str | None = None
    text: str | None = None
    command: str | None = None
    pattern: str | None = None


class Condition(_Model):
    nl: str = ""
    checks: list[Check] = []


class Expect(_Model):
    exit_code_in: list[int] = [0]


class Step(_Model):
    """One atomic tool call of a shortcut; `{argument}` placeholders in its values are filled in when it runs."""

    name: str
    arguments_map: dict[str, Any] = {}
    timeout_s: float | None = None
    expect: Expect | None = None


class Shortcut(_Record):
    """A named, parameterised sequence of tool calls that runs as one action."""

    kind: Literal["shortcut"] = "shortcut"
    name: str
    description: str
    arguments: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
    """JSON Schema of the arguments (a restricted subset: flat object, typed properties, patterns)."""
    precondition: Condition = Condition()
    atomic_action_sequence: list[Step]
    postcondition: Condition = Condition()
    side_effects: SideEffects = "workspace"
    recorded_arguments: dict[str, Any] = {}
    """The arguments of the run the shortcut was built from: its replay binds these."""

    def search_fields(self) -> tuple[str, str, str]:
        return self.name.replace("_", " "), self.description, self.precondition.nl

    def summary(self) -> str:
        return f"{self.name}: {self.description}"

    def tool_name(self) -> str:
        """The name of the tool that runs it (the model calls shortcuts like any other tool)."""
        return SHORTCUT_TOOL_PREFIX + self.name.lower()


SHORTCUT_TOOL_PREFIX = "shortcut_"
Item: TypeAlias = Tip | Shortcut
Record = Annotated[Tip | Shortcut, Field(discriminator="kind")]
RECORD_ADAPTER: TypeAdapter[Tip | Shortcut] = TypeAdapter(Record)


def canonical(obj: Any) -> str:
    """The JSON text hashes are computed over: sorted keys, no spaces, UTF-8 kept."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def new_id(kind: Kind) -> str:
    return f"{'tip' if kind == 'tip' else 'sc'}-{secrets.token_hex(5)}"


def parse_record(data: str | dict[str, Any]) -> Tip | Shortcut:
    """A record from its JSON (text or parsed); raises pydantic's ValidationError."""
    if isinstance(data, str):
        return RECORD_ADAPTER.validate_json(data)
    return RECORD_ADAPTER.validate_python(data)
