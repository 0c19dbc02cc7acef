"""Content rules for memory items, and whether an item was derived from untrusted content.

An item breaks the rules when it carries a literal secret, a URL whose host is not on the allow list, an
imperative network or credential operation, an instruction to disable checks or tests, a destructive command,
or text aimed at the model rather than at the task (research note b.5, control 3). The same rules run when an
item is written, when it is validated and again when it is retrieved, so a record planted in the database
directly is caught on the way out too.

An item is derived from untrusted content when it shares an indicator (URL, host, address, outside path, long
token: the taint tracker's own) or a run of six words with what the run read (file contents, command output,
web pages) that the user's own words (the task, the configured checks) do not also contain.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from branchwise.sandbox.policy.taint import indicators

_SECRETS = [
    ("an AWS access key", r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    ("a GitHub token", r"\bgh[pousr]_[A-Za-z0-9]{30,}\b|\bgithub_pat_[A-Za-z0-9_]{30,}\b"),
    ("an API key", r"\bsk-(ant-|proj-)?[A-Za-z0-9_-]{20,}\b|\bxox[baprs]-[A-Za-z0-9-]{10,}\b"),
    ("a Google API key", r"\bAIza[0-9A-Za-z_-]{35}\b"),
    ("a private key", r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    ("a JSON web token", r"\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"),
    ("a credential assignment", r"(?i)\b(api[_-]?key|secret|token|passw(or)?d)\b\s*[:=]\s*['\"]?[^\s'\"]{8,}"),
]
_RULES = [
    ("a network command", r"(?i)(?<![\w-])(curl|wget|ssh|scp|sftp|rsync|nc|ncat|netcat|telnet|ftp)(?![\w-])"),
    ("piping into a shell", r"\|\s*(sudo\s+)?(ba|z|da|k|fi)?sh\b|\beval\s+\"?\$\("),
    (
        "a credential operation",
        r"(?i)\bexport\s+\w*(KEY|TOKEN|SECRET|PASS\w*)\b|\b(api[_ -]?token|access[_ -]?token|"
        r"auth[_ -]?token|password|passwd|credentials?)\b",
    ),
    (
        "an instruction to disable checks",
        r"(?i)\b(skip|disable|delete|remove|comment(ing)? out|ignore|bypass|"
        r"turn off|silence|xfail|neuter)\b[^.\n]{0,25}?\b(tests?|checks?|assert(ion)?s?|lint(er|ing)?|ci|hooks?|"
        r"verification|pre-commit|type ?check(s|ing)?)\b|--no-verify\b|\b(pytest\.mark\.skip|unittest\.skip)\b",
    ),
    (
        "a destructive command",
        r"(?i)\brm\s+-[a-z]*r[a-z]*f?\s+(/|~|\$HOME|\*)|\bgit\s+push\b[^\n]*(--force|-f\b)|"
        r"\bgit\s+reset\s+--hard\b|\bmkfs\b|\bdd\s+if=|\bchmod\s+(-R\s+)?777\b|:\(\)\s*\{",
    ),
    (
        "text aimed at the model",
        r"(?i)\b(ignore|disregard|forget|override)\b[^.\n]{0,30}\b(previous|prior|above|"
        r"earlier|all|your|the system)\b[^.\n]{0,20}\b(instructions?|rules|prompts?|guidelines|directives)\b|"
        r"\byou are (now )?(an? |the )?(ai|assistant|language model|chatgpt|claude|llm)\b|\bsystem prompt\b|"
        r"\bas an ai\b|\b(do not|don't) (tell|inform|show) the user\b|<\|im_start\|>|\bjailbreak\b|"
        r"\bdeveloper mode\b|\bnew instructions\b|^\s*(system|assistant)\s*:",
    ),
]
_SECRET_RE = [(what, re.compile(p)) for what, p in _SECRETS]
_RULE_RE = [(what, re.compile(p, re.MULTILINE)) for what, p in _RULES]
_AT_MODEL = "text aimed at the model"
_DISABLE = "an instruction to disable checks"
# "delete the cache before running tests" orders two steps; it does not switch the tests off.
_SEQUENCE = re.compile(r"(?i)\b(before|after|then|when|while|and run|to run)\b")
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://([^/\s'\"<>`:]+)")
_WORD = re.compile(r"[a-z0-9_]+")
_TICKED = re.compile(r"`([^`]*)`")
_NGRAM = 6
ALWAYS_ALLOWED_HOSTS = ("localhost", "127.0.0.1")


def rule_problems(texts: Iterable[str], allowed_hosts: Sequence[str] = (), *, code: bool = False) -> list[str]:
    """Why these texts (of one item) may not be kept in memory; empty when they may. For `code` (file contents
    a shortcut writes) only secrets, foreign URLs and text aimed at the model count: code may name tests."""
    problems: list[str] = []
    hosts = [*ALWAYS_ALLOWED_HOSTS, *allowed_hosts]
    rules = [(w, r) for w, r in _RULE_RE if w == _AT_MODEL] if code else _RULE_RE
    for text in texts:
        for what, regex in _SECRET_RE:
            if regex.search(text):
                problems.append(f"contains {what}")
        for what, regex in rules:
            match = regex.search(text)
            if match and not (what == _DISABLE and _SEQUENCE.search(match.group(0))):
                problems.append(f"contains {what} ({match.group(0).strip()[:40]!r})")
        for match in _URL.finditer(text):
            host = match.group(1).lower()
            if not any(fnmatch.fnmatchcase(host, pattern.lower()) for pattern in hosts):
                problems.append(f"links to {host}, which is not on the memory allow list")
    return list(dict.fromkeys(problems))


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _ngrams(text: str, n: int = _NGRAM) -> set[tuple[str, ...]]:
    """Runs of n words; a NUL breaks them (it stands for a quote of the run's own data)."""
    grams: set[tuple[str, ...]] = set()
    for part in text.split("\0"):
        w = words(part)
        grams |= {tuple(w[i : i + n]) for i in range(len(w) - n + 1)}
    return grams


class Provenance:
    """What a run read (untrusted) and what the user said (trusted), to tell where an item's content came from."""

    def __init__(self, workspace: Path | None = None) -> None:
        self.workspace = workspace
        self._untrusted: list[tuple[str, set[str], set[tuple[str, ...]]]] = []
        self._trusted_indicators: set[str] = set()
        self._trusted_ngrams: set[tuple[str, ...]] = set()
        self._data: set[str] = set()

    def add_untrusted(self, text: str, source: str) -> None:
        self._untrusted.append((source, indicators(text, self.workspace), _ngrams(text)))

    def add_trusted(self, text: str) -> None:
        self._trusted_indicators |= indicators(text, self.workspace)
        self._trusted_ngrams |= _ngrams(text)

    def add_data(self, text: str) -> None:
        """Code the run's own edits wrote or replaced: quoting it (in backticks) copies data, not instructions,
        so its word runs do not count (its URLs and other indicators still do)."""
        self._trusted_ngrams |= _ngrams(text)
        self._data.add(" ".join(text.split()))

    def sources_of(self, texts: Iterable[str], *, prose: bool = True) -> list[str]:
        """The untrusted sources an item's texts share content with (prose: also six-word runs)."""
        found: list[str] = []
        for text in texts:
            marks = indicators(text, self.workspace) - self._trusted_indicators
            quoted = _TICKED.sub(lambda m: "\0" if " ".join(m.group(1).split()) in self._data else m.group(0), text)
            grams = (_ngrams(quoted) - self._trusted_ngrams) if prose else set()
            for source, their_marks, their_grams in self._untrusted:
                shared = marks & their_marks
                if shared:
                    found.append(f"{source}: {sorted(shared)[0]}")
                elif grams & their_grams:
                    found.append(f"{source}: {' '.join(sorted(grams & their_grams)[0])!r}")
        return list(dict.fromkeys(found))
