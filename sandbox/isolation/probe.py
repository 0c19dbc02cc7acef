"""Capability probes for `branchwise doctor`: what the sandbox and the tools can use on this machine."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from branchwise.sandbox.base import SandboxUnavailable
from branchwise.sandbox.isolation.bwrap import check_bwrap
from branchwise.sandbox.isolation.cgroups import SessionCgroups
from branchwise.sandbox.isolation.seccomp import filter_bpf
from branchwise.sandbox.settings import SandboxSettings

Status = Literal["ok", "degraded", "missing"]
CHROMIUM = Path("/usr/bin/chromium")
BRIDGE_PYTHON = Path("/usr/bin/python3")


@dataclass(frozen=True)
class Probe:
    """One capability: its status, what was found, and a one-line fix when it is not ok."""

    name: str
    status: Status
    detail: str
    fix: str = ""


def _version(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, env={"PATH": os.defpath})
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"({exc})"
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0] if lines else "(no version output)"


def probe_bwrap(settings: SandboxSettings) -> Probe:
    path = shutil.which(settings.bwrap)
    if path is None:
        return Probe("bwrap", "missing", f"{settings.bwrap} not found", "apt-get install bubblewrap")
    return Probe("bwrap", "ok", f"{_version([path, '--version'])} at {path}")


def probe_userns(settings: SandboxSettings) -> Probe:
    if shutil.which(settings.bwrap) is None:
        # The check needs bwrap itself; sending the user to sysctl would be the wrong fix.
        return Probe("user namespaces", "missing", "not checked: bwrap is missing", "install bubblewrap first")
    try:
        check_bwrap(settings.bwrap)
    except SandboxUnavailable as exc:
        fix = "sysctl -w user.max_user_namespaces=15000 kernel.unprivileged_userns_clone=1"
        return Probe("user namespaces", "missing", str(exc), fix)
    who = "root, mapped to uid 1000 with no capabilities" if os.geteuid() == 0 else "unprivileged"
    return Probe("user namespaces", "ok", f"bwrap --unshare-user works ({who})")


def probe_seccomp() -> Probe:
    try:
        size = len(filter_bpf("unix"))
    except SandboxUnavailable as exc:
        return Probe("seccomp", "missing", str(exc), "apt-get install libseccomp2 && pip install pyseccomp")
    return Probe("seccomp", "ok", f"pyseccomp + libseccomp compile the filter ({size} bytes of BPF)")


def probe_cgroups() -> Probe:
    groups = SessionCgroups(pids_max=64, memory_mb=64)
    try:
        kinds = sorted({"v2" if d == groups.v2_dir else "v1" for d in groups.dirs})
        if not groups.degraded:
            return Probe("cgroups", "ok", f"pids and memory limits per session ({', '.join(kinds)})")
        fix = "run as root, or delegate pids/memory to your user (systemd-run --user -p Delegate=yes --scope)"
        return Probe("cgroups", "degraded", "; ".join(groups.degraded), fix)
    finally:
        groups.close()


def probe_rlimits() -> Probe:
    script = "ulimit -t 5 && ulimit -f 2048 && ulimit -n 256 && ulimit -c 0"
    try:
        done = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, timeout=10)
    except OSError as exc:
        return Probe("rlimits", "missing", f"/bin/sh: {exc.strerror}", "apt-get install dash")
    if done.returncode != 0:
        return Probe("rlimits", "missing", done.stderr.strip() or "ulimit failed", "check /bin/sh supports ulimit")
    return Probe("rlimits", "ok", "CPU time, file size and open files set with ulimit before bwrap")


def probe_network() -> Probe:
    missing = [tool for tool in ("unshare", "nsenter") if shutil.which(tool) is None]
    if missing:
        detail = f"{' and '.join(missing)} not found: each command gets its own loopback, no proxy mode"
        return Probe("session network", "degraded", detail, "apt-get install util-linux")
    if not BRIDGE_PYTHON.exists():
        detail = f"{BRIDGE_PYTHON} not found: network = proxy cannot start its bridge"
        return Probe("session network", "degraded", detail, "apt-get install python3")
    return Probe("session network", "ok", "one private loopback per session; proxy bridge available")


def _tool(name: str, argv: list[str], package: str) -> Callable[[], Probe]:
    def probe() -> Probe:
        path = Path(argv[0]) if argv[0].startswith("/") else shutil.which(argv[0])
        if path is None or not Path(path).exists():
            return Probe(name, "missing", f"{argv[0]} not found", f"apt-get install {package}")
        return Probe(name, "ok", _version([str(path), *argv[1:]]))

    return probe


def run_probes(settings: SandboxSettings | None = None) -> list[Probe]:
    """Every probe, in the order `doctor` shows them."""
    settings = settings or SandboxSettings()
    probes: list[Callable[[], Probe]] = [
        lambda: probe_bwrap(settings),
        lambda: probe_userns(settings),
        probe_seccomp,
        probe_cgroups,
        probe_rlimits,
        probe_network,
        _tool("chromium", [str(CHROMIUM), "--version"], "chromium"),
        _tool("git", ["git", "--version"], "git"),
        _tool("ripgrep", ["rg", "--version"], "ripgrep"),
    ]
    return [probe() for probe in probes]


def sandbox_available(settings: SandboxSettings | None = None) -> tuple[bool, str]:
    """Whether BwrapSandbox can run with these settings, and a one-line reason."""
    settings = settings or SandboxSettings()
    needed = [probe_bwrap(settings), probe_userns(settings), probe_seccomp()]
    if settings.network == "proxy":
        needed.append(probe_network())
    for probe in needed:
        if probe.status != "ok":
            return False, f"{probe.name}: {probe.detail} (fix: {probe.fix})"
    return True, f"bubblewrap sandbox available ({needed[0].detail})"
