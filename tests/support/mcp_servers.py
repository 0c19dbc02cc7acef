"""Where the tests find their MCP servers (`make setup` installs them), and a session that runs them."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from branchwise.sandbox.isolation.bwrap import BwrapSandbox
from branchwise.sandbox.workspace.safefs import WorkspaceFS
from branchwise.tools import Observation, ToolBox, ToolContext
from branchwise.tools.mcp.manager import McpManager
from branchwise.tools.mcp.settings import McpSettings

ROOT = Path(__file__).resolve().parents[2]
# Outside /root, /home and /tmp, which the sandbox hides: see MCP_SERVERS in the Makefile.
# Where `make setup` installs them (the Makefile exports MCP_TEST_SERVERS; not a BRANCHWISE_* name, which
# branchwise would read as a setting): /opt as root, so that a clone anywhere can run them in the sandbox.
_DEFAULT_SERVERS = Path("/opt/branchwise-test-mcp-servers") if os.geteuid() == 0 else ROOT / ".venv" / "mcp-servers"
SERVERS = Path(os.environ.get("MCP_TEST_SERVERS", _DEFAULT_SERVERS))
FS_SERVER = SERVERS / "node_modules" / ".bin" / "mcp-server-filesystem"
GIT_SERVER = SERVERS / "py" / "bin" / "mcp-server-git"
SERVER_PYTHON = SERVERS / "py" / "bin" / "python"
FAULTY = ROOT / "tests" / "mcp_servers" / "faulty.py"


def require_servers() -> None:
    """Fail (not skip: CI must notice) when the servers `make setup` installs are missing."""
    missing = [p for p in (FS_SERVER, GIT_SERVER, SERVER_PYTHON) if not p.exists()]
    if missing:
        pytest.fail(f"MCP test servers missing ({', '.join(map(str, missing))}): run `make setup`")


@dataclass
class McpHarness:
    """A sandbox session with MCP servers: the tool box the agent would get, and the warnings the user would."""

    workspace: Path
    sandbox: BwrapSandbox
    manager: McpManager
    box: ToolBox
    ctx: ToolContext
    warnings: list[str] = field(default_factory=list)

    def call(self, tool: str, **arguments: Any) -> Observation:
        return self.box.get(tool).run(self.box.parse_args(tool, arguments), self.ctx)


@contextlib.contextmanager
def mcp_session(workspace: Path, servers: dict[str, dict[str, Any]], **sandbox: Any) -> Iterator[McpHarness]:
    """Start these servers for a bwrap session on the workspace; everything is stopped on exit."""
    require_servers()
    warnings: list[str] = []
    with BwrapSandbox(workspace, **sandbox) as sbx:
        manager = McpManager(McpSettings.model_validate({"servers": servers}), sbx, workspace, warn=warnings.append)
        box = ToolBox([])
        try:
            for tool in manager.tools():
                box.add(tool)
            yield McpHarness(workspace, sbx, manager, box, ToolContext(sandbox=sbx, fs=WorkspaceFS(workspace)),
                             warnings)  # fmt: skip
        finally:
            box.close()
            manager.close()


def faulty_server(workspace: Path, **settings: Any) -> dict[str, Any]:
    """The misbehaving test server, copied into the workspace (visible in the sandbox wherever the checkout is)."""
    shutil.copy(FAULTY, workspace / "faulty.py")
    return {"command": str(SERVER_PYTHON), "args": ["${workspace}/faulty.py"], **settings}
