"""What a tool call can change: the one place that decides it, for the policy and the search alike.

A tool declares an effect (`Tool.effect`, refined per call by `effect_of(args)`): read, file, exec,
browser or external. The command line of an exec call is read here, from `shellwords.parse`, and
given a kind:

- read: changes nothing
- ephemeral: runs commands whose effects are workspace files (snapshotted) or vanish with the sandbox
- file: changes workspace files only; a snapshot restore undoes it
- stateful: changes state outside the workspace that a restore cannot undo but a re-run can rebuild
  (a service, a database, a global install, the browser's state); replayed after a restore
- irreversible: changes the world outside the machine (pushes, publishing, uploads, deploys, remote
  writes), or runs a program that cannot be known before the command runs: a commit point

The policy asks before every irreversible command by default (`default:<category>`), and under
approval = untrusted allows only `read_only` commands without a question; the search never branches
past an irreversible step. Both read the same `CommandEffect`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from branchwise.sandbox.policy import programs as P
from branchwise.sandbox.policy.arguments import argument_action, is_loopback
from branchwise.sandbox.policy.readonly import is_read_only
from branchwise.sandbox.policy.shellwords import MAX_DEPTH, Simple, Word, is_assignment, parse

Effect = Literal["read", "file", "exec", "browser", "external"]
Kind = Literal["read", "ephemeral", "file", "stateful", "irreversible"]
ORDER: tuple[Kind, ...] = ("read", "ephemeral", "file", "stateful", "irreversible")

UNKNOWN = P.Action("unknown-program", "runs a program that is only known when the command runs")
# Words that open a compound command: the next word is in command position again.
_RESERVED = frozenset({"{", "}", "!", "if", "then", "elif", "else", "fi", "do", "done", "while", "until", "time",
                       "coproc", "esac"})  # fmt: skip
# Words after which nothing is in command position until the next operator.
_NO_COMMAND = frozenset({"case", "for", "select", "[[", "((", "function", "]]", "in"})
_CACHED_LENGTH = 4096
_MAX_LENGTH = 100_000  # longer is not read (it would take seconds): such a line is judged unknown
_FAMILY = re.compile(rf"^({'|'.join(P.FAMILIES)})[0-9.]*$")
_ALIASES = {"gradlew": "gradle", "mvnw": "mvn", "nodejs": "node", "docker.io": "docker", "podman-remote": "podman"}


@dataclass(frozen=True)
class Finding:
    """One consequential thing a command does, and the words that do it."""

    action: P.Action
    what: str

    @property
    def kind(self) -> Kind:
        return "stateful" if self.action.category == "stateful" else "irreversible"


@dataclass(frozen=True)
class CommandEffect:
    """What one command line can change."""

    kind: Kind
    findings: tuple[Finding, ...]
    read_only: bool
    """It cannot execute other code or write anything (safe to run unasked under approval = untrusted)."""
    invocations: tuple[tuple[Word, ...], ...] = ()
    """Every argv it may run, starting at the program (wrappers, `sh -c` and substitutions looked into)."""

    @property
    def irreversible(self) -> Finding | None:
        """The first finding the search must commit to and the policy asks about, if any."""
        return next((f for f in self.findings if f.kind == "irreversible"), None)


def command_effect(command: str) -> CommandEffect:
    """What this shell command line can change."""
    if len(command) > _MAX_LENGTH:
        return CommandEffect("irreversible", (Finding(UNKNOWN, f"a command line of {len(command)} characters"),), False)
    if len(command) > _CACHED_LENGTH:  # a whole file's text (taint checks edits): not worth keeping
        return _command_effect.__wrapped__(command, 0)
    return _command_effect(command, 0)


def call_kind(effect: str | None, command: str | None = None) -> Kind:
    """The kind of one tool call from its declared effect (and its command line, for exec)."""
    if effect == "read":
        return "read"
    if effect == "file":
        return "file"
    if effect == "exec" and command is not None:
        return command_effect(command).kind
    if effect == "browser":
        return "stateful"
    return "irreversible"  # external, an exec without a readable command, or an undeclared tool


def most_severe(kinds: Iterable[Kind]) -> Kind:
    return max(kinds, key=ORDER.index, default="read")


@functools.lru_cache(maxsize=2048)
def _command_effect(command: str, depth: int) -> CommandEffect:
    judge = _Judge(depth)
    script = parse(command)
    for simple in script.commands:
        judge.simple(simple)
    if depth > MAX_DEPTH or script.truncated:
        judge.add(UNKNOWN, "command lines nested too deeply to read")
    findings = tuple(dict.fromkeys(judge.findings))
    kind = most_severe(["ephemeral", *(f.kind for f in findings)])
    read_only = not findings and depth == 0 and is_read_only(command)
    return CommandEffect(kind, findings, read_only, tuple(judge.invocations))


def program_name(text: str) -> str:
    """The program a command word names: its basename, version suffixes folded (`python3.11` -> python)."""
    base = text.rstrip("/").rsplit("/", 1)[-1]
    match = _FAMILY.match(base)
    return _ALIASES.get(base, match.group(1) if match else base)


class _Judge:
    """Collects the findings of one command line's simple commands."""

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.findings: list[Finding] = []
        self.invocations: list[tuple[Word, ...]] = []

    def add(self, action: P.Action, what: str) -> None:
        self.findings.append(Finding(action, what))

    def script(self, text: str | Word) -> None:
        """A command line given as a string to another program (`sh -c`, `eval`, `watch`)."""
        if isinstance(text, Word):
            if not text.static:
                self.add(UNKNOWN, text.text)
                return
            text = text.text
        inner = _command_effect(text, self.depth + 1)
        self.findings += inner.findings
        self.invocations += inner.invocations

    def simple(self, cmd: Simple) -> None:
        for op, target in cmd.redirects:
            if op != "<<" and op != "<<-" and re.match(r"/dev/(tcp|udp)/", target.text):
                host = target.text.split("/")[3] if target.text.count("/") >= 3 else ""
                if not is_loopback(host):
                    self.add(P.REMOTE, f"{op} {target.text}")
        self.run(cmd.words, cmd, [])

    def run(self, words: list[Word], cmd: Simple, env: list[str]) -> None:
        """Judge the command that starts at words[0] (assignments and reserved words first)."""
        i = 0
        while i < len(words):
            word = words[i]
            if is_assignment(word):
                env.append(word.text)
            elif not (word.text in _RESERVED and not word.quoted):
                break
            i += 1
        words = words[i:]
        if not words or (words[0].text in _NO_COMMAND and not words[0].quoted):
            return
        program, args = words[0], words[1:]
        self.invocations.append(tuple(words))
        if not program.static:
            self.add(UNKNOWN, " ".join(w.text for w in words[:2]))
            return
        self.program(program_name(program.text), args, cmd, env)

    def program(self, name: str, args: list[Word], cmd: Simple, env: list[str]) -> None:
        if name in P.WRAPPERS:
            self.wrapper(name, P.WRAPPERS[name], args, cmd, env)
        elif name in P.SHELLS:
            self.shell(name, args, cmd)
        elif name == "eval":
            self.script(Word(" ".join(w.text for w in args), dynamic=any(not w.static for w in args)))
        elif name == "alias":
            for word in args:
                if "=" in word.text:
                    self.script(Word(word.text.split("=", 1)[1], dynamic=word.dynamic))
        elif name == "trap" and args:
            self.script(args[0])
        elif name == "find":
            self.find(args, cmd, env)
        elif name in P.INLINE_CODE or name in P.AWKS:
            self.interpreter(name, args, cmd, env)
        elif name == "git" or name.startswith("git-"):
            self.git(name, args, env)
        else:
            self.table(name, args, cmd, env)

    def table(self, name: str, args: list[Word], cmd: Simple, env: list[str]) -> None:
        heads = _heads(args)
        for (program, sub), spec in P.SUBCOMMAND_WRAPPERS.items():
            if program == name and any(h[:1] == [sub] for h, _ in heads):
                rest = next(rest for h, rest in heads if h[:1] == [sub])
                self.wrapper(f"{name} {sub}", spec, rest, cmd, env)
                return
        if name in ("gh", "glab"):
            if not any(set(h[:2]) & P.FORGE_READ for h, _ in heads):
                self.add(P.PUBLISH, f"{name} {' '.join(heads[0][0][:2])}".strip())
            return
        for path, action in P.ACTIONS.get(name, {}).items():
            wanted = path.split()
            if path == P.ANY or any(_starts_with(h, wanted) for h, _ in heads):
                self.add(action, f"{name} {'' if path == P.ANY else path}".strip())
                return
        found = argument_action(name, args)
        if found is not None:
            self.add(*found)

    def wrapper(self, name: str, spec: P.Wrapper, args: list[Word], cmd: Simple, env: list[str]) -> None:
        i = 0
        while i < len(args):
            text = args[i].text
            if name in ("env", "sudo") and is_assignment(args[i]):
                env.append(text)
            elif text == "--":
                i += 1
                break
            elif text.startswith("-") and len(text) > 1:
                key, has_value = text.split("=", 1)[0], "=" in text
                if key in spec.scripts:
                    value = Word(text.split("=", 1)[1]) if has_value else _at(args, i + 1)
                    self.script(value)
                    i += 0 if has_value else 1
                elif key in spec.values and not has_value:
                    i += 1
            else:
                break
            i += 1
        rest = args[min(len(args), i + spec.positional) :]
        if spec.rest_is_script:
            if rest:
                self.script(Word(" ".join(w.text for w in rest), dynamic=any(not w.static for w in rest)))
            return
        if name == "xargs":  # the rest of the command line comes from stdin
            rest = [*(rest or [Word("echo")]), Word("<stdin>", dynamic=True)]
        if name == "command" and args[:1] and args[0].text in ("-v", "-V"):
            return
        if rest:
            self.run(rest, cmd, env)

    def shell(self, name: str, args: list[Word], cmd: Simple) -> None:
        if name == "busybox":
            if args:
                self.run(args, cmd, [])
            return
        i, inline = 0, False
        while i < len(args):
            text = args[i].text
            if text == "--":
                i += 1
                break
            if text in ("-o", "+o", "-O", "+O", "--rcfile", "--init-file"):
                i += 2
                continue
            if text[:1] in "-+" and len(text) > 1:
                inline |= not text.startswith("--") and "c" in text[1:]
                i += 1
                continue
            break
        if inline:
            self.script(_at(args, i))
        elif i < len(args):
            pass  # a script file: its content is not read here (a documented limit)
        elif cmd.stdin_text is not None:
            self.script(cmd.stdin_text)
        elif cmd.piped:
            self.add(UNKNOWN, f"{name} reading commands from a pipe")

    def find(self, args: list[Word], cmd: Simple, env: list[str]) -> None:
        for i, word in enumerate(args):
            if word.text in ("-exec", "-execdir", "-ok", "-okdir"):
                end = next((j for j in range(i + 1, len(args)) if args[j].text in (";", "+")), len(args))
                self.run(args[i + 1 : end], cmd, list(env))

    def interpreter(self, name: str, args: list[Word], cmd: Simple, env: list[str]) -> None:
        flags = P.INLINE_CODE.get(name, ())
        code: Word | None = None
        for i, word in enumerate(args):
            text = word.text
            if name in P.AWKS:
                if text == "-f":
                    return
                if not text.startswith("-"):
                    code = word
                    break
                continue
            if text in flags or (text[:2] in flags and len(text) > 2 and text[:1] == "-"):
                code = _at(args, i + 1) if text in flags else Word(text[2:], dynamic=word.dynamic)
                break
            if name == "python" and (text == "-m" or text.startswith("-m")):
                module = _at(args, i + 1) if text == "-m" else Word(text[2:])
                rest = args[i + 2 :] if text == "-m" else args[i + 1 :]
                if not module.static:
                    self.add(UNKNOWN, f"python -m {module.text}")
                else:
                    self.program(module.text.split(".")[0] if module.text != "http.server" else "http.server",
                                 rest, cmd, env)  # fmt: skip
                return
            if not text.startswith("-"):
                self.script_file(name, word, args[i + 1 :])
                return
        if code is None and not args and cmd.stdin_text is not None:
            code = Word(cmd.stdin_text)
        elif code is None and not any(not a.text.startswith("-") for a in args) and cmd.piped:
            self.add(UNKNOWN, f"{name} reading code from a pipe")
            return
        if code is not None:
            body = code.text
            if not code.static or any(s in body for s in P.SPAWNERS) or (name in P.AWKS and "|" in body):
                self.add(UNKNOWN, f"{name} code that starts other programs")

    def script_file(self, name: str, script: Word, args: list[Word]) -> None:
        base = script.text.rsplit("/", 1)[-1]
        texts = {a.text for a in args}
        if base == "setup.py" and texts & {"upload", "register"}:
            self.add(P.PUBLISH, f"{name} setup.py upload")
        elif base == "manage.py" and "migrate" in texts:
            self.add(P.STATEFUL, f"{name} manage.py migrate")

    def git(self, name: str, args: list[Word], env: list[str]) -> None:
        if name != "git":
            args = [Word(name[4:]), *args]  # git's helper programs: git-push, /usr/lib/git-core/git-send-pack
        before = len(self.findings)
        self.git_words(args)
        if len(self.findings) == before and any(e.startswith(P.GIT_ENVIRONMENT) for e in env):
            self.add(UNKNOWN, "git with its configuration or helpers chosen by environment variables")

    def git_words(self, args: list[Word]) -> None:
        i, unknown = 0, ""  # an option that may make git run something else; a push still says push
        while i < len(args) and args[i].text.startswith("-") and args[i].text != "-":
            word, text = args[i], args[i].text
            key = text.split("=", 1)[0]
            if not word.static or key == "--config-env" or (key == "--exec-path" and "=" in text):
                self.add(UNKNOWN, f"git {text}")
                return
            if key == "-c" or (text.startswith("-c") and not text.startswith("--")):
                value = _at(args, i + 1) if text == "-c" else Word(text[2:])
                if not value.static or not value.text.lower().startswith(P.GIT_HARMLESS_CONFIG):
                    unknown = unknown or f"git -c {value.text}"
                i += 2 if text == "-c" else 1
                continue
            if key in P.GIT_GLOBAL_VALUES:
                i += 1 if "=" in text else 2
                continue
            if key not in P.GIT_GLOBAL_FLAGS and key not in ("-p", "--paginate", "--exec-path"):
                unknown = unknown or f"git {text}"
            i += 1
        if i < len(args) and not args[i].static:
            self.add(UNKNOWN, f"git {args[i].text}")
            return
        before = len(self.findings)
        if i < len(args):
            self.git_subcommand(args[i].text, args[i + 1 :])
        if unknown and len(self.findings) == before:
            self.add(UNKNOWN, unknown)

    def git_subcommand(self, sub: str, rest: list[Word]) -> None:
        texts = [w.text for w in rest]
        conditional = {"p4": "submit", "subtree": "push", "lfs": "push"}
        if sub in P.GIT_PUSHES:
            if sub == "svn" and set(texts) & {"dcommit", "set-tree", "commit-diff", "branch", "tag"}:
                self.add(P.PUSH, f"git svn {' '.join(texts[:1])}")
            elif (sub not in conditional and sub != "svn") or conditional.get(sub) in texts:
                self.add(P.PUSH, f"git {sub}")
        elif sub.startswith("remote-"):
            self.add(P.PUSH, f"git {sub} (a remote helper)")
        elif sub == "submodule" and "foreach" in texts:
            after = [w for w in rest[texts.index("foreach") + 1 :] if not w.text.startswith("-")]
            self.script(Word(" ".join(w.text for w in after), dynamic=any(not w.static for w in after)))
        elif sub == "bisect" and texts[:1] == ["run"]:
            self.run(rest[1:], Simple(), [])
        elif sub not in P.GIT_KNOWN:
            self.add(UNKNOWN, f"git {sub} (an alias or a git-{sub} program)")
        for option in (*P.GIT_COMMAND_OPTIONS.get(sub, ()), "--upload-pack", "--receive-pack", "--exec"):
            for j, word in enumerate(rest):
                if word.text == option:
                    self.script(_at(rest, j + 1))
                elif word.text.startswith(option + "="):
                    self.script(Word(word.text.split("=", 1)[1], dynamic=word.dynamic))


def _at(words: list[Word], i: int) -> Word:
    return words[i] if i < len(words) else Word("")


def _heads(args: list[Word]) -> list[tuple[list[str], list[Word]]]:
    """The non-option words of a command, read two ways (options taking no value, or each taking the
    next word), each with the words after its first one; a computed word matches anything."""
    out = []
    for greedy in (False, True):
        words: list[str] = []
        rest: list[Word] | None = None
        i = 0
        while i < len(args):
            word = args[i]
            if word.text[:1] in "-+" and len(word.text) > 1 and word.static:
                i += 2 if greedy and "=" not in word.text and word.text != "--" else 1
                continue
            words.append("*" if not word.static else word.text)
            if rest is None:
                rest = args[i + 1 :]
            i += 1
        out.append((words, rest or []))
    return out


def _starts_with(words: list[str], wanted: list[str]) -> bool:
    return len(words) >= len(wanted) and all(w in ("*", x) for w, x in zip(words, wanted, strict=False))
