"""A stdio transport for the SDK's ClientSession that an untrusted server cannot flood.

The SDK's own `stdio_client` buffers a line of any length and sends stderr to a file. This one caps each
message (a longer one is dropped and reported), keeps only the tail of stderr (for error messages), and
knows the server's exit code, so that a crash can be told apart from a hang.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc
import mcp_types
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.shared.message import SessionMessage

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
OVERSIZED = -32098
"""The error code of the answer that stands in for one that was too long (in JSON-RPC's server-error range)."""
_ID = re.compile(rb'"id"\s*:\s*(-?\d+|"[^"\\]{0,100}")')
STDERR_TAIL_BYTES = 8 * 1024
_EXIT_GRACE_S = 2.0
_KILL_WAIT_S = 2.0


class OversizedMessage(ValueError):
    """The server wrote a message longer than the cap; it was dropped."""


@dataclass
class ServerProcessInfo:
    """What is known about the server's process: its stderr tail, exit code, and protocol noise."""

    stderr_tail: bytearray = field(default_factory=bytearray)
    returncode: int | None = None
    bad_lines: int = 0
    last_bad_line: str = ""
    eof: bool = False
    """The server closed its stdout: it exited, or will not answer any more."""

    def stderr_text(self, max_lines: int = 5) -> str:
        """The last lines the server wrote to stderr, for an error message."""
        lines = bytes(self.stderr_tail).decode("utf-8", "replace").strip().splitlines()
        return " | ".join(line.strip() for line in lines[-max_lines:] if line.strip())[-400:]

    def add_stderr(self, chunk: bytes) -> None:
        self.stderr_tail += chunk
        del self.stderr_tail[:-STDERR_TAIL_BYTES]


@contextlib.asynccontextmanager
async def stdio_transport(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str | None,
    info: ServerProcessInfo,
    max_message_bytes: int = MAX_MESSAGE_BYTES,
) -> AsyncIterator[tuple[MemoryObjectReceiveStream[Any], MemoryObjectSendStream[SessionMessage]]]:
    """Start argv and exchange newline-delimited JSON-RPC with it; stop it (stdin closed, then killed) on exit."""
    process = await anyio.open_process(list(argv), env=dict(env), cwd=cwd, start_new_session=True)
    read_send, read_recv = anyio.create_memory_object_stream[SessionMessage | Exception](16)
    write_send, write_recv = anyio.create_memory_object_stream[SessionMessage](16)

    async def read_stdout() -> None:
        assert process.stdout is not None
        buffer = bytearray()
        dropping, head = False, b""
        async with read_send:
            with contextlib.suppress(anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
                while True:
                    chunk = await process.stdout.receive(65536)
                    while chunk:
                        line, newline, chunk = chunk.partition(b"\n")
                        if not dropping:
                            buffer += line
                        if len(buffer) > max_message_bytes and not dropping:
                            dropping, head, buffer = True, bytes(buffer[:256]), bytearray()
                        if newline:
                            item = _oversized(head, max_message_bytes) if dropping else _parse(bytes(buffer), info)
                            dropping, buffer = False, bytearray()
                            if item is not None:
                                await read_send.send(item)
            info.eof = True

    async def read_stderr() -> None:
        assert process.stderr is not None
        with contextlib.suppress(anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            while True:
                info.add_stderr(await process.stderr.receive(65536))

    async def write_stdin() -> None:
        assert process.stdin is not None
        with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            async with write_recv:
                async for message in write_recv:
                    data = message.message.model_dump_json(by_alias=True, exclude_unset=True)
                    await process.stdin.send(data.encode() + b"\n")

    async with anyio.create_task_group() as tg:
        for task in (read_stdout, read_stderr, write_stdin):
            tg.start_soon(task)
        try:
            yield read_recv, write_send
        finally:
            with anyio.CancelScope(shield=True):
                await _stop(process)
                info.returncode = process.returncode
            tg.cancel_scope.cancel()
    for stream in (read_recv, write_send):
        await stream.aclose()


def _parse(line: bytes, info: ServerProcessInfo) -> SessionMessage | Exception | None:
    if not line.strip():
        return None
    try:
        return SessionMessage(mcp_types.jsonrpc_message_adapter.validate_json(line, by_name=False))
    except ValueError as exc:
        info.bad_lines += 1
        info.last_bad_line = line[:200].decode("utf-8", "replace")
        return exc


def _oversized(head: bytes, limit: int) -> SessionMessage | Exception:
    """What stands in for a dropped message: an error answer to its request, when its start names the request
    (so that the call fails now, not at its timeout), else an error for the session's message handler."""
    text = f"the server sent a message over {limit // (1024 * 1024)} MB; it was dropped"
    found = _ID.search(head)
    if found is None or b'"method"' in head:
        return OversizedMessage(text)
    request_id: int | str = json.loads(found.group(1))
    error = mcp_types.ErrorData(code=OVERSIZED, message=text)
    return SessionMessage(mcp_types.JSONRPCError(jsonrpc="2.0", id=request_id, error=error))


async def _stop(process: anyio.abc.Process) -> None:
    """Close stdin (the spec's shutdown), give the server a moment, then kill its whole process group."""
    if process.stdin is not None:
        with contextlib.suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            await process.stdin.aclose()
    if not await _exited(process, _EXIT_GRACE_S):
        # A sandboxed server is bwrap's child: killing the group takes bwrap, whose --die-with-parent takes the rest.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        await _exited(process, _KILL_WAIT_S)
    with anyio.move_on_after(_KILL_WAIT_S), contextlib.suppress(OSError, anyio.BrokenResourceError):
        await process.aclose()  # closes the pipes; a grandchild that escaped the group may keep them open


async def _exited(process: anyio.abc.Process, timeout: float) -> bool:
    """Whether the process exits within the timeout. Polled: `wait()` also waits for the pipes to close, which a
    child that inherited them can hold open."""
    with anyio.move_on_after(timeout):
        while process.returncode is None:
            await anyio.sleep(0.02)
    return process.returncode is not None
