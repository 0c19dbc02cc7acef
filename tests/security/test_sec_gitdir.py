"""Class 1 and 5: every file through which git finds configuration is out of the sandbox's reach, and host-side
git never looks inside a nested repository, whatever its name."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from branchwise.sandbox.isolation.bwrap import BwrapSandbox
from branchwise.sandbox.settings import SandboxSettings
from branchwise.sandbox.workspace.snapshots import ShadowGitWorkspace
from tests.conftest import git, make_repo
from tests.security.sbx_helpers import sh

# Each names a place git reads configuration, hooks, another git directory or another object store from.
PLANTS = {
    ".git/commondir": "printf '%s\\n' \"$EVIL\" > .git/commondir",
    ".git/config.worktree": "printf '[core]\\n\\tfsmonitor = touch $MARK\\n' > .git/config.worktree",
    ".git/worktrees": 'mkdir -p .git/worktrees/x && echo "$EVIL" > .git/worktrees/x/commondir',
    ".git/modules": "mkdir -p .git/modules/sub && printf '[core]\\n\\tfsmonitor = x\\n' > .git/modules/sub/config",
    ".git/objects/info/alternates": 'echo "$EVIL/objects" > .git/objects/info/alternates',
}


def plain_git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """git as the user runs it in a terminal."""
    env = {"PATH": os.environ["PATH"], "HOME": str(repo.parent), "GIT_CONFIG_NOSYSTEM": "1"}
    return subprocess.run(["git", "-C", str(repo), *args], env=env, capture_output=True, text=True, check=False)


def test_git_metadata_cannot_be_planted_and_the_users_git_works_meanwhile(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    evil = tmp_path / "evil"
    evil.mkdir()
    mark = tmp_path / "mark"
    (evil / "config").write_text(f"[core]\n\tfsmonitor = touch {mark}\n")
    before = sorted(str(p.relative_to(repo)) for p in (repo / ".git").rglob("*"))
    box = BwrapSandbox(repo, SandboxSettings())
    try:
        for name, plant in PLANTS.items():
            result = sh(box, f"EVIL={evil} MARK={mark}; {plant} && echo planted")
            assert "planted" not in result.output, name
        # While a command runs, the stand-ins the host sees mean what the missing files mean: git works.
        holding = threading.Thread(target=sh, args=(box, "sleep 3"))
        holding.start()
        try:
            for _ in range(10):
                status = plain_git(repo, "status", "--porcelain")
                assert status.returncode == 0 and status.stderr == "", status.stderr
                assert not any(line.endswith((".git", "commondir")) for line in status.stdout.splitlines())
            assert plain_git(repo, "log", "--oneline").stdout.strip().endswith("init")
        finally:
            holding.join()
        inside = sh(box, "git -c user.name=a -c user.email=a@b commit -q --allow-empty -m inside && git log --oneline")
        assert inside.ok and "inside" in inside.output, inside.output  # the agent's own git still works
        assert "warning" not in inside.output, inside.output  # a missing protected file reads as empty, not EACCES
    finally:
        box.close()
    after = sorted(str(p.relative_to(repo)) for p in (repo / ".git").rglob("*"))
    leftovers = {p for p in after if p.split("/")[-1] in ("commondir", "config.worktree", "worktrees", "modules")}
    assert not leftovers and not (repo / ".git" / "objects" / "info" / "alternates").exists()
    assert len(after) >= len(before)
    plain_git(repo, "status")
    assert not mark.exists()


def test_a_nested_repository_is_left_out_whatever_its_name(tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    ws = make_repo(tmp_path / "ws", {"a.txt": "a\n"})
    for name in ("plain", "new\nline", "quote'd\nadd 'x'", "trailing\n"):
        nested = make_repo(ws / name, {"f.txt": "f\n", ".gitattributes": "* filter=evil diff=evil\n"})
        tag = name.replace("\n", "_").replace("'", "")
        git(nested, "config", "filter.evil.clean", f"touch {marks}/clean-{tag}; cat")
        git(nested, "config", "filter.evil.required", "true")
        git(nested, "config", "core.fsmonitor", f"touch {marks}/fsmonitor-{tag}")
        (nested / "f.txt").write_text("changed\n")
        os.utime(nested / "f.txt", (1_600_000_000, 1_600_000_000))
    snaps = ShadowGitWorkspace(ws, git_dir=tmp_path / "shadow", session="s")
    first = snaps.snapshot()
    (ws / "a.txt").write_text("b\n")
    second = snaps.snapshot()
    assert set(snaps.info(second).nested_repos) == {"plain", "new\nline", "quote'd\nadd 'x'", "trailing\n"}
    assert snaps.changed_paths(first, second) == ["a.txt"]
    assert "new\nline" not in snaps.diff(first).patch
    snaps.restore(first)
    assert (ws / "a.txt").read_text() == "a\n" and (ws / "new\nline" / "f.txt").read_text() == "changed\n"
    assert sorted(p.name for p in marks.iterdir()) == []


def test_git_stand_ins_stay_for_the_session_and_the_users_git_works_between_commands(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    git_dir = repo / ".git"
    box = BwrapSandbox(repo, SandboxSettings())
    try:
        assert sh(box, "true").ok
        # The stand-ins mean what absence means, so they may stay until the session ends; bwrap's own mount
        # points (an empty .envrc would be a file the user never made) go after each command.
        assert (git_dir / "commondir").read_text() == ".\n"
        assert (git_dir / "worktrees").is_dir() and (git_dir / "modules").is_dir()
        assert (git_dir / "config.worktree").read_bytes() == b""  # no configuration, as when it is missing
        assert (git_dir / "objects" / "info" / "alternates").read_bytes() == b""  # no other object store
        assert not (repo / ".envrc").exists()
        assert plain_git(repo, "status", "--porcelain").stdout == ""
        added = plain_git(repo, "worktree", "add", "-q", str(tmp_path / "linked"))
        assert added.returncode == 0, added.stderr
        assert str(tmp_path / "linked") in plain_git(repo, "worktree", "list").stdout
        assert "planted" not in sh(box, "echo x > .git/worktrees/y && echo planted").output
    finally:
        box.close()
    assert not (git_dir / "commondir").exists() and not (git_dir / "modules").exists()
    assert not (git_dir / "config.worktree").exists() and not (git_dir / "objects" / "info" / "alternates").exists()
    assert (git_dir / "worktrees" / "linked").is_dir()  # the user's own worktree is kept


def test_protection_holds_when_the_users_git_rewrites_the_git_directory_mid_session(tmp_path: Path) -> None:
    # git replaces config (and config.worktree, packed-refs...) by renaming a new file over it, and a rename over a
    # mount point detaches the mounts of other namespaces: the session's protections must come back before the
    # next command, however the host changed them.
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    mark = tmp_path / "mark"
    plant = f"printf '[core]\\n\\tfsmonitor = touch {mark}\\n' >> .git/config && echo planted"
    with BwrapSandbox(repo, SandboxSettings()) as box:
        assert "planted" not in sh(box, plant).output
        assert plain_git(repo, "config", "user.name", "host side").returncode == 0
        assert plain_git(repo, "config", "--worktree", "core.x", "y").returncode in (0, 128)  # old gits refuse
        assert "planted" not in sh(box, plant).output
        worktree_plant = f"printf '[core]\\n\\tfsmonitor = touch {mark}\\n' >> .git/config.worktree && echo planted"
        assert "planted" not in sh(box, worktree_plant).output
        shutil.rmtree(repo / ".git" / "hooks")  # the user replaces the hooks folder
        (repo / ".git" / "hooks").mkdir()
        hook = "printf '#!/bin/sh\\ntouch x\\n' > .git/hooks/pre-commit && echo planted"
        assert "planted" not in sh(box, hook).output
        assert sh(box, "git config user.name").output.strip() == "host side"  # the sandbox reads the new file
    plain_git(repo, "status")
    assert not mark.exists()


def test_a_link_at_a_protected_path_never_leads_a_mount_out_of_the_workspace(tmp_path: Path) -> None:
    # `.git/hooks -> /etc`: binding where the link leads would lay /etc over the masks on /etc/shadow, for every
    # later command; and a stand-in made through `.git/objects -> elsewhere` would land outside the workspace.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for n, link in enumerate(["/etc", "../" * len((tmp_path / "ws0").parts) + "etc"]):
        ws = tmp_path / f"ws{n}"
        ws.mkdir()
        with BwrapSandbox(ws, SandboxSettings()) as box:
            assert sh(box, f"mkdir .git && ln -s {link} .git/hooks && ln -s {elsewhere} .git/objects").ok
            for _ in range(2):
                shadow = sh(box, "head -c 200 /etc/shadow; head -c 200 /etc/gshadow").output
                assert "root:" not in shadow, (link, shadow)
        assert not list(elsewhere.iterdir()), list(elsewhere.rglob("*"))


def test_a_protection_skipped_because_its_path_was_gone_is_made_once_the_path_is_back(tmp_path: Path) -> None:
    # A path can vanish between the caller's look at the workspace and the spawner's mount (a process of the
    # session deleting it): the next command must find it protected, with the same protected list.
    if os.geteuid() != 0:
        pytest.skip("the spawner's own mount namespace needs root")
    from branchwise.sandbox.isolation import mountns

    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    hooks = repo / ".git" / "hooks"
    with BwrapSandbox(repo, SandboxSettings()) as box:
        assert sh(box, "true").ok
        binds = [(str(hooks), str(hooks), True)]
        shutil.rmtree(hooks)
        box._spawner.submit(box._mounts.ensure_binds, binds).result()
        hooks.mkdir()
        box._spawner.submit(box._mounts.ensure_binds, binds).result()
        assert str(hooks) in box._spawner.submit(mountns._mount_points).result()
        assert "planted" not in sh(box, "touch .git/hooks/pre-commit && echo planted").output


def test_a_git_directory_behind_a_link_of_another_name_gets_the_same_stand_ins(tmp_path: Path) -> None:
    # `.git -> gitdir`: the stand-ins follow the configured name (.git/commondir), not where the link leads; an
    # empty commondir would be a fatal error to every git command.
    ws = tmp_path / "ws"
    ws.mkdir()
    subprocess.run(["git", "init", "-q", "--separate-git-dir", str(ws / "gitdir"), str(ws)], check=True)
    (ws / ".git").unlink()
    (ws / ".git").symlink_to("gitdir")
    with BwrapSandbox(ws, SandboxSettings()) as box:
        done = sh(box, "echo a > a && git add a && git -c user.name=u -c user.email=u@x commit -qm a && echo committed")
        assert "committed" in done.output, done.output
        assert (ws / "gitdir" / "commondir").read_text() == ".\n" and (ws / "gitdir" / "worktrees").is_dir()
        assert "planted" not in sh(box, "touch gitdir/hooks/x && echo planted").output
        status = plain_git(ws, "status", "--porcelain")
        assert status.returncode == 0, status.stderr


def test_cleaning_up_never_follows_a_link_out_of_the_workspace(tmp_path: Path) -> None:
    # A process of the session swaps `.git` for a link to elsewhere: removing the stand-ins and mount points at the
    # end must not delete what is there.
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "commondir").write_text(".\n")
    (victim / "config.worktree").write_bytes(b"")
    (victim / "worktrees").mkdir()
    ws = tmp_path / "ws"
    ws.mkdir()
    with BwrapSandbox(ws, SandboxSettings()) as box:
        box.start_background(["sh", "-c", f"sleep 1.5; mv .git g2; ln -s {victim} .git; sleep 30"])
        assert sh(box, "mkdir .git").ok
        assert sh(box, "true").ok  # the stand-ins are made in the new .git
        time.sleep(2.5)  # and then .git leads elsewhere
    assert sorted(p.name for p in victim.iterdir()) == ["commondir", "config.worktree", "worktrees"]
