"""Policy rules compiled for matching tool calls: argv prefixes, path globs and JSON Schemas."""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from branchwise.sandbox import globs
from branchwise.sandbox.base import SandboxError
from branchwise.sandbox.policy.effects import Effect, command_effect
from branchwise.sandbox.policy.shellwords import Word, parse, simple_argv
from branchwise.sandbox.settings import Rule

Match = Literal["yes", "maybe", "no"]
"""maybe: the command computes its program when it runs, and it could be the one a rule names."""


class PolicyError(SandboxError):
    """A rule is malformed or fails one of its own examples."""


@dataclass(frozen=True)
class CallInfo:
    """A tool call as the policy sees it: the tool's name, its arguments, and what the tool declares about
    the call (its effect and which arguments are workspace paths, see `tools.base.Tool`)."""

    tool: str
    args: dict[str, Any] = field(default_factory=dict)
    command: str | None = None
    paths: list[str] | None = None
    """The values of the tool's path arguments; None when undeclared (then a `path` argument counts)."""
    declared: Effect | None = None
    """The tool's effect for this call; None when undeclared (exec if it carries a command, else external)."""
    facts: dict[str, Any] = field(default_factory=dict)
    """What the tool says about the call besides its arguments (a browser action's page_url, element, kind):
    rules' args_schema sees them next to the arguments; taint does not look at them."""

    @property
    def effect(self) -> Effect:
        if self.declared is not None:
            return self.declared
        return "exec" if self.shell_command is not None else "external"

    @property
    def shell_command(self) -> str | None:
        if self.command is not None:
            return self.command
        value = self.args.get("command")
        return value if isinstance(value, str) else None

    @property
    def all_paths(self) -> list[str]:
        if self.paths is not None:
            return list(self.paths)
        value = self.args.get("path")
        return [value] if isinstance(value, str) and value else []

    def strings(self) -> list[str]:
        """Every string in the call, for taint checks."""
        found = [s for s in (self.command, *(self.paths or [])) if s]
        _collect_strings(self.args, found)
        return found


def _collect_strings(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, dict):
        for item in value.values():
            _collect_strings(item, out)
    elif isinstance(value, list | tuple):
        for item in value:
            _collect_strings(item, out)


class CompiledRule:
    """One rule compiled for matching."""

    def __init__(self, rule: Rule, name: str, workspace: Path) -> None:
        self.rule = rule
        self.name = name
        self.workspace = workspace
        self.path_regex = glob_regex(rule.path_glob) if rule.path_glob else None
        self.validator = _schema_validator(rule.args_schema, name) if rule.args_schema is not None else None

    def matches(self, call: CallInfo) -> bool:
        return self.match(call) == "yes"

    def match(self, call: CallInfo) -> Match:
        """yes, no, or maybe (the command's program is computed when it runs and could be this rule's)."""
        if not fnmatch.fnmatchcase(call.tool, self.rule.tool):
            return "no"
        argv: Match = "yes"
        if self.rule.argv_prefix is not None:
            argv = self._argv_matches(call.shell_command)
            if argv == "no":
                return "no"
        if self.path_regex is not None and not self._paths_match(call.all_paths):
            return "no"
        if self.validator is not None and not self.validator.is_valid({**call.facts, **call.args}):
            return "no"
        return argv

    def check_examples(self) -> None:
        """Raise PolicyError when the rule disagrees with one of its own examples."""
        cases = [(e, True) for e in self.rule.examples.match] + [(e, False) for e in self.rule.examples.not_match]
        for example, expected in cases:
            if self.matches(self.example_call(example)) != expected:
                verdict = "should match but does not" if expected else "should not match but does"
                raise PolicyError(f"rule {self.name!r}: example {example!r} {verdict}")

    def example_call(self, example: str | dict[str, Any]) -> CallInfo:
        """The call an example stands for: a table of arguments, a path (path rules) or a command."""
        if isinstance(example, dict):
            return CallInfo(tool=self.rule.tool, args=example)
        if self.rule.path_glob is not None and self.rule.argv_prefix is None:
            return CallInfo(tool=self.rule.tool, args={"path": example})
        return CallInfo(tool=self.rule.tool, args={"command": example})

    def _argv_matches(self, command: str | None) -> Match:
        if command is None:
            return "no"
        prefix = self.rule.argv_prefix or []
        if self.rule.decision == "allow":
            # An allow rule vouches for exactly one plain command, never a compound one.
            argv = simple_argv(command)
            return "yes" if argv is not None and _exact_prefix(argv, prefix) else "no"
        # Ask and deny look everywhere the command might run the prefix: every word of every simple command
        # (wrappers nobody listed), and every program the effects reader found (after wrappers, in `sh -c`).
        invocations = [list(words) for words in command_effect(command).invocations]
        segments = [c.words for c in parse(command).commands] + invocations
        if any(_loose_prefix_at(seg, i, prefix) for seg in segments for i in range(len(seg))):
            return "yes"
        if any(words and not words[0].static and _loose_rest(words, 1, prefix) for words in invocations):
            return "maybe"
        return "no"

    def _paths_match(self, paths: list[str]) -> bool:
        if not paths or self.path_regex is None:
            return False
        absolute = (self.rule.path_glob or "").startswith(("/", "~"))
        keys = [_path_key(p, self.workspace, absolute=absolute) for p in paths]
        hits = [bool(self.path_regex.fullmatch(k)) for k in keys]
        # Allowing needs every path to match; asking or denying needs any.
        return all(hits) if self.rule.decision == "allow" else any(hits)


