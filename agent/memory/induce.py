"""Building a shortcut from the steps of a run that succeeded (AWM's induction, with typed arguments).

Only steps that succeeded and changed something are kept (file edits, commands that are not reads or test
runs); an edit the run undid is dropped with its undo. Values the user's task names (in backticks or quotes)
and the steps use become arguments, with a pattern that keeps them to one shell word when a command uses
them. The preconditions are what the edits need (the files they change exist and hold the text they
replace; the files they create do not exist yet); the postcondition is the task's checks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from branchwise.agent.memory.records import Check, Condition, Expect, Provenance, Scope, Shortcut, Step, new_id
from branchwise.agent.memory.shortcuts import ATOMIC_TOOLS, FILE_TOOLS
from branchwise.agent.memory.trace import Trace, TraceStep

SAFE_PATTERN = "^[A-Za-z0-9_./-]{1,128}$"
TEXT_PATTERN = "^[^\\n\\r`$\\\\]{1,200}$"
MAX_STEPS = 12
_QUOTED = re.compile(r"`([^`\n]{2,80})`|\"([^\"\n]{2,80})\"|'([^'\n]{2,80})'")
_READ_WORDS = frozenset(
    {
        "ls",
        "cat",
        "head",
        "tail",
        "wc",
        "pwd",
        "echo",
        "grep",
        "rg",
        "find",
        "tree",
        "stat",
        "file",
        "which",
        "type",
        "true",
        "diff",
        "less",
        "more",
        "du",
        "df",
        "env",
    }
)
_TEST_WORDS = re.compile(
    r"\b(pytest|unittest|tox|nox|jest|vitest|mocha|ctest)\b|\b(npm|yarn|pnpm|go|cargo|make|"
    r"mvn|gradle)\s+(run\s+)?test\b|\bgit\s+(status|diff|log|show|branch)\b"
)


def _word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


_STOP = _word_set(
    """
    a an the this that these those of to in on for with and or by
    from as is are be it its into new make sure please so which who what
    when then there here all any each without but not only also just should must can
    """
)


@dataclass(frozen=True)
class Parameter:
    name: str
    value: str
    pattern: str


def effectful_steps(trace: Trace) -> list[TraceStep] | None:
    """The calls worth replaying, in order; None when the run cannot be turned into a shortcut."""
    kept: list[TraceStep] = []
    for step in trace.calls:
        if step.is_shortcut and step.ok:
            return None  # the run was solved by an existing shortcut: nothing new to learn
        if step.call.name == "undo_edit" and step.ok:
            _drop_last_edit(kept, str(step.args.get("path", "")))
            continue
        if not step.ok or step.call.name not in ATOMIC_TOOLS:
            continue
        if step.call.name == "shell":
            command = str(step.args.get("command", ""))
            if re.search(r"(^|[;&|]\s*)cd\s", command):
                return None  # later commands ran elsewhere; a replay from the root would differ
            if _is_read_or_check(command, trace.configured_checks):
                continue
        elif step.call.name not in FILE_TOOLS:
            continue
        kept.append(step)
    return kept if 0 < len(kept) <= MAX_STEPS else None


def _drop_last_edit(kept: list[TraceStep], path: str) -> None:
    for i in range(len(kept) - 1, -1, -1):
        if kept[i].call.name in FILE_TOOLS and str(kept[i].args.get("path", "")) == path:
            del kept[i]
            return


def _is_read_or_check(command: str, checks: list[str]) -> bool:
    if command.strip() in (c.strip() for c in checks) or _TEST_WORDS.search(command):
        return True
    first = command.strip().split()[0] if command.strip() else ""
    return first in _READ_WORDS and ">" not in command


def task_values(task: str) -> list[tuple[str, str]]:
    """(value, name) for each value the task quotes; the name is the word next to it ("the `x` command"),
    preferring the word before for paths ("the test `tests/x.py`")."""
    out: list[tuple[str, str]] = []
    for match in _QUOTED.finditer(task):
        value = next(g for g in match.groups() if g)
        after = re.match(r"\s*([A-Za-z][A-Za-z_-]{2,})", task[match.end() :])
        before = re.search(r"([A-Za-z][A-Za-z_-]{2,})\s*$", task[: match.start()])
        pathlike = "/" in value or re.search(r"\.[A-Za-z]{1,4}$", value) is not None
        order = (before, after) if pathlike else (after, before)
        words = [w.group(1).lower() for w in order if w and w.group(1).lower() not in _STOP]
        kind = "function" if value.endswith("()") else "path" if pathlike else "value"
        name = _identifier(kind if kind == "function" or not words else words[0])
        while name in {n for _, n in out}:
            name += "_"
        out.append((value, name))
    return out


def parameters_for(trace: Trace, steps: list[TraceStep], given: dict[str, str] | None = None) -> list[Parameter]:
    """The task's values that the steps use, as arguments (or the ones a reflector chose, if it did)."""
    texts = [s for step in steps for s in _strings(step.args)]
    shell_texts = [s for step in steps if step.call.name == "shell" for s in _strings(step.args)]
    pairs = [(v, n) for n, v in given.items()] if given else task_values(trace.task)
    params: list[Parameter] = []
    names: set[str] = set()
    for value, name in sorted(pairs, key=lambda p: -len(p[0])):
        if not any(_occurs(value, t) for t in texts) or any(value in p.value for p in params):
            continue
        safe = re.fullmatch(SAFE_PATTERN, value) is not None
        if not safe and any(_occurs(value, t) for t in shell_texts):
            continue  # free text must not reach a shell command: leave it literal
        unique = name
        while unique in names or any(f"{{{unique}}}" in t for t in texts):
            unique += "_"
        names.add(unique)
        params.append(Parameter(unique, value, SAFE_PATTERN if safe else TEXT_PATTERN))
    return sorted(params, key=lambda p: trace.task.find(p.value))  # the signature reads in the task's order


