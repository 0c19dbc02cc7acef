"""Run a command in a network namespace that has only loopback, so that Ray's start-up (which looks for a
public address) cannot send anything off this machine."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

_SCRIPT = 'ip link set lo up && exec "$@"'


def loopback_only(args: list[str]) -> list[str]:
    """The command line that runs `args` in a fresh loopback-only network namespace."""
    unshare = ["unshare", "--net"] if os.geteuid() == 0 else ["unshare", "--net", "--map-root-user"]
    return [*unshare, "sh", "-c", _SCRIPT, "sh", *args]


def require_netns() -> None:
    """Skip when this machine cannot make a network namespace (then Ray is not started at all)."""
    if not shutil.which("unshare") or not shutil.which("ip"):
        pytest.skip("unshare and ip are needed to run Ray inside a loopback-only network namespace")
    probe = subprocess.run(loopback_only(["true"]), capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"cannot create a network namespace: {probe.stderr.decode(errors='replace').strip()}")
