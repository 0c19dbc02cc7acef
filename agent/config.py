"""Configuration: one pydantic model, built from layered dicts merged first and validated once, last.

Layers, lowest first: built-in defaults < user file < project file < task file < BRANCHWISE_* environment
variables < command-line flags. Every leaf value remembers the layer it came from (`config show`).
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from branchwise.sandbox.settings import PolicySettings, SandboxSettings, repository_widening

from .errors import ConfigError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, validate_default=True)


class LLMSettings(_Section):
    """How the model is called (litellm)."""

    api_base: str | None = None
    """Base URL of the model server, e.g. http://127.0.0.1:11434 (Ollama) or http://127.0.0.1:8000/v1."""
    api_key_env: str | None = None
    """Name of the environment variable holding the API key (default: the provider's usual one)."""
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    """Sampling temperature of the main loop."""
    max_output_tokens: int | None = Field(None, gt=0)
    """Cap on tokens generated per reply (default: the provider's)."""
    timeout_s: float = Field(120.0, gt=0)
    """Seconds to wait for one model reply before it counts as a timeout."""
    max_retries: int = Field(4, ge=0)
    """Retries on rate limits, 5xx and timeouts (never on authentication or context-length errors)."""
    retry_backoff_s: float = Field(2.0, ge=0)
    """First retry delay in seconds; it doubles on every retry (at most 60 s, or what Retry-After asks)."""
    tool_calling: Literal["auto", "native", "text"] = "auto"
    """native: the provider's tool calling; text: tool calls written in the reply text; auto: native unless the
    model is known not to support it."""
    extra: dict[str, Any] = {}
    """Extra keyword arguments for litellm.completion, e.g. {top_p = 0.9}."""


class LimitsSettings(_Section):
    """When a run stops on its own."""

    max_steps: int = Field(50, gt=0)
    """Model calls of the main loop before the run stops with budget_exceeded."""
    max_cost_usd: float = Field(3.0, ge=0)
    """Dollars spent on the model before the run stops with budget_exceeded (0 = no limit)."""
    max_wall_s: float = Field(1800.0, gt=0)
    """Seconds of wall time before the run stops with budget_exceeded."""
    max_format_errors: int = Field(3, gt=0)
    """Malformed replies in a row (no tool call, unknown tool, bad arguments) before the run fails."""
    max_finish_rejections: int = Field(3, ge=0)
    """Times a finish may be refused because the task's checks fail before the run fails."""


class ToolSettings(_Section):
    """How the agent's tools behave."""

    shell_timeout_s: float = Field(120.0, gt=0)
    """Default wall-clock limit of one shell command (the model may ask for up to 4x this)."""
    output_limit_bytes: int = Field(30_000, ge=1000)
    """Bytes of command output shown to the model; the head and the tail are kept."""
    check_timeout_s: float = Field(600.0, gt=0)
    """Wall-clock limit of one task check."""


class SearchSettings(_Section):
    """Tree search over actions: none (the plain loop), best-of-n, or mcts."""

    strategy: Literal["none", "best-of-n", "mcts"] = "none"
    """none: one trajectory; best-of-n: independent attempts picked by verification; mcts: a tree search."""
    attempts: int = Field(3, ge=1)
    """best-of-n: how many independent attempts."""
    branching: int = Field(2, ge=1)
    """Candidate replies proposed per expansion (one query with n, or distinct alternatives asked in turn); the
    candidates of one expansion are judged together in one call."""
    max_nodes: int = Field(40, ge=2)
    """Nodes (executed replies) the search may create in all."""
    max_model_calls: int = Field(80, ge=1)
    """Model calls in all: proposals (one per candidate), judge calls and the final chooser."""
    max_expansions: int = Field(3, ge=1)
    """mcts: children per node at most."""
    max_depth: int = Field(20, ge=1)
    """mcts: steps from the root at most."""
    exploration: float = Field(0.05, ge=0)
    """mcts: UCT exploration constant on [0, 1] rewards (small: near best-first)."""
    depth_penalty: float = Field(0.004, ge=0)
    """mcts: subtracted per sqrt(depth), so shallow alternatives stay in reach."""
    temperature: float = Field(0.7, ge=0, le=2)
    """Sampling temperature for candidate replies."""
    judge: Literal["auto", "model", "off"] = "auto"
    """LLM judge for nodes the executable signals do not decide: model, off, or auto (off for scripted models)."""
    min_verified: int = Field(1, ge=1)
    """Stop once this many distinct finished candidates pass the checks."""
    judge_agreement: bool = True
    """When all candidates of an expansion propose the same step, skip the judge: their agreement stands in for
    it (self-consistency) and the step keeps the value of the state it was taken from."""
    early_stop_judge: float = Field(0.8, ge=0, le=1)
    """A candidate that passes the checks stops the search early only if the judge rates it at least this (0..1);
    otherwise the search goes on and the final selection weighs it against the others."""
    check_after_edits: bool = True
    """Run the task's checks at the start and after every step that changes files, and value each step by them
    (costs the checks' run time per step; the strongest signal the search has)."""


