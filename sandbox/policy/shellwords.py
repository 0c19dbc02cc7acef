"""Reading shell command strings conservatively, for policy matching (never for execution).

`simple_argv` answers "is this one plain command, and what is its argv?" and says no whenever the
shell could do more than run that argv: operators, substitutions, redirects, newlines, comments,
unbalanced quotes. `command_segments` splits a compound command into the argvs it may run, looking
into substitutions, `bash -c` scripts and `eval`, so that ask/deny rules still see `git push` in
`cd x && env FOO=1 git push`. It is best effort; the OS sandbox, not this parser, is the boundary.
"""

from __future__ import annotations

import re
import shlex

# Characters that make shlex return an operator token when punctuation_chars is on.
_OPERATOR_CHARS = frozenset("();<>|&")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "fish"})
_MAX_DEPTH = 4


def has_substitution(command: str) -> bool:
    """True if the shell would run something while expanding this string: `$(...)`, backticks, `<(`, `>(`."""
    in_single = in_double = False
    escaped = False
    for i, ch in enumerate(command):
        if escaped:
            escaped = False
        elif ch == "\\" and not in_single:
            escaped = True
        elif ch == "'" and not in_double:
            in_single = not in_single
        elif ch == '"' and not in_single:
            in_double = not in_double
        elif not in_single and (ch == "`" or (ch == "$" and command[i + 1 : i + 2] == "(")):
            return True
    return False


def _tokens(command: str) -> list[str] | None:
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = ""  # bash only starts a comment at a word start; shlex would cut mid-word
    try:
        return list(lexer)
    except ValueError:  # unbalanced quotes
        return None


def _is_operator(token: str) -> bool:
    return bool(token) and set(token) <= _OPERATOR_CHARS


def simple_argv(command: str) -> list[str] | None:
    """The argv of a single plain command, or None when the string is anything more (or unparsable)."""
    if "\n" in command or "\r" in command or "#" in command or has_substitution(command):
        return None
    tokens = _tokens(command)
    if not tokens or any(_is_operator(t) for t in tokens):
        return None
    return tokens


def substitutions(command: str) -> list[str]:
    """The bodies of `$(...)` and backtick substitutions (outside single quotes), outermost first."""
    bodies: list[str] = []
    i, in_single = 0, False
    while i < len(command):
        ch = command[i]
        if ch == "\\" and not in_single:
            i += 2
            continue
        if ch == "'":
            in_single = not in_single
        elif not in_single and ch == "`":
            end = command.find("`", i + 1)
            end = len(command) if end < 0 else end
            bodies.append(command[i + 1 : end])
            i = end
        elif not in_single and command.startswith("$(", i):
            depth, j = 1, i + 2
            while j < len(command) and depth:
                depth += {"(": 1, ")": -1}.get(command[j], 0)
                j += 1
            bodies.append(command[i + 2 : j - 1 if depth == 0 else j])
            i = j - 1
        i += 1
    return bodies


def command_segments(command: str, depth: int = 0) -> list[list[str]]:
    """Every argv the command may run, best effort: split on operators and newlines, and look inside
    substitutions, `sh -c` scripts and `eval`. Wrappers (`env`, `sudo`, `timeout 5`) are left in place:
    match rules against every position of a segment to see through them."""
    segments: list[list[str]] = []
    if depth >= _MAX_DEPTH:
        return segments
    for body in substitutions(command):
        segments += command_segments(body, depth + 1)
    for line in re.split(r"[\r\n]+", command):
        tokens = _tokens(line)
        current: list[str] = []
        for token in [*(tokens if tokens is not None else line.split()), ";"]:
            if not _is_operator(token):
                current.append(token)
                continue
            if current:
                segments.append(current)
                segments += _inner_scripts(current, depth)
            current = []
    return segments


def _inner_scripts(argv: list[str], depth: int) -> list[list[str]]:
    """What `sh -c SCRIPT` or `eval WORDS` in this argv would run."""
    for i, token in enumerate(argv):
        name = token.rsplit("/", 1)[-1]
        if name in _SHELLS and "-c" in argv[i + 1 :]:
            at = argv.index("-c", i + 1)
            return command_segments(argv[at + 1], depth + 1) if at + 1 < len(argv) else []
        if name == "eval":
            return command_segments(" ".join(argv[i + 1 :]), depth + 1)
    return []
