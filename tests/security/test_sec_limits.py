"""Adversarial cases 11, 12, 13 and 15: fork bomb, endless output, hangs, daemons, memory/CPU/disk bombs."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from branchwise.sandbox.base import OutputLimits
from branchwise.sandbox.isolation.bwrap import BwrapSandbox
from tests.security.sbx_helpers import py, sh

# Session cgroups need root on these machines (see doctor); as root their absence is a failure.
needs_cgroups = pytest.mark.skipif(os.geteuid() != 0, reason="session cgroups need root here")


def sleepers(marker: str) -> list[int]:
    """Host pids running exactly `sleep <marker>` (scanning /proc, like pgrep -x)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv[:2] == [b"sleep", marker.encode()]:
                found.append(int(entry.name))
    return found


# Case 11: a fork bomb hits pids.max, is killed at the timeout, and leaves no process.
@pytest.mark.slow
@needs_cgroups
def test_fork_bomb_is_contained(make_box: Callable[..., BwrapSandbox]) -> None:
    box = make_box(limits={"pids_max": 64})
    # Every copy waits for its children, so the tree stays up until the timeout kills it whole.
    result = box.run(["bash", "-c", "b() { b | b & wait; }; b"], timeout=3)
    assert result.killed == "timeout"
    assert "Resource temporarily unavailable" in result.output
    assert box.limit_events()["pids_limit_hits"] > 0  # the limit, not luck, stopped it
    assert box.processes() == []
    assert sh(box, "echo alive").output == "alive\n"  # the session still works afterwards


# Case 12: endless output is cut at the byte budget, head and tail kept, the tree killed.
def test_endless_output_is_cut(box: BwrapSandbox) -> None:
    limits = OutputLimits(keep_head=1000, keep_tail=1000, read_limit=1024 * 1024)
    started = time.monotonic()
    result = box.run(["yes", "branchwise"], limits=limits, timeout=30)
    assert result.killed == "output_limit"
    assert result.truncated
    assert result.output.startswith("branchwise\n")
    assert result.output.rstrip().endswith("branchwise")
    assert "bytes of output omitted" in result.output
    assert len(result.output) < 3000
    assert time.monotonic() - started < 10
    assert box.processes() == []


# Case 13: a hang is killed at the wall timeout; daemons and double forks do not outlive the command.
def test_hang_is_killed_at_the_timeout(box: BwrapSandbox) -> None:
    marker = f"{random.randint(100000, 999999)}"
    result = box.run(["sleep", marker], timeout=1)
    assert result.killed == "timeout"
    assert 0.9 < result.duration_s < 5
    assert sleepers(marker) == []
    assert box.processes() == []


def test_daemons_and_double_forks_die_with_the_command(box: BwrapSandbox) -> None:
    marker = f"{random.randint(100000, 999999)}"
    script = f"setsid sleep {marker} & (sleep {marker} &) ; nohup sleep {marker} >/dev/null 2>&1 & echo started"
    result = sh(box, script, timeout=10)
    assert result.output.strip() == "started"
    time.sleep(0.2)
    assert sleepers(marker) == []
    assert box.processes() == []


