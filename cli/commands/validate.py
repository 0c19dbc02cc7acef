"""`branchwise validate FILE...`: check task files without running them."""

from __future__ import annotations

import sys

from branchwise.agent.batch.validate import validate_paths
from branchwise.agent.config.params import parse_param_flags
from branchwise.cli.render.inert import inert


def validate_command(files: list[str], params: list[str] | None) -> int:
    """One line per problem on stderr and exit 2, or one `ok` line per task and exit 0."""
    tasks, problems = validate_paths(files, parse_param_flags(params))
    for problem in problems:
        print(f"branchwise: invalid: {inert(problem, one_line=True)}", file=sys.stderr)
    if problems:
        return 2
    for task in tasks:
        print(f"ok  {task.id}  ({task.source})")
    return 0
