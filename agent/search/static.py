"""Static checks of the Python files a step changed: syntax (the compiler) and undefined names (pyflakes).

Both only parse the files, on the host: nothing of the repository runs. An undefined name is almost always
a bug the step just made (a typo, a missing import); unused imports and the like are left to the project's
own linters, since they rarely decide whether a change is right.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable

from branchwise.sandbox.base import SandboxError
from branchwise.sandbox.workspace.safefs import WorkspaceFS


def check_files(fs: WorkspaceFS, paths: Iterable[str]) -> tuple[list[str], list[str]]:
    """(syntax errors, lint problems) of the Python files among `paths`, read through the workspace's safe file
    access `fs`. A file the host may not read (a link out of the workspace, a FIFO, a masked or huge file) is
    a lint problem of the step, never an error of the run; a deleted file is skipped."""
    sources: dict[str, bytes] = {}
    unreadable: list[str] = []
    for path in paths:
        if not path.endswith(".py"):
            continue
        try:
            sources[path] = fs.read_bytes(path)
        except FileNotFoundError:
            continue
        except (OSError, SandboxError) as exc:  # a link out, a FIFO, a masked or huge file: the step's problem
            unreadable.append(f"{path}: cannot be read ({exc})")
    syntax, lint = check_python(sources)
    return syntax, lint + unreadable


def check_python(files: dict[str, bytes]) -> tuple[list[str], list[str]]:
    """(syntax errors, lint problems) of the given sources, one `path:line: message` each."""
    from pyflakes import checker, messages

    syntax, lint = [], []
    for path, source in sorted(files.items()):
        try:
            compile(source, path, "exec", dont_inherit=True)
            tree = ast.parse(source, filename=path)
        except (SyntaxError, ValueError) as exc:
            syntax.append(f"{path}:{getattr(exc, 'lineno', '?')}: {getattr(exc, 'msg', exc)}")
            continue
        for message in checker.Checker(tree, filename=path).messages:
            if isinstance(message, messages.UndefinedName):
                lint.append(f"{path}:{message.lineno}: {message.message % message.message_args}")
    return syntax, lint
