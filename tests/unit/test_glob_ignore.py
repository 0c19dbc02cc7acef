"""glob honours the ignore files ripgrep honours, with ripgrep in the sandbox and with the Python walk alike."""

from __future__ import annotations

from pathlib import Path

import pytest

from branchwise.sandbox.isolation.host import HostSandbox
from branchwise.sandbox.workspace.safefs import WorkspaceFS
from branchwise.tools import ToolBox, ToolContext, code_search, default_tools


@pytest.fixture
def ws(tmp_path: Path):
    root = tmp_path / "ws"
    files = {
        ".gitignore": "build/\n*.log\n/top.py\n!keep.log\n",
        "src/.gitignore": "gen_*.py\n",
        ".ignore": "scratch/\n",
        "src/a.py": "", "src/gen_x.py": "", "src/deep/b.py": "", "top.py": "", "sub/top.py": "",
        "build/out.py": "", "debug.log": "", "keep.log": "", "scratch/s.py": "", ".github/ci.yml": "",
        "node_modules/dep/index.js": "", ".git/config": "",
    }  # fmt: skip
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    sandbox = HostSandbox(root)
    yield ToolContext(sandbox=sandbox, fs=WorkspaceFS(root))
    sandbox.close()


BOX = ToolBox(default_tools())


def glob(ctx: ToolContext, pattern: str, path: str = ".") -> list[str]:
    out = BOX.get("glob").run(BOX.parse_args("glob", {"pattern": pattern, "path": path}), ctx).output
    return [] if out == "(no files match)" else out.splitlines()


CASES = [
    ("**/*.py", ".", ["src/a.py", "src/deep/b.py", "sub/top.py"]),
    ("*.log", ".", ["keep.log"]),
    ("**", ".", [".github/ci.yml", ".gitignore", ".ignore", "keep.log", "src/.gitignore", "src/a.py",
                 "src/deep/b.py", "sub/top.py"]),
    ("*.py", "src", ["src/a.py"]),
    ("deep/*.py", "src", ["src/deep/b.py"]),
]  # fmt: skip


@pytest.mark.parametrize(("pattern", "path", "expected"), CASES)
def test_glob_skips_ignored_files_with_ripgrep_and_without(ws, monkeypatch, pattern, path, expected):
    assert glob(ws, pattern, path) == expected
    monkeypatch.setattr(code_search.shutil, "which", lambda name: None)
    assert glob(ws, pattern, path) == expected
