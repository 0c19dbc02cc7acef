"""Adversarial cases 4 and 14, and the session loopback: no egress with network off, no host sockets."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from branchwise.sandbox.isolation.bwrap import BwrapSandbox
from tests.security.sbx_helpers import HostServer, errno_of, free_port, py, sh

CONNECT = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
    print("connected")
except OSError as e:
    print(type(e).__name__, e.errno)
"""


def connect(box: BwrapSandbox, host: str, port: int) -> str:
    return box.run(["/usr/bin/python3", "-c", CONNECT, host, str(port)]).output.strip()


# Case 4: with network off there is no route out, the host's loopback is not ours, and DNS fails.
def test_host_loopback_is_unreachable(box: BwrapSandbox, host_server: HostServer) -> None:
    assert connect(box, "127.0.0.1", host_server.port) == "ConnectionRefusedError 111"
    result = sh(box, f"curl -sS -m 3 http://127.0.0.1:{host_server.port}/")
    assert result.exit_code != 0
    assert host_server.hits == []


def test_internet_is_unreachable(box: BwrapSandbox) -> None:
    assert connect(box, "1.1.1.1", 443) == "OSError 101"  # ENETUNREACH: no route at all
    assert connect(box, "10.0.0.1", 80) == "OSError 101"


def test_dns_fails(box: BwrapSandbox) -> None:
    result = py(box, "import socket\ntry:\n socket.getaddrinfo('example.com', 443)\n print('resolved')\n"
                     "except socket.gaierror as e: print('gaierror')")  # fmt: skip
    assert result.output.strip() == "gaierror"
    assert sh(box, "getent hosts example.com; echo rc=$?").output.strip().endswith("rc=2")


def test_only_loopback_interface_exists(box: BwrapSandbox) -> None:
    names = [line.split(":")[0].strip() for line in sh(box, "cat /proc/net/dev").output.splitlines()[2:]]
    assert names == ["lo"]


def test_network_off_without_loopback_denies_inet_sockets(make_box: Callable[..., BwrapSandbox]) -> None:
    box = make_box(loopback=False)
    assert errno_of(box, "socket.socket(socket.AF_INET).close()") == "1"  # EPERM
    assert errno_of(box, "socket.socket(socket.AF_INET6).close()") == "1"
    assert errno_of(box, "socket.socket(socket.AF_UNIX).close()") == "ok"


FAMILIES = [(40, 1, "AF_VSOCK"), (17, 3, "AF_PACKET"), (16, 3, "AF_NETLINK"), (38, 5, "AF_ALG")]


@pytest.mark.parametrize(("family", "kind", "name"), FAMILIES)
def test_exotic_socket_families_are_denied(box: BwrapSandbox, family: int, kind: int, name: str) -> None:
    # AF_VSOCK is not confined by network namespaces: on a VM it reaches the hypervisor side.
    assert errno_of(box, f"socket.socket({family}, {kind})") == "1", name  # EPERM from seccomp


# The session loopback: a background server is reachable from later commands, and only from them.
def test_background_server_is_reachable_from_later_commands(box: BwrapSandbox, workspace: Path) -> None:
    (workspace / "index.html").write_text("served from the sandbox\n")
    port = free_port()
    box.start_background(["/usr/bin/python3", "-m", "http.server", str(port), "--bind", "127.0.0.1"])
    url = f"http://127.0.0.1:{port}/index.html"
    fetch = f"import urllib.request\nprint(urllib.request.urlopen({url!r}).read().decode())"
    deadline = time.monotonic() + 10
    while (result := py(box, fetch)).exit_code != 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert result.output == "served from the sandbox\n\n"
    assert "200" in sh(box, f"curl -s -o /dev/null -w '%{{http_code}}' http://127.0.0.1:{port}/").output
    with pytest.raises(ConnectionRefusedError):  # the host's loopback is another network
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_sessions_do_not_share_a_loopback(make_box: Callable[..., BwrapSandbox]) -> None:
    first, second = make_box(), make_box()
    port = free_port()
    first.start_background(["/usr/bin/python3", "-m", "http.server", str(port), "--bind", "127.0.0.1"])
    deadline = time.monotonic() + 10
    while connect(first, "127.0.0.1", port) != "connected" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert connect(first, "127.0.0.1", port) == "connected"
    assert connect(second, "127.0.0.1", port) == "ConnectionRefusedError 111"


# Case 14: host Unix sockets (docker, dbus, ssh-agent kind) are unreachable, by path or abstract name.
@pytest.fixture
def unix_server(tmp_path: Path) -> Iterator[tuple[Path, str, list[int]]]:
    path = tmp_path / "agent.sock"
    abstract = f"branchwise-test-{os.getpid()}-{time.monotonic_ns()}"
    accepted: list[int] = []
    servers = []
    for address in (str(path), "\0" + abstract):
        srv = socket.socket(socket.AF_UNIX)
        srv.bind(address)
        srv.listen()
        srv.settimeout(0.2)
        servers.append(srv)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            for srv in servers:
                try:
                    conn, _ = srv.accept()
                except TimeoutError:
                    continue
                accepted.append(1)
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield path, abstract, accepted
    stop.set()
    thread.join()
    for srv in servers:
        srv.close()


def test_host_unix_sockets_are_unreachable(box: BwrapSandbox, unix_server: tuple[Path, str, list[int]]) -> None:
    path, abstract, accepted = unix_server
    probe = (
        "import socket, sys\nfor a in sys.argv[1:]:\n s = socket.socket(socket.AF_UNIX)\n"
        " try:\n  s.connect(a.replace('@', chr(0), 1)); print('connected')\n"
        " except OSError as e: print(e.errno)"
    )
    result = box.run(["/usr/bin/python3", "-c", probe, str(path), "@" + abstract])
    assert result.output.split() == ["2", "111"]  # ENOENT (masked /tmp), ECONNREFUSED (other netns)
    with socket.socket(socket.AF_UNIX) as s:  # the servers do answer on the host
        s.connect(str(path))
    time.sleep(0.3)
    assert accepted == [1]
