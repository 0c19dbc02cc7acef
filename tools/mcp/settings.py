"""Configuration of MCP servers: the `[mcp]` section and its `[mcp.servers.NAME]` tables."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SERVER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*(_[A-Za-z0-9-]+)*$")
"""Letters, digits, `-` and single `_`: the name goes into tool names `mcp__NAME__TOOL`, so no `__`."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class McpServerSettings(_Strict):
    """One MCP server (`[mcp.servers.NAME]`): a command to start (stdio) or a URL (streamable HTTP)."""

    command: str | None = None
    """stdio: the program to start (a name looked up on PATH, or a path); it runs inside the session's sandbox."""
    args: list[str] = Field(default_factory=list)
    """stdio: its arguments; `${workspace}` is replaced by the workspace path, `${NAME}` by an environment variable."""
    env: dict[str, str] = Field(default_factory=dict)
    """stdio: environment variables for the server (nothing else of yours is passed); values expand like args."""
    cwd: Path | None = None
    """stdio: working directory (relative: to the workspace; default: the workspace)."""
    url: str | None = None
    """streamable HTTP: the server's endpoint, e.g. http://127.0.0.1:8000/mcp (branchwise connects from the host)."""
    headers: dict[str, str] = Field(default_factory=dict)
    """streamable HTTP: request headers, e.g. {Authorization = "Bearer ${MY_TOKEN}"}; values expand like args."""
    sandbox: Literal["session", "host"] = "session"
    """stdio: session runs the server inside the session's sandbox (its filesystem view, network and limits);
    host runs it unsandboxed with your rights (user config only; its tools then count as external)."""
    enabled: bool = True
    """false: do not start this server (a repository's config may only switch servers off)."""
    enabled_tools: list[str] | None = None
    """Offer only these of the server's tools (their names on the server); default: all."""
    disabled_tools: list[str] = Field(default_factory=list)
    """Never offer these of the server's tools."""
    startup_timeout_s: float = Field(20.0, gt=0)
    """Seconds the server may take to start and list its tools."""
    tool_timeout_s: float = Field(120.0, gt=0)
    """Seconds one tool call may take before it is cancelled and the model is told."""

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerSettings:
        if self.command and self.url:
            raise ValueError("give either command (stdio) or url (streamable HTTP), not both")
        if self.enabled and not (self.command or self.url):
            raise ValueError("an enabled server needs command (stdio) or url (streamable HTTP)")
        if self.url and not re.match(r"^https?://", self.url):
            raise ValueError("url must start with http:// or https://")
        return self

    @property
    def transport(self) -> Literal["stdio", "http"]:
        return "http" if self.url else "stdio"


class McpSettings(_Strict):
    """MCP servers whose tools the agent may use (`[mcp]`)."""

    enabled: bool = True
    """false: start no MCP server at all."""
    servers: dict[str, McpServerSettings] = Field(default_factory=dict)
    """Servers by name; their tools are offered as mcp__NAME__TOOL."""
    max_description_chars: int = Field(1024, ge=80)
    """A server's tool descriptions are cut to this length (they are untrusted text the model reads)."""

    @field_validator("servers")
    @classmethod
    def _names(cls, servers: dict[str, McpServerSettings]) -> dict[str, McpServerSettings]:
        for name in servers:
            if not SERVER_NAME.match(name):
                raise ValueError(f"server name {name!r}: use letters, digits, '-' and single '_'")
        return servers

    def active(self) -> dict[str, McpServerSettings]:
        """The servers to start."""
        return {n: s for n, s in self.servers.items() if s.enabled} if self.enabled else {}


def repository_mcp_problems(data: dict[str, Any]) -> list[str]:
    """Why a config layer that comes with a repository may not say what it says about MCP: a server is code
    that runs on this machine, so such a layer may switch servers off, never add, change or unsandbox one."""
    mcp = data.get("mcp")
    if mcp is None:
        return []
    if not isinstance(mcp, dict):
        return ["mcp must be a table"]
    problems = []
    if mcp.get("enabled", False) is not False:
        problems.append("mcp.enabled may only be set to false")
    for key in sorted(set(mcp) - {"enabled", "servers"}):
        problems.append(f"mcp.{key} is for your own configuration")
    servers = mcp.get("servers") or {}
    for name, server in sorted(servers.items()) if isinstance(servers, dict) else []:
        keys = set(server) if isinstance(server, dict) else {"(value)"}
        if keys - {"enabled"} or (isinstance(server, dict) and server.get("enabled") is not False):
            problems.append(f"mcp.servers.{name} may only say enabled = false (a repository cannot add or change one)")
    return problems