def _exact_prefix(argv: list[str], prefix: list[str | list[str]]) -> bool:
    """Whether argv starts with exactly the prefix's words (for allow rules)."""
    return len(argv) >= len(prefix) and all(_wanted(token, want) for token, want in zip(argv, prefix, strict=False))


def _loose_prefix_at(argv: list[Word], start: int, prefix: list[str | list[str]]) -> bool:
    """Whether argv may run the prefix from `start`, erring towards yes (for ask and deny rules).

    The command is matched by its basename. After it, an option the prefix does not name is skipped
    (`git -C dir -c k=v push` runs `git push`), and one without `=` may or may not take the next word
    as its value (both are tried); a word the shell computes (`$x`, a backtick, a glob) may be anything.
    """
    if start >= len(argv) or not argv[start].static:
        return False
    if not _wanted(argv[start].text.rsplit("/", 1)[-1], prefix[0]):
        return False
    return _loose_rest(argv, start + 1, prefix)


def _loose_rest(argv: list[Word], start: int, prefix: list[str | list[str]]) -> bool:
    """Whether the words from `start` may carry prefix[1:] (see `_loose_prefix_at`)."""
    seen: set[tuple[int, int]] = set()  # (word, prefix position) pairs already tried: linear, not 2^options

    def rest(i: int, k: int) -> bool:
        if k == len(prefix):
            return True
        if i >= len(argv) or (i, k) in seen:
            return False
        seen.add((i, k))
        word = argv[i]
        if (_wanted(word.text, prefix[k]) or not word.static) and rest(i + 1, k + 1):
            return True
        if word.text.startswith("-") and word.text != "-":
            return rest(i + 1, k) or ("=" not in word.text and rest(i + 2, k))
        return False

    return rest(start, 1)


def _wanted(token: str, want: str | list[str]) -> bool:
    return token in ([want] if isinstance(want, str) else want)


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A regex for a rule's path glob; a leading `~` is the user's home directory."""
    return globs.glob_regex(str(Path(pattern).expanduser()) if pattern.startswith("~") else pattern)


def _path_key(path: str, workspace: Path, *, absolute: bool) -> str:
    """Workspace-relative for paths inside it (unless the glob is absolute), else absolute."""
    full = resolve_path(path, workspace)
    if not absolute and (full == workspace or workspace in full.parents):
        return str(full.relative_to(workspace))
    return str(full) if absolute else str(full).lstrip("/")


def resolve_path(path: str, workspace: Path) -> Path:
    """The host path a tool would touch: `~` expanded, relative to the workspace, symlinks followed."""
    p = Path(path).expanduser()
    return Path(os.path.realpath(p if p.is_absolute() else workspace / p))


def _schema_validator(schema: dict[str, Any], name: str) -> Any:
    try:
        import jsonschema
    except ImportError:
        raise PolicyError(f"{name}: args_schema needs the jsonschema package (pip install jsonschema)") from None
    try:
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise PolicyError(f"{name}: invalid args_schema: {exc.message}") from None
    return cls(schema)
