"""The end-of-run commit on real repositories: clean, dirty, detached, merge in progress; read-only git tools."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from branchwise.sandbox.isolation.host import HostSandbox
from branchwise.sandbox.workspace.safefs import WorkspaceFS
from branchwise.sandbox.workspace.snapshots import ShadowGitWorkspace
from branchwise.tools import ToolBox, ToolContext, ToolError
from branchwise.tools.git.commit import CommitRefused, commit_message, commit_run, slug, start_state
from branchwise.tools.git.readtools import git_tools
from tests.conftest import git, make_repo

SETTINGS = SimpleNamespace(commit=True, branch_prefix="branchwise/", author="branchwise <branchwise@localhost>")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo", {"a.txt": "one\ntwo\nthree\n", "b.txt": "bee\n", "run.sh": "echo hi\n"})


def user_state(repo: Path) -> dict[str, object]:
    """Everything of the user's that a commit must not change: HEAD, branch, index, status, files."""
    files = {str(p.relative_to(repo)): p.read_bytes() for p in repo.rglob("*") if p.is_file() and ".git" not in p.parts}
    index = (repo / ".git" / "index").read_bytes()  # before status, which could refresh it
    status = subprocess.run(
        ["git", "-C", str(repo), "status", "--porcelain=v1", "--untracked-files=all"],
        env={"PATH": "/usr/bin:/bin", "GIT_OPTIONAL_LOCKS": "0", "HOME": str(repo)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    refs = [
        r for r in git(repo, "for-each-ref", "--format=%(refname) %(objectname)").splitlines() if "branchwise/" not in r
    ]
    return {
        "head": git(repo, "rev-parse", "HEAD"),
        "symbolic": subprocess.run(["git", "-C", str(repo), "symbolic-ref", "-q", "HEAD"], capture_output=True).stdout,
        "index": index,
        "status": status,
        "refs": refs,
        "files": files,
    }


def run_agent(repo: Path, tmp_path: Path, act) -> tuple[ShadowGitWorkspace, str, str, str | None]:
    """Snapshot, let `act` change files as an agent would, snapshot again (the lead's end_snapshot)."""
    snaps = ShadowGitWorkspace(repo, git_dir=tmp_path / "shadow", session="run1")
    state = start_state(repo)
    assert state is not None
    start = snaps.snapshot("start")
    act(repo)
    return snaps, start, snaps.snapshot("end"), state.head


def agent_edits(repo: Path) -> None:
    (repo / "a.txt").write_text("one\ntwo\nthree\nfour\n")
    (repo / "b.txt").unlink()
    (repo / "new" / "c.py").parent.mkdir()
    (repo / "new" / "c.py").write_text("x = 1\n")
    (repo / "run.sh").chmod(0o755)


def commit(snaps, start, end, head, **overrides):
    settings = SimpleNamespace(**{**vars(SETTINGS), **overrides})
    return commit_run(snaps, start_head=head, start_snapshot=start, end_snapshot=end, summary="Add four. Checked it.",
                      run_id="20260102-030405-abcd", settings=settings, task="Add a fourth line")  # fmt: skip


def test_commit_on_a_clean_tree_leaves_the_users_branch_index_and_files_alone(repo, tmp_path):
    snaps, start, end, head = run_agent(repo, tmp_path, agent_edits)
    before = user_state(repo)
    result = commit(snaps, start, end, head)
    assert user_state(repo) == before
    assert result is not None and result.branch == "branchwise/add-a-fourth-line"
    assert set(result.files) == {"a.txt", "b.txt", "new/c.py", "run.sh"} and result.dirty_at_start == ()
    assert git(repo, "rev-parse", f"{result.branch}^").strip() == head
    assert git(repo, "show", f"{result.branch}:a.txt") == "one\ntwo\nthree\nfour\n"
    assert git(repo, "ls-tree", result.branch, "run.sh").split()[0] == "100755"
    assert "b.txt" not in git(repo, "ls-tree", "--name-only", result.branch)
    message = git(repo, "log", "-1", "--format=%B", result.branch)
    assert message.startswith("Add four\n") and "Branchwise-Run: 20260102-030405-abcd" in message
    assert git(repo, "log", "-1", "--format=%an <%ae>", result.branch).strip() == SETTINGS.author


def test_commit_on_a_dirty_tree_holds_only_the_agents_changes(repo, tmp_path):
    (repo / "a.txt").write_text("zero\none\ntwo\nthree\n")  # the user's uncommitted edit
    (repo / "notes.txt").write_text("mine\n")  # the user's untracked file
    (repo / "b.txt").write_text("staged\n")
    git(repo, "add", "b.txt")  # and something staged
    snaps, start, end, head = run_agent(
        repo, tmp_path, lambda r: (r / "a.txt").write_text("zero\none\ntwo\nthree\nfour\n")
    )
    before = user_state(repo)
    result = commit(snaps, start, end, head)
    assert user_state(repo) == before
    assert result is not None and result.files == ("a.txt",) and result.merged == ("a.txt",)
    assert set(result.dirty_at_start) == {"a.txt", "b.txt", "notes.txt"}
    assert git(repo, "show", f"{result.branch}:a.txt") == "one\ntwo\nthree\nfour\n"  # without the user's "zero"
    assert git(repo, "show", f"{result.branch}:b.txt") == "bee\n"
    assert "notes.txt" not in git(repo, "ls-tree", "--name-only", result.branch)


def test_a_change_that_conflicts_with_uncommitted_edits_is_not_committed(repo, tmp_path):
    (repo / "a.txt").write_text("ONE\ntwo\nthree\n")
    snaps, start, end, head = run_agent(repo, tmp_path, lambda r: (r / "a.txt").write_text("uno\ntwo\nthree\n"))
    with pytest.raises(CommitRefused, match="conflicts with your uncommitted edits"):
        commit(snaps, start, end, head)
    assert "branchwise/" not in git(repo, "branch", "--list")
    assert (repo / "a.txt").read_text() == "uno\ntwo\nthree\n"


def test_detached_head_commits_from_the_detached_commit(repo, tmp_path):
    git(repo, "checkout", "-q", "--detach")
    snaps, start, end, head = run_agent(repo, tmp_path, agent_edits)
    before = user_state(repo)
    result = commit(snaps, start, end, head)
    assert user_state(repo) == before and before["symbolic"] == b""
    assert result is not None and git(repo, "rev-parse", f"{result.branch}^").strip() == head


def test_a_merge_in_progress_refuses_with_one_line(repo, tmp_path):
    git(repo, "checkout", "-q", "-b", "other")
    (repo / "a.txt").write_text("other\n")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@x", "commit", "-qam", "other")
    git(repo, "checkout", "-q", "main")
    (repo / "a.txt").write_text("main\n")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@x", "commit", "-qam", "main")
    subprocess.run(["git", "-C", str(repo), "merge", "other"], capture_output=True)  # conflicts: MERGE_HEAD stays
    assert (repo / ".git" / "MERGE_HEAD").exists()
    assert start_state(repo).in_progress == "a merge"
    snaps, start, end, head = run_agent(repo, tmp_path, lambda r: (r / "b.txt").write_text("x\n"))
    with pytest.raises(CommitRefused) as refused:
        commit(snaps, start, end, head)
    assert str(refused.value) == "a merge is in progress: nothing was committed; the changes are in the working tree"
    assert "branchwise/" not in git(repo, "branch", "--list")


def test_off_outside_git_or_unchanged_there_is_no_commit(repo, tmp_path):
    snaps, start, end, head = run_agent(repo, tmp_path, agent_edits)
    assert commit(snaps, start, end, head, commit=False) is None
    assert commit(snaps, start, start, head) is None  # nothing changed
    plain = tmp_path / "plain"
    plain.mkdir()
    assert start_state(plain) is None
    first = commit(snaps, start, end, head)
    second = commit(snaps, start, end, head)
    assert (first.branch, second.branch) == ("branchwise/add-a-fourth-line", "branchwise/add-a-fourth-line-2")


def test_slugs_and_messages():
    assert slug("Fix the médian() of even lists!", "r1") == "fix-the-median-of-even-lists"
    assert slug("???", "20260101-000000-ab") == "20260101-000000-ab"
    assert commit_message("", "r1") == "Changes made by branchwise\n\nBranchwise-Run: r1\n"
    long = commit_message("x" * 100, "r1").splitlines()
    assert len(long[0]) <= 72 and long[-1] == "Branchwise-Run: r1"


@pytest.fixture
def ctx(repo: Path):
    (repo / "secret.txt").write_text("s3cret\n")
    git(repo, "add", "secret.txt")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@x", "commit", "-qm", "secret")
    (repo / "a.txt").write_text("one\n2\nthree\n")
    (repo / "secret.txt").write_text("s3cret2\n")
    sandbox = HostSandbox(repo)
    yield ToolContext(sandbox=sandbox, fs=WorkspaceFS(repo))
    sandbox.close()


def test_read_only_git_tools(ctx):
    box = ToolBox(git_tools(deny_read=["secret.txt"]))

    def call(tool: str, **args):
        return box.get(tool).run(box.parse_args(tool, args), ctx).output

    assert call("git_status").splitlines() == ["## main", " M a.txt", " M secret.txt"]
    diff = call("git_diff")
    assert "+2" in diff and "s3cret" not in diff and "[diff of secret.txt hidden (deny_read)]" in diff
    assert call("git_diff", stat=True).count("|") == 2
    log = call("git_log").splitlines()
    assert len(log) == 2 and log[0].endswith("t: secret") and log[1].endswith("t: init")
    assert call("git_show", revision="HEAD~1:a.txt") == "one\ntwo\nthree\n"
    assert "s3cret" not in call("git_show", revision="HEAD")
    assert call("git_blame", path="a.txt", start_line=2, end_line=2).startswith("00000000 (Not Committed Yet")
    with pytest.raises(ToolError, match="is not a revision"):
        call("git_diff", base="--output=/tmp/x")
    with pytest.raises(ToolError, match="hidden from the agent"):
        call("git_show", revision="HEAD:secret.txt")
    with pytest.raises(ToolError, match="git show failed"):
        call("git_show", revision="nosuchbranch")
    for tool in box.tools.values():
        assert tool.effect == "read"
