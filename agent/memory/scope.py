"""The scope of a workspace: which repository it is (its root commit, shared by every clone and fork) and
its main language, so that lessons from one project never bleed into another."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from branchwise.agent.memory.records import Scope

# Marker files, checked in order: the first one present names the language.
_MARKERS = (
    ("pyproject.toml", "python"),
    ("setup.py", "python"),
    ("setup.cfg", "python"),
    ("requirements.txt", "python"),
    ("package.json", "javascript"),
    ("Cargo.toml", "rust"),
    ("go.mod", "go"),
    ("pom.xml", "java"),
    ("build.gradle", "java"),
    ("Gemfile", "ruby"),
    ("composer.json", "php"),
    ("CMakeLists.txt", "cpp"),
)
_SUFFIXES = {
    ".py": "python",
    ".js": "javascript",
    ".ts": "typescript",
    ".rs": "rust",
    ".go": "go",
    ".java": "java",
    ".rb": "ruby",
    ".php": "php",
    ".c": "c",
    ".cc": "cpp",
    ".cpp": "cpp",
}


def root_commit(workspace: Path) -> str | None:
    """The repository's first commit (the lexically first one when histories were merged), or None."""
    try:
        out = subprocess.run(
            ["git", "-C", str(workspace), "rev-list", "--max-parents=0", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
            env={"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null", "PATH": "/usr/bin:/bin"},
        )
    except FileNotFoundError:
        return None
    roots = sorted(out.stdout.split()) if out.returncode == 0 else []
    return roots[0] if roots else None


def language_of(workspace: Path) -> str | None:
    """The project's main language, from marker files, else from the most common source suffix at the top."""
    for marker, language in _MARKERS:
        if (workspace / marker).is_file():
            return language
    counts: dict[str, int] = {}
    try:
        for path in list(workspace.iterdir())[:500]:
            for child in [path, *(list(path.iterdir())[:200] if path.is_dir() and path.name[0] != "." else [])]:
                lang = _SUFFIXES.get(child.suffix)
                if lang:
                    counts[lang] = counts.get(lang, 0) + 1
    except OSError:
        return None
    return max(counts, key=lambda k: counts[k]) if counts else None


def scope_of(workspace: Path) -> Scope:
    """The scope items written in this workspace get. Outside git the workspace's path stands in for a root
    commit (hashed, so the store does not record where the user keeps their files)."""
    workspace = workspace.resolve()
    repo = root_commit(workspace) or "path:" + hashlib.sha256(str(workspace).encode()).hexdigest()[:40]
    return Scope(repo=repo, language=language_of(workspace))
