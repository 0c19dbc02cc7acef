"""Taint tracking: did a tool call's arguments come from untrusted content?

The agent records untrusted text (web pages, file contents, tool output, memory) and trusted text
(the user's task, project instructions). From each it extracts *indicators*: URLs, host names, IP
addresses, e-mail addresses, absolute paths outside the workspace, `~/` paths and long token-like
strings. A call is tainted when its arguments carry an indicator that appears in untrusted content
and not in trusted text. Deterministic and explainable: a hit names the indicators and sources.

Taint also follows content into files: a file the agent wrote with tainted content (`add_written`)
taints a later command that runs it (`sh tools/x.sh`, `./x.sh`, `cat x.sh | sh`), so an injected
command cannot be laundered through a script. Merely naming the file (`git add x.sh`) does not.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from branchwise.sandbox.policy.effects import command_effect

Source = Literal["web", "file", "tool_output", "memory"]

# Bare names count as hosts only with these endings, so `setup.py` or `README.md` are not hosts
# (.py and .md are real ccTLDs); inside a URL or an e-mail address any ending counts.
_TLD_WORDS = """
com net org io dev app ai co me info biz xyz online site top cloud tech page link click live
example test invalid localhost local internal lan corp home arpa
uk us de fr nl ru cn jp br in au ca eu ch se no es it pl cz tk ml ga cf gq
"""
COMMON_TLDS = frozenset(_TLD_WORDS.split())
# Paths outside the workspace that carry no data anywhere.
_INERT_PATHS = (
    "/dev/null",
    "/dev/zero",
    "/dev/stdin",
    "/dev/stdout",
    "/dev/stderr",
    "/dev/urandom",
    "/dev/tty",
)

_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>`|;(){}\\]+")
_EMAIL = re.compile(r"\b[\w.+-]+@((?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,})\b")
_HOST = re.compile(r"(?<![\w@./-])((?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24})\b(?![./-]\w)")
_IPV4 = re.compile(r"(?<![\w.])(\d{1,3}(?:\.\d{1,3}){3})(?![\w.])")
_ABS_PATH = re.compile(r"(?<![\w.~/:$-])(/[\w.@+%-]+(?:/[\w.@+%-]*)*)")
_HOME_PATH = re.compile(r"(?:~|\$HOME|\$\{HOME\})/[\w.@+%/-]*")
_TOKEN = re.compile(r"(?<![\w/+=-])[A-Za-z0-9_+=-]{24,}(?![\w/+=-])")
# Programs that run a file (or text piped into them) as code.
_RUNNERS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "fish", "source", ".", "eval", "exec", "xargs", "python",
                      "python3", "node", "perl", "ruby", "php", "lua", "deno", "bun", "make"})  # fmt: skip


def indicators(text: str, workspace: Path | None = None) -> set[str]:
    """The indicators found in text, normalised (hosts, URLs and e-mail addresses lower-cased)."""
    found: set[str] = set()
    for match in _URL.finditer(text):
        url = match.group(0).rstrip(".,:!?'\"")
        found.add(url.lower())
        host = _url_host(url)
        if host:
            found.add(host)
    for match in _EMAIL.finditer(text):
        found.add(match.group(0).lower())
        found.add(match.group(1).lower())
    for match in _HOST.finditer(text):
        host = match.group(1).lower()
        if host.rsplit(".", 1)[-1] in COMMON_TLDS:
            found.add(host)
    for match in _IPV4.finditer(text):
        try:
            found.add(str(ipaddress.ip_address(match.group(1))))
        except ValueError:
            continue
    found.update(_paths(text, workspace))
    for match in _TOKEN.finditer(text):
        token = match.group(0)
        if any(c.isupper() for c in token) and any(c.islower() for c in token) and any(c.isdigit() for c in token):
            found.add(token)
    return found


def _url_host(url: str) -> str:
    authority = url.split("://", 1)[1].split("/", 1)[0].rpartition("@")[2]
    if authority.startswith("["):
        return authority[1:].partition("]")[0].lower()
    return authority.rsplit(":", 1)[0].rstrip(".").lower() if ":" in authority else authority.rstrip(".").lower()


def _paths(text: str, workspace: Path | None) -> set[str]:
    found = {m.group(0).rstrip(".,:") for m in _HOME_PATH.finditer(text)}
    for match in _ABS_PATH.finditer(_URL.sub(" ", text)):
        path = match.group(1).rstrip(".,:")
        if path in ("/", "") or path.startswith(_INERT_PATHS):
            continue
        if workspace is not None and (path == str(workspace) or path.startswith(f"{workspace}/")):
            continue
        found.add(path)
    return found


@dataclass(frozen=True)
class TaintHit:
    """Why a call counts as tainted: its indicators and the untrusted sources they came from."""

    sources: list[str]
    indicators: list[str]

    def explain(self) -> str:
        shown = ", ".join(self.indicators[:5]) + (" ..." if len(self.indicators) > 5 else "")
        return f"arguments carry {shown} from untrusted {'/'.join(self.sources)} content"


class TaintTracker:
    """Remembers indicators of untrusted and trusted text for one session."""

    def __init__(self, workspace: Path | None = None) -> None:
        self.workspace = workspace.resolve() if workspace else None
        self._untrusted: dict[str, set[str]] = {}
        self._trusted: set[str] = set()
        self._written: dict[str, set[str]] = {}  # file name -> sources of the tainted content written there

    def add_untrusted(self, text: str, source: Source) -> None:
        """Record content the agent read from a source it does not trust."""
        for ind in indicators(text, self.workspace):
            self._untrusted.setdefault(ind, set()).add(source)

    def add_trusted(self, text: str) -> None:
        """Record text from the user or the project (the task, instructions): its indicators are fine."""
        self._trusted |= indicators(text, self.workspace)

    def add_written(self, path: str, sources: Iterable[str]) -> None:
        """Record that a file was written with tainted content: running it later is tainted too."""
        name = posixpath.basename(posixpath.normpath(path))
        if name:
            self._written.setdefault(name, set()).update(sources)

    def check(self, texts: Iterable[str]) -> TaintHit | None:
        """The taint carried by these argument strings, or None."""
        hits: dict[str, set[str]] = {}
        for text in texts:
            for ind in indicators(text, self.workspace):
                if ind in self._untrusted and ind not in self._trusted:
                    hits[ind] = self._untrusted[ind]
            for name in self._runs_written(text):
                hits[f"{name} (written with untrusted content)"] = self._written[name]
        if not hits:
            return None
        sources = sorted(set().union(*hits.values()))
        return TaintHit(sources=sources, indicators=sorted(hits))

    def _runs_written(self, text: str) -> set[str]:
        """Written files that this command text may run: as a command, or with a runner in the same command."""
        if not self._written:
            return set()
        segments = [[w.text for w in words] for words in command_effect(text).invocations]
        runner = any(posixpath.basename(token) in _RUNNERS for seg in segments for token in seg)
        found: set[str] = set()
        for seg in segments:
            for i, token in enumerate(seg):
                if i and not runner:
                    continue
                base = posixpath.basename(token)  # may be a glob: `sh tools/*.sh`
                found.update(name for name in self._written if fnmatch.fnmatchcase(name, base))
        return found
