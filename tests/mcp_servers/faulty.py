"""An MCP server, on the SDK's own server class, that misbehaves on request: it crashes, hangs, answers with
malformed messages and floods its output. The tests run it inside the sandbox."""

from __future__ import annotations

import json
import os
import sys
import threading
import time

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import ToolAnnotations

# The SDK points fd 1 at stderr while it serves, so that stray prints miss the wire; this copy is the wire.
WIRE = os.dup(1)
server = MCPServer("faulty")


def wire(data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(WIRE, view) :]


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def echo(text: str) -> str:
    """Return the text."""
    return text


@server.tool()
def crash() -> str:
    """Exit at once with status 3, in the middle of the call."""
    sys.stderr.write("faulty: crashing now\n")
    sys.stderr.flush()
    os._exit(3)


@server.tool()
def exit_soon() -> str:
    """Answer, then exit with status 4 a moment later (the server dies between calls)."""
    threading.Timer(0.2, os._exit, (4,)).start()
    return "exiting soon"


@server.tool()
def hang() -> str:
    """Never answer (the server itself stays responsive)."""
    time.sleep(3600)
    return "never"


@server.tool()
async def freeze() -> str:
    """Block the server's event loop: nothing is answered any more, not even a ping."""
    time.sleep(3600)
    return "never"


@server.tool()
async def malformed(ctx: Context) -> str:
    """Answer this request with a result that is not a CallToolResult."""
    bad = {"jsonrpc": "2.0", "id": int(ctx.request_id), "result": {"content": "not a list", "isError": 7}}
    wire((json.dumps(bad) + "\n").encode())
    return "too late"


@server.tool()
def garbage() -> str:
    """Write lines that are not JSON-RPC to the wire, then answer normally."""
    wire(b'this is not json\n{"jsonrpc": "1.0"}\n')
    return "answered after garbage"


@server.tool()
def flood_result(megabytes: int) -> str:
    """Answer with a very long text."""
    return "y" * (megabytes * 1024 * 1024)


@server.tool()
def flood_stderr(megabytes: int) -> str:
    """Write a lot to stderr, then answer."""
    chunk = "e" * 65536 + "\n"
    for _ in range(megabytes * 16):
        sys.stderr.write(chunk)
    sys.stderr.flush()
    return "stderr flooded"


@server.tool()
def flood_line(megabytes: int) -> str:
    """Write one enormous line to the wire, then answer normally."""
    chunk = b"z" * (1024 * 1024)
    for _ in range(megabytes):
        wire(chunk)
    wire(b"\n")
    return "answered after a flood"


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def header(name: str, ctx: Context) -> str:
    """The value of one HTTP request header (streamable HTTP only)."""
    request = ctx.request_context.request
    return str(request.headers.get(name, "(none)")) if request is not None else "(not HTTP)"


@server.resource("notes://today", name="today", description="Today's notes.")
def today() -> str:
    return "buy milk"


@server.prompt()
def review(topic: str) -> str:
    """Ask for a review."""
    return f"Review {topic} carefully."


if __name__ == "__main__":
    if sys.argv[1:2] == ["--http"]:
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run()
