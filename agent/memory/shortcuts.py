"""Shortcuts run as one action (research note b.4): arguments validated against their JSON Schema,
preconditions checked, each step sent through the session's policy gate and sandbox exactly like a direct call,
the workspace rolled back when a step or the postcondition fails.

Two seams are injected, so this module needs nothing of the run path:
- a `CallRunner` runs one tool call as the session would (schema, policy, sandbox, events): `ActorCalls`
  adapts the session's actor;
- `Snapshots` takes and restores workspace snapshots (the session's `ShadowGitWorkspace` is one).
"""

from __future__ import annotations

import itertools
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from branchwise.agent.memory.content import rule_problems
from branchwise.agent.memory.records import Check, Shortcut
from branchwise.agent.memory.trace import SHORTCUT_STEP_PREFIX
from branchwise.agent.record.events import ToolCallRecord
from branchwise.sandbox.policy.effects import command_effect
from branchwise.tools.base import Observation, ToolContext

ATOMIC_TOOLS = frozenset({"shell", "view", "create", "str_replace", "insert", "grep", "glob"})
"""What a shortcut step may call: the core tools, never finish, undo or another shortcut."""
FILE_TOOLS = frozenset({"create", "str_replace", "insert"})
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_OUTPUT_TAIL = 1500
_ids = itertools.count(1)


class CallRunner(Protocol):
    """Runs one tool call through the session's policy gate and sandbox, recording it like a direct call."""

    def run_call(self, name: str, arguments: dict[str, Any]) -> Observation: ...


class Snapshots(Protocol):
    """Workspace snapshots for rolling a failed shortcut back."""

    def snapshot(self, label: str = "") -> str: ...

    def restore(self, snapshot_id: str) -> None: ...


class _ActorLike(Protocol):
    def run_call(self, call: ToolCallRecord) -> tuple[Observation, bool]: ...

    def tool_message(self, call: ToolCallRecord, obs: Observation) -> Any: ...


class ActorCalls:
    """A CallRunner over the session's Actor: each step is validated, gated, run and emitted as events."""

    def __init__(self, actor: _ActorLike) -> None:
        self.actor = actor

    def run_call(self, name: str, arguments: dict[str, Any]) -> Observation:
        call = ToolCallRecord(id=f"{SHORTCUT_STEP_PREFIX}{next(_ids)}", name=name, arguments=arguments)
        obs, _malformed = self.actor.run_call(call)
        self.actor.tool_message(call, obs)  # emits the tool_result event, as for the model's own calls
        return obs


Outcome = str
"""ok, arguments, refused, precondition, step or postcondition."""
OnOutcome = Callable[[Shortcut, Outcome], None]


class ShortcutFailed(Exception):
    """Why a shortcut stopped; `outcome` names the stage."""

    def __init__(self, outcome: Outcome, message: str) -> None:
        super().__init__(message)
        self.outcome = outcome


def bind(value: Any, args: dict[str, Any], *, quote: bool = False) -> Any:
    """Fill `{argument}` placeholders in a step's value (strings, lists, dicts); other braces stay."""
    if isinstance(value, str):
        return _PLACEHOLDER.sub(lambda m: _fill(m, args, quote), value)
    if isinstance(value, list):
        return [bind(v, args, quote=quote) for v in value]
    if isinstance(value, dict):
        return {k: bind(v, args, quote=quote) for k, v in value.items()}
    return value


def _fill(match: re.Match[str], args: dict[str, Any], quote: bool) -> str:
    name = match.group(1)
    if name not in args:
        return match.group(0)
    text = str(args[name])
    return shlex.quote(text) if quote else text


def bind_step(name: str, arguments_map: dict[str, Any], args: dict[str, Any]) -> dict[str, Any]:
    """A step's tool arguments: shell commands get shell-quoted values; `argv` lists become one command."""
    if name != "shell":
        return bind(arguments_map, args)
    bound = {k: v for k, v in arguments_map.items() if k not in ("argv", "command")}
    if "argv" in arguments_map:
        bound["command"] = shlex.join(bind(list(arguments_map["argv"]), args))
    else:
        bound["command"] = bind(str(arguments_map.get("command", "")), args, quote=True)
    return bound


def placeholders(value: Any) -> set[str]:
    """Every `{name}` a step value refers to."""
    if isinstance(value, str):
        return set(_PLACEHOLDER.findall(value))
    if isinstance(value, list):
        return set().union(*(placeholders(v) for v in value)) if value else set()
    if isinstance(value, dict):
        return set().union(*(placeholders(v) for v in value.values())) if value else set()
    return set()


def capability_problems(sc: Shortcut, name: str, arguments: dict[str, Any]) -> list[str]:
    """Why one bound step may not run inside this shortcut (research note b.5, control 4)."""
    if name not in ATOMIC_TOOLS:
        return [f"step tool {name!r} is not one a shortcut may call"]
    if name != "shell":
        return []
    command = str(arguments.get("command", ""))
    signed = sc.side_effects == "external" and sc.provenance.approved_by is not None
    problems = []
    kind = command_effect(command).kind
    if kind in ("irreversible", "stateful") and not signed:
        problems.append(f"`{command[:60]}` has {kind} effects, which only a shortcut the user signed may have")
    if not signed:
        problems += [p for p in rule_problems([command]) if "network" in p or "shell" in p or "destructive" in p]
    return problems


