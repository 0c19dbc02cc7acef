"""Acceptance of the sandbox issue through the real entry point: `branchwise sandbox run`, `run` and `doctor`
in a subprocess, judged from the host (exit codes, timing, /proc, the session cgroups, loopback servers)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import BRANCHWISE, make_repo, shell
from tests.security.agent_helpers import (
    RecordingServer,
    marker,
    run_agent,
    session_cgroups,
    session_processes,
    wait_until,
)

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="session cgroups need root here")
# Proxy-mode requests to the host's loopback name the proxy: NO_PROXY keeps localhost for the session's own servers.
VIA_PROXY = "curl -sS -m 5 --noproxy '' -o /dev/null -w '%{http_code}'"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo", {"README.md": "hello\n"})


@pytest.fixture
def servers() -> Iterator[list[RecordingServer]]:
    made: list[RecordingServer] = []
    yield made
    for server in made:
        server.close()


def server(servers: list[RecordingServer], page: str = "hello from the host\n") -> RecordingServer:
    servers.append(RecordingServer(page))
    return servers[-1]


def start_cli(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([str(BRANCHWISE), *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("branchwise: error: "), lines
    assert "Traceback" not in stderr
    return lines[0]


def test_sandbox_run_prints_the_output_and_exits_with_the_exit_code(cli, repo):
    res = cli("sandbox", "run", "--", "sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 7", cwd=repo)
    assert res.returncode == 7
    assert res.stdout.splitlines() == ["to-stdout", "to-stderr"]
    assert cli("sandbox", "run", "--", "true", cwd=repo).returncode == 0
    # The sandbox's view: a private uid, no capabilities, seccomp on, the workspace as working directory.
    probe = cli("sandbox", "run", "--", "sh", "-c", "id -u; grep -E '^(CapEff|Seccomp):' /proc/self/status; pwd",
                cwd=repo)  # fmt: skip
    assert probe.stdout.split() == ["1000", "CapEff:", "0000000000000000", "Seccomp:", "2", str(repo)]


def test_sandbox_run_mode_option_is_honoured(cli, repo):
    res = cli("sandbox", "run", "--mode", "read-only", "--", "sh", "-c", "echo x > made.txt", cwd=repo)
    assert res.returncode != 0 and "Read-only file system" in res.stdout, res.stdout + res.stderr
    assert not (repo / "made.txt").exists()
    res = cli("sandbox", "run", "--sandbox", "workspace-write", "--", "sh", "-c", "echo x > made.txt", cwd=repo)
    assert res.returncode == 0 and (repo / "made.txt").read_text() == "x\n"
    # A mistyped option is a usage error, not a command named after it.
    typo = cli("sandbox", "run", "--mdoe", "read-only", "--", "true", cwd=repo)
    assert typo.returncode == 2 and "unknown option --mdoe" in one_error_line(typo.stderr)


# Each bomb: (command, extra environment, expected exit code, the most seconds it may take).
BOMBS = {
    "fork-bomb": (["--timeout", "2", "--", "bash", "-c", "b() { b | b & wait; }; b", "{m}"],
                  {"BRANCHWISE_SANDBOX_LIMITS_PIDS_MAX": "64"}, 124, 10),
    "memory-bomb": (["--", "python3", "-c", "a = bytearray(768 << 20); print('allocated')", "{m}"],
                    {"BRANCHWISE_SANDBOX_LIMITS_MEMORY_MB": "128"}, 137, 10),
    "yes": (["--timeout", "30", "--", "yes", "{m}"], {}, 137, 10),
    "sleep": (["--timeout", "1", "--", "sleep", "{m}"], {}, 124, 6),
    "daemon": (["--", "sh", "-c", "setsid sleep {m} & (sleep {m} &); nohup sleep {m} >/dev/null 2>&1 & echo bg",
                "{m}"], {}, 0, 6),
}  # fmt: skip


@needs_root
@pytest.mark.parametrize("name", list(BOMBS))
def test_bombs_end_within_their_limits_and_leave_no_process(name, repo, clean_env):
    args, env, expected_exit, max_s = BOMBS[name]
    tag = marker()
    argv = ["sandbox", "run", *[a.replace("{m}", tag) for a in args]]
    started = time.monotonic()
    proc = start_cli(argv, repo, {**clean_env, **env})
    # While it runs, the session has a cgroup on the host holding the sandboxed processes.
    wait_until(lambda: session_cgroups(proc.pid) or proc.poll() is not None, timeout=10)
    during = session_cgroups(proc.pid)
    out, err = proc.communicate(timeout=60)
    elapsed = time.monotonic() - started
    assert proc.returncode == expected_exit, (out[-500:], err)
    assert elapsed < max_s
    if name in ("fork-bomb", "sleep"):  # long enough to be seen alive
        assert during and all(d.name.startswith(f"branchwise-{proc.pid}-") for d in during)
    # Nothing of the session is left: no process in or naming its cgroups, none carrying the marker, no cgroup.
    assert wait_until(lambda: not session_processes(proc.pid, tag), timeout=5), session_processes(proc.pid, tag)
    assert wait_until(lambda: not session_cgroups(proc.pid), timeout=5), session_cgroups(proc.pid)
    if name == "fork-bomb":
        assert "killed after 2 s (timeout)" in err
        assert "Resource temporarily unavailable" in out  # pids.max, not luck, stopped the forks
    elif name == "memory-bomb":
        assert "allocated" not in out
    elif name == "yes":
        assert "killed: the command wrote more output than the sandbox reads" in err
        assert out.startswith(f"{tag}\n") and "bytes of output omitted" in out
        assert len(out) < 64 * 1024
    elif name == "sleep":
        assert "killed after 1 s (timeout)" in err
    else:
        assert out == "bg\n"


@needs_root
def test_memory_bomb_fits_under_a_larger_limit(cli, repo):
    # The control for the memory bomb above: the limit, not the command, is what killed it.
    res = cli("sandbox", "run", "--", "python3", "-c", "a = bytearray(96 << 20); print('allocated')", cwd=repo,
              env={"BRANCHWISE_SANDBOX_LIMITS_MEMORY_MB": "512"})  # fmt: skip
    assert res.returncode == 0 and res.stdout == "allocated\n"


def test_network_off_reaches_no_host_server_and_no_dns(cli, repo, servers):
    host = server(servers)
    for url in (f"http://127.0.0.1:{host.port}/", host.url("/by-name")):
        res = cli("sandbox", "run", "--network", "off", "--", "curl", "-sS", "-m", "3", url, cwd=repo)
        assert res.returncode != 0 and "hello from the host" not in res.stdout
    dns = cli("sandbox", "run", "--", "python3", "-c",
              "import socket\ntry:\n socket.getaddrinfo('example.com', 443)\n print('resolved')\n"
              "except socket.gaierror:\n print('no dns')", cwd=repo)  # fmt: skip
    assert dns.stdout == "no dns\n"
    inet = cli("sandbox", "run", "--", "python3", "-c",
               "import socket\ntry:\n socket.create_connection(('1.1.1.1', 443), timeout=3)\n print('connected')\n"
               "except OSError as e:\n print(e.errno)", cwd=repo)  # fmt: skip
    assert inet.stdout == "101\n"  # ENETUNREACH: no route at all
    assert host.requests == []


def test_proxy_reaches_an_allowed_server_and_refuses_another_with_403(cli, repo, servers):
    allowed, other = server(servers, "allowed page\n"), server(servers)
    base = ["sandbox", "run", "--network", "proxy", "--allow-domain", allowed.host, "--", "sh", "-c"]
    ok = cli(*base, f"{VIA_PROXY} {allowed.url('/ok')}", cwd=repo)
    assert ok.returncode == 0 and ok.stdout == "200"
    refused = cli(*base, f"{VIA_PROXY} {other.url('/no')}", cwd=repo)
    assert refused.stdout == "403"
    assert [r.path for r in allowed.requests] == ["/ok"] and other.requests == []
    # The refusal is logged where the user sees it.
    assert re.search(rf"proxy denied GET localhost:{other.port}\b.*not in allowed_domains", refused.stderr), (
        refused.stderr
    )
    # Going around the proxy reaches nothing either.
    direct = cli(*base, f"curl -sS -m 3 --noproxy '*' http://127.0.0.1:{allowed.port}/direct", cwd=repo)
    assert direct.returncode != 0 and [r.path for r in allowed.requests] == ["/ok"]


def test_run_in_proxy_mode_records_every_proxy_decision(cli, repo, servers):
    allowed, other = server(servers, "allowed page\n"), server(servers)
    replies = [shell(f"{VIA_PROXY} {allowed.url('/ok')}"), shell(f"{VIA_PROXY} {other.url('/no')}"),
               {"tool_calls": [{"name": "finish", "arguments": {"summary": "ok"}}]}]  # fmt: skip
    run = run_agent(cli, repo, replies, "--network", "proxy", "--allow-domain", allowed.host)
    assert run.returncode == 0, run.stderr
    assert [e["output"].split("\n")[0] for e in run.of("tool_result")[:2]] == ["200", "403"]
    egress = [(e["method"], e["host"], e["port"], e["action"]) for e in run.of("egress")]
    assert egress == [("GET", "localhost", allowed.port, "allow"), ("GET", "localhost", other.port, "deny")]
    assert "not in allowed_domains" in run.of("egress")[1]["reason"]
    recorded = [json.loads(line) for line in run.trajectory(repo).splitlines()]
    assert [e for e in recorded if e["type"] == "egress"] == run.of("egress")
    assert [r.path for r in allowed.requests] == ["/ok"] and other.requests == []


@pytest.mark.parametrize("command", [["sandbox", "run", "--sandbox", "full-access", "--", "true"],
                                     ["run", "x", "--sandbox", "full-access", "-m", "scripted:r.yaml"]])  # fmt: skip
def test_full_access_without_the_explicit_flag_is_a_usage_error(cli, repo, command):
    res = cli(*command, cwd=repo)
    assert res.returncode == 2
    assert "--dangerously-full-access" in one_error_line(res.stderr)


def test_missing_bwrap_fails_closed_unless_the_user_opts_out(cli, repo, tmp_path):
    no_bwrap = {"BRANCHWISE_SANDBOX_BWRAP": str(tmp_path / "no" / "bwrap")}
    outside = tmp_path / f"host-side-{marker()}"  # under /tmp: a sandboxed command could not create it
    script = [shell(f"touch {outside}"), {"tool_calls": [{"name": "finish", "arguments": {"summary": "ok"}}]}]
    refused = run_agent(cli, repo, script, env=no_bwrap)
    assert refused.returncode == 4 and refused.events == [{"type": "error", "message": refused.events[0]["message"]}]
    assert "bubblewrap is not installed" in one_error_line(refused.stderr)
    assert not outside.exists()
    assert cli("sandbox", "run", "--", "touch", str(outside), cwd=repo, env=no_bwrap).returncode == 4
    assert not outside.exists()

    opted = run_agent(cli, repo, script, "--dangerously-full-access", env=no_bwrap)
    assert opted.returncode == 0, opted.stderr
    assert opted.of("run_started")[0]["sandbox"]["isolated"] is False
    assert "running UNSANDBOXED" in opted.stderr
    assert outside.exists()  # it really ran on the host
    outside.unlink()
    direct = cli("sandbox", "run", "--dangerously-full-access", "--", "touch", str(outside), cwd=repo, env=no_bwrap)
    assert direct.returncode == 0 and outside.exists()
    assert "UNSANDBOXED" in direct.stderr


WIDENING = {
    "bwrap": '[sandbox]\nbwrap = "./tools/bwrap"\n',
    "network": '[sandbox]\nnetwork = "on"\n',
    "writable-root": '[sandbox]\nwritable_roots = ["/var/tmp"]\n',
    "taint-off": "[policy]\ntaint = false\n",
    "allow-rule": '[[policy.rules]]\ntool = "shell"\nargv_prefix = ["git", "push"]\ndecision = "allow"\n',
}


@pytest.mark.parametrize("name", list(WIDENING))
def test_a_repository_config_cannot_widen_the_sandbox(cli, repo, tmp_path, name):
    # A cloned repository's .branchwise/config.toml is as untrusted as its README. Its `bwrap` would even run
    # on the host, as whoever runs branchwise, before any sandbox exists: each command must refuse first.
    pwned = tmp_path / f"pwned-{marker()}"
    (repo / "tools").mkdir()
    (repo / "tools" / "bwrap").write_text(f'#!/bin/sh\ntouch {pwned}\nexec /usr/bin/bwrap "$@"\n')
    (repo / "tools" / "bwrap").chmod(0o755)
    (repo / ".branchwise").mkdir()
    (repo / ".branchwise" / "config.toml").write_text(WIDENING[name])
    for command in (["sandbox", "run", "--", "true"], ["doctor"], ["run", "x", "-m", "scripted:r.yaml"]):
        res = cli(*command, cwd=repo)
        assert res.returncode == 2, (command, res.stdout, res.stderr)
        line = one_error_line(res.stderr)
        assert "project config" in line and "a repository may only narrow the sandbox, the policy" in line
    assert not pwned.exists()


def test_a_repository_config_cannot_drop_masks_or_protections(cli, repo):
    # Its security lists add to the user's: an empty deny_read or a short protected list drops nothing.
    (repo / ".branchwise").mkdir()
    (repo / ".branchwise" / "config.toml").write_text('[sandbox]\ndeny_read = []\nprotected = [".git/hooks"]\n')
    res = cli("sandbox", "run", "--", "sh", "-c", "cat /etc/shadow; echo x > .envrc; echo done", cwd=repo)
    assert res.returncode == 0, res.stderr
    assert "root:" not in res.stdout and "done" in res.stdout
    envrc = repo / ".envrc"  # still protected: the sandbox could not create it
    assert not envrc.exists() or not envrc.read_bytes()


def test_a_repository_config_may_narrow_the_sandbox(cli, repo):
    (repo / ".branchwise").mkdir()
    from branchwise.sandbox.settings import DEFAULT_DENY_READ

    masks = ", ".join(f'"{p}"' for p in [*DEFAULT_DENY_READ, "README.md"])  # lists replace: keep the defaults
    (repo / ".branchwise" / "config.toml").write_text(f'[sandbox]\nmode = "read-only"\ndeny_read = [{masks}]\n')
    res = cli("sandbox", "run", "--", "sh", "-c", "cat README.md; touch new", cwd=repo)
    assert "Permission denied" in res.stdout and "Read-only file system" in res.stdout, res.stdout + res.stderr
    assert not (repo / "new").exists()


DOCTOR_CHECKS = ["bwrap", "user namespaces", "seccomp", "cgroups", "chromium", "git", "ripgrep", "model"]


def doctor_rows(stdout: str) -> dict[str, str]:
    rows = {}
    for line in stdout.splitlines():
        for name in DOCTOR_CHECKS:
            m = re.match(rf"{re.escape(name)}\s+(ok|degraded|missing)\b", line)
            if m:
                rows[name] = m.group(1)
    return rows


def test_doctor_reports_every_capability_and_exits_0_here(cli, repo, tmp_path):
    replies = tmp_path / "r.yaml"
    replies.write_text("replies: []\n")
    res = cli("doctor", cwd=repo, env={"BRANCHWISE_MODEL": f"scripted:{replies}"})
    assert res.returncode == 0, res.stdout + res.stderr
    rows = doctor_rows(res.stdout)
    assert set(rows) == set(DOCTOR_CHECKS)
    assert all(rows[name] == "ok" for name in ("bwrap", "user namespaces", "seccomp", "git", "ripgrep", "model"))
    if os.geteuid() == 0:
        assert rows["cgroups"] == "ok"


def test_doctor_exits_4_when_bwrap_is_missing(cli, repo, tmp_path):
    res = cli("doctor", cwd=repo, env={"BRANCHWISE_SANDBOX_BWRAP": str(tmp_path / "no" / "bwrap")})
    assert res.returncode == 4
    rows = doctor_rows(res.stdout)
    assert rows["bwrap"] == "missing" and rows["model"] == "missing" and rows["git"] == "ok"
    assert "runs will refuse to start (exit 4)" in one_error_line(res.stderr)
    # With bwrap missing, the namespace check cannot run; it must not send the user to sysctl.
    userns = next(line for line in res.stdout.splitlines() if line.startswith("user namespaces"))
    assert "sysctl" not in userns


def test_run_uses_the_bwrap_sandbox_by_default(cli, repo):
    target = Path("/etc") / f"branchwise-escape-{marker()}"
    try:
        run = run_agent(cli, repo, [shell(f"echo pwned > {target}; cat {target}"), {"tool_calls": [
            {"name": "finish", "arguments": {"summary": "tried"}}]}])  # fmt: skip
        assert run.returncode == 0, run.stderr
        sandbox = run.of("run_started")[0]["sandbox"]
        assert (sandbox["kind"], sandbox["isolated"], sandbox["mode"], sandbox["network"]) == (
            "bwrap", True, "workspace-write", "off")  # fmt: skip
        result = run.of("tool_result")[0]["output"]
        assert "Read-only file system" in result and "pwned" not in result
        assert not target.exists()
    finally:
        if target.exists():
            target.unlink()


def test_stream_json_events_name_the_sandbox_in_the_trajectory_too(cli, repo):
    run = run_agent(cli, repo, [{"tool_calls": [{"name": "finish", "arguments": {"summary": "ok"}}]}])
    recorded = [json.loads(line) for line in run.trajectory(repo).splitlines()]
    assert recorded[0]["type"] == "run_started" and recorded[0]["sandbox"]["kind"] == "bwrap"
