"""One MCP server of a session: started on demand, called with a timeout, restarted once if it dies.

Errors of this module::

    McpServerError      the server could not be started, or is down for the rest of the session
    CallFault           one call failed: timeout, crash, malformed result, or an error the server returned
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
import mcp_types
from mcp.client.session import ClientSession
from mcp.shared.exceptions import MCPError
from pydantic import ValidationError

from branchwise.sandbox.isolation.bwrap import mount_point_vanished
from branchwise.tools.mcp.launch import Launch
from branchwise.tools.mcp.loop import LoopThread
from branchwise.tools.mcp.settings import McpServerSettings
from branchwise.tools.mcp.transport import OVERSIZED, OversizedMessage, ServerProcessInfo, stdio_transport

State = Literal["stopped", "starting", "ready", "failed", "dead", "closed"]
FaultKind = Literal["timeout", "crash", "malformed", "error"]
_PING_S = 3.0
_STOP_S = 10.0
_BACKSTOP_S = 10.0  # on top of every bounded wait, for the loop-thread handoff


class McpServerError(Exception):
    """A server could not be started, or is down for the rest of the session."""


class CallFault(Exception):
    """One request to a server failed; the message is for the model."""

    def __init__(self, kind: FaultKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class Listing:
    """What a server offers, as listed when it started."""

    tools: list[mcp_types.Tool] = field(default_factory=list)
    resources: list[mcp_types.Resource] = field(default_factory=list)
    prompts: list[mcp_types.Prompt] = field(default_factory=list)
    server: str = ""
    instructions: str | None = None
    started_s: float = 0.0


class ServerConnection:
    """A server's lifetime on the session's loop thread; every public method is synchronous and bounded."""

    def __init__(
        self,
        name: str,
        settings: McpServerSettings,
        launch: Launch,
        loop: LoopThread,
        *,
        warn: Callable[[str], None],
    ) -> None:
        self.name, self.settings, self.launch, self.loop, self.warn = name, settings, launch, loop, warn
        self.state: State = "stopped"
        self.error = ""
        self.listing: Listing | None = None
        self.restarts_left = 1
        self.info = ServerProcessInfo()
        self._session: ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        self._warned: set[str] = set()
        self._pending: list[str] = []
        self._lock = threading.Lock()

    # Synchronous API, for the agent's thread.

    def start(self) -> Listing:
        """Start the server and list what it offers (once; later calls return the first listing)."""
        if self.state == "ready" and self.listing is not None:
            return self.listing
        if self.state in ("failed", "dead", "closed"):
            raise McpServerError(self.error or f"mcp server {self.name} is {self.state}")
        try:
            return self.loop.call(self._start(), self.settings.startup_timeout_s + _BACKSTOP_S)
        finally:
            self.flush_warnings()

    def begin_start(self) -> concurrent.futures.Future[Listing]:
        """Start the server without waiting (several servers start at once); the future is its listing."""
        return self.loop.submit(self._start())

    def call_tool(self, tool: str, arguments: dict[str, Any], timeout: float) -> mcp_types.CallToolResult:
        """One tool call; raises CallFault (what went wrong, for the model) or McpServerError (the server is down)."""
        self._ensure_up()
        result = self._request(lambda s: s.call_tool(tool, arguments, read_timeout_seconds=timeout), tool, timeout)
        assert isinstance(result, mcp_types.CallToolResult)
        return result

    def read_resource(self, uri: str, timeout: float) -> mcp_types.ReadResourceResult:
        """Read one resource the server offers."""
        self._ensure_up()
        result = self._request(lambda s: s.read_resource(uri), f"resource {uri}", timeout)
        assert isinstance(result, mcp_types.ReadResourceResult)
        return result

    def get_prompt(self, prompt: str, arguments: dict[str, str], timeout: float) -> mcp_types.GetPromptResult:
        """Render one of the server's prompts."""
        self._ensure_up()
        result = self._request(lambda s: s.get_prompt(prompt, arguments), f"prompt {prompt}", timeout)
        assert isinstance(result, mcp_types.GetPromptResult)
        return result

    def close(self) -> None:
        """Stop the server (stdin closed, then killed); the connection cannot be used again."""
        if self.state != "closed" and not self.loop.loop.is_closed():
            with contextlib.suppress(TimeoutError):
                self.loop.call(self.aclose(), _STOP_S + _BACKSTOP_S)
        self.state = "closed"

    async def aclose(self) -> None:
        """`close` on the loop thread, so that the manager can stop several servers at once."""
        await self._shutdown()
        self.state = "closed"

    def flush_warnings(self) -> None:
        """Hand the warnings gathered on the loop thread to `warn`, on the caller's thread (events are not
        emitted from two threads)."""
        with self._lock:
            pending, self._pending = self._pending, []
        for message in pending:
            self.warn(message)

    def _ensure_up(self) -> None:
        if self.state == "ready":
            return
        if self.state == "stopped":
            self.start()
            return
        raise McpServerError(self.error or f"mcp server {self.name} is {self.state}")

    def _request(self, send: Callable[[ClientSession], Any], what: str, timeout: float) -> Any:
        bad_before = self.info.bad_lines
        # A restart may happen inside: its start-up and the old server's stop are bounded too.
        backstop = timeout + _PING_S + self.settings.startup_timeout_s + _STOP_S + _BACKSTOP_S
        try:
            return self.loop.call(self._send(send, timeout), backstop)
        except CallFault as fault:
            if fault.kind == "timeout" and self.info.bad_lines > bad_before:
                note = f" It wrote {self.info.bad_lines - bad_before} message(s) that are not valid JSON-RPC meanwhile."
                raise CallFault("malformed", str(fault) + note) from None
            raise
        except TimeoutError:
            raise CallFault("timeout", f"mcp server {self.name}: {what} got no answer within {timeout:g} s") from None
        finally:
            self.flush_warnings()

    # Coroutines, on the loop thread.

    async def _start(self) -> Listing:
        try:
            return await self._start_once()
        except McpServerError:
            # A host folder or socket the sandbox masks went away as bwrap started: once more, masked anew.
            if not mount_point_vanished(self.info.stderr_text()):
                raise
            return await self._start_once()

    async def _start_once(self) -> Listing:
        self.state = "starting"
        started = time.monotonic()
        ready: asyncio.Future[Listing] = asyncio.get_running_loop().create_future()
        self._stop = asyncio.Event()
        self.info = ServerProcessInfo()
        self._task = asyncio.create_task(self._lifetime(ready, self._stop))
        try:
            listing = await asyncio.wait_for(asyncio.shield(ready), self.settings.startup_timeout_s)
        except (TimeoutError, McpServerError) as exc:
            ready.cancel()  # nobody will read what the lifetime task still puts there
            await self._shutdown(wait=0.0)  # mid-handshake it would not see the stop event: cancel it
            limit = f"did not start within {self.settings.startup_timeout_s:g} s (startup_timeout_s)"
            why = str(exc) if isinstance(exc, McpServerError) else limit
            raise self._failed(why) from None
        listing.started_s = time.monotonic() - started
        self.listing, self.state = listing, "ready"
        return listing

    def _failed(self, why: str) -> McpServerError:
        stderr = self.info.stderr_text()
        self.state, self.error = "failed", f"mcp server {self.name}: {why}" + (f" (stderr: {stderr})" if stderr else "")
        return McpServerError(self.error)

    async def _lifetime(self, ready: asyncio.Future[Listing], stop: asyncio.Event) -> None:
        """Owns the transport and the session (anyio scopes must be left by the task that entered them)."""
        try:
            async with contextlib.AsyncExitStack() as stack:
                read, write = await stack.enter_async_context(self._transport())
                session = await stack.enter_async_context(
                    ClientSession(read, write, message_handler=self._on_message, client_info=_CLIENT)
                )
                init = await session.initialize()
                listing = await _list(session, init)
                self._session = session
                ready.set_result(listing)
                await stop.wait()
        except Exception as exc:  # anything the server or the transport does wrong ends this server only
            if not ready.done():
                ready.set_exception(McpServerError(_start_error(exc, self.info)))
        finally:
            self._session = None
            if not ready.done():
                ready.set_exception(McpServerError("stopped during start-up"))

    def _transport(self) -> Any:
        if self.launch.url is not None:
            return _http_transport(self.launch.url, self.launch.headers)
        return stdio_transport(self.launch.command(), env=self.launch.env, cwd=self.launch.cwd, info=self.info)

    async def _on_message(self, message: Any) -> None:
        if isinstance(message, OversizedMessage):  # one that did not name its request: the call will time out
            self._warn_once("oversized", f"mcp server {self.name}: {message}")

    async def _send(self, send: Callable[[ClientSession], Any], timeout: float) -> Any:
        if self._session is None or self.info.eof:
            # It died between calls, so this call never reached it: restart, then send it to the new server.
            message = await self._died("had exited")
            if self.state != "ready":
                raise McpServerError(message)
        session = self._session
        assert session is not None
        try:
            with anyio.fail_after(timeout + 1.0):
                return await send(session)
        except MCPError as exc:
            if exc.code == OVERSIZED:
                self._warn_once("oversized", f"mcp server {self.name}: {exc.message}")
                raise CallFault("malformed", f"mcp server {self.name}: {exc.message}") from None
            if exc.code == mcp_types.CONNECTION_CLOSED:
                raise CallFault("crash", await self._died("crashed during the call")) from None
            if exc.code == mcp_types.REQUEST_TIMEOUT:
                raise CallFault("timeout", await self._timed_out(timeout)) from None
            raise CallFault("error", f"mcp server {self.name} returned an error: {exc.message}") from None
        except TimeoutError:
            raise CallFault("timeout", await self._timed_out(timeout)) from None
        except (ValidationError, RuntimeError, ValueError) as exc:
            self._warn_once("malformed", f"mcp server {self.name} returned a malformed result")
            raise CallFault("malformed", f"mcp server {self.name} returned a malformed result: {_short(exc)}") from None

    async def _timed_out(self, timeout: float) -> str:
        message = f"mcp server {self.name} did not answer within {timeout:g} s; the call was cancelled."
        try:
            with anyio.fail_after(_PING_S):
                assert self._session is not None
                await self._session.send_ping()
        except (Exception, TimeoutError):
            return await self._died(f"stopped answering (no reply to a ping after a {timeout:g} s timeout)")
        self._warn_once("timeout", f"mcp server {self.name}: a call timed out after {timeout:g} s")
        return message

    async def _died(self, how: str) -> str:
        """The server is gone or stuck: stop it, restart it once, and say what happened (for the model)."""
        await self._shutdown()
        code = self.info.returncode
        detail = (f" (exit code {code})" if code is not None else "") + (
            f"; its last stderr: {s}" if (s := self.info.stderr_text()) else ""
        )
        if self.restarts_left <= 0:
            self.state, self.error = "dead", f"mcp server {self.name} {how} again{detail}; it stays down"
            self._queue_warning(f"{self.error} for the rest of the session")
            return f"{self.error}: its tools cannot be used in this session. Do the task another way."
        self.restarts_left -= 1
        try:
            await self._start()
        except McpServerError as exc:
            self.state = "dead"
            self._queue_warning(f"mcp server {self.name} {how}{detail}; restarting it failed: {exc}")
            return f"mcp server {self.name} {how}{detail} and could not be restarted: its tools cannot be used."
        self._queue_warning(f"mcp server {self.name} {how}{detail}; restarted it")
        return (
            f"mcp server {self.name} {how}{detail}. It has been restarted; the call was not retried and may or may "
            "not have taken effect."
        )

    def _warn_once(self, kind: str, message: str) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            self._queue_warning(message)

    def _queue_warning(self, message: str) -> None:
        with self._lock:
            self._pending.append(message)

    async def _shutdown(self, wait: float = _STOP_S) -> None:
        """End the lifetime task: it leaves the session and the transport, which stops the process (bounded)."""
        task, stop = self._task, self._stop
        self._task = None
        if stop is not None:
            stop.set()
        if task is not None:
            await asyncio.wait({task}, timeout=wait)
            if not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=_STOP_S)


