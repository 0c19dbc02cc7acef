"""Which tasks a batch runs: task files under a directory, a glob of them, or a JSONL file of task objects.

Each task names the repository it runs on:

- `repo = "PATH"` (relative to the task file or the JSONL file) and optionally `ref = "COMMIT-OR-BRANCH"`: a clone
  of that repository at that commit (default its HEAD; uncommitted changes are not in a clone);
- else a task file under a `.branchwise/` directory: its repository, cloned the same way;
- else the task file's directory: cloned when it is the top of a git repository, copied as it is otherwise
  (the examples are written this way: "run it in a copy of this directory").

A file that cannot be read or declares bad parameters is still a task: a malformed one, reported and not run.
"""

from __future__ import annotations

import glob
import hashlib
import itertools
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from branchwise.agent.config.params import fill_task
from branchwise.agent.errors import BranchwiseError, UsageError
from branchwise.agent.run.workspace import git_output

NOT_TASKS = frozenset({"pyproject.toml", "Cargo.toml", "config.toml", "netlify.toml", "rustfmt.toml", "ruff.toml"})
_SKIPPED_DIRS = frozenset({".git", "node_modules", ".venv", "venv", "__pycache__", ".tox"})


@dataclass
class Score:
    """How an evaluation scores a finished run in its copy: files written and a patch applied after the run
    (hidden from the agent), then named test commands run in the sandbox."""

    tests: list[tuple[str, str, str]] = field(default_factory=list)
    """(group, test name, shell command): a test passes when its command exits 0."""
    files: dict[str, str] = field(default_factory=dict)
    patch: str | None = None
    timeout_s: float = 120.0


@dataclass
class Task:
    """One task of a batch, ready to be copied and run (or malformed, with the reason)."""

    id: str
    source: Path
    """The task file, or the JSONL file the task came from."""
    data: dict[str, Any] = field(default_factory=dict)
    """The task's settings with parameters filled (prompt, checks, limits, ...)."""
    params: dict[str, str] = field(default_factory=dict)
    """--param values for a task file (it is run as it is, with them)."""
    repo: Path | None = None
    ref: str | None = None
    copy_dir: bool = False
    """Copy `repo` as it is (not a git top level) instead of cloning it."""
    inline: bool = False
    """From a JSONL file or an adapter: the batch writes its task file itself."""
    error: str | None = None
    score: Score | None = None
    declared: list[str] = field(default_factory=list)
    """The parameters the task declares."""

    @property
    def slug(self) -> str:
        """The id as a file name: safe characters, with a hash when anything had to be replaced."""
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", self.id).strip("._") or "task"
        if safe != self.id:
            safe = f"{safe[:60]}-{hashlib.sha256(self.id.encode()).hexdigest()[:8]}"
        return safe


def discover(paths: list[str], params: dict[str, str] | None = None, exclude: list[Path] | None = None) -> list[Task]:
    """Every task the arguments name, in a stable order; ids are unique. Nothing under `exclude` (the batch's
    own directory, with its copies) is a task."""
    params = params or {}
    skip = [p.resolve() for p in exclude or []]
    tasks: list[Task] = []
    for arg in paths:
        tasks += [t for t in _tasks_of(arg, params) if not any(d == t.source or d in t.source.parents for d in skip)]
    if not tasks:
        raise UsageError(f"no tasks found in {', '.join(paths)} (task files are *.toml with a prompt, or *.jsonl)")
    seen: dict[str, Path] = {}
    for task in tasks:
        if task.id in seen:
            raise UsageError(f"two tasks have the id {task.id!r} ({seen[task.id]} and {task.source})")
        seen[task.id] = task.source
    unused = set(params) - {name for t in tasks for name in t.declared}
    if unused:
        raise UsageError(f"--param {sorted(unused)[0]}: no task declares this parameter")
    return tasks


def _tasks_of(arg: str, params: dict[str, str]) -> list[Task]:
    path = Path(arg).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.toml") if _may_be_task(p, path))
        return [t for f in files if (t := from_toml(f, _id_of(f, path), params, skip_non_tasks=True))]
    if path.suffix == ".jsonl" and path.is_file():
        return from_jsonl(path, params)
    if path.is_file():
        task = from_toml(path, path.stem, params, skip_non_tasks=False)
        return [task] if task else []
    matches = sorted(Path(m) for m in glob.glob(str(path), recursive=True))  # noqa: PTH207 (absolute patterns)
    if not matches:
        raise UsageError(f"{arg}: no such file, directory or matching files")
    base = Path(_common_dir(matches))
    out: list[Task] = []
    for match in matches:
        if match.suffix == ".jsonl":
            out += from_jsonl(match, params)
        elif match.suffix == ".toml" and match.is_file():
            task = from_toml(match, _id_of(match, base), params, skip_non_tasks=True)
            out += [task] if task else []
    return out


