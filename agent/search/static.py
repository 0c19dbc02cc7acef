"""Static checks of the Python files a step changed: syntax (the compiler) and undefined names (pyflakes).

Both only parse the files, on the host: nothing of the repository runs. An undefined name is almost always
a bug the step just made (a typo, a missing import); unused imports and the like are left to the project's
own linters, since they rarely decide whether a change is right.
"""

from __future__ import annotations

import ast


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
