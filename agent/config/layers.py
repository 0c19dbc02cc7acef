"""Loading configuration: layered dicts merged first and validated once, last.

Layers, lowest first: built-in defaults < user file < project file < task file < BRANCHWISE_* environment
variables < command-line flags. Every leaf value remembers the layer it came from (`config show`).

The project file and the task file come with the repository: each is judged against the defaults and the
user's file merged (it may narrow the sandbox and the policy, never widen them, see `repository_widening`),
its security lists (MERGED_LISTS) add to the ones below instead of replacing them, and the files it names
(a scripted model, instruction files) must lie inside the repository.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from branchwise.agent.config.params import fill_task
from branchwise.agent.config.schema import Config
from branchwise.agent.errors import ConfigError
from branchwise.sandbox.settings import MERGED_LISTS, repository_widening
from branchwise.tools.browser.settings import repository_browser_problems
from branchwise.tools.mcp.settings import repository_mcp_problems

# Keys only a task file may set; they are not part of Config. `params` (recipes, see params.py) is filled and
# removed first; `id`, `repo` and `ref` say which task and which repository a batch runs (agent/batch/tasks.py).
TASK_KEYS = ("prompt", "plan", "id", "repo", "ref")
MAX_CONFIG_BYTES = 1024 * 1024


@dataclass
class Layer:
    """One source of settings: a nested dict plus a label that says where it came from."""

    label: str
    data: dict[str, Any]
    base_dir: Path | None = None
    from_repository: bool = False
    """It came with the repository: its MERGED_LISTS add to the layers below instead of replacing them."""


@dataclass
class LoadedConfig:
    """The validated config, which layer each leaf value came from, and task-file-only fields."""

    config: Config
    sources: dict[str, str]
    task: dict[str, Any] = field(default_factory=dict)


def user_config_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".config")
    return Path(base) / "branchwise" / "config.toml"


def project_config_path(workspace: Path) -> Path:
    return workspace / ".branchwise" / "config.toml"


def read_toml_layer(path: Path, label: str, *, from_repository: bool = False) -> Layer:
    """Parse one TOML file; errors name the file. A file that comes with a repository is checked by
    `check_repository_layer` once the layers below it are known."""
    try:
        data = tomllib.loads(_read_config_text(path))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    return Layer(f"{label} ({path})", data, base_dir=path.parent, from_repository=from_repository)


def _read_config_text(path: Path) -> str:
    """A config file's text: a regular file only (a FIFO or a device in a repository must not hang or flood
    the host), and at most MAX_CONFIG_BYTES."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        data = f.read(MAX_CONFIG_BYTES + 1)
    if len(data) > MAX_CONFIG_BYTES:
        raise OSError(errno.EFBIG, f"larger than {MAX_CONFIG_BYTES} bytes")
    return data.decode("utf-8")


def check_repository_layer(layer: Layer, below: list[Layer], root: Path) -> None:
    """Refuse a repository's layer that widens what the layers below it allow, decides where the API key goes,
    or names files outside `root` (the repository)."""
    merged, _ = merge_layers(below)
    problems = repository_widening(layer.data, merged) + _key_redirection(layer.data)
    problems += repository_mcp_problems(layer.data) + repository_browser_problems(layer.data, merged)
    problems += _tools_widening(layer.data, merged) + _spending_widening(layer.data, merged)
    problems += _files_outside(layer, root)
    if problems:
        raise ConfigError(
            f"{layer.label}: {problems[0]}; a repository may only narrow the sandbox, the policy and the spending "
            "limits, may not choose where your API key goes and may only name its own files, "
            "so set this in your user config, a BRANCHWISE_* variable or on the command line"
        )


def _tools_widening(data: dict[str, Any], below: dict[str, Any]) -> list[str]:
    """Output kept from a command is read into the agent's memory: a repository may only lower the limit."""
    value = (data.get("tools") or {}).get("output_limit_bytes") if isinstance(data.get("tools"), dict) else None
    base = (below.get("tools") or {}).get("output_limit_bytes", Config().tools.output_limit_bytes)
    if isinstance(value, int) and isinstance(base, int) and value > base:
        return [f"tools.output_limit_bytes = {value} is above {base}"]
    return []


