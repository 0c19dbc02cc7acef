"""Read-only commands: the ones approval = untrusted runs without a question.

A command is read-only when it is one plain command (no operators, redirections or substitutions)
of a program in `programs.READ_ONLY`, called by its bare name (a path could name a workspace file),
with no option that makes it execute or write. Options are judged the way the program parses them:
short clusters letter by letter up to one that takes a value, long options also by abbreviation
(`--pr` may mean `--pre`), and a word the shell computes (`$x`, a glob that might match a file named
`--pre=sh`) counts as an unknown option unless every option of the program is harmless.
"""

from __future__ import annotations

from branchwise.sandbox.policy.programs import READ_ONLY, ReadOnly
from branchwise.sandbox.policy.shellwords import Word, simple_command

_GIT_READ_GLOBALS = frozenset({"--no-pager", "-P", "--no-optional-locks", "--literal-pathspecs"})


def is_read_only(command: str) -> bool:
    """Whether this command line can neither execute other code nor write."""
    simple = simple_command(command)
    if simple is None or not simple.words[0].static:
        return False
    name, args = simple.words[0].text, simple.words[1:]
    spec = READ_ONLY.get(name)
    if spec is None or simple.words[0].quoted:
        return False
    if name == "git":
        return _git_read_only(spec, args)
    return _options_ok(spec, args)


def _git_read_only(spec: ReadOnly, args: list[Word]) -> bool:
    i = 0
    while i < len(args) and args[i].text.startswith("-"):
        if not args[i].static:
            return False
        if args[i].text == "-C":
            i += 2
            continue
        if args[i].text not in _GIT_READ_GLOBALS:
            return False  # -c, -p, --exec-path, --git-dir=...: may run or redirect something
        i += 1
    if i >= len(args) or not args[i].static or args[i].text not in spec.subcommands:
        return False
    sub, rest = args[i].text, args[i + 1 :]
    listing = {"--list", "-l"} & {w.text for w in rest}
    if sub == "branch" and not listing and any(not w.text.startswith("-") for w in rest):
        return False  # `git branch NAME` creates a branch
    return _options_ok(spec.subcommands[sub], rest)


def _options_ok(spec: ReadOnly, args: list[Word]) -> bool:
    options_done, value_next = False, False
    for word in args:
        text = word.text
        if value_next:  # the value of the short option before it (`-e -z` searches for "-z")
            value_next = False
            continue
        if not word.static and not spec.any_option and not options_done:
            return False
        if options_done or not text.startswith("-") or text == "-" or spec.any_option:
            continue
        if text == "--":
            options_done = True
        elif text.startswith("--"):
            if not _long_ok(spec, text.split("=", 1)[0]):
                return False
        else:
            ok, value_next = _short_ok(spec, text[1:])
            if not ok:
                return False
    return True


def _long_ok(spec: ReadOnly, name: str) -> bool:
    if any(d.startswith("--") and (d == name or d.startswith(name)) for d in spec.denied):
        return False  # the option itself, or an abbreviation the program may expand to it
    return spec.allowed_long is None or name in spec.allowed_long


def _short_ok(spec: ReadOnly, letters: str) -> tuple[bool, bool]:
    """(allowed, the next word is this cluster's value)."""
    for i, letter in enumerate(letters):
        if f"-{letter}" in spec.denied:
            return False, False
        if letter in spec.short_values:
            return True, i == len(letters) - 1  # the rest of the cluster, or the next word, is its value
    return True, False