def test_background_processes_end_with_the_session(make_box: Callable[..., BwrapSandbox]) -> None:
    box = make_box()
    marker = f"{random.randint(100000, 999999)}"
    box.start_background(["sh", "-c", f"sleep {marker} & sleep {marker}"])
    deadline = time.monotonic() + 5
    while len(sleepers(marker)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(sleepers(marker)) == 2
    cgroups = [Path(p) for p in (box._cgroups.dirs if box._cgroups else [])]
    box.close()
    assert sleepers(marker) == []
    assert not box.session_dir.exists()
    assert cgroups
    assert not any(d.exists() for d in cgroups)


AGENT = """
import sys, time
from pathlib import Path
from branchwise.sandbox.isolation.bwrap import BwrapSandbox
box = BwrapSandbox(Path(sys.argv[1]))
box.start_background(["sleep", sys.argv[2]])
print(box.session_dir, flush=True)
time.sleep(60)
"""


def test_killing_the_agent_kills_its_sandboxes(workspace: Path) -> None:
    marker = f"{random.randint(100000, 999999)}"
    agent = subprocess.Popen([sys.executable, "-c", AGENT, str(workspace), marker], stdout=subprocess.PIPE)
    try:
        assert agent.stdout is not None
        session_dir = Path(agent.stdout.readline().decode().strip())
        assert session_dir.is_dir()
        deadline = time.monotonic() + 5
        while not sleepers(marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sleepers(marker)
        agent.send_signal(signal.SIGKILL)
        agent.wait()
        deadline = time.monotonic() + 5
        while (sleepers(marker) or session_dir.exists()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sleepers(marker) == []
        assert not session_dir.exists()  # the keeper cleaned up after the dead agent
    finally:
        agent.kill()
        agent.wait()
        if agent.stdout:
            agent.stdout.close()


# Case 15: the memory cgroup OOM-kills a memory bomb and the agent (this test process) lives on.
@needs_cgroups
def test_memory_bomb_is_oom_killed(make_box: Callable[..., BwrapSandbox]) -> None:
    box = make_box(limits={"memory_mb": 96})
    result = py(box, "a = bytearray(512 * 1024 * 1024)\nprint('allocated')", timeout=30)
    assert result.exit_code == 137, result.output  # SIGKILL from the OOM killer
    assert "allocated" not in result.output
    assert box.limit_events()["oom_kills"] >= 1
    assert sh(box, "echo alive").output == "alive\n"


def test_cpu_spin_is_killed_at_the_cpu_limit(make_box: Callable[..., BwrapSandbox]) -> None:
    box = make_box(limits={"cpu_seconds": 1})
    result = py(box, "while True: pass", timeout=20)
    assert result.killed is None  # the rlimit ended it, not the wall timeout
    assert result.exit_code in (128 + signal.SIGKILL, 128 + signal.SIGXCPU)
    assert result.duration_s < 10


def test_file_size_limit(make_box: Callable[..., BwrapSandbox], workspace: Path) -> None:
    box = make_box(limits={"file_size_mb": 1})
    result = sh(box, "head -c 3M /dev/zero > big.bin")
    assert result.exit_code == 128 + signal.SIGXFSZ
    assert (workspace / "big.bin").stat().st_size == 1024 * 1024


def test_tmp_is_a_small_private_tmpfs(make_box: Callable[..., BwrapSandbox]) -> None:
    box = make_box(limits={"tmp_size_mb": 1})
    result = sh(box, "head -c 3M /dev/zero > /tmp/fill")
    assert "No space left on device" in result.output


@needs_cgroups
def test_next_session_reaps_orphans_of_a_dead_agent(make_box: Callable[..., BwrapSandbox]) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()  # its pid now names an agent that is gone
    stale = Path("/sys/fs/cgroup/pids") / f"branchwise-{dead.pid}-deadbeef"
    stale.mkdir()
    orphan = subprocess.Popen(["sleep", "60"])
    try:
        (stale / "cgroup.procs").write_text(str(orphan.pid))
        make_box()  # creating a session looks for stale cgroups first
        assert orphan.wait(timeout=5) == -signal.SIGKILL
        deadline = time.monotonic() + 5
        while stale.exists() and time.monotonic() < deadline:
            make_box().close()
        assert not stale.exists()
    finally:
        orphan.kill()
        orphan.wait()
        with contextlib.suppress(OSError):
            stale.rmdir()


@needs_cgroups
def test_a_session_at_its_pids_limit_fails_commands_as_results_and_recovers(
    make_box: Callable[..., BwrapSandbox],
) -> None:
    box = make_box(limits={"pids_max": 16})
    bomb = box.start_background(["bash", "-c", "b() { b | b & wait; }; b"])
    deadline = time.monotonic() + 5
    while box.limit_events()["pids_limit_hits"] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    starved = box.run(["echo", "hi"], timeout=5)
    assert starved.exit_code != 0  # a result, not an exception: fork failed somewhere on the way
    assert starved.output != "hi\n"
    box.stop_background(bomb.id)
    assert sh(box, "echo recovered").output == "recovered\n"
