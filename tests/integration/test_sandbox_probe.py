"""Capability probes against this machine (bubblewrap is a build dependency, so it must be found)."""

from __future__ import annotations

import os
from pathlib import Path

from branchwise.sandbox.isolation.probe import CHROMIUM, probe_bwrap, run_probes, sandbox_available
from branchwise.sandbox.settings import SandboxSettings


def test_probes_report_every_capability_with_a_fix_when_not_ok() -> None:
    probes = run_probes()
    names = [p.name for p in probes]
    assert names == [
        "bwrap",
        "user namespaces",
        "seccomp",
        "cgroups",
        "rlimits",
        "session network",
        "chromium",
        "git",
        "ripgrep",
    ]
    for probe in probes:
        assert probe.status in ("ok", "degraded", "missing")
        assert (probe.fix == "") == (probe.status == "ok"), probe
        assert "\n" not in probe.detail + probe.fix
    by_name = {p.name: p for p in probes}
    assert by_name["bwrap"].status == "ok"
    assert "bubblewrap" in by_name["bwrap"].detail
    assert by_name["chromium"].status == ("ok" if CHROMIUM.exists() else "missing")


def test_missing_bwrap_is_reported_with_its_fix(tmp_path: Path) -> None:
    settings = SandboxSettings(bwrap=str(tmp_path / "bwrap"))
    assert probe_bwrap(settings).fix == "apt-get install bubblewrap"
    ok, reason = sandbox_available(settings)
    assert not ok
    assert "apt-get install bubblewrap" in reason
    assert sandbox_available()[0]


def test_cgroup_probe_leaves_nothing_behind() -> None:
    ours = f"branchwise-{os.getpid()}-*"  # other test workers create their own
    # An earlier test's session may have left one, busy with a killed process its parent had not reaped yet
    # (the next session removes it); the probe must add none.
    before = set(Path("/sys/fs/cgroup/pids").glob(ours))
    probes = {p.name: p for p in run_probes()}
    assert probes["cgroups"].status == "ok" or os.geteuid() != 0
    assert set(Path("/sys/fs/cgroup/pids").glob(ours)) <= before
