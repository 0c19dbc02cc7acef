"""The files of a workspace that are not ignored, as ripgrep decides (.gitignore, .ignore, .rgignore,
.git/info/exclude), with a Python walk that follows the same rules when ripgrep is missing.

The host-side listing runs `rg --files`, which reads ignore files but executes nothing from the
repository; its environment is cleared so that no ripgrep config file can change what it does.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from branchwise.sandbox.globs import glob_regex
from branchwise.tools.files import SKIP_DIRS  # never listed, ignored or not

IGNORE_FILES = (".gitignore", ".ignore", ".rgignore")  # later ones win, as in ripgrep


def rg_files_argv(*, hidden: bool = True, type_glob: str | None = None) -> list[str]:
    """`rg --files` with the ignore rules we want (also outside a git repository), skipping SKIP_DIRS.

    `type_glob` keeps only file names matching it, through a file type: a `--glob` would also list the
    ignored files it matches, since ripgrep's globs override its ignore rules.
    """
    argv = ["rg", "--files", "--no-require-git", "--no-messages", "--color=never", "--no-config"]
    if hidden:
        argv.append("--hidden")
    for name in sorted(SKIP_DIRS):
        argv += ["--glob", f"!{name}/"]
    if type_glob:
        argv += ["--type-add", f"branchwise:{type_glob}", "--type", "branchwise"]
    return argv


def list_files(root: Path, *, hidden: bool = True) -> list[str]:
    """Workspace-relative paths of the regular files under `root` that no ignore file excludes, sorted."""
    if shutil.which("rg"):
        proc = subprocess.run(
            rg_files_argv(hidden=hidden),
            cwd=root,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"},
            capture_output=True,
            check=False,
        )
        if proc.returncode in (0, 1):  # 1: no files at all
            return sorted(os.fsdecode(p) for p in proc.stdout.split(b"\n") if p)
    return sorted(walk_unignored(root, hidden=hidden))


class _Rules:
    """The patterns of one ignore file, relative to the directory that holds it."""

    def __init__(self, base: str, lines: list[str]) -> None:
        self.base = base  # "" for the root, else "a/b/"
        self.rules: list[tuple[re.Pattern[str], bool, bool]] = []  # (regex, negated, directories only)
        for raw in lines:
            line = raw.rstrip("\n").rstrip("\r")
            if not line or line.startswith("#"):
                continue
            if not line.endswith("\\ "):
                line = line.rstrip(" ")
            negated = line.startswith("!")
            if negated or line.startswith("\\!") or line.startswith("\\#"):
                line = line[1:]
            dir_only = line.endswith("/")
            line = line.rstrip("/")
            if not line:
                continue
            anchored = "/" in line
            line = line.lstrip("/")
            regex = glob_regex(line if anchored else "**/" + line)
            self.rules.append((regex, negated, dir_only))

    def decide(self, rel: str, is_dir: bool) -> bool | None:
        """True ignored, False re-included, None no opinion (the last matching line wins)."""
        if not rel.startswith(self.base):
            return None
        below = rel[len(self.base) :]
        verdict = None
        for regex, negated, dir_only in self.rules:
            if dir_only and not is_dir:
                continue
            if regex.fullmatch(below):
                verdict = not negated
        return verdict


def _read_rules(root: Path, rel_dir: str) -> list[_Rules]:
    found = []
    for name in IGNORE_FILES:
        try:
            text = (root / rel_dir / name).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        found.append(_Rules(f"{rel_dir}/" if rel_dir else "", text.splitlines()))
    return found


def walk_unignored(root: Path, start: str = ".", *, hidden: bool = True) -> Iterator[str]:
    """Files under `start` (workspace-relative) that the ignore files do not exclude; no symlinks followed."""
    stack: list[_Rules] = _read_rules(root, "")
    exclude = root / ".git" / "info" / "exclude"
    if exclude.is_file():
        stack.insert(0, _Rules("", exclude.read_text(encoding="utf-8", errors="replace").splitlines()))
    start = os.path.normpath(start)
    yield from _walk(root, "" if start == "." else start, stack, hidden)


def _ignored(rules: list[_Rules], rel: str, is_dir: bool) -> bool:
    verdict = False
    for r in rules:
        decided = r.decide(rel, is_dir)
        if decided is not None:
            verdict = decided
    return verdict


def _walk(root: Path, rel_dir: str, rules: list[_Rules], hidden: bool) -> Iterator[str]:
    # Rules of the directories above `rel_dir` that the walk did not pass through (a start below the root).
    parts = rel_dir.split("/") if rel_dir else []
    for i in range(1, len(parts)):
        rules = rules + _read_rules(root, "/".join(parts[:i]))
    yield from _walk_dir(root, rel_dir, rules, hidden)


def _walk_dir(root: Path, rel_dir: str, rules: list[_Rules], hidden: bool) -> Iterator[str]:
    here = rules + (_read_rules(root, rel_dir) if rel_dir else [])
    try:
        entries = sorted(os.scandir(root / rel_dir), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        if not hidden and entry.name.startswith("."):
            continue
        rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
        if entry.is_symlink():
            continue
        if entry.is_dir():
            if entry.name in SKIP_DIRS or _ignored(here, rel, True):
                continue
            yield from _walk_dir(root, rel, here, hidden)
        elif entry.is_file() and not _ignored(here, rel, False):
            yield rel
