"""The MCP servers of one session: started together when the session first asks for their tools, closed with it."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from branchwise.sandbox.base import Sandbox
from branchwise.tools.base import Tool
from branchwise.tools.mcp.connection import Listing, McpServerError, ServerConnection
from branchwise.tools.mcp.launch import Launch, LaunchError, make_launch
from branchwise.tools.mcp.loop import LoopThread
from branchwise.tools.mcp.settings import McpServerSettings, McpSettings
from branchwise.tools.mcp.tool import make_resource_tool, make_tool

_BACKSTOP_S = 15.0
_STOP_ALL_S = 25.0


@dataclass
class ServerStatus:
    """One server as `branchwise mcp list` shows it."""

    name: str
    state: str
    transport: str
    where: str
    tools: int = 0
    resources: int = 0
    prompts: int = 0
    started_s: float | None = None
    error: str = ""
    server: str = ""


class McpManager:
    """Owns the session's MCP connections and their event-loop thread. `warn` gets one line per problem."""

    def __init__(
        self,
        settings: McpSettings,
        sandbox: Sandbox,
        workspace: Path,
        *,
        warn: Callable[[str], None],
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.settings, self.sandbox, self.workspace, self.warn = settings, sandbox, workspace, warn
        self.environ = dict(os.environ if environ is None else environ)
        self.connections: dict[str, ServerConnection] = {}
        self.launch_errors: dict[str, str] = {}
        self._loop: LoopThread | None = None
        self._tools: list[Tool] | None = None
        self._closed = False

    def servers(self) -> dict[str, McpServerSettings]:
        return self.settings.active()

    def start(self, names: list[str] | None = None) -> dict[str, Listing | McpServerError]:
        """Start these servers (default: all enabled) at the same time; each one's listing, or why it failed."""
        wanted = names if names is not None else list(self.servers())
        results: dict[str, Listing | McpServerError] = {}
        futures: dict[str, concurrent.futures.Future[Listing]] = {}
        for name in wanted:
            conn = self._connection(name)
            if conn is None:
                results[name] = McpServerError(self.launch_errors[name])
            elif conn.state == "ready" and conn.listing is not None:
                results[name] = conn.listing
            elif conn.state != "stopped":
                results[name] = McpServerError(conn.error or f"mcp server {name} is {conn.state}")
            else:
                futures[name] = conn.begin_start()
        for name, future in futures.items():
            timeout = self.connections[name].settings.startup_timeout_s + _BACKSTOP_S
            try:
                results[name] = future.result(timeout)
            except McpServerError as exc:
                results[name] = exc
            except concurrent.futures.TimeoutError:
                future.cancel()
                results[name] = McpServerError(f"mcp server {name}: did not start within {timeout:g} s")
            self.connections[name].flush_warnings()
        return {name: results[name] for name in wanted}

    def tools(self) -> list[Tool]:
        """The tools of every enabled server (starting them); a server that fails costs one warning, not the run."""
        if self._tools is not None:
            return self._tools
        self._tools = []
        if not self.servers():
            return self._tools
        names: set[str] = set()
        for server, outcome in self.start().items():
            if isinstance(outcome, McpServerError):
                self.warn(f"{outcome}; its tools are not available in this session")
                continue
            for tool in self._tools_of(self.connections[server], outcome):
                if tool.name in names:
                    self.warn(f"mcp server {server}: two tools are named {tool.name}; only the first is offered")
                    continue
                names.add(tool.name)
                self._tools.append(tool)
        return self._tools

    def tools_for(self, name: str) -> list[Tool]:
        """The tools one started server offers (after `start`), its enabled/disabled lists applied."""
        conn = self.connections[name]
        return self._tools_of(conn, conn.listing) if conn.listing is not None else []

    def _tools_of(self, conn: ServerConnection, listing: Listing) -> list[Tool]:
        s = conn.settings
        found: list[Tool] = []
        for remote in listing.tools:
            if remote.name in s.disabled_tools or (s.enabled_tools is not None and remote.name not in s.enabled_tools):
                continue
            try:
                found.append(make_tool(conn, remote, self.close, max_description=self.settings.max_description_chars))
            except ValueError as exc:
                self.warn(f"mcp server {conn.name}: {exc}; it is not offered")
        if listing.resources:
            found.append(make_resource_tool(conn, listing.resources, self.close))
        return found

    def status(self, *, start: bool = True) -> list[ServerStatus]:
        """Every configured server and its state (starting the enabled ones unless `start` is false)."""
        if start:
            self.start()
        rows = []
        for name, s in self.settings.servers.items():
            transport = "http" if s.url else "stdio"
            if not (s.enabled and self.settings.enabled):
                rows.append(ServerStatus(name, "disabled", transport, ""))
                continue
            conn = self._connection(name)
            if conn is None:
                rows.append(ServerStatus(name, "failed", transport, "", error=self.launch_errors[name]))
                continue
            row = ServerStatus(name, conn.state, transport, conn.launch.describe(), error=conn.error)
            if conn.listing is not None:
                ls = conn.listing
                row.tools, row.resources, row.prompts = len(ls.tools), len(ls.resources), len(ls.prompts)
                row.started_s, row.server = round(ls.started_s, 2), ls.server
            rows.append(row)
        return rows

    def connection(self, name: str) -> ServerConnection | None:
        """The connection of one enabled server (None if it is unknown, disabled, or its launch is invalid)."""
        return self._connection(name) if name in self.servers() else None

    def _connection(self, name: str) -> ServerConnection | None:
        if name in self.connections:
            return self.connections[name]
        if name in self.launch_errors:
            return None
        settings = self.servers()[name]
        try:
            launch: Launch = make_launch(name, settings, self.sandbox, self.workspace, self.environ)
        except LaunchError as exc:
            self.launch_errors[name] = f"mcp server {name}: {exc}"
            return None
        conn = ServerConnection(name, settings, launch, self._thread(), warn=self.warn)
        self.connections[name] = conn
        return conn

    def _thread(self) -> LoopThread:
        if self._closed:
            raise McpServerError("the session's MCP connections are closed")
        if self._loop is None:
            _quiet_sdk_logging()
            self._loop = LoopThread()
        return self._loop

    def close(self) -> None:
        """Stop every server and the loop thread (before the sandbox closes, so servers get a clean shutdown)."""
        if self._closed:
            return
        self._closed = True
        if self._loop is not None:
            conns = list(self.connections.values())

            async def close_all() -> None:
                await asyncio.gather(*(c.aclose() for c in conns))

            with contextlib.suppress(TimeoutError):
                self._loop.call(close_all(), _STOP_ALL_S)
            self._loop.close()


def _quiet_sdk_logging() -> None:
    """The SDK logs a traceback for every bad line a server writes; branchwise reports faults itself, once."""
    logger = logging.getLogger("mcp")
    logger.setLevel(logging.CRITICAL)
    logger.propagate = False
