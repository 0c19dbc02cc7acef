"""Helpers for tests that work on real directory trees: exact tree state, digests, user repositories."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
from pathlib import Path

Entry = tuple[object, ...]


def tree_state(root: Path, skip: frozenset[str] = frozenset({".git"})) -> dict[str, Entry]:
    """Everything under root, symlinks not followed: file bytes and exec bit, link targets, directories."""
    state: dict[str, Entry] = {}
    stack = [""]
    while stack:
        rel = stack.pop()
        with os.scandir(root / rel if rel else root) as entries:
            for e in entries:
                path = f"{rel}/{e.name}" if rel else e.name
                if path in skip:
                    continue
                st_ = e.stat(follow_symlinks=False)
                if stat.S_ISLNK(st_.st_mode):
                    state[path] = ("link", str((root / path).readlink()))
                elif stat.S_ISDIR(st_.st_mode):
                    state[path] = ("dir",)
                    stack.append(path)
                else:
                    state[path] = ("file", (root / path).read_bytes(), bool(st_.st_mode & 0o100))
    return state


def dirs_without_files(state: dict[str, Entry]) -> set[str]:
    """Directories with no file or symlink anywhere below them: what git alone would lose."""
    leaves = [p for p, e in state.items() if e[0] != "dir"]
    return {p for p, e in state.items() if e[0] == "dir" and not any(x.startswith(p + "/") for x in leaves)}


def changed_leaves(a: dict[str, Entry], b: dict[str, Entry]) -> set[str]:
    """Files and symlinks that differ between two states (what git diff should list)."""
    leaves = {p for s in (a, b) for p, e in s.items() if e[0] != "dir"}
    return {p for p in leaves if a.get(p) != b.get(p)}


def hash_tree(root: Path) -> dict[str, str]:
    """A digest of every entry under root (content, mode, mtime, link target), for byte-identity checks."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st_ = path.lstat()
            if stat.S_ISLNK(st_.st_mode):
                digest = f"link:{path.readlink()}"
            elif stat.S_ISDIR(st_.st_mode):
                digest = f"dir:{st_.st_mode:o}"
            else:
                digest = f"{st_.st_mode:o}:{st_.st_mtime_ns}:" + hashlib.sha256(path.read_bytes()).hexdigest()
            out[str(path.relative_to(root))] = digest
    return out


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def user_repo(path: Path, files: dict[str, str]) -> Path:
    """A real user repository with one commit."""
    path.mkdir(parents=True)
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    git(path, "init", "-q")
    git(path, "add", "-A")
    git(path, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-q", "-m", "init")
    return path


def clear(path: Path) -> None:
    """Remove whatever is at path without following symlinks."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def make_parents(root: Path, rel: str) -> Path:
    """Ensure the parents of rel are real directories (replacing files or symlinks in the way)."""
    current = root
    for part in Path(rel).parts[:-1]:
        current = current / part
        if current.is_symlink() or (current.exists() and not current.is_dir()):
            current.unlink()
        current.mkdir(exist_ok=True)
    return root / rel