def _spending_widening(data: dict[str, Any], below: dict[str, Any]) -> list[str]:
    """The user's money: a repository may lower the cost and token limits, never raise or remove them."""
    limits, base = data.get("limits"), below.get("limits") or {}
    if not isinstance(limits, dict) or not isinstance(base, dict):
        return []
    defaults, problems = Config().limits, []
    for key in ("max_cost_usd", "max_tokens"):
        value, floor = limits.get(key), base.get(key, getattr(defaults, key))
        if not isinstance(value, int | float) or not isinstance(floor, int | float):
            continue
        unlimited, was_unlimited = value == 0, floor == 0
        if (unlimited and not was_unlimited) or (not was_unlimited and value > floor):
            shown = "0 (no limit)" if unlimited else str(value)
            problems.append(f"limits.{key} = {shown} is above {floor}")
    return problems


def _files_outside(layer: Layer, root: Path) -> list[str]:
    """Files a repository's layer names (instruction files, a scripted model) must be its own."""
    problems = []
    for name in layer.data.get("instructions") or []:
        if not isinstance(name, str) or not _inside(root / name, root, follow=False):
            problems.append(f"instructions names {name!r}, which is not a file of the repository")
    model = layer.data.get("model")
    if isinstance(model, str) and model.startswith("scripted:") and layer.base_dir is not None:
        path = layer.base_dir / Path(model.removeprefix("scripted:")).expanduser()
        if not _inside(path, root, follow=True):
            problems.append(f"model = {model!r} names a file outside the repository")
    return problems


def _inside(path: Path, root: Path, *, follow: bool) -> bool:
    real_root = Path(os.path.realpath(root))
    target = (
        Path(os.path.realpath(path)) if follow else Path(os.path.normpath(path if path.is_absolute() else root / path))
    )
    base = real_root if follow else Path(os.path.normpath(root))
    return target != base and base in target.parents


def _key_redirection(data: dict[str, Any]) -> list[str]:
    """A repository must not decide where the user's API key goes, or which secret is sent as the key."""
    llm = data.get("llm") or {}
    return [
        f"llm.{key} could send your API key elsewhere" for key in ("api_base", "api_key_env", "extra") if key in llm
    ]


def env_layer(env: Mapping[str, str]) -> Layer:
    """BRANCHWISE_MODEL, BRANCHWISE_<SECTION>_<KEY>: BRANCHWISE_LIMITS_MAX_STEPS, BRANCHWISE_SANDBOX_LIMITS_PIDS_MAX."""
    data: dict[str, Any] = {}
    for var, raw in sorted(env.items()):
        if not var.startswith("BRANCHWISE_"):
            continue
        path = _env_path(Config, var.removeprefix("BRANCHWISE_").lower())
        if path is None:
            raise ConfigError(f"environment variable {var}: unknown setting")
        node = data
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = _parse_env_value(raw)
    return Layer("environment", data)


def _env_path(model: type[BaseModel], key: str) -> list[str] | None:
    """Split an underscore-joined name into field names, descending into nested sections."""
    for name, info in model.model_fields.items():
        sub = info.annotation
        is_section = isinstance(sub, type) and issubclass(sub, BaseModel)
        if key == name and not is_section:
            return [name]
        if is_section and key.startswith(name + "_"):
            rest = _env_path(sub, key[len(name) + 1 :])  # type: ignore[arg-type]
            if rest is not None:
                return [name, *rest]
    return None


def _parse_env_value(raw: str) -> Any:
    """JSON for lists, objects and numbers (so BRANCHWISE_CHECKS='["make test"]' works), else the text."""
    if raw[:1] in "[{":
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw
    return raw