def _may_be_task(path: Path, root: Path) -> bool:
    parts = path.relative_to(root).parts[:-1]
    if path.name in NOT_TASKS or any(p in _SKIPPED_DIRS for p in parts):
        return False
    if any(a == ".branchwise" and b != "tasks" for a, b in itertools.pairwise(parts)):
        return False  # runs, batch directories, memory: only .branchwise/tasks holds task files
    return not any(p.startswith(".") and p != ".branchwise" for p in parts)


def _id_of(path: Path, root: Path) -> str:
    return path.relative_to(root).with_suffix("").as_posix()


def _common_dir(paths: list[Path]) -> str:
    import os

    return os.path.commonpath([str(p.parent.resolve()) for p in paths])


def from_toml(path: Path, task_id: str, params: dict[str, str], *, skip_non_tasks: bool) -> Task | None:
    """A task file; None when it is some other TOML file (no prompt) met while scanning a directory."""
    path = path.resolve()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return Task(id=task_id, source=path, error=f"{path}: cannot read the task file: {exc}")
    if skip_non_tasks and "prompt" not in data:
        return None
    task = Task(id=str(data.get("id") or task_id), source=path)
    try:
        declared: dict[str, Any] = data["params"] if isinstance(data.get("params"), dict) else {}
        task.declared = list(declared)
        task.params = {k: v for k, v in params.items() if k in declared}
        task.data = fill_task(data, task.params, str(path))
        _where(task, task.data, path.parent, in_branchwise=".branchwise" in path.parts)
    except BranchwiseError as exc:
        task.error = str(exc)
    return task


def from_jsonl(path: Path, params: dict[str, str]) -> list[Task]:
    """One task per line: a JSON object with the keys of a task file (prompt, repo, ref, checks, params, ...)."""
    path = path.resolve()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read: {exc}") from None
    tasks = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            tasks.append(Task(id=f"{path.stem}:{number}", source=path, error=f"{where}: not JSON: {exc.msg}"))
            continue
        if not isinstance(obj, dict):
            tasks.append(Task(id=f"{path.stem}:{number}", source=path, error=f"{where}: not a JSON object"))
            continue
        tasks.append(inline_task(obj, path, f"{path.stem}:{number}", params, where))
    return tasks


def inline_task(obj: dict[str, Any], source: Path, default_id: str, params: dict[str, str], where: str) -> Task:
    """A task given as an object (a JSONL line, an evaluation instance); its repo is relative to `source`."""
    obj = dict(obj)
    task_id = str(obj.pop("id", None) or default_id)
    task = Task(id=task_id, source=source, inline=True)
    try:
        given = obj.get("param_values") or {}
        declared: dict[str, Any] = obj["params"] if isinstance(obj.get("params"), dict) else {}
        task.declared = list(declared)
        values = {**{k: v for k, v in params.items() if k in declared}, **given}
        task.data = fill_task({k: v for k, v in obj.items() if k != "param_values"}, values, where)
        if not isinstance(task.data.get("prompt"), str) or not task.data["prompt"].strip():
            raise UsageError(f"{where}: a task needs a prompt")
        _where(task, task.data, source.parent, in_branchwise=False)
    except BranchwiseError as exc:
        task.error = str(exc)
    return task


def _where(task: Task, data: dict[str, Any], base: Path, *, in_branchwise: bool) -> None:
    """Decide the task's repository (see the module's docstring)."""
    ref = data.get("ref")
    if ref is not None and not isinstance(ref, str):
        raise UsageError(f"{task.source}: ref must be a string")
    task.ref = ref
    repo = data.get("repo")
    if repo is not None:
        if not isinstance(repo, str):
            raise UsageError(f"{task.source}: repo must be a path")
        path = (base / Path(repo).expanduser()).resolve()
        top = git_output(path, "rev-parse", "--show-toplevel") if path.is_dir() else None
        bare = top is None and path.is_dir() and git_output(path, "rev-parse", "--is-bare-repository") == "true"
        if not bare and (top is None or Path(top).resolve() != path):
            raise UsageError(f"{task.source}: repo {repo!r} is not the top of a git repository")
        task.repo = path
        return
    top = git_output(base, "rev-parse", "--show-toplevel")
    if in_branchwise and top:
        task.repo = Path(top).resolve()
    elif top and Path(top).resolve() == base.resolve():
        task.repo = base.resolve()
    else:
        if ref:
            raise UsageError(f"{task.source}: ref needs a git repository (set repo)")
        task.repo, task.copy_dir = base.resolve(), True
