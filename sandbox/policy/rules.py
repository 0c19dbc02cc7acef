"""Policy rules compiled for matching tool calls: argv prefixes, path globs and JSON Schemas."""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from branchwise.sandbox import globs
from branchwise.sandbox.base import SandboxError
from branchwise.sandbox.policy.shellwords import command_segments, simple_argv
from branchwise.sandbox.settings import Rule


class PolicyError(SandboxError):
    """A rule is malformed or fails one of its own examples."""


@dataclass(frozen=True)
class CallInfo:
    """A tool call as the policy sees it."""

    tool: str
    args: dict[str, Any] = field(default_factory=dict)
    command: str | None = None
    paths: list[str] = field(default_factory=list)

    @property
    def shell_command(self) -> str | None:
        if self.command is not None:
            return self.command
        value = self.args.get("command")
        return value if isinstance(value, str) else None

    @property
    def all_paths(self) -> list[str]:
        if self.paths:
            return list(self.paths)
        value = self.args.get("path")
        return [value] if isinstance(value, str) and value else []

    def strings(self) -> list[str]:
        """Every string in the call, for taint checks."""
        found = [s for s in (self.command, *self.paths) if s]
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
        if not fnmatch.fnmatchcase(call.tool, self.rule.tool):
            return False
        if self.rule.argv_prefix is not None and not self._argv_matches(call.shell_command):
            return False
        if self.path_regex is not None and not self._paths_match(call.all_paths):
            return False
        return self.validator is None or self.validator.is_valid(call.args)

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

    def _argv_matches(self, command: str | None) -> bool:
        if command is None:
            return False
        prefix = self.rule.argv_prefix or []
        if self.rule.decision == "allow":
            # An allow rule vouches for exactly one plain command, never a compound one.
            argv = simple_argv(command)
            return argv is not None and _exact_prefix(argv, prefix)
        # Ask and deny look everywhere the command might run the prefix, wrappers included.
        segments = command_segments(command)
        return any(_loose_prefix_at(seg, i, prefix) for seg in segments for i in range(len(seg)))

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


def _loose_prefix_at(argv: list[str], start: int, prefix: list[str | list[str]]) -> bool:
    """Whether argv may run the prefix from `start`, erring towards yes (for ask and deny rules).

    The command is matched by its basename. After it, an option the prefix does not name is skipped
    (`git -C dir -c k=v push` runs `git push`), and one without `=` may or may not take the next word
    as its value (both are tried); a word the shell would expand (`$x`, a backtick) may be anything.
    """
    if start >= len(argv) or not _wanted(argv[start].rsplit("/", 1)[-1], prefix[0]):
        return False
    seen: set[tuple[int, int]] = set()  # (word, prefix position) pairs already tried: linear, not 2^options

    def rest(i: int, k: int) -> bool:
        if k == len(prefix):
            return True
        if i >= len(argv) or (i, k) in seen:
            return False
        seen.add((i, k))
        token = argv[i]
        if (_wanted(token, prefix[k]) or "$" in token or "`" in token) and rest(i + 1, k + 1):
            return True
        if token.startswith("-") and token != "-":
            return rest(i + 1, k) or ("=" not in token and rest(i + 2, k))
        return False

    return rest(start + 1, 1)


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
