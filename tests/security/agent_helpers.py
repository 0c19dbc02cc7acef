"""Helpers for the agent- and CLI-level security tests: recording loopback servers, scripted runs of the
real `branchwise` command, and what a session leaves behind on the host."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import random
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from branchwise.sandbox.isolation.cgroups import own_cgroups
from tests.conftest import write_script


@dataclass(frozen=True)
class Request:
    """One request a RecordingServer answered."""

    method: str
    path: str
    body: bytes


class RecordingServer:
    """An HTTP server on the host's 127.0.0.1 (a free port) that serves pages by path (`page` for any other
    path) and records every request it answers."""

    def __init__(self, page: str = "hello from the host\n", pages: dict[str, str] | None = None) -> None:
        self.page = page
        self.pages = dict(pages or {})
        self.requests: list[Request] = []
        requests = self.requests
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                requests.append(Request(self.command, self.path, body))
                data = server.pages.get(self.path, server.page).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = _answer

            def log_message(self, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def host(self) -> str:
        """How the proxy's allow list names this server."""
        return f"localhost:{self.port}"

    def url(self, path: str = "/") -> str:
        return f"http://localhost:{self.port}{path}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def marker() -> str:
    """A number no other process on the machine has in its command line."""
    return str(random.randint(10**8, 10**9 - 1))


@dataclass
class Run:
    """A finished `branchwise run`: exit code, streams, and the stream-json events."""

    returncode: int
    stdout: str
    stderr: str
    events: list[dict[str, Any]]

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind]

    @property
    def finished(self) -> dict[str, Any]:
        return self.of("run_finished")[-1]

    def result_of(self, call_id: str) -> dict[str, Any]:
        return next(e for e in self.of("tool_result") if e["call_id"] == call_id)

    def policy_of(self, call_id: str) -> dict[str, Any]:
        return next(e for e in self.of("policy") if e["call_id"] == call_id)

    def trajectory(self, repo: Path) -> str:
        """The run's events.jsonl as written in the repository."""
        run_id = self.finished["run_id"]
        return (repo / ".branchwise" / "runs" / run_id / "events.jsonl").read_text()


def run_agent(cli: Any, repo: Path, replies: list[dict[str, Any]], *args: str, task: str = "do the task",
              env: dict[str, str] | None = None, script: Path | None = None) -> Run:  # fmt: skip
    """`branchwise run TASK -m scripted:... -o stream-json ARGS` in `repo`; the reply file goes next to the repo."""
    script = script or repo.parent / f"replies-{marker()}.yaml"
    write_script(script, replies)
    res = cli("run", task, "-m", f"scripted:{script}", "-o", "stream-json", *args, cwd=repo, env=env)
    events = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    return Run(res.returncode, res.stdout, res.stderr, events)


def call(tool: str, call_id: str | None = None, **arguments: Any) -> dict[str, Any]:
    """One scripted reply with one tool call (an explicit id lets the test find its result)."""
    entry: dict[str, Any] = {"name": tool, "arguments": arguments}
    if call_id:
        entry["id"] = call_id
    return {"tool_calls": [entry]}


def session_cgroups(agent_pid: int) -> list[Path]:
    """Cgroup directories of sandbox sessions created by the agent process `agent_pid`."""
    mounts = own_cgroups()
    parents = [*mounts.v1.values(), *([mounts.v2] if mounts.v2 else [])]
    return sorted({d for parent in parents for d in parent.glob(f"branchwise-{agent_pid}-*")})


def session_processes(agent_pid: int, needle: str | None = None) -> list[int]:
    """Host pids inside a session cgroup of `agent_pid`, or naming it (the keeper), or with `needle` in argv."""
    tag = f"branchwise-{agent_pid}-".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            groups = (entry / "cgroup").read_bytes()
            argv = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if tag in groups or tag in argv or (needle is not None and needle.encode() in argv.split(b"\0")):
            found.append(int(entry.name))
    return found


def wait_until(predicate: Any, timeout: float = 5.0) -> bool:
    """Poll `predicate` until it is true or the time is up; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return bool(value)
        time.sleep(0.02)


def tree_state(root: Path) -> dict[str, tuple[str, int]]:
    """Every entry under root (symlinks not followed): content hash (or link target) and mode bits."""
    state: dict[str, tuple[str, int]] = {}
    if not root.exists():
        return state
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            digest = f"link:{path.readlink()}"
        elif stat.S_ISREG(st.st_mode):
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            digest = "dir"
        state[str(path.relative_to(root))] = (digest, stat.S_IMODE(st.st_mode))
    return state