class PlannerSettings(_Section):
    """The planner-executor loop: a plan of checkable subgoals, a progress ledger, re-planning, working memory."""

    enabled: bool = True
    """Plan the task into subgoals first (a task file's `plan` is used as given). false: one loop, no plan."""
    max_replans: int = Field(2, ge=0)
    """Re-plans allowed in one run before it fails."""
    stall_steps: int = Field(4, ge=1)
    """Steps without progress (no file changed, nothing new learned) before re-planning."""
    max_failures: int = Field(3, ge=1)
    """Failed steps in a row before re-planning."""
    max_steps_per_subgoal: int = Field(15, ge=1)
    """Steps one subgoal may take before re-planning (searches: nodes per subgoal)."""
    check_each_step: bool = True
    """Run the current subgoal's done-check after every step, and move on as soon as it passes."""
    condense: bool = True
    """Replace finished subgoals by summaries and keep the prompt within the context budget."""
    context_tokens: int = Field(0, ge=0)
    """Prompt budget in tokens; 0 = 60% of the model's input window per litellm (32000 when unknown)."""


class Config(_Section):
    """Everything a run needs to know, merged from all layers."""

    model: str | None = None
    """Model name as litellm knows it (e.g. openai/gpt-4o-mini, anthropic/claude-sonnet-4-5, ollama/qwen2.5-coder),
    or scripted:PATH to replay a YAML reply file."""
    checks: list[str] = []
    """Shell commands run in the sandbox after the model finishes; the task succeeds only if all exit 0."""
    instructions: list[str] = ["AGENTS.md", "CLAUDE.md"]
    """Project instruction files; the first one found in the workspace goes into the system prompt."""
    llm: LLMSettings = LLMSettings()
    limits: LimitsSettings = LimitsSettings()
    tools: ToolSettings = ToolSettings()
    search: SearchSettings = SearchSettings()
    planner: PlannerSettings = PlannerSettings()
    sandbox: SandboxSettings = SandboxSettings()
    policy: PolicySettings = PolicySettings()


# Keys only a task file may set; they are not part of Config.
TASK_KEYS = ("prompt", "plan")


@dataclass
class Layer:
    """One source of settings: a nested dict plus a label that says where it came from."""

    label: str
    data: dict[str, Any]
    base_dir: Path | None = None


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
    """Parse one TOML file; errors name the file. A file that comes with a repository may not widen the
    sandbox or the policy (see `repository_widening`)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    if from_repository and (problems := repository_widening(data) + _key_redirection(data)):
        raise ConfigError(
            f"{label} ({path}): {problems[0]}; a repository may only narrow the sandbox and the policy and "
            "may not choose where your API key goes, "
            "so set this in your user config, a BRANCHWISE_* variable or on the command line"
        )
    return Layer(f"{label} ({path})", data, base_dir=path.parent)


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
) -> LoadedConfig:
    """Merge every layer that exists, then validate once."""
    env = os.environ if env is None else env
    layers = [Layer("default", Config().model_dump())]
    for label, path, from_repository in (
        ("user config", user_config_path(env), False),
        ("project config", project_config_path(workspace), True),
    ):
        if path.is_file():
            layers.append(read_toml_layer(path, label, from_repository=from_repository))
    task: dict[str, Any] = {}
    if task_file is not None:
        if not task_file.is_file():
            raise ConfigError(f"{task_file}: task file not found")
        layer = read_toml_layer(task_file, "task file", from_repository=True)
        task = {k: layer.data.pop(k) for k in TASK_KEYS if k in layer.data}
        if "plan" in task:
            _check_plan(task["plan"], task_file)
        layers.append(layer)
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
    from .plan import Plan

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
    """Deep-merge dicts (later wins; lists are replaced) and record the layer of every leaf."""
    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for layer in layers:
        _merge_into(merged, _resolve_paths(layer), layer.label, sources, prefix="")
    return merged, sources


def _merge_into(dst: dict[str, Any], src: dict[str, Any], label: str, sources: dict[str, str], prefix: str) -> None:
    for key, value in src.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and isinstance(dst.get(key), dict) and value:
            _merge_into(dst[key], value, label, sources, prefix=dotted + ".")
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
