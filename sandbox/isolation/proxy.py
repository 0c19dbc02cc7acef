"""Network `proxy` mode: a host-side HTTP proxy on a Unix socket that lets through allowed hosts only.

The sandbox has no route out; its only way to the network is the bridge (`bridge.py`) that forwards
127.0.0.1:3128 inside the sandbox to this proxy's socket. The proxy handles CONNECT tunnels and
absolute-URI HTTP requests and answers 403 to anything not allowed. It resolves names itself, and
only once a name is allowed, so a denied name cannot leak data through DNS either. Rules: deny
entries win; an empty allow list allows nothing; an IP literal or a name that resolves to a
non-public address is allowed only by an exact entry (no glob). Every decision is kept and logged.
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import ipaddress
import json
import selectors
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

PROXY_PORT = 3128
_MAX_HEAD = 64 * 1024
_CONNECT_TIMEOUT_S = 10.0
_IDLE_TIMEOUT_S = 300.0


def bridge_script() -> str:
    """The source of the in-sandbox bridge, to be bound into the sandbox."""
    return Path(__file__).with_name("bridge.py").read_text()


@dataclass(frozen=True)
class EgressDecision:
    """One request the proxy saw and what it did with it."""

    time: float
    method: str
    host: str
    port: int
    action: Literal["allow", "deny"]
    reason: str
    error: str = ""


@dataclass(frozen=True)
class HostPattern:
    """An allowed_domains / denied_domains entry: a host glob and an optional port glob."""

    host: str
    port: str | None

    @classmethod
    def parse(cls, entry: str) -> HostPattern:
        entry = entry.strip().lower()
        if entry.startswith("["):  # [v6]:port
            host, _, rest = entry[1:].partition("]")
            return cls(host, rest[1:] if rest.startswith(":") else None)
        if entry.count(":") == 1:
            host, port = entry.split(":")
            return cls(host.rstrip("."), port)
        return cls(entry.rstrip("."), None)

    @property
    def exact(self) -> bool:
        return not any(c in self.host for c in "*?[")

    def matches(self, host: str, port: int) -> bool:
        if self.port is not None and not fnmatch.fnmatchcase(str(port), self.port):
            return False
        if _ip(host) is not None:
            # IP literals are never matched by globs such as "*": they must be listed as such.
            literal = _ip(self.host)
            return literal is not None and literal == _ip(host)
        return fnmatch.fnmatchcase(host, self.host)

    def __str__(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"


class DomainRules:
    """Allow and deny lists; `check` is pure (no DNS), `check_addresses` vets what a name resolved to."""

    def __init__(self, allowed: Sequence[str], denied: Sequence[str]) -> None:
        self.allowed = [HostPattern.parse(e) for e in allowed]
        self.denied = [HostPattern.parse(e) for e in denied]

    def check(self, host: str, port: int) -> tuple[bool, str, HostPattern | None]:
        """(allowed, reason, the allow entry that matched)."""
        for pat in self.denied:
            if pat.matches(host, port):
                return False, f"{host}:{port} is denied by {pat}", None
        if not self.allowed:
            return False, "allowed_domains is empty: no network access is allowed", None
        for pat in self.allowed:
            if pat.matches(host, port):
                return True, f"allowed by {pat}", pat
        return False, f"{host}:{port} is not in allowed_domains", None

    @staticmethod
    def check_addresses(host: str, addresses: list[str], pattern: HostPattern) -> str | None:
        """Why connecting to these addresses is refused, or None; non-public ones need an exact entry."""
        for addr in addresses:
            ip = ipaddress.ip_address(addr.split("%")[0])
            if not ip.is_global and not pattern.exact:
                return f"{host} resolves to non-public {ip}; only an exact allowed_domains entry permits that"
        return None


def normalize_host(host: str) -> str | None:
    """Lower-case ASCII host name or IP literal, or None when it is not a plausible host."""
    host = host.strip().strip("[]").rstrip(".").lower()
    if _ip(host) is not None:
        return str(_ip(host))
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    ok = host and all(c.isalnum() or c in "-._" for c in host) and len(host) <= 253
    return host if ok else None


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


class EgressProxy:
    """The filtering proxy, serving on `socket_path` from a background thread until close()."""

    def __init__(
        self,
        socket_path: Path,
        *,
        allowed: Sequence[str],
        denied: Sequence[str],
        log_path: Path | None = None,
        on_decision: Callable[[EgressDecision], None] | None = None,
    ) -> None:
        self.rules = DomainRules(allowed, denied)
        self.socket_path = socket_path
        self.log_path = log_path
        self._on_decision = on_decision
        self._decisions: list[EgressDecision] = []
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._server = _Server(str(socket_path), _Handler)
        self._server.proxy = self
        socket_path.chmod(0o600)
        # A short poll interval keeps close() quick; between polls the loop sleeps in select().
        serve = functools.partial(self._server.serve_forever, poll_interval=0.1)
        self._thread = threading.Thread(target=serve, name="branchwise-egress", daemon=True)
        self._thread.start()

    def decisions(self) -> list[EgressDecision]:
        with self._lock:
            return list(self._decisions)

    def record(self, decision: EgressDecision) -> None:
        with self._lock:
            self._decisions.append(decision)
            if self.log_path is not None:
                with open(self.log_path, "a") as f:
                    f.write(json.dumps(asdict(decision)) + "\n")
        if self._on_decision is not None:
            self._on_decision(decision)

    def track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            (self._conns.add if add else self._conns.discard)(conn)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        self._thread.join()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    proxy: EgressProxy


class _Handler(socketserver.BaseRequestHandler):
    """One client connection: read the request head, decide, then answer or tunnel."""

    server: _Server

    def handle(self) -> None:
        proxy = self.server.proxy
        conn: socket.socket = self.request
        conn.settimeout(_IDLE_TIMEOUT_S)
        head, rest = _read_head(conn)
        if head is None:
            return
        request = _parse(head)
        if request is None:
            why = "not a proxy request (CONNECT host:port or an absolute http:// URI)"
            first_line = head.split(b"\r\n", 1)[0].decode("latin-1")[:200]
            proxy.record(EgressDecision(time.time(), first_line.split(" ")[0], "", 0, "deny", why))
            _reply(conn, 400, f"branchwise sandbox proxy: {why}")
            return
        method, host, port, forward = request
        allowed, reason, pattern = proxy.rules.check(host, port)
        upstream: socket.socket | None = None
        error = ""
        if allowed and pattern is not None:
            upstream, refusal, error = _connect(host, port, pattern)
            if refusal:
                allowed, reason = False, refusal
        proxy.record(EgressDecision(time.time(), method, host, port, "allow" if allowed else "deny", reason, error))
        if not allowed:
            _reply(conn, 403, f"branchwise sandbox: {reason}")
            return
        if upstream is None:
            _reply(conn, 502, f"branchwise sandbox proxy: cannot reach {host}:{port}: {error}")
            return
        with upstream:
            if method == "CONNECT":
                conn.sendall(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            else:
                upstream.sendall(forward)
            if rest:
                upstream.sendall(rest)
            proxy.track(conn, True)
            try:
                _splice(conn, upstream)
            finally:
                proxy.track(conn, False)


def _read_head(conn: socket.socket) -> tuple[bytes | None, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        try:
            chunk = conn.recv(65536)
        except OSError:
            return None, b""
        if not chunk or len(data) > _MAX_HEAD:
            return None, b""
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _parse(head: bytes) -> tuple[str, str, int, bytes] | None:
    """(method, host, port, the head to send upstream) for CONNECT or an absolute http:// request."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        return None
    method, target, version = parts
    if method == "CONNECT":
        host, sep, port_text = target.rpartition(":")
        if not sep or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            return None
        name = normalize_host(host)
        return (method, name, int(port_text), b"") if name else None
    if not target.lower().startswith("http://"):
        return None
    authority, slash, path = target[7:].partition("/")
    host, port = authority, 80
    if authority.rpartition(":")[2].isdigit() and not authority.endswith("]"):
        host, port = authority.rpartition(":")[0], int(authority.rpartition(":")[2])
    name = normalize_host(host.rpartition("@")[2])
    if not name or not 0 < port < 65536:
        return None
    kept = [ln for ln in lines[1:] if not ln.lower().startswith(("proxy-connection:", "proxy-authorization:"))]
    forward = "\r\n".join([f"{method} {slash}{path} {version}", *kept]) + "\r\n\r\n"
    return method, name, port, forward.encode("latin-1")


