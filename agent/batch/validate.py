"""`branchwise validate`: what is wrong with a task file, found without running it (one line per problem)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from branchwise.agent.batch.tasks import Task, discover
from branchwise.agent.config.params import ParamSpec, declared_params, placeholders, resolve_params
from branchwise.agent.errors import BranchwiseError


def validate_paths(paths: list[str], params: dict[str, str]) -> tuple[list[Task], list[str]]:
    """Every task the paths name and every problem found in them."""
    tasks = discover(paths, params if params else None)
    problems: list[str] = []
    for task in tasks:
        problems += task_problems(task, params)
    return tasks, problems


def task_problems(task: Task, given: dict[str, str]) -> list[str]:
    """A task's problems: the ones found when it was read, then the deeper checks of a task file."""
    if task.inline:
        return [task.error] if task.error else []
    where = str(task.source)
    try:
        raw = tomllib.loads(task.source.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return [task.error or f"{where}: cannot read"]
    problems: list[str] = []
    try:
        specs = declared_params(raw, where)
    except BranchwiseError as exc:
        return [str(exc)]
    for text, what in _texts(raw):
        problems += [f"{where}: {what}: {{{{ {name} }}}} names no declared parameter (add [params.{name}])"
                     for name in placeholders(text) if name not in specs]  # fmt: skip
    if not isinstance(raw.get("prompt"), str) or not raw["prompt"].strip():
        problems.append(f"{where}: prompt: a task needs a prompt (a non-empty string)")
    mine = {k: v for k, v in given.items() if k in specs}
    if given:  # with --param the values are checked as given (a required one missing is a problem)
        try:
            resolve_params(specs, mine, where)
        except BranchwiseError as exc:
            problems.append(str(exc))
    problems += _files(raw, task.source)
    if not problems:
        problems += _settings(task, {**_stand_ins(specs), **mine})
    return problems


def _texts(raw: dict[str, Any]) -> list[tuple[str, str]]:
    texts = [(raw["prompt"], "prompt")] if isinstance(raw.get("prompt"), str) else []
    texts += [(c, "checks") for c in raw.get("checks") or [] if isinstance(c, str)]
    for subgoal in raw.get("plan") or []:
        if isinstance(subgoal, dict):
            texts += [(v, "plan") for v in subgoal.values() if isinstance(v, str)]
    return texts


def _stand_ins(specs: dict[str, ParamSpec]) -> dict[str, Any]:
    """Values for required parameters, so a recipe's other settings can be checked without them."""
    sample = {"string": "x", "int": 0, "float": 0.0, "bool": False}
    return {name: (spec.choices[0] if spec.choices else sample[spec.type])
            for name, spec in specs.items() if spec.default is None}  # fmt: skip


def _files(raw: dict[str, Any], source: Path) -> list[str]:
    """Files the task names must exist: its scripted model and its repository."""
    problems = []
    model = raw.get("model")
    if isinstance(model, str) and model.startswith("scripted:"):
        path = source.parent / Path(model.removeprefix("scripted:")).expanduser()
        if not path.is_file():
            problems.append(f"{source}: model: the scripted reply file {path} does not exist")
    repo = raw.get("repo")
    if isinstance(repo, str) and not (source.parent / Path(repo).expanduser()).is_dir():
        problems.append(f"{source}: repo: {repo!r} is not a directory")
    return problems


def _settings(task: Task, values: dict[str, Any]) -> list[str]:
    """The merged configuration with this task file validates (schema, keys, repository rules)."""
    from branchwise.agent.config.layers import load_config

    try:
        load_config(task.source.parent, task_file=task.source, params=values)
    except BranchwiseError as exc:
        return [str(exc)]
    return []