_CLIENT = mcp_types.Implementation(name="branchwise", version="0.1")


async def _list(session: ClientSession, init: mcp_types.InitializeResult) -> Listing:
    listing = Listing(server=f"{init.server_info.name} {init.server_info.version}", instructions=init.instructions)
    cursor: str | None = None
    while True:
        page = await session.list_tools(params=mcp_types.PaginatedRequestParams(cursor=cursor) if cursor else None)
        listing.tools += page.tools
        if not (cursor := page.next_cursor):
            break
    caps = init.capabilities
    # Resources and prompts are extras: a server that lists them badly still offers its tools.
    if caps.resources is not None:
        with contextlib.suppress(MCPError, ValidationError):
            listing.resources = (await session.list_resources()).resources
    if caps.prompts is not None:
        with contextlib.suppress(MCPError, ValidationError):
            listing.prompts = (await session.list_prompts()).prompts
    return listing


def _start_error(exc: BaseException, info: ServerProcessInfo) -> str:
    exc = _unwrap(exc)
    if isinstance(exc, FileNotFoundError | PermissionError):
        return f"cannot start it: {exc.strerror}: {exc.filename}"
    if isinstance(exc, MCPError) and exc.code == mcp_types.CONNECTION_CLOSED:
        return "exited during start-up" + (f" (exit code {info.returncode})" if info.returncode is not None else "")
    return f"failed to start: {_short(exc)}"


def _unwrap(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _short(exc: BaseException) -> str:
    exc = _unwrap(exc)
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


@contextlib.asynccontextmanager
async def _http_transport(url: str, headers: dict[str, str]) -> Any:
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=300.0)) as client,
        streamable_http_client(url, http_client=client) as streams,
    ):
        yield streams
