"""Helpers for the security suite: run scripts in a sandbox, serve HTTP on the host's loopback."""

from __future__ import annotations

import http.server
import socket
import threading
from typing import Any

from branchwise.sandbox.base import ExecResult
from branchwise.sandbox.isolation.bwrap import BwrapSandbox


def sh(box: BwrapSandbox, script: str, **kwargs: Any) -> ExecResult:
    """Run a shell script in the sandbox."""
    return box.run(["/bin/sh", "-c", script], **kwargs)


def py(box: BwrapSandbox, code: str, **kwargs: Any) -> ExecResult:
    """Run Python code in the sandbox (Debian's python3; the venv lives under the masked /root)."""
    return box.run(["/usr/bin/python3", "-c", code], **kwargs)


class HostServer:
    """An HTTP server on the host's 127.0.0.1 that counts the requests it answered."""

    def __init__(self, body: bytes = b"hello from the host") -> None:
        hits: list[str] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hits.append(self.path)
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.hits = hits
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def errno_of(box: BwrapSandbox, statement: str) -> str:
    """Run one Python statement in the sandbox: "ok", or the errno of the OSError it raised."""
    code = f"import os, socket\ntry:\n    {statement}\n    print('ok')\nexcept OSError as e:\n    print(e.errno)"
    return py(box, code).output.strip()