def load_config(
    workspace: Path,
    *,
    task_file: Path | None = None,
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    params: Mapping[str, Any] | None = None,
) -> LoadedConfig:
    """Merge every layer that exists, then validate once. `params` fill the task file's [params] (a recipe)."""
    env = os.environ if env is None else env
    layers = [Layer("default", Config().model_dump())]
    if user_config_path(env).is_file():
        layers.append(read_toml_layer(user_config_path(env), "user config"))
    users = list(layers)  # what a repository's layers are judged against
    project = project_config_path(workspace)
    if os.path.lexists(project):
        if not _inside(project, workspace, follow=True):
            raise ConfigError(f"project config ({project}): it leads outside the repository; remove the link")
        layer = read_toml_layer(project, "project config", from_repository=True)
        check_repository_layer(layer, users, workspace)
        layers.append(layer)
    task: dict[str, Any] = {}
    if task_file is not None:
        if not task_file.is_file():
            raise ConfigError(f"{task_file}: task file not found")
        layer = read_toml_layer(task_file, "task file", from_repository=True)
        layer.data = fill_task(layer.data, dict(params or {}), str(task_file))
        task = {k: layer.data.pop(k) for k in TASK_KEYS if k in layer.data}
        if "plan" in task:
            _check_plan(task["plan"], task_file)
        check_repository_layer(layer, users, task_file.resolve().parent)
        layers.append(layer)
    elif params:
        raise ConfigError(f"--param {next(iter(params))}: parameters need a task file (-f) that declares them")
    layers.append(env_layer(env))
    layers.append(Layer("command line", _nest(dict(flags or {}))))
    merged, sources = merge_layers(layers)
    try:
        config = Config.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_describe_validation_error(exc, sources)) from None
    return LoadedConfig(config, sources, task)


def _check_plan(subgoals: Any, task_file: Path) -> None:
    """A task file's plan must be valid before anything runs."""
    from branchwise.agent.plan.planner import Plan

    try:
        Plan.model_validate({"subgoals": subgoals})
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in ("plan", *err["loc"][1:]))
        raise ConfigError(f"{task_file}: {where}: {err['msg']}") from None


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    """{"limits.max_steps": 3} -> {"limits": {"max_steps": 3}}; None values are dropped."""
    out: dict[str, Any] = {}
    for dotted, value in flat.items():
        if value is None:
            continue
        *parents, leaf = dotted.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def merge_layers(layers: list[Layer]) -> tuple[dict[str, Any], dict[str, str]]:
    """Deep-merge dicts (later wins; lists are replaced, except that a repository's layer adds to the
    MERGED_LISTS below it) and record the layer of every leaf."""
    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for layer in layers:
        adds = MERGED_LISTS if layer.from_repository else ()
        _merge_into(merged, _resolve_paths(layer), layer.label, sources, prefix="", adds=adds)
    return merged, sources


def _merge_into(dst: dict[str, Any], src: dict[str, Any], label: str, sources: dict[str, str], prefix: str,
                adds: tuple[str, ...]) -> None:  # fmt: skip
    for key, value in src.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and isinstance(dst.get(key), dict) and value:
            _merge_into(dst[key], value, label, sources, prefix=dotted + ".", adds=adds)
        elif dotted in adds and isinstance(value, list) and isinstance(dst.get(key), list):
            dst[key] = dst[key] + [item for item in value if item not in dst[key]]
            sources[dotted] = f"{sources.get(dotted, 'default')} + {label}"
        else:
            dst[key] = value
            for leaf in _leaves(value, dotted):
                sources[leaf] = label
            sources[dotted] = label


def _leaves(value: Any, dotted: str) -> list[str]:
    if isinstance(value, dict) and value:
        return [leaf for k, v in value.items() for leaf in _leaves(v, f"{dotted}.{k}")]
    return [dotted]


def _resolve_paths(layer: Layer) -> dict[str, Any]:
    """A relative scripted:PATH is relative to the file that names it."""
    data = dict(layer.data)
    model = data.get("model")
    if layer.base_dir and isinstance(model, str) and model.startswith("scripted:"):
        path = Path(model.removeprefix("scripted:")).expanduser()
        if not path.is_absolute():
            data["model"] = f"scripted:{(layer.base_dir / path).resolve()}"
    return data


def _describe_validation_error(exc: ValidationError, sources: dict[str, str]) -> str:
    """One line naming the source and the key of the first problem."""
    err = exc.errors()[0]
    dotted = ".".join(str(p) for p in err["loc"])
    where = _source_of(dotted, sources)
    if err["type"] == "extra_forbidden":
        return f"{where}: unknown key '{dotted}'"
    return f"{where}: {dotted}: {err['msg']} (got {err.get('input')!r})"


def _source_of(dotted: str, sources: dict[str, str]) -> str:
    parts = dotted.split(".")
    for n in range(len(parts), 0, -1):
        label = sources.get(".".join(parts[:n]))
        if label:
            return label
    return "config"
