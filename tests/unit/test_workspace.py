"""ShadowGitWorkspace on real temporary directories and real git: exact restore, diff, isolation."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from branchwise.sandbox.base import SandboxError
from branchwise.sandbox.workspace.snapshots import ShadowGitWorkspace, SnapshotError
from tests.support.trees import git, hash_tree, tree_state, user_repo


@pytest.fixture
def ws(tmp_path: Path) -> ShadowGitWorkspace:
    (tmp_path / "ws").mkdir()
    return ShadowGitWorkspace(tmp_path / "ws", tmp_path / "shadow")


def test_restore_reverts_created_deleted_and_modified_files(ws: ShadowGitWorkspace):
    root = ws.root
    (root / "keep.txt").write_text("keep\n")
    (root / "edit.txt").write_text("before\n")
    (root / "gone.txt").write_text("gone\n")
    (root / "crlf.txt").write_bytes(b"one\r\ntwo\r\n")
    before = tree_state(root)
    snap = ws.snapshot("start")
    assert tree_state(root) == before, "a snapshot must not change the files"

    (root / "edit.txt").write_text("after, longer\n")
    (root / "gone.txt").unlink()
    (root / "new.txt").write_text("new\n")
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "sub" / "deeper" / "x.bin").write_bytes(bytes(range(256)))
    ws.restore(snap)
    assert tree_state(root) == before


def test_exec_bit_and_symlinks_are_restored_and_never_followed(tmp_path: Path, ws: ShadowGitWorkspace):
    root = ws.root
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("do not touch\n")
    (root / "tool.sh").write_text("#!/bin/sh\n")
    (root / "tool.sh").chmod(0o755)
    (root / "to_outside").symlink_to(outside)
    (root / "dangling").symlink_to("no/such/target")
    (root / "d").mkdir()
    (root / "to_dir").symlink_to("d")
    before, outside_before = tree_state(root), hash_tree(outside)
    snap = ws.snapshot()

    (root / "tool.sh").chmod(0o644)
    (root / "dangling").unlink()
    (root / "dangling").symlink_to("elsewhere")
    (root / "to_outside").unlink()
    (root / "to_outside").mkdir()
    (root / "to_outside" / "precious").write_text("a look-alike inside the workspace\n")
    (root / "to_dir").unlink()
    (root / "to_dir").write_text("now a file\n")
    (root / "new_link").symlink_to(outside / "precious")
    ws.restore(snap)
    assert tree_state(root) == before
    assert hash_tree(outside) == outside_before


def test_empty_directories_are_recreated_and_removed(ws: ShadowGitWorkspace):
    root = ws.root
    (root / "a" / "b" / "c").mkdir(parents=True)
    (root / "e").mkdir()
    (root / "f").mkdir()
    (root / "f" / "file").write_text("x")
    snap = ws.snapshot()
    assert ws.info(snap).empty_dirs == ("a", "a/b", "a/b/c", "e")

    shutil.rmtree(root / "a")
    (root / "e").rmdir()
    (root / "new" / "empty").mkdir(parents=True)
    (root / "f" / "file").unlink()  # f becomes an empty directory
    ws.restore(snap)
    assert tree_state(root) == {
        "a": ("dir",),
        "a/b": ("dir",),
        "a/b/c": ("dir",),
        "e": ("dir",),
        "f": ("dir",),
        "f/file": ("file", b"x", False),
    }


def test_recreating_empty_directories_never_follows_a_symlink_out(tmp_path: Path, ws: ShadowGitWorkspace):
    (ws.root / "a" / "b").mkdir(parents=True)
    snap = ws.snapshot()
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.rmtree(ws.root / "a")
    (ws.root / "a").symlink_to(outside)
    # A session that ignores "a" leaves the symlink in place: a and a/b cannot be made without following it.
    other = ShadowGitWorkspace(ws.root, ws.git_dir, excludes=["/a"])
    with pytest.raises(SnapshotError, match="cannot recreate directory 'a'"):
        other.restore(snap)
    assert list(outside.iterdir()) == []


def test_files_and_directories_replace_each_other(ws: ShadowGitWorkspace):
    root = ws.root
    (root / "was_file").write_text("file\n")
    (root / "was_dir" / "inner").mkdir(parents=True)
    (root / "was_dir" / "inner" / "x").write_text("x\n")
    before = tree_state(root)
    snap = ws.snapshot()

    (root / "was_file").unlink()
    (root / "was_file" / "now").mkdir(parents=True)
    (root / "was_file" / "now" / "y").write_text("y\n")
    shutil.rmtree(root / "was_dir")
    (root / "was_dir").write_text("now a file\n")
    after = tree_state(root)
    later = ws.snapshot()
    ws.restore(snap)
    assert tree_state(root) == before
    ws.restore(later)
    assert tree_state(root) == after


def test_ignored_paths_are_left_alone(ws: ShadowGitWorkspace):
    root = ws.root
    (root / ".gitignore").write_text("*.log\nbuild/\n")
    (root / "app.log").write_text("old log\n")
    (root / "node_modules" / "pkg").mkdir(parents=True)  # ignored by the default excludes
    (root / "node_modules" / "pkg" / "index.js").write_text("v1\n")
    (root / "src.py").write_text("print(1)\n")
    snap = ws.snapshot()
    assert ws.changed_paths(snap) == []

    (root / "app.log").write_text("new log\n")
    (root / "node_modules" / "pkg" / "index.js").write_text("v2\n")
    (root / "build" / "out").mkdir(parents=True)
    (root / "build" / "out" / "a.o").write_bytes(b"\x7fELF")
    (root / "scratch").mkdir()
    (root / "scratch" / "only.log").write_text("ignored, in an untracked dir\n")
    (root / "src.py").write_text("print(2)\n")
    expected = tree_state(root)
    expected["src.py"] = ("file", b"print(1)\n", False)
    assert ws.changed_paths(snap) == ["src.py"]
    ws.restore(snap)
    assert tree_state(root) == expected


def test_snapshots_round_trip_back_and_forth(ws: ShadowGitWorkspace):
    root = ws.root
    states, snaps = [], []
    for i in range(4):
        (root / f"f{i}").write_text(f"{i}\n")
        (root / "shared").write_text(f"version {i}\n" * (i + 1))
        if i == 2:
            (root / "f0").unlink()
        states.append(tree_state(root))
        snaps.append(ws.snapshot(f"step {i}"))
    for k in (0, 3, 1, 3, 2, 0):
        ws.restore(snaps[k])
        assert tree_state(root) == states[k]
    assert ws.snapshots() == snaps
    (root / "empty" / "dir").mkdir(parents=True)
    labelled = ws.snapshot("multi\nline label")
    expected = tree_state(root)
    ws.restore(snaps[0])

    # A new session (fresh index, nothing cached) reads the record from the commit and restores it.
    other = ShadowGitWorkspace(root, ws.git_dir)
    assert other.info(snaps[2]).label == "step 2"
    assert other.info(labelled).label == "multi\nline label"
    assert other.info(labelled).empty_dirs == ("empty", "empty/dir")
    other.restore(labelled)
    assert tree_state(root) == expected


def test_diff_reports_statuses_and_a_patch_without_binary_dumps(ws: ShadowGitWorkspace):
    root = ws.root
    for name in ("mod.txt", "gone.txt", "mode.sh", "kind"):
        (root / name).write_text(f"{name}\n")
    a = ws.snapshot()
    (root / "mod.txt").write_text("changed\n")
    (root / "gone.txt").unlink()
    (root / "mode.sh").chmod(0o755)
    (root / "kind").unlink()
    (root / "kind").symlink_to("mod.txt")
    (root / "blob.bin").write_bytes(b"\x00\x01\x02BINARY-MARKER\x00" * 50)
    (root / "emptydir").mkdir()

    now = ws.diff(a)  # against the current files, including ones never snapshotted
    assert {(f.path, f.status) for f in now.files} == {
        ("mod.txt", "modified"),
        ("gone.txt", "deleted"),
        ("mode.sh", "mode-changed"),
        ("kind", "type-changed"),
        ("blob.bin", "added"),
    }
    assert now.empty_dirs_added == ("emptydir",)
    assert not now.warnings
    assert "+changed" in now.patch
    assert "diff --git a/gone.txt b/gone.txt" in now.patch
    assert "Binary files /dev/null and b/blob.bin differ" in now.patch
    assert "BINARY-MARKER" not in now.patch
    b = ws.snapshot()
    assert ws.diff(a, b).files == now.files
    assert ws.diff(a, b).patch == now.patch
    assert ws.changed_paths(b, a) == sorted(now.paths)
    assert ws.diff(b).is_empty
    assert ws.changed_paths(b) == []


@pytest.mark.parametrize("layout", ["repository", "linked-worktree"])
def test_the_users_git_directory_is_byte_identical(tmp_path: Path, layout: str):
    repo = user_repo(tmp_path / "repo", {"src/app.py": "x = 1\n", "README": "hi\n"})
    root = repo
    if layout == "linked-worktree":  # the workspace's .git is a file pointing into repo/.git
        root = tmp_path / "wt"
        git(repo, "worktree", "add", "-q", "--detach", str(root))
    hooks = repo / ".git" / "hooks"
    for hook in ("pre-commit", "post-checkout", "post-commit", "reference-transaction"):
        (hooks / hook).write_text(f"#!/bin/sh\ntouch {tmp_path}/hook-ran-{hook}\n")
        (hooks / hook).chmod(0o755)
    before = hash_tree(repo / ".git"), hash_tree(root)[".git"]
    ws = ShadowGitWorkspace(root, tmp_path / "shadow")
    snaps = [ws.snapshot()]
    for i in range(12):
        (root / "src" / "app.py").write_text(f"x = {i}\n")
        (root / f"new{i % 3}.txt").write_text("n\n")
        (root / "dir" / str(i)).mkdir(parents=True, exist_ok=True)
        snaps.append(ws.snapshot())
        ws.restore(snaps[i // 2])
        ws.diff(snaps[0])
    ws.restore(snaps[0])
    assert (hash_tree(repo / ".git"), hash_tree(root)[".git"]) == before
    assert not list(tmp_path.glob("hook-ran-*"))
    assert git(root, "status", "--porcelain") == ""


def test_user_config_and_attributes_cannot_change_behaviour(tmp_path: Path, monkeypatch):
    home = tmp_path / "home"
    (home / ".config" / "git").mkdir(parents=True)
    (home / ".gitconfig").write_text(
        "[core]\n\tautocrlf = true\n\tignoreStat = true\n\texcludesFile = ~/.config/git/ignore\n"
        '[filter "shout"]\n\tclean = tr a-z A-Z\n\tsmudge = tr a-z A-Z\n'
    )
    (home / ".config" / "git" / "ignore").write_text("*.txt\n")
    (home / ".config" / "git" / "attributes").write_text("* filter=shout\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "not-this"))  # an inherited GIT_* must not leak in
    root = tmp_path / "ws"
    root.mkdir()
    (root / ".gitattributes").write_text("* text eol=crlf filter=shout ident\n")
    (root / "notes.txt").write_bytes(b"lower case\nlf only $Id$\n")
    before = tree_state(root)
    ws = ShadowGitWorkspace(root, tmp_path / "shadow")
    snap = ws.snapshot()
    (root / "notes.txt").write_bytes(b"changed")
    assert ws.changed_paths(snap) == ["notes.txt"]  # core.ignoreStat from the user would hide this
    ws.restore(snap)
    assert tree_state(root) == before
    assert ws.changed_paths(snap) == []


def test_nested_repositories_are_reported_and_left_alone(ws: ShadowGitWorkspace):
    root = ws.root
    (root / "top.txt").write_text("top\n")
    a = ws.snapshot()
    user_repo(root / "vendor" / "lib", {"lib.py": "committed\n"})
    (root / "vendor" / "lib" / "lib.py").write_text("uncommitted work\n")
    (root / "scratch").mkdir()
    git(root / "scratch", "init", "-q")  # no commit at all: plain `git add -A` would fail on it
    (root / "scratch" / "wip").write_text("wip\n")
    b = ws.snapshot()
    assert ws.info(b).nested_repos == ("scratch", "vendor/lib")
    diff = ws.diff(a, b)
    assert diff.files == ()
    assert len(diff.warnings) == 2
    assert "vendor/lib/" in diff.warnings[1]
    ws.restore(a)
    assert (root / "vendor" / "lib" / "lib.py").read_text() == "uncommitted work\n"
    assert (root / "scratch" / "wip").read_text() == "wip\n"


def test_restore_refuses_to_overwrite_a_nested_repository(ws: ShadowGitWorkspace):
    root = ws.root
    (root / "lib").write_text("a file\n")
    a = ws.snapshot()
    (root / "lib").unlink()
    user_repo(root / "lib", {"x.py": "precious\n"})
    ws.snapshot()
    with pytest.raises(SnapshotError, match="nested git repository at 'lib'"):
        ws.restore(a)
    assert (root / "lib" / "x.py").read_text() == "precious\n"


def test_two_sessions_on_one_workspace_do_not_conflict(tmp_path: Path):
    root = tmp_path / "ws"
    root.mkdir()
    for i in range(50):
        (root / f"f{i}.txt").write_text(f"{i}\n")
    one = ShadowGitWorkspace(root, tmp_path / "shadow", session="one")
    two = ShadowGitWorkspace(root, tmp_path / "shadow", session="two")
    results: dict[str, list[str]] = {"one": [], "two": []}
    errors: list[BaseException] = []

    def work(ws: ShadowGitWorkspace) -> None:
        try:
            for _ in range(8):
                results[ws.session].append(ws.snapshot())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in (one, two)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    # Nothing changed between them: the same state keeps its id, so each session has one snapshot.
    assert one.snapshots() == list(dict.fromkeys(results["one"])) and len(results["one"]) == 8
    assert two.snapshots() == list(dict.fromkeys(results["two"]))
    first_two = two.snapshots()[0]
    (root / "f1.txt").write_text("changed\n")
    one.restore(results["one"][0])
    assert two.changed_paths(first_two) == []
    one.drop()
    assert one.snapshots() == []
    assert len(two.snapshots()) == 1
    two.restore(first_two)


def test_refs_keep_snapshots_alive_through_gc_and_drop_releases_them(tmp_path: Path, ws: ShadowGitWorkspace):
    (ws.root / "a.txt").write_text("only in the first snapshot\n")
    first = ws.snapshot()
    (ws.root / "a.txt").unlink()
    ws.snapshot()
    env = {"GIT_DIR": str(ws.git_dir), "PATH": os.environ["PATH"], "GIT_CONFIG_GLOBAL": "/dev/null"}
    subprocess.run(["git", "gc", "-q", "--prune=now"], env=env, check=True)
    ws.restore(first)
    assert (ws.root / "a.txt").read_text() == "only in the first snapshot\n"
    ws.drop()
    assert ws.snapshots() == []
    subprocess.run(["git", "gc", "-q", "--prune=now"], env=env, check=True)
    fresh = ShadowGitWorkspace(ws.root, ws.git_dir)
    with pytest.raises(SnapshotError, match="git cat-file failed"):
        fresh.restore(first)


def test_errors_are_one_line_snapshot_errors(tmp_path: Path, ws: ShadowGitWorkspace):
    with pytest.raises(SnapshotError, match="unknown snapshot id") as info:
        ws.restore("not-a-sha")
    assert isinstance(info.value, SandboxError)
    with pytest.raises(SnapshotError) as info:
        ws.diff("0" * 40)
    assert str(info.value).startswith("git cat-file failed: fatal:")
    assert "\n" not in str(info.value)
    (ws.root / "x").write_text("x")
    tree = subprocess.run(
        ["git", "--git-dir", str(ws.git_dir), "rev-parse", f"{ws.snapshot()}^{{tree}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    with pytest.raises(SnapshotError):
        ws.restore(tree)  # a tree, not one of our snapshot commits
    with pytest.raises(SnapshotError, match="outside the workspace"):
        ShadowGitWorkspace(ws.root, ws.root / ".shadow")
    with pytest.raises(SnapshotError, match="not a directory"):
        ShadowGitWorkspace(tmp_path / "missing", tmp_path / "shadow2")


def test_default_git_dir_is_in_xdg_state_outside_the_workspace(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    root = tmp_path / "ws"
    root.mkdir()
    (tmp_path / "alias").symlink_to(root)
    ws = ShadowGitWorkspace(root)
    assert ws.git_dir.parent == tmp_path / "state" / "branchwise" / "shadow"
    assert ShadowGitWorkspace(tmp_path / "alias").git_dir == ws.git_dir  # keyed by the real path
    other = tmp_path / "other"
    other.mkdir()
    assert ShadowGitWorkspace(other).git_dir != ws.git_dir
    assert not list(root.iterdir())
    assert ws.describe()["git_dir"] == str(ws.git_dir)


def test_keep_only_keeps_the_named_snapshots_restorable(tmp_path):
    from branchwise.sandbox.workspace.snapshots import ShadowGitWorkspace

    root = tmp_path / "ws"
    root.mkdir()
    (root / "a").write_text("1")
    ws = ShadowGitWorkspace(root, git_dir=tmp_path / "shadow", session="s1")
    first = ws.snapshot("first")
    (root / "a").write_text("2")
    second = ws.snapshot("second")
    ws.keep_only([first])
    assert ws.snapshots() == [first]
    assert second not in ws.snapshots()
    later = ShadowGitWorkspace(root, git_dir=tmp_path / "shadow", session="s2")
    later.restore(first)
    assert (root / "a").read_text() == "1"