def induce(
    trace: Trace,
    scope: Scope,
    *,
    steps: list[TraceStep] | None = None,
    parameters: dict[str, str] | None = None,
    name: str | None = None,
    description: str | None = None,
    taken: frozenset[str] = frozenset(),
) -> Shortcut | None:
    """A candidate shortcut from a run's successful steps (all of them, or the ones a reflector picked)."""
    chosen = effectful_steps(trace) if steps is None else [s for s in steps if s.ok]
    if not chosen:
        return None
    params = parameters_for(trace, chosen, parameters)
    sequence = [
        Step(
            name=s.call.name,
            arguments_map=_template(_replayable(s), params),
            expect=Expect() if s.call.name == "shell" else None,
        )
        for s in chosen
    ]
    created = {str(s.args.get("path")) for s in chosen if s.call.name == "create"}
    pre = _preconditions(chosen, params, created)
    post = [Check(type="cmd_succeeds", command=_replace(c, params)) for c in trace.configured_checks]
    if not post:
        post = [
            Check(
                type="file_contains",
                path=_replace(str(s.args["path"]), params),
                text=_replace(str(s.args.get("new_str") or s.args.get("file_text") or ""), params),
            )
            for s in chosen
            if s.call.name in ("create", "str_replace") and "path" in s.args
        ][-1:]
    gist = _replace(_first_line(trace.task), params, angle=True)
    label = name or _name(trace.task, params, chosen, taken)
    return Shortcut(
        id=new_id("shortcut"),
        name=label,
        description=description or f"Redo the change that solved “{gist}”: " + _steps_text(chosen, params),
        arguments={
            "type": "object",
            "properties": {
                p.name: {
                    "type": "string",
                    "pattern": p.pattern,
                    "description": f"like {p.value!r} in the original task",
                }
                for p in params
            },
            "required": [p.name for p in params],
            "additionalProperties": False,
        },
        precondition=Condition(nl=_precondition_text(pre), checks=pre),
        atomic_action_sequence=sequence,
        postcondition=Condition(
            nl="The task's checks pass" if trace.configured_checks else "The edit is in place", checks=post
        ),
        side_effects="workspace",
        recorded_arguments={p.name: p.value for p in params},
        scope=scope,
        provenance=Provenance(source="reflector", reflector="trace"),
    )


def _replayable(step: TraceStep) -> dict[str, Any]:
    """The call's arguments minus those that only matter for one run (a shell timeout stays)."""
    return {k: v for k, v in step.args.items() if v is not None}


