"""Validation: when a candidate becomes active (research note b.2, step 2; b.5).

- Schema and content rules: a shortcut's argument schema is a flat, typed JSON Schema whose strings are
  constrained; its steps call only atomic tools with declared arguments; nothing carries a literal secret, a
  URL off the allow list, an instruction to disable checks or text aimed at the model.
- A shortcut is replayed in the sandbox from the start snapshot of the run it came from, with the arguments
  recorded there, and must pass its postcondition; the workspace is put back afterwards.
- A tip is promoted when its run's checks passed, or when two independent runs the user accepted produced it.
- Whatever was derived from untrusted content stays a candidate until a person promotes it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from branchwise.agent.memory.content import rule_problems
from branchwise.agent.memory.records import Item, Shortcut, Status, Tip, Trust, Verification
from branchwise.agent.memory.shortcuts import (
    ATOMIC_TOOLS,
    FILE_TOOLS,
    ShortcutRunner,
    Snapshots,
    bind_step,
    capability_problems,
    placeholders,
)
from branchwise.tools.base import ToolContext

_TYPES = ("string", "integer", "number", "boolean")
# A value a pattern lets through that could break out of a shell word.
_SHELL_PROBES = ("a b", "a'b", 'a"b', "a;b", "$(x)", "a`b", "a|b", "a\nb", "a&b", "a>b")
_LITERALS = (str, int, float, bool)
MAX_TIP_CHARS = 600
MAX_STEPS = 12


@dataclass(frozen=True)
class Verdict:
    """What validation decided for one item."""

    status: Status
    trust: Trust
    errors: list[str]
    note: str


def item_texts(item: Item) -> tuple[list[str], list[str]]:
    """(prose and commands, file contents) of an item: the rules that apply differ between the two."""
    if isinstance(item, Tip):
        return [item.text, item.trigger], []
    prose = [item.name, item.description, item.precondition.nl, item.postcondition.nl]
    contents: list[str] = []
    for step in item.atomic_action_sequence:
        strings = _strings(step.arguments_map)
        (contents if step.name in FILE_TOOLS else prose).extend(strings)
    for check in [*item.precondition.checks, *item.postcondition.checks]:
        prose.extend(v for v in (check.command, check.path, check.pattern) if v)
        contents.extend(v for v in (check.text,) if v)
    return prose, contents


def rules_check(item: Item, allowed_hosts: Sequence[str] = ()) -> list[str]:
    """Every content and schema rule the item breaks (empty: it may be kept)."""
    prose, contents = item_texts(item)
    problems = rule_problems(prose, allowed_hosts) + rule_problems(contents, allowed_hosts, code=True)
    if isinstance(item, Tip) and (len(item.text) > MAX_TIP_CHARS or len(item.trigger) > MAX_TIP_CHARS):
        problems.append(f"a tip is one short lesson (at most {MAX_TIP_CHARS} characters)")
    if isinstance(item, Shortcut) and len(item.atomic_action_sequence) > MAX_STEPS:
        problems.append(f"a shortcut has at most {MAX_STEPS} steps")
    if isinstance(item, Shortcut):
        problems += shortcut_schema_problems(item)
    return list(dict.fromkeys(problems))


def shortcut_schema_problems(sc: Shortcut) -> list[str]:
    """Why a shortcut's schema, steps or side effects are not acceptable."""
    import jsonschema

    problems: list[str] = []
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,40}", sc.name):
        problems.append("a shortcut's name is a snake_case identifier of at most 41 characters")
    schema = sc.arguments
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        return [f"arguments are not a valid JSON Schema: {exc.message}"]
    props: dict[str, Any] = schema.get("properties", {})
    if schema.get("type") != "object" or not isinstance(props, dict):
        return ["arguments must be a JSON Schema object with properties"]
    for name, prop in props.items():
        problems += _property_problems(name, prop)
    used = set().union(*(placeholders(s.arguments_map) for s in sc.atomic_action_sequence), set())
    used |= {
        p
        for c in [*sc.precondition.checks, *sc.postcondition.checks]
        for p in placeholders([c.path or "", c.text or "", c.command or ""])
    }
    problems += [f"steps use {{{n}}}, which is not a declared argument" for n in sorted(used - set(props))]
    problems += [f"argument {n} is required but never used" for n in schema.get("required", []) if n not in used]
    if not sc.atomic_action_sequence:
        problems.append("a shortcut needs at least one step")
    for step in sc.atomic_action_sequence:
        problems += _step_problems(sc, step.name, step.arguments_map, props)
    if not sc.postcondition.checks:
        problems.append("a shortcut needs a programmatic postcondition (a check)")
    if sc.side_effects == "external" and sc.provenance.approved_by is None:
        problems.append("external side effects need the user's signature (branchwise memory promote)")
    try:
        jsonschema.validate(sc.recorded_arguments, schema)
    except jsonschema.ValidationError as exc:
        problems.append(f"the recorded arguments do not fit the schema: {exc.message}")
    return problems


