"""Adversarial case 19: configuration fails closed."""

from __future__ import annotations

import os
import tempfile
from contextlib import closing
from pathlib import Path

import pytest
from pydantic import ValidationError

from branchwise.sandbox.base import SandboxUnavailable
from branchwise.sandbox.isolation import keeper
from branchwise.sandbox.isolation.bwrap import BwrapSandbox, make_sandbox
from branchwise.sandbox.isolation.host import HostSandbox
from branchwise.sandbox.settings import SandboxSettings


def test_missing_bwrap_refuses_to_run(workspace: Path, tmp_path: Path) -> None:
    settings = SandboxSettings(bwrap=str(tmp_path / "no-such-bwrap"))
    with pytest.raises(SandboxUnavailable, match="apt-get install bubblewrap") as err:
        make_sandbox(settings, workspace)
    assert "\n" not in str(err.value)  # one line for the user
    with pytest.raises(SandboxUnavailable):
        BwrapSandbox(workspace, settings)


def test_missing_bwrap_falls_back_only_with_an_explicit_opt_out(workspace: Path, tmp_path: Path) -> None:
    settings = SandboxSettings(bwrap=str(tmp_path / "no-such-bwrap"))
    with closing(make_sandbox(settings, workspace, allow_unsandboxed=True)) as sandbox:
        assert isinstance(sandbox, HostSandbox)
        assert sandbox.describe()["isolated"] is False


def test_bwrap_without_user_namespaces_refuses_to_start(workspace: Path, tmp_path: Path) -> None:
    # A stand-in for a bwrap that cannot create user namespaces (as on kernels that forbid them).
    fake = tmp_path / "bwrap"
    refuse = 'echo "bwrap: No permissions to create new namespace" >&2; exit 1'
    fake.write_text(f'#!/bin/sh\ncase " $* " in *" --unshare-user "*) {refuse};; esac\nexec /usr/bin/bwrap "$@"\n')
    fake.chmod(0o755)
    with pytest.raises(SandboxUnavailable, match="user namespace"):
        make_sandbox(SandboxSettings(bwrap=str(fake)), workspace)


def _children() -> set[int]:
    return {int(pid) for task in Path("/proc/self/task").iterdir() for pid in (task / "children").read_text().split()}


def test_a_failed_set_up_leaves_no_process_and_no_session_folder(workspace: Path, tmp_path: Path) -> None:
    # The bwrap probe, the keeper and the cgroup join run at the same time; whichever fails, all of it is undone.
    fake = tmp_path / "bwrap"
    fake.write_text('#!/bin/sh\necho "bwrap: No permissions to create new namespace" >&2\nexit 1\n')
    fake.chmod(0o755)
    before = _children()
    sessions = set(Path(tempfile.gettempdir()).glob("branchwise-sbx-*"))
    with pytest.raises(SandboxUnavailable, match="user namespace"):
        BwrapSandbox(workspace, SandboxSettings(bwrap=str(fake), network="proxy"))
    assert _children() <= before
    assert set(Path(tempfile.gettempdir()).glob("branchwise-sbx-*")) <= sessions


def test_a_keeper_that_does_not_start_degrades_or_refuses(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keeper, "_KEEPER", "import sys; sys.stderr.write('keeper broke'); sys.exit(1)")
    with closing(BwrapSandbox(workspace, SandboxSettings(network="off"))) as sandbox:
        assert any("no session keeper (cannot start the session keeper: keeper broke)" in d for d in sandbox.degraded)
        assert sandbox.run(["sh", "-c", "echo ok"]).output == "ok\n"  # every command gets its own loopback
    with pytest.raises(SandboxUnavailable, match="keeper broke"):  # the proxy needs the shared network
        BwrapSandbox(workspace, SandboxSettings(network="proxy"))


def test_full_access_needs_the_explicit_flag(workspace: Path) -> None:
    settings = SandboxSettings(mode="full-access")
    with pytest.raises(SandboxUnavailable, match="--dangerously-full-access"):
        make_sandbox(settings, workspace)
    with closing(make_sandbox(settings, workspace, allow_unsandboxed=True)) as sandbox:
        assert sandbox.describe() == {
            "kind": "host",
            "isolated": False,
            "mode": "full-access",
            "network": "on",
        }


def test_default_is_isolated_workspace_write_without_network(workspace: Path) -> None:
    with closing(make_sandbox(SandboxSettings(), workspace)) as sandbox:
        facts = sandbox.describe()
        assert (facts["kind"], facts["isolated"], facts["mode"], facts["network"]) == (
            "bwrap",
            True,
            "workspace-write",
            "off",
        )
        if os.geteuid() == 0:  # as root every feature is available on these machines
            assert facts["degraded"] == []


def test_unknown_settings_are_rejected() -> None:
    with pytest.raises(ValidationError):
        SandboxSettings(netwrok="on")  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        SandboxSettings(network="maybe")  # type: ignore[arg-type]
