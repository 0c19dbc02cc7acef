"""What a command can change, which decides how the search may branch over it (and what the policy asks).

- read: changes nothing (view, grep, glob, finish)
- file: changes workspace files only; a snapshot restore undoes it
- ephemeral: runs a command whose effects are files (snapshotted) or vanish with the sandbox (tests, builds)
- stateful: changes state outside the workspace that a restore cannot undo but a re-run can rebuild
  (a database, a container, a global install); recorded and replayed after a restore
- irreversible: changes the outside world (git push, publishing, network writes): a commit point
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable

ORDER = ("read", "ephemeral", "file", "stateful", "irreversible")

_IRREVERSIBLE = [
    r"^git (push|send-email)\b",
    r"^(npm|yarn|pnpm) publish\b",
    r"^(twine|flit) upload\b|^poetry publish\b|^cargo publish\b|^gem push\b",
    r"^gh (pr (create|merge|close)|release create|issue (create|close|comment)|repo (create|delete))\b",
    r"^docker push\b",
    r"^(kubectl|helm) (apply|delete|install|upgrade|rollout)\b|^terraform (apply|destroy)\b",
    r"^(ssh|scp|sftp)\b",
    r"^rsync\b.*\S+:\S*",
    r"^(curl|wget|http|https)\b.*(\s-X\s*(POST|PUT|PATCH|DELETE)\b|\s--request\s+(POST|PUT|PATCH|DELETE)\b"
    r"|\s(-d|--data\S*|-F|--form|--upload-file|-T)\b|\s--post-(data|file)\b)",
    r"^(aws|gcloud|az)\b",
    r"^(mail|sendmail)\b",
]
_STATEFUL = [
    r"^docker (run|start|compose|create|volume|network)\b|^docker-compose\b|^podman (run|start)\b",
    r"^(systemctl|service)\b",
    r"^(psql|mysql|sqlite3 /|redis-cli|mongo|mongosh|createdb|dropdb)\b",
    r"^(npm|yarn|pnpm) (install|add) (-g|--global)\b",
    r"^pip3? install\b(?!.*(-t|--target|--prefix)\b).*--user\b",
    r"^(apt|apt-get|dnf|yum|apk|brew) (install|remove)\b",
    r"manage\.py migrate\b|^alembic upgrade\b|^rails db:",
]
_IRREVERSIBLE_RE = [re.compile(p) for p in _IRREVERSIBLE]
_STATEFUL_RE = [re.compile(p) for p in _STATEFUL]
_SPLIT = re.compile(r"\|\||&&|[;|\n&]")


def classify_command(command: str) -> str:
    """The most consequential kind among the simple commands of a shell line."""
    kinds = [_classify_simple(part) for part in _SPLIT.split(command) if part.strip()]
    return most_severe(kinds or ["ephemeral"])


def _classify_simple(part: str) -> str:
    try:
        words = shlex.split(part, comments=True)
    except ValueError:
        words = part.split()
    while words and ("=" in words[0] and not words[0].startswith("=")):  # leading VAR=value assignments
        words = words[1:]
    while words and words[0] in ("sudo", "env", "nohup", "time", "exec", "command"):
        words = words[1:]
    text = " ".join(words)
    if any(p.search(text) for p in _IRREVERSIBLE_RE):
        return "irreversible"
    if any(p.search(text) for p in _STATEFUL_RE):
        return "stateful"
    return "ephemeral"


def most_severe(kinds: Iterable[str]) -> str:
    return max(kinds, key=ORDER.index)