def _connect(host: str, port: int, pattern: HostPattern) -> tuple[socket.socket | None, str, str]:
    """(socket, refusal reason, error): resolve once and connect to exactly the vetted addresses."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return None, "", f"cannot resolve {host}: {exc.strerror}"
    addresses = [str(info[4][0]) for info in infos]
    refusal = DomainRules.check_addresses(host, addresses, pattern)
    if refusal:
        return None, refusal, ""
    last = ""
    for family, kind, proto, _, addr in infos:
        sock = socket.socket(family, kind, proto)
        sock.settimeout(_CONNECT_TIMEOUT_S)
        try:
            sock.connect(addr)
        except OSError as exc:
            sock.close()
            last = exc.strerror or str(exc)
            continue
        sock.settimeout(_IDLE_TIMEOUT_S)
        return sock, "", ""
    return None, "", last or "no address"


def _splice(a: socket.socket, b: socket.socket) -> None:
    """Copy both ways until both sides have finished sending."""
    peers = {a: b, b: a}
    open_reads = {a, b}
    with selectors.DefaultSelector() as sel:
        for s in open_reads:
            sel.register(s, selectors.EVENT_READ)
        while open_reads:
            events = sel.select(_IDLE_TIMEOUT_S)
            if not events:
                return
            for key, _ in events:
                src = key.fileobj
                assert isinstance(src, socket.socket)
                try:
                    data = src.recv(65536)
                    if data:
                        peers[src].sendall(data)
                        continue
                except OSError:
                    pass
                sel.unregister(src)
                open_reads.discard(src)
                with contextlib.suppress(OSError):
                    peers[src].shutdown(socket.SHUT_WR)


def _reply(conn: socket.socket, status: int, text: str) -> None:
    body = (text + "\n").encode()
    reason = {400: "Bad Request", 403: "Forbidden", 502: "Bad Gateway"}[status]
    head = f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
    with contextlib.suppress(OSError):
        conn.sendall(head.encode() + b"Connection: close\r\n\r\n" + body)