def _preconditions(steps: list[TraceStep], params: list[Parameter], created: set[str]) -> list[Check]:
    checks: list[Check] = []
    for s in steps:
        path = str(s.args.get("path", ""))
        if s.call.name == "create" and path and not any(c.path == path for c in checks):
            checks.append(Check(type="file_absent", path=_replace(path, params)))
        elif s.call.name in ("str_replace", "insert") and path and path not in created:
            if not any(c.type == "file_exists" and c.path == _replace(path, params) for c in checks):
                checks.append(Check(type="file_exists", path=_replace(path, params)))
            if s.call.name == "str_replace" and s.args.get("old_str"):
                checks.append(
                    Check(
                        type="file_contains", path=_replace(path, params), text=_replace(str(s.args["old_str"]), params)
                    )
                )
    return checks


def _precondition_text(checks: list[Check]) -> str:
    exist = sorted({c.path for c in checks if c.type == "file_exists" and c.path})
    absent = sorted({c.path for c in checks if c.type == "file_absent" and c.path})
    parts = []
    if exist:
        parts.append(f"{', '.join(exist)} exist(s) with the code the edits replace")
    if absent:
        parts.append(f"{', '.join(absent)} do(es) not exist yet")
    return "; ".join(parts)


def _steps_text(steps: list[TraceStep], params: list[Parameter]) -> str:
    verbs = {"create": "create", "str_replace": "edit", "insert": "insert into", "shell": "run"}
    parts = []
    for s in steps:
        target = s.args.get("command") if s.call.name == "shell" else s.args.get("path")
        parts.append(f"{verbs.get(s.call.name, s.call.name)} {_replace(str(target), params, angle=True)}")
    return ", ".join(parts) + "."


def _template(value: Any, params: list[Parameter]) -> Any:
    if isinstance(value, str):
        return _replace(value, params)
    if isinstance(value, list):
        return [_template(v, params) for v in value]
    if isinstance(value, dict):
        return {k: _template(v, params) for k, v in value.items()}
    return value


def _replace(text: str, params: list[Parameter], *, angle: bool = False) -> str:
    for p in params:
        text = re.sub(
            rf"(?<![A-Za-z0-9]){re.escape(p.value)}(?![A-Za-z0-9])",
            (f"<{p.name}>" if angle else f"{{{p.name}}}").replace("\\", "\\\\"),
            text,
        )
    return text


def _occurs(value: str, text: str) -> bool:
    return re.search(rf"(?<![A-Za-z0-9]){re.escape(value)}(?![A-Za-z0-9])", text) is not None


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    return []


def generalize(text: str, task: str) -> str:
    """The text with the values the task quotes replaced by their names (`greet` -> <subcommand>)."""
    for value, name in sorted(task_values(task), key=lambda p: -len(p[0])):
        text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(value)}(?![A-Za-z0-9])", f"<{name}>", text)
    return text


_VERBS = (
    "add",
    "fix",
    "remove",
    "delete",
    "rename",
    "update",
    "create",
    "implement",
    "refactor",
    "change",
    "move",
    "write",
    "replace",
    "support",
    "bump",
    "register",
    "migrate",
    "upgrade",
    "document",
    "test",
)


def _name(task: str, params: list[Parameter], steps: list[TraceStep], taken: frozenset[str]) -> str:
    """verb_object: the task's first imperative verb and its first argument, else the first file it edits."""
    words = [w.lower() for w in re.findall(r"[A-Za-z][A-Za-z0-9]*", _QUOTED.sub(" ", task))]
    verb = next((w for w in words if w in _VERBS), "edit")
    first = sorted(params, key=lambda p: task.find(p.value))[:1]
    paths = [str(s.args["path"]) for s in steps if "path" in s.args]
    thing = first[0].name if first else re.sub(r"\W+", "_", paths[0].rsplit("/", 1)[-1].split(".")[0]) if paths else ""
    base = _identifier(f"{verb}_{thing}" if thing else verb)[:40]
    name, n = base, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    return name


def _identifier(text: str) -> str:
    ident = re.sub(r"[^a-z0-9_]+", "_", text.lower()).strip("_")
    return ident if ident and not ident[0].isdigit() else f"arg_{ident}"


def _first_line(text: str) -> str:
    line = next((ln.strip() for ln in text.strip().splitlines() if ln.strip()), "")
    return line if len(line) <= 160 else line[:157] + "..."
