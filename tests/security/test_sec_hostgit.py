"""Host-side git (the git tools, start_state, the end-of-run commit) runs nothing the repository names.

The repository's .git/config names a program in every place git would run one (fsmonitor, filters,
textconv, pager, hooks, ...), its .gitattributes routes every file through them, and the process
environment carries GIT_* variables that name programs too. None may run.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from branchwise.sandbox.isolation.host import HostSandbox
from branchwise.sandbox.workspace.safefs import WorkspaceFS
from branchwise.sandbox.workspace.snapshots import ShadowGitWorkspace
from branchwise.tools import ToolBox, ToolContext
from branchwise.tools.git.commit import commit_run, start_state
from branchwise.tools.git.readtools import git_tools
from tests.conftest import git, make_repo

HOOKS = ("pre-commit", "post-commit", "commit-msg", "post-checkout", "reference-transaction", "post-index-change")


@pytest.fixture
def evil(tmp_path: Path, monkeypatch) -> tuple[Path, Path]:
    marks = tmp_path / "marks"
    marks.mkdir()
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n", ".gitattributes": "* filter=evil diff=evil merge=evil\n"})

    def runs(name: str) -> str:
        return f"touch {marks}/{name}; cat"

    config = {
        "core.fsmonitor": runs("fsmonitor"),
        "core.pager": runs("pager"),
        "core.editor": runs("editor"),
        "core.sshCommand": runs("ssh"),
        "core.askPass": runs("askpass"),
        "filter.evil.clean": runs("clean"),
        "filter.evil.smudge": runs("smudge"),
        "filter.evil.process": runs("process"),
        "filter.evil.required": "true",
        "diff.evil.textconv": runs("textconv"),
        "diff.evil.command": runs("diffcommand"),
        "diff.external": runs("external"),
        "merge.evil.driver": runs("merge"),
        "credential.helper": f"!{runs('credential')}",
        "gpg.program": runs("gpg"),
        "commit.gpgSign": "true",
        "pager.status": runs("pagerstatus"),
    }
    for key, value in config.items():
        git(repo, "config", key, value)
    hooks = repo / ".git" / "hooks"
    for name in HOOKS:
        (hooks / name).write_text(f"#!/bin/sh\ntouch {marks}/hook-{name}\n")
        (hooks / name).chmod(0o755)
    monkeypatch.setenv("GIT_EXTERNAL_DIFF", str(marks / "env-external"))
    monkeypatch.setenv("GIT_PAGER", runs("env-pager"))
    monkeypatch.setenv("GIT_CONFIG_PARAMETERS", f"'core.fsmonitor'='{runs('env-params')}'")
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "elsewhere"))  # as inside a git hook of another repository
    (repo / "a.txt").write_text("a\nb\n")
    old = 1_600_000_000
    os.utime(repo / "a.txt", (old, old))  # stat-dirty: status has to hash it (through the clean filter)
    return repo, marks


def test_git_tools_and_the_commit_run_nothing_from_the_repository(evil, tmp_path):
    repo, marks = evil
    sandbox = HostSandbox(repo)
    ctx = ToolContext(sandbox=sandbox, fs=WorkspaceFS(repo))
    box = ToolBox(git_tools())
    calls = [("git_status", {}), ("git_diff", {}), ("git_diff", {"base": "HEAD"}), ("git_log", {}),
             ("git_show", {}), ("git_show", {"revision": "HEAD:a.txt"}), ("git_blame", {"path": "a.txt"})]  # fmt: skip
    try:
        outputs = [box.get(name).run(box.parse_args(name, args), ctx).output for name, args in calls]
    finally:
        sandbox.close()
    assert outputs[0].splitlines()[1] == " M a.txt" and "+b" in outputs[1]
    state = start_state(repo)
    assert state is not None and state.dirty == ("a.txt",)
    snaps = ShadowGitWorkspace(repo, git_dir=tmp_path / "shadow", session="s")
    start = snaps.snapshot()
    (repo / "c.txt").write_text("c\n")
    settings = SimpleNamespace(commit=True, branch_prefix="branchwise/", author="b <b@x>")
    result = commit_run(snaps, start_head=state.head, start_snapshot=start, end_snapshot=snaps.snapshot(),
                        summary="add c", run_id="r1", settings=settings)  # fmt: skip
    assert result is not None and result.files == ("c.txt",)
    assert sorted(p.name for p in marks.iterdir()) == []
    # The traps are real: plain git, as a user would run it, springs them.
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    subprocess.run(["git", "-C", str(repo), "diff"], env=env, capture_output=True, check=False)
    assert {"fsmonitor", "process"} <= {p.name for p in marks.iterdir()}
