"""SWE-bench-style instances as batch tasks, scored with the instance's own tests in the sandbox.

An instance (one JSON object; a JSONL file or a JSON list of them, as the SWE-bench data sets publish):
`instance_id`, `repo` ("owner/name"), `base_commit`, `problem_statement`, `FAIL_TO_PASS` and `PASS_TO_PASS`
(lists of test names, or those lists JSON-encoded as strings), optionally `test_patch` (applied after the run,
so the agent never sees it), `test_cmd` (how to run one test; default "python3 -m pytest -q", the test name is
appended shell-quoted) and `hints_text`. The repository is a local mirror under --repos.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from branchwise.agent.batch.tasks import Score, Task, inline_task
from branchwise.agent.errors import UsageError

DEFAULT_TEST_CMD = "python3 -m pytest -q"
PROMPT = """Resolve this issue in the repository. Change the source code, not the tests.

{problem}
"""


def read_instances(path: Path) -> list[dict[str, Any]]:
    """Instances from a JSONL file or a JSON list."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read: {exc}") from None
    try:
        data = json.loads(text) if text.lstrip().startswith("[") else [json.loads(x) for x in text.splitlines() if x]
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: not JSON or JSONL: {exc.msg} (line {exc.lineno})") from None
    if not all(isinstance(item, dict) for item in data):
        raise UsageError(f"{path}: every instance must be a JSON object")
    return data


def swebench_tasks(instances: Path, repos: Path, out_dir: Path, *, limit: int | None = None) -> list[Task]:
    """One batch task per instance; a bad instance is a malformed task (reported, not run)."""
    items = read_instances(instances)[:limit]
    if not items:
        raise UsageError(f"{instances}: no instances")
    return [_task(item, n, instances, repos) for n, item in enumerate(items, 1)]


def _task(item: dict[str, Any], n: int, source: Path, repos: Path) -> Task:
    where = f"{source}: instance {item.get('instance_id') or n}"
    task_id = str(item.get("instance_id") or f"instance-{n}")
    try:
        fail, passing = _tests(item, "FAIL_TO_PASS", where), _tests(item, "PASS_TO_PASS", where)
        for key in ("repo", "base_commit", "problem_statement"):
            if not isinstance(item.get(key), str) or not item[key].strip():
                raise UsageError(f"{where}: {key} is missing")
        mirror = find_mirror(repos, item["repo"], where)
    except UsageError as exc:
        return Task(id=task_id, source=source, inline=True, error=str(exc))
    problem = item["problem_statement"].strip()
    if isinstance(item.get("hints_text"), str) and item["hints_text"].strip():
        problem += "\n\nHints:\n" + item["hints_text"].strip()
    obj = {"id": task_id, "prompt": PROMPT.format(problem=problem), "repo": str(mirror), "ref": item["base_commit"]}
    task = inline_task(obj, source, task_id, {}, where)
    test_cmd = str(item.get("test_cmd") or DEFAULT_TEST_CMD)
    tests = [(group, name, f"{test_cmd} {shlex.quote(name)}") for group, names in
             (("FAIL_TO_PASS", fail), ("PASS_TO_PASS", passing)) for name in names]  # fmt: skip
    patch = item.get("test_patch") if isinstance(item.get("test_patch"), str) and item["test_patch"].strip() else None
    task.score = Score(tests=tests, patch=patch)
    return task


def _tests(item: dict[str, Any], key: str, where: str) -> list[str]:
    value = item.get(key, [])
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else []
        except json.JSONDecodeError:
            raise UsageError(f"{where}: {key} is not a list of test names") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UsageError(f"{where}: {key} is not a list of test names")
    if key == "FAIL_TO_PASS" and not value:
        raise UsageError(f"{where}: FAIL_TO_PASS is empty: nothing would show the issue resolved")
    return value


def find_mirror(repos: Path, name: str, where: str) -> Path:
    """The local mirror of owner/name: DIR/owner__name, DIR/name or DIR/owner/name."""
    owner, _, short = name.partition("/")
    candidates = [repos / name.replace("/", "__"), repos / (short or owner), repos / name]
    for path in candidates:
        if (path / ".git").exists() or (path / "HEAD").is_file():  # a clone or a bare mirror
            return path.resolve()
    raise UsageError(
        f"{where}: no local mirror of {name} under {repos} (tried {', '.join(p.name for p in candidates)})"
    )
