"""Reading shell command strings conservatively, for the policy and the search (never for execution).

`parse` splits a command line into the simple commands bash may run, the way bash's own lexer does:
quotes, escapes and backslash-newlines removed, comments skipped, operators and redirections
separated, here-documents read, and the bodies of `$(...)`, backticks, `<(...)` and `${...}`
parsed as commands of their own. Each word says whether the shell computes part of it when the
command runs (`dynamic`: `$x`, `$(...)`, `$'...'`) or may expand it into other words (`pattern`:
globs, braces), so callers can tell a program they know from one they cannot know statically.

`simple_argv` answers "is this one plain command, and what is its argv?" and says no whenever the
shell could do more than run that argv. What a command *does* is decided in `effects.py`, from
this parse; nothing else in branchwise reads shell syntax. It is best effort: the OS sandbox, not
this parser, is the boundary.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_METACHARS = frozenset(" \t\n;&|()<>")
# Longest first: the lexer takes the first that matches.
_OPERATORS = (";;&", ";;", ";&", "&&", "||", "|&", "&>>", "&>", "<<<", "<<-", "<<", "<>", "<&", ">>", ">&", ">|",
              "<", ">", "|", "&", ";", "(", ")")  # fmt: skip
_OPERATOR_START = frozenset("<>|&;()")
REDIRECTIONS = frozenset({"<", ">", ">>", ">|", "<>", "<&", ">&", "&>", "&>>", "<<", "<<-", "<<<"})
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\[[^]]*\])?\+?=")
_SPECIAL_PARAMS = frozenset("@*#?-$!0123456789")
MAX_DEPTH = 8


@dataclass(frozen=True)
class Word:
    """One shell word after quote removal; expansions are kept as written."""

    text: str
    dynamic: bool = False
    """The shell computes part of it when the command runs ($x, ${x}, $(...), backticks, $'...')."""
    pattern: bool = False
    """Unquoted glob or brace characters: the shell may turn it into other words (file names)."""
    quoted: bool = False
    """Some part of it was quoted or escaped (a here-document delimiter written so keeps its body literal)."""

    @property
    def static(self) -> bool:
        """Known before the command runs: exactly this one word."""
        return not (self.dynamic or self.pattern)


@dataclass
class Simple:
    """One simple command: its words (assignments included), its redirections and what feeds its stdin."""

    words: list[Word] = field(default_factory=list)
    redirects: list[tuple[str, Word]] = field(default_factory=list)
    piped: bool = False
    """Its stdin is the output of the command before it (`a | b`)."""
    stdin_text: str | None = None
    """A here-document or here-string given to it."""
    nested: bool = False
    """It runs inside a substitution of another command."""

    @property
    def argv(self) -> list[str]:
        return [w.text for w in self.words]


@dataclass
class Script:
    """Every simple command of a command line, nested ones included, and whether the parse was clean."""

    commands: list[Simple]
    complete: bool
    """False when quotes or parentheses do not balance, or substitutions nest too deeply: bash would
    refuse or read it differently, and callers should assume the worst."""
    operators: list[str]
    """The control operators seen at the top level (`;`, `&&`, `|`, newline as "\\n", ...)."""
    truncated: bool = False
    """Substitutions nested deeper than MAX_DEPTH: their commands are missing."""


def parse(command: str) -> Script:
    """All simple commands the shell may run for this command line (best effort, see the module doc)."""
    lexer = _Lexer(command, 0)
    lexer.run()
    return Script(lexer.commands, lexer.complete, lexer.operators, lexer.truncated)


class _Lexer:
    def __init__(self, s: str, depth: int, *, until_paren: bool = False, start: int = 0) -> None:
        self.s, self.i, self.depth = s, start, depth
        self.until_paren = until_paren  # a $(...) body: stop at the unmatched `)`
        self.commands: list[Simple] = []
        self.complete = True
        self.truncated = False  # substitutions nested deeper than MAX_DEPTH were not parsed
        self.operators: list[str] = []
        self.heredocs: list[tuple[Simple, str, bool, bool]] = []  # command, delimiter, quoted, strip tabs
        self.closed = False  # a $(...) body met its closing parenthesis

    # -- commands ------------------------------------------------------------------------------

    def run(self) -> None:
        current, parens = Simple(nested=self.depth > 0), 0
        while True:
            self._skip_blanks()
            if self.i >= len(self.s):
                break
            c = self.s[self.i]
            if c == "#":
                while self.i < len(self.s) and self.s[self.i] != "\n":
                    self.i += 1
                continue
            if c == "\n":
                self.i += 1
                current = self._end(current, "\n", piped=False)
                self._read_heredocs()
                continue
            if c in "<>" and self.s[self.i + 1 : self.i + 2] == "(":
                current.words.append(self.word())  # process substitution: a word
                continue
            op = self._operator()
            if op is None:
                word = self.word()
                if self._at_redirection() and _is_fd_prefix(word):
                    continue  # `2>file`, `{fd}>file`: the number belongs to the redirection
                current.words.append(word)
                continue
            if op in REDIRECTIONS:
                self._skip_blanks()
                target = self.word()
                current.redirects.append((op, target))
                if op in ("<<", "<<-"):
                    self.heredocs.append((current, target.text, target.quoted, op == "<<-"))
                elif op == "<<<":
                    current.stdin_text = target.text
                continue
            if op == "(":
                parens += 1
            elif op == ")":
                if parens == 0 and self.until_paren:
                    self.closed = True
                    break
                parens -= 1
            current = self._end(current, op, piped=op in ("|", "|&"))
        self._end(current, "", piped=False)
        if self.heredocs:
            self.complete = False  # a here-document that never got its body

    def _end(self, current: Simple, op: str, *, piped: bool) -> Simple:
        if current.words or current.redirects:
            self.commands.append(current)
        if op and self.depth == 0:
            self.operators.append(op)
        return Simple(piped=piped, nested=self.depth > 0)

    def _operator(self) -> str | None:
        if self.s[self.i] not in _OPERATOR_START:
            return None
        for op in _OPERATORS:
            if self.s.startswith(op, self.i):
                self.i += len(op)
                return op
        return None

    def _at_redirection(self) -> bool:
        return self.i < len(self.s) and self.s[self.i] in "<>"

    def _skip_blanks(self) -> None:
        while self.i < len(self.s):
            if self.s[self.i] in " \t":
                self.i += 1
            elif self.s.startswith("\\\n", self.i):
                self.i += 2
            else:
                return

    def _read_heredocs(self) -> None:
        for command, delimiter, quoted, strip in self.heredocs:
            lines: list[str] = []
            while self.i < len(self.s):
                end = self.s.find("\n", self.i)
                end = len(self.s) if end < 0 else end
                line = self.s[self.i : end]
                self.i = end + 1
                if (line.lstrip("\t") if strip else line) == delimiter:
                    break
                lines.append(line)
            else:
                self.complete = False
            body = "\n".join(lines)
            command.stdin_text = body
            if not quoted:  # an unquoted here-document expands $(...) and backticks when it is read
                self._substitutions_in(body)
        self.heredocs = []

    # -- words ---------------------------------------------------------------------------------

    def word(self) -> Word:
        """Lex one word at the current position."""
        text: list[str] = []
        unquoted: list[str] = []  # literal characters outside quotes: globs and braces are only special there
        dynamic = quoted = False
        s = self.s
        while self.i < len(s):
            c = s[self.i]
            if c in "<>" and s[self.i + 1 : self.i + 2] == "(" and not text:
                self.i += 2
                self._nested_commands()
                text.append(f"{c}(...)")
                dynamic = True
                continue
            if c in _METACHARS:
                break
            if c == "\\":
                if s.startswith("\\\n", self.i):
                    self.i += 2
                    continue
                text.append(s[self.i + 1 : self.i + 2])
                self.i += 2
                quoted = True
            elif c == "'":
                end = s.find("'", self.i + 1)
                if end < 0:
                    self.complete, end = False, len(s)
                text.append(s[self.i + 1 : end])
                self.i = end + 1
                quoted = True
            elif c == '"':
                self.i += 1
                dynamic |= self._double_quoted(text)
                quoted = True
            elif c == "$":
                quoted |= s[self.i + 1 : self.i + 2] in ("'", '"')
                dynamic |= self._dollar(text)
            elif c == "`":
                self._backticks()
                text.append("`...`")
                dynamic = True
            else:
                text.append(c)
                unquoted.append(c)
                self.i += 1
        return Word("".join(text), dynamic=dynamic, pattern=_is_pattern("".join(unquoted)), quoted=quoted)

    def _double_quoted(self, text: list[str]) -> bool:
        dynamic, s = False, self.s
        while self.i < len(s) and s[self.i] != '"':
            c = s[self.i]
            if c == "\\" and self.i + 1 < len(s):
                nxt = s[self.i + 1]
                if nxt != "\n":
                    text.append(nxt if nxt in '$`"\\' else c + nxt)
                self.i += 2
            elif c == "$":
                dynamic |= self._dollar(text, in_double=True)
            elif c == "`":
                self._backticks()
                text.append("`...`")
                dynamic = True
            else:
                text.append(c)
                self.i += 1
        if self.i >= len(s):
            self.complete = False
        self.i += 1
        return dynamic

    def _dollar(self, text: list[str], *, in_double: bool = False) -> bool:
        """Lex what follows a `$`; True when it is an expansion (the word is then dynamic)."""
        s, start = self.s, self.i
        nxt = s[self.i + 1 : self.i + 2]
        if s.startswith("$((", self.i):
            end = _closing(s, self.i + 3, "(", ")", depth=2)
            self._substitutions_in(s[self.i + 3 : end - 1])
            self.i = min(len(s), end + 1)
        elif nxt == "(":
            self.i += 2
            self._nested_commands()
        elif nxt == "{":
            end = _closing(s, self.i + 2, "{", "}")
            self._substitutions_in(s[self.i + 2 : end])
            self.i = min(len(s), end + 1)
        elif nxt == "'" and not in_double:  # $'...': escapes can spell anything, so treat it as computed
            end, j = len(s), self.i + 2
            while j < len(s):
                if s[j] == "\\":
                    j += 2
                    continue
                if s[j] == "'":
                    end = j
                    break
                j += 1
            else:
                self.complete = False
            text.append(s[self.i + 2 : end])
            self.i = end + 1
            return True
        elif nxt == '"' and not in_double:
            self.i += 2
            return self._double_quoted(text)
        elif nxt and (nxt.isalnum() or nxt == "_"):
            j = self.i + 1
            while j < len(s) and (s[j].isalnum() or s[j] == "_"):
                j += 1
            self.i = j
        elif nxt and nxt in _SPECIAL_PARAMS:
            self.i += 2
        else:
            text.append("$")
            self.i += 1
            return False
        text.append(s[start : self.i])
        return True

    def _backticks(self) -> None:
        s, j, body = self.s, self.i + 1, []
        while j < len(s) and s[j] != "`":
            if s[j] == "\\" and j + 1 < len(s):
                body.append(s[j + 1] if s[j + 1] in "`$\\" else s[j : j + 2])
                j += 2
                continue
            body.append(s[j])
            j += 1
        if j >= len(s):
            self.complete = False
        self._add_nested("".join(body))
        self.i = j + 1

    def _nested_commands(self) -> None:
        """Parse a `$(...)` or `<(...)` body from the current position up to its closing parenthesis."""
        if self.depth >= MAX_DEPTH:
            self.i = _closing(self.s, self.i, "(", ")") + 1
            self.complete, self.truncated = False, True
            return
        inner = _Lexer(self.s, self.depth + 1, until_paren=True, start=self.i)
        inner.run()
        self._absorb(inner)
        self.complete &= inner.closed
        self.i = inner.i

    def _add_nested(self, body: str) -> None:
        if self.depth >= MAX_DEPTH:
            self.complete, self.truncated = False, True
            return
        inner = _Lexer(body, self.depth + 1)
        inner.run()
        self._absorb(inner)

    def _absorb(self, inner: _Lexer) -> None:
        self.commands += inner.commands
        self.complete &= inner.complete
        self.truncated |= inner.truncated

    def _substitutions_in(self, text: str) -> None:
        """Commands inside a text that only expands (arithmetic, ${...}, an unquoted here-document)."""
        i = 0
        while i < len(text):
            if text[i] == "\\":
                i += 2
                continue
            if text.startswith("$(", i) and not text.startswith("$((", i):
                end = _closing(text, i + 2, "(", ")")
                self._add_nested(text[i + 2 : end])
                i = end + 1
            elif text[i] == "`":
                end = text.find("`", i + 1)
                end = len(text) if end < 0 else end
                self._add_nested(text[i + 1 : end])
                i = end + 1
            else:
                i += 1


def _closing(s: str, start: int, opening: str, closing: str, depth: int = 1) -> int:
    """Index of the `closing` character that brings `depth` open brackets back to zero (len(s) if none)."""
    i = start
    while i < len(s):
        c = s[i]
        if c == "\\":
            i += 2
            continue
        if c == "'" and opening == "{":
            end = s.find("'", i + 1)
            i = len(s) if end < 0 else end + 1
            continue
        if c == closing:
            depth -= 1
            if depth == 0:
                return i
        elif c == opening:
            depth += 1
        i += 1
    return len(s)


def _is_pattern(unquoted: str) -> bool:
    """Whether these unquoted characters make a glob or a brace expansion."""
    return (
        "*" in unquoted
        or "?" in unquoted
        or bool(re.search(r"\[.+\]", unquoted))
        or bool(re.search(r"\{[^{}]*(,|\.\.)[^{}]*\}", unquoted))
    )


def _is_fd_prefix(word: Word) -> bool:
    return not word.quoted and (word.text.isdigit() or bool(re.fullmatch(r"\{[A-Za-z_]\w*\}", word.text)))


def is_assignment(word: Word) -> bool:
    """A `NAME=value` word (before the program, it sets a variable instead of naming a command)."""
    return bool(_ASSIGNMENT.match(word.text)) and not word.text.startswith("=")


# -- the two questions the rules ask ------------------------------------------------------------


def simple_command(command: str) -> Simple | None:
    """The one plain command this line is, or None when the shell could do more than run one argv:
    operators, substitutions, redirections, here-documents, newlines, unbalanced quotes."""
    if "\n" in command or "\r" in command:
        return None
    script = parse(command)
    if not script.complete or script.operators or len(script.commands) != 1:
        return None
    only = script.commands[0]
    if only.redirects or only.stdin_text is not None or not only.words:
        return None
    return only


def simple_argv(command: str) -> list[str] | None:
    """The argv of a single plain command, or None when the string is anything more (or unparsable)."""
    only = simple_command(command)
    return None if only is None else only.argv


def has_substitution(command: str) -> bool:
    """True if the shell would run something while expanding this string: `$(...)`, backticks, `<(`, `>(`."""
    return any(c.nested for c in parse(command).commands)


def command_segments(command: str) -> list[list[str]]:
    """Every argv the command may run, nested ones included, as plain strings (see `parse`)."""
    return [c.argv for c in parse(command).commands if c.words]