@dataclass
class ShortcutRunner:
    """Runs shortcuts for one session."""

    calls: CallRunner
    snapshots: Snapshots
    on_outcome: OnOutcome | None = None

    def run(self, sc: Shortcut, args: dict[str, Any], ctx: ToolContext) -> Observation:
        """One shortcut call: a tool observation either way (failures are errors the model can act on)."""
        lines: list[str] = []
        try:
            self.check_arguments(sc, args)
            steps = [(s, bind_step(s.name, s.arguments_map, args)) for s in sc.atomic_action_sequence]
            refused = [p for s, bound in steps for p in capability_problems(sc, s.name, bound)]
            if refused:
                raise ShortcutFailed("refused", "refused: " + "; ".join(refused))
            self.check_conditions(sc.precondition.checks, args, ctx, "", "precondition")
            last = self.run_steps(sc, steps, args, ctx, lines)
        except ShortcutFailed as failed:
            self._count(sc, failed.outcome)
            undone = (
                " The workspace was rolled back to before the shortcut."
                if failed.outcome in ("step", "postcondition")
                else " Nothing was changed."
            )
            body = "\n".join([f"Shortcut {sc.name} failed: {failed}.{undone}", *lines])
            return Observation(
                body + "\nDo the work with the other tools instead.",
                is_error=True,
                data={"shortcut": sc.id, "outcome": failed.outcome},
            )
        self._count(sc, "ok")
        tail = last[-_OUTPUT_TAIL:]
        text = "\n".join([f"Shortcut {sc.name} ran {len(lines)} step(s); its postcondition holds.", *lines, tail])
        return Observation(text, data={"shortcut": sc.id, "outcome": "ok", "steps": len(lines)})

    def run_steps(
        self,
        sc: Shortcut,
        steps: list[tuple[Any, dict[str, Any]]],
        args: dict[str, Any],
        ctx: ToolContext,
        lines: list[str],
    ) -> str:
        """The steps, then the postcondition; on a failure the workspace goes back to where it was."""
        before = self.snapshots.snapshot(f"before shortcut {sc.name}")
        last = ""
        try:
            for number, (step, bound) in enumerate(steps, start=1):
                obs = self.calls.run_call(step.name, bound)
                ok = _step_ok(obs, step.expect.exit_code_in if step.expect else [0])
                lines.append(f"{number}. {step.name} {_what(bound)}: {'ok' if ok else 'FAILED'}")
                if not ok:
                    raise ShortcutFailed("step", f"step {number} ({step.name}) failed: {obs.output[-400:]}")
                last = obs.output if step.name == "shell" else last
            self.check_conditions(sc.postcondition.checks, args, ctx, last, "postcondition")
        except ShortcutFailed:
            self.snapshots.restore(before)
            raise
        return last

    @staticmethod
    def check_arguments(sc: Shortcut, args: dict[str, Any]) -> None:
        import jsonschema

        try:
            jsonschema.validate(args, sc.arguments)
        except jsonschema.ValidationError as exc:
            where = ".".join(str(p) for p in exc.absolute_path) or "arguments"
            raise ShortcutFailed("arguments", f"invalid arguments ({where}: {exc.message})") from None

    def check_conditions(
        self, checks: list[Check], args: dict[str, Any], ctx: ToolContext, output: str, stage: str
    ) -> None:
        for check in checks:
            problem = self.check(bind_check(check, args), ctx, output)
            if problem is not None:
                raise ShortcutFailed(stage, f"{stage} not met: {problem}")

    def check(self, check: Check, ctx: ToolContext, output: str) -> str | None:
        """None when the check holds, else what is wrong. File checks read through the policy (view)."""
        if check.type == "stdout_regex":
            return None if re.search(check.pattern or "", output) else f"output does not match /{check.pattern}/"
        if check.type == "cmd_succeeds":
            obs = self.calls.run_call("shell", {"command": check.command or "false"})
            return None if _step_ok(obs, [0]) else f"`{check.command}` failed: {obs.output[-300:]}"
        path = check.path or ""
        seen = self.calls.run_call("view", {"path": path})
        exists = not seen.is_error
        if check.type == "file_exists":
            return None if exists else f"{path} does not exist"
        if check.type == "file_absent":
            return None if not exists else f"{path} exists"
        try:
            text = ctx.fs.read_bytes(path).decode("utf-8", "replace") if exists else ""
        except OSError:
            text = ""
        return None if exists and (check.text or "") in text else f"{path} does not contain the expected text"

    def _count(self, sc: Shortcut, outcome: Outcome) -> None:
        if self.on_outcome is not None:
            self.on_outcome(sc, outcome)


def bind_check(check: Check, args: dict[str, Any]) -> Check:
    quote = check.type == "cmd_succeeds"
    return check.model_copy(
        update={
            k: bind(getattr(check, k), args, quote=quote and k == "command")
            for k in ("path", "text", "command")
            if getattr(check, k) is not None
        }
    )


def _step_ok(obs: Observation, exit_codes: list[int]) -> bool:
    if obs.is_error or obs.data.get("refused"):
        return False
    code = obs.data.get("exit_code")
    return code is None or code in exit_codes


def _what(arguments: dict[str, Any]) -> str:
    text = str(arguments.get("command") or arguments.get("path") or "")
    return text if len(text) <= 80 else text[:77] + "..."