def _property_problems(name: str, prop: Any) -> list[str]:
    if not isinstance(prop, dict) or prop.get("type") not in _TYPES:
        return [f"argument {name} must have a type among {', '.join(_TYPES)}"]
    if prop["type"] == "string" and "pattern" not in prop and "enum" not in prop:
        return [f"string argument {name} needs a pattern or an enum (no free-form strings)"]
    if "pattern" in prop:
        try:
            re.compile(prop["pattern"])
        except re.error as exc:
            return [f"argument {name}: bad pattern ({exc})"]
    return []


def _step_problems(sc: Shortcut, name: str, arguments_map: dict[str, Any], props: dict[str, Any]) -> list[str]:
    if name not in ATOMIC_TOOLS:
        return [f"step tool {name!r} is not in the allow list ({', '.join(sorted(ATOMIC_TOOLS))})"]
    problems = [
        f"step {name}: literal {v!r} is not a string, number or boolean"
        for v in _leaves(arguments_map)
        if not isinstance(v, _LITERALS)
    ]
    if name == "shell":
        for arg in placeholders(arguments_map):
            if arg in props and not _shell_safe(props[arg]):
                problems.append(
                    f"argument {arg} goes into a shell command, so its pattern must not allow spaces, "
                    "quotes or shell metacharacters"
                )
    bound = bind_step(name, arguments_map, sc.recorded_arguments)
    return problems + capability_problems(sc, name, bound)


def _shell_safe(prop: dict[str, Any]) -> bool:
    if prop.get("type") != "string":
        return True
    if "enum" in prop:
        return all(isinstance(v, str) and not any(c in v for c in " '\"`$;|&<>\n\\") for v in prop["enum"])
    if "pattern" not in prop:
        return False
    try:
        pattern = re.compile(prop["pattern"])  # JSON Schema patterns are searched, not anchored
    except re.error:
        return False
    return not any(pattern.search(probe) for probe in _SHELL_PROBES)


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value]


def _strings(value: Any) -> list[str]:
    return [v for v in _leaves(value) if isinstance(v, str)]


def judge(
    item: Item,
    *,
    verification: Verification,
    replay_passed: bool | None,
    auto_promote: bool,
    allowed_hosts: Sequence[str] = (),
) -> Verdict:
    """The status and trust an item gets now; errors say why it is not active."""
    problems = rules_check(item, allowed_hosts)
    untrusted = item.provenance.derived_from_untrusted_input
    trust: Trust = "untrusted" if untrusted else "verified" if verification == "checks" else "observed"
    if problems:
        return Verdict("quarantined", trust, problems, "breaks the memory content rules")
    if untrusted:
        return Verdict("candidate", trust, [], "derived from untrusted content: a person must read and promote it")
    if isinstance(item, Shortcut) and replay_passed is not True:
        why = "its replay failed" if replay_passed is False else "it has not been replayed yet"
        return Verdict("candidate", trust, [], f"not promoted: {why}")
    corroborated = len(item.run_ids()) >= 2
    if verification != "checks" and not corroborated:
        return Verdict("candidate", trust, [], "waits for a second independent run that confirms it")
    if not auto_promote:
        return Verdict("candidate", trust, [], "automatic promotion is off ([memory] auto_promote)")
    return Verdict("active", trust, [], "verified run" if verification == "checks" else "confirmed by two runs")


def replay(
    sc: Shortcut, runner: ShortcutRunner, snapshots: Snapshots, start_snapshot: str, ctx: ToolContext
) -> tuple[bool, str]:
    """Run the shortcut from the run's start state with its recorded arguments; the files are put back after.
    Returns whether its steps and postcondition passed, and the end of what it said."""
    end = snapshots.snapshot("memory: before replaying a shortcut")
    try:
        snapshots.restore(start_snapshot)
        quiet = ShortcutRunner(runner.calls, snapshots)  # a validation replay is not a use: no statistics
        obs = quiet.run(sc, dict(sc.recorded_arguments), ctx)
    finally:
        snapshots.restore(end)
    return obs.data.get("outcome") == "ok", obs.output[-300:]
