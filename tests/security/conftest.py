"""Fixtures for the adversarial suite: a real workspace, real BwrapSandbox sessions, real loopback servers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from branchwise.sandbox.isolation.bwrap import BwrapSandbox
from branchwise.sandbox.settings import SandboxSettings
from tests.security.sbx_helpers import HostServer

HOOK = "#!/bin/sh\necho original hook\n"
GIT_CONFIG = "[core]\n\tbare = false\n"


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A workspace with a git hook and config to protect, under a per-test temporary directory."""
    ws = tmp_path / "ws"
    (ws / ".git" / "hooks").mkdir(parents=True)
    (ws / ".git" / "hooks" / "pre-commit").write_text(HOOK)
    (ws / ".git" / "config").write_text(GIT_CONFIG)
    (ws / "README.md").write_text("hello\n")
    return ws


@pytest.fixture
def make_box(workspace: Path) -> Iterator[Callable[..., BwrapSandbox]]:
    """Build sandboxes over the workspace with the given SandboxSettings fields; all closed afterwards."""
    boxes: list[BwrapSandbox] = []

    def make(**fields: Any) -> BwrapSandbox:
        box = BwrapSandbox(workspace, SandboxSettings(**fields))
        boxes.append(box)
        return box

    yield make
    for box in boxes:
        box.close()


@pytest.fixture
def box(make_box: Callable[..., BwrapSandbox]) -> BwrapSandbox:
    """A default sandbox: workspace-write, network off."""
    return make_box()


@pytest.fixture
def host_server() -> Iterator[HostServer]:
    server = HostServer()
    yield server
    server.close()


@pytest.fixture
def make_host_server() -> Iterator[Callable[[], HostServer]]:
    servers: list[HostServer] = []

    def make() -> HostServer:
        servers.append(HostServer())
        return servers[-1]

    yield make
    for server in servers:
        server.close()
