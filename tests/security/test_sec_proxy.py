"""Adversarial case 5 and the network half of 19: proxy mode lets through allowed hosts only, and logs."""

from __future__ import annotations

import json
from collections.abc import Callable

from branchwise.sandbox.isolation.bwrap import BwrapSandbox
from tests.security.sbx_helpers import HostServer, sh

# Test servers listen on the host's 127.0.0.1; inside, 127.0.0.1 is the sandbox's own loopback, so they
# are reached by name through the proxy. NO_PROXY exempts localhost (the session's own servers), so
# these requests name the proxy explicitly.
VIA_PROXY = "curl -sS -m 5 -x http://127.0.0.1:3128 --noproxy '' -o /dev/null -w '%{http_code}'"


def status(box: BwrapSandbox, url: str) -> str:
    return sh(box, f"{VIA_PROXY} {url}").output.strip().splitlines()[-1]


def test_allowed_host_answers_and_others_get_403(
    make_box: Callable[..., BwrapSandbox], make_host_server: Callable[[], HostServer]
) -> None:
    allowed, other = make_host_server(), make_host_server()
    box = make_box(network="proxy", allowed_domains=[f"localhost:{allowed.port}"])
    assert status(box, f"http://localhost:{allowed.port}/ok") == "200"
    assert status(box, f"http://localhost:{other.port}/no") == "403"
    assert status(box, f"http://127.0.0.1:{allowed.port}/ip") == "403"  # IP literals need their own entry
    assert allowed.hits == ["/ok"]
    assert other.hits == []
    log = [(d.host, d.port, d.action) for d in box.egress_log()]
    assert log == [
        ("localhost", allowed.port, "allow"),
        ("localhost", other.port, "deny"),
        ("127.0.0.1", allowed.port, "deny"),
    ]
    on_disk = [json.loads(line) for line in (box.session_dir / "egress.jsonl").read_text().splitlines()]
    assert [(d["host"], d["action"]) for d in on_disk] == [(h, a) for h, _, a in log]


def test_connect_tunnels_are_filtered_too(make_box: Callable[..., BwrapSandbox]) -> None:
    box = make_box(network="proxy", allowed_domains=["pypi.org"])
    result = sh(box, "curl -sS -m 5 https://example.com/")  # HTTPS_PROXY is set: this is a CONNECT
    assert "403" in result.output
    decision = box.egress_log()[-1]
    assert (decision.method, decision.host, decision.port, decision.action) == (
        "CONNECT",
        "example.com",
        443,
        "deny",
    )


def test_bypassing_the_proxy_reaches_nothing(make_box: Callable[..., BwrapSandbox], host_server: HostServer) -> None:
    box = make_box(network="proxy", allowed_domains=[f"localhost:{host_server.port}"])
    for url in (f"http://127.0.0.1:{host_server.port}/", "http://1.1.1.1/"):
        assert sh(box, f"curl -sS -m 3 --noproxy '*' {url}").exit_code != 0
    assert host_server.hits == []
    assert box.egress_log() == []  # it never even reached the proxy


def test_deny_wins_over_allow(
    make_box: Callable[..., BwrapSandbox], make_host_server: Callable[[], HostServer]
) -> None:
    good, bad = make_host_server(), make_host_server()
    box = make_box(network="proxy", allowed_domains=["localhost:*"], denied_domains=[f"localhost:{bad.port}"])
    assert status(box, f"http://localhost:{good.port}/") == "200"
    assert status(box, f"http://localhost:{bad.port}/") == "403"
    assert bad.hits == []
    assert "denied by" in box.egress_log()[-1].reason


def test_globs_do_not_reach_loopback_or_private_addresses(
    make_box: Callable[..., BwrapSandbox], host_server: HostServer
) -> None:
    box = make_box(network="proxy", allowed_domains=["*"])
    assert status(box, f"http://localhost:{host_server.port}/") == "403"
    assert host_server.hits == []
    assert "non-public" in box.egress_log()[-1].reason


# Case 19 (network): an empty allow list means no network at all, not "no filter".
def test_empty_allow_list_denies_everything(make_box: Callable[..., BwrapSandbox], host_server: HostServer) -> None:
    box = make_box(network="proxy", allowed_domains=[])
    assert status(box, f"http://localhost:{host_server.port}/") == "403"
    assert "403" in sh(box, "curl -sS -m 5 https://example.com/").output
    assert host_server.hits == []
    assert all(d.action == "deny" for d in box.egress_log())
    assert len(box.egress_log()) == 2


def test_proxy_mode_still_shares_the_session_loopback(make_box: Callable[..., BwrapSandbox]) -> None:
    box = make_box(network="proxy", allowed_domains=[])
    result = sh(box, "env | grep -i _proxy | sort")
    assert "HTTP_PROXY=http://127.0.0.1:3128" in result.output
    assert "NO_PROXY=localhost,127.0.0.1,::1" in result.output
    probe = "import socket; s = socket.create_connection(('127.0.0.1', 3128)); print('bridge up')"
    assert box.run(["/usr/bin/python3", "-c", probe]).output == "bridge up\n"


def test_requests_that_are_not_proxy_requests_get_400_and_are_logged(
    make_box: Callable[..., BwrapSandbox],
) -> None:
    box = make_box(network="proxy", allowed_domains=["pypi.org"])
    result = sh(box, "curl -sS -m 5 --noproxy '*' -o /dev/null -w '%{http_code}' http://127.0.0.1:3128/")
    assert result.output.strip() == "400"
    decision = box.egress_log()[-1]
    assert (decision.method, decision.host, decision.action) == ("GET", "", "deny")
