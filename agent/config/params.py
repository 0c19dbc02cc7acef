"""Task recipes: typed parameters a task file declares and `--param NAME=VALUE` fills.

    [params.module]
    type = "string"            # string, int, float or bool
    description = "The module to fix"
    default = "calc/stats.py"  # without a default the parameter is required
    choices = ["calc/stats.py", "calc/io.py"]

`{{ module }}` in the prompt (and in plan subgoals) is replaced by the value; in `checks`, which are shell
commands, the value is inserted shell-quoted, so do not quote the placeholder yourself.
"""

from __future__ import annotations

import re
import shlex
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from branchwise.agent.errors import ConfigError, UsageError

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_-]*)\s*\}\}")
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


class ParamSpec(BaseModel):
    """One declared parameter of a task file."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["string", "int", "float", "bool"] = "string"
    """The value's type; values from the command line are converted to it."""
    default: str | int | float | bool | None = None
    """The value when --param does not give one; without it the parameter is required."""
    description: str = ""
    """What the parameter means (shown by `branchwise validate`)."""
    choices: list[str | int | float | bool] | None = None
    """The only values allowed."""


def parse_param_flags(items: list[str] | None) -> dict[str, str]:
    """`--param NAME=VALUE` flags as a dict; a malformed one is a usage error."""
    given: dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not NAME.fullmatch(name.strip()):
            raise UsageError(f"--param {item!r}: expected NAME=VALUE")
        given[name.strip()] = value
    return given


def declared_params(data: dict[str, Any], where: str) -> dict[str, ParamSpec]:
    """The `[params.NAME]` tables of a task file, validated (types, defaults and choices agree)."""
    raw = data.get("params", {})
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: params must be a table of [params.NAME] tables")
    specs: dict[str, ParamSpec] = {}
    for name, body in raw.items():
        if not NAME.fullmatch(name):
            raise ConfigError(f"{where}: params.{name}: not a valid parameter name")
        if not isinstance(body, dict):
            raise ConfigError(f"{where}: params.{name}: must be a table (type, default, description, choices)")
        try:
            spec = ParamSpec.model_validate(body)
        except ValidationError as exc:
            err = exc.errors()[0]
            key = ".".join(str(p) for p in err["loc"])
            raise ConfigError(f"{where}: params.{name}.{key}: {err['msg']}") from None
        for value in [*(spec.choices or []), *([] if spec.default is None else [spec.default])]:
            convert(name, spec, value, where)
        if (
            spec.default is not None
            and spec.choices
            and convert(name, spec, spec.default, where) not in _choices(name, spec, where)
        ):
            raise ConfigError(f"{where}: params.{name}.default {spec.default!r} is not one of its choices")
        specs[name] = spec
    return specs


def resolve_params(specs: dict[str, ParamSpec], given: dict[str, Any], where: str) -> dict[str, Any]:
    """Every declared parameter's value: given, else its default; unknown, missing or mistyped is one line."""
    unknown = sorted(set(given) - set(specs))
    if unknown:
        known = ", ".join(sorted(specs)) or "none"
        raise ConfigError(f"{where}: unknown parameter {unknown[0]!r} (declared: {known})")
    values: dict[str, Any] = {}
    for name, spec in specs.items():
        if name in given:
            value = convert(name, spec, given[name], where)
        elif spec.default is not None:
            value = convert(name, spec, spec.default, where)
        else:
            raise ConfigError(f"{where}: parameter {name!r} is required: pass --param {name}=VALUE")
        if spec.choices and value not in _choices(name, spec, where):
            allowed = ", ".join(str(c) for c in spec.choices)
            raise ConfigError(f"{where}: parameter {name!r} must be one of {allowed} (got {value!r})")
        values[name] = value
    return values


def convert(name: str, spec: ParamSpec, value: Any, where: str) -> Any:
    """A value of the parameter's type, from text (the command line) or from TOML."""
    bad = ConfigError(f"{where}: parameter {name!r} must be {_article(spec.type)} (got {value!r})")
    if spec.type == "string":
        if isinstance(value, bool | int | float) and not isinstance(value, str):
            raise bad
        return str(value)
    if spec.type == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE | _FALSE and not isinstance(value, int | float):
            return text in _TRUE
        raise bad
    if isinstance(value, bool):
        raise bad
    try:
        if spec.type == "int":
            if isinstance(value, float):
                raise ValueError
            return int(str(value).strip())
        return float(str(value).strip())
    except ValueError:
        raise bad from None


def placeholders(text: str) -> list[str]:
    """The parameter names a text refers to with {{ NAME }}."""
    return PLACEHOLDER.findall(text)


def substitute(text: str, values: dict[str, Any], where: str, *, shell: bool = False) -> str:
    """Replace every {{ NAME }}; in a shell command the value is shell-quoted."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise ConfigError(f"{where}: {{{{ {name} }}}} names no declared parameter (add [params.{name}])")
        text = _text(values[name])
        return shlex.quote(text) if shell else text

    return PLACEHOLDER.sub(one, text)


def fill_task(data: dict[str, Any], given: dict[str, Any], where: str) -> dict[str, Any]:
    """A task file's data with its parameters resolved and substituted into the prompt, the plan and the checks
    (the `params` table itself is removed)."""
    specs = declared_params(data, where)
    values = resolve_params(specs, given, where)
    out = {k: v for k, v in data.items() if k != "params"}
    if isinstance(out.get("prompt"), str):
        out["prompt"] = substitute(out["prompt"], values, f"{where}: prompt")
    if isinstance(out.get("checks"), list):
        out["checks"] = [substitute(c, values, f"{where}: checks", shell=True) if isinstance(c, str) else c
                         for c in out["checks"]]  # fmt: skip
    if isinstance(out.get("plan"), list):
        out["plan"] = [_fill_subgoal(s, values, where) for s in out["plan"]]
    return out


def _fill_subgoal(subgoal: Any, values: dict[str, Any], where: str) -> Any:
    if not isinstance(subgoal, dict):
        return subgoal
    filled = dict(subgoal)
    for key, value in subgoal.items():
        if isinstance(value, str):
            filled[key] = substitute(value, values, f"{where}: plan", shell=key == "done_check")
    return filled


def _choices(name: str, spec: ParamSpec, where: str) -> list[Any]:
    return [convert(name, spec, c, where) for c in spec.choices or []]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _article(kind: str) -> str:
    return {"string": "a string", "int": "an integer", "float": "a number", "bool": "true or false"}[kind]
