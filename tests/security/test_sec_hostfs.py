"""Adversarial case 10: symlink, `..` and hard-link tricks against the host-side file tools (WorkspaceFS)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from branchwise.sandbox.isolation.bwrap import BwrapSandbox
from branchwise.sandbox.workspace.safefs import PathEscape, WorkspaceFS
from tests.security.sbx_helpers import sh

SECRET = "-----BEGIN FAKE KEY-----\nkey-material\n"


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "fakehome" / ".ssh" / "id_rsa"
    path.parent.mkdir(parents=True)
    path.write_text(SECRET)
    return path


def test_symlink_to_a_secret_is_refused(workspace: Path, secret_file: Path) -> None:
    (workspace / "leak").symlink_to(secret_file)
    assert (workspace / "leak").read_text() == SECRET  # a naive open() follows the planted link
    with pytest.raises(PathEscape):
        WorkspaceFS(workspace).read_bytes("leak")


@pytest.mark.parametrize("path", ["pw", "etc/passwd", "../../../../../../etc/passwd", "/etc/passwd", "sub/../../x"])
def test_paths_leading_out_are_refused(workspace: Path, path: str) -> None:
    (workspace / "pw").symlink_to("/etc/passwd")
    (workspace / "etc").symlink_to("/etc")
    (workspace / "sub").mkdir()
    with pytest.raises(PathEscape):
        WorkspaceFS(workspace).read_bytes(path)


def test_writes_through_a_symlinked_dir_are_refused(workspace: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (workspace / "out").symlink_to(outside)
    with pytest.raises(PathEscape):
        WorkspaceFS(workspace).write_bytes("out/planted.txt", b"x")
    assert list(outside.iterdir()) == []


def test_writes_through_a_hard_link_are_refused(workspace: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("original\n")
    os.link(outside, workspace / "hl")  # same filesystem: the kernel cannot tell the link is foreign
    with pytest.raises(PathEscape):
        WorkspaceFS(workspace).write_bytes("hl", b"overwritten\n")
    assert outside.read_text() == "original\n"


def test_sandbox_cannot_hard_link_files_from_outside_or_protected(box: BwrapSandbox, workspace: Path) -> None:
    result = sh(box, "ln /etc/hostname h1; ln .git/hooks/pre-commit h2; true")
    assert result.output.count("Invalid cross-device link") == 2  # EXDEV: every mount is its own island
    assert not (workspace / "h1").exists()
    assert not (workspace / "h2").exists()


def test_inside_paths_still_work(workspace: Path) -> None:
    fs = WorkspaceFS(workspace)
    assert fs.write_bytes("src/new.py", b"print(1)\n")
    assert fs.read_bytes(str(workspace / "src" / "new.py")) == b"print(1)\n"
