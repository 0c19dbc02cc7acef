"""`branchwise config show` and `branchwise config init`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from branchwise.agent.config.layers import load_config, project_config_path, user_config_path
from branchwise.agent.config.schema import Config
from branchwise.agent.errors import UsageError
from branchwise.cli.common import workspace_for
from branchwise.cli.render.output import Output
from branchwise.cli.render.tables import print_table

HEADER = """\
# branchwise configuration. Every setting is optional; the commented values are the defaults.
# Layers, lowest first: built-in defaults < ~/.config/branchwise/config.toml (user)
#   < <repo>/.branchwise/config.toml (project) < task file (-f) < BRANCHWISE_* environment
#   variables (BRANCHWISE_MODEL, BRANCHWISE_LIMITS_MAX_STEPS, ...) < command-line flags.
# `branchwise config show` prints the merged result and where each value came from.
"""


def show(*, task_file: Path | None, as_json: bool, cd: Path | None, out: Output | None = None) -> int:
    out = out or Output()
    resolved = task_file.resolve() if task_file else None
    workspace = workspace_for(cd, resolved)
    loaded = load_config(workspace, task_file=resolved)
    flat = _flatten(loaded.config.model_dump(mode="json"))
    if as_json:
        out.data({key: {"value": value, "source": loaded.sources.get(key, "default")} for key, value in flat.items()})
        return 0
    rows = [[key, _toml(value), loaded.sources.get(key, "default")] for key, value in flat.items()]
    print_table(out.out, ["setting", "value", "from"], rows, wrap=["value", "from"])
    return 0


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and value and key != "extra":
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _toml(value: Any) -> str:
    if value is None:
        return "(not set)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    return json.dumps(value, ensure_ascii=False)


def starter_text() -> str:
    """A commented config file generated from the settings' own documentation."""
    return HEADER + "\n".join(_section_lines(Config, prefix="")) + "\n"


def _section_lines(model: type[BaseModel], prefix: str) -> list[str]:
    lines: list[str] = []
    sections: list[tuple[str, type[BaseModel]]] = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            sections.append((name, annotation))
        else:
            lines += _commented(name, info.description, info.get_default(call_default_factory=True))
    for name, sub in sections:
        lines.append(f"\n[{prefix}{name}]")
        if sub.__doc__:
            lines.append(f"# {sub.__doc__.strip().splitlines()[0]}")
        lines += _section_lines(sub, prefix=f"{prefix}{name}.")
    return lines


def _commented(name: str, description: str | None, default: Any) -> list[str]:
    out = [""]
    for text_line in (description or "").strip().splitlines():
        out.append(f"# {text_line.strip()}")
    if isinstance(default, BaseModel):
        default = default.model_dump(mode="json")
    out.append(f"# {name} =" if default is None else f"# {name} = {_toml(default)}")
    return out


def init(*, project: bool, force: bool, cd: Path | None, out: Output | None = None) -> int:
    out = out or Output()
    path = project_config_path(workspace_for(cd)) if project else user_config_path()
    if path.exists() and not force:
        raise UsageError(f"{path} already exists (use --force to overwrite)")
    if path.exists() and not path.is_file():
        raise UsageError(f"{path} exists and is not a file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(starter_text(), encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {exc.filename or path}: {exc.strerror or exc}") from None
    out.info(f"wrote {path}")
    return 0
