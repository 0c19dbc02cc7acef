from __future__ import annotations

import time
from pathlib import Path

from branchwise.sandbox.base import OutputLimits
from branchwise.sandbox.isolation.host import HostSandbox
from branchwise.sandbox.isolation.process import run_capped


def test_exit_codes_and_signals():
    assert run_capped(["bash", "-c", "exit 7"], cwd=None, env=None, timeout=5).exit_code == 7
    assert run_capped(["bash", "-c", "kill -9 $$"], cwd=None, env=None, timeout=5).exit_code == 137


def test_output_keeps_head_and_tail_and_counts_the_rest():
    limits = OutputLimits(keep_head=10, keep_tail=10, read_limit=10_000)
    res = run_capped(
        ["bash", "-c", "printf 'A%.0s' {1..100}; printf 'Z%.0s' {1..100}"],
        cwd=None,
        env=None,
        timeout=5,
        limits=limits,
    )
    assert res.truncated and res.killed is None
    assert res.output.startswith("A" * 10) and res.output.endswith("Z" * 10)
    assert "180 bytes of output omitted" in res.output


def test_endless_output_is_killed_at_the_read_limit():
    res = run_capped(["yes"], cwd=None, env=None, timeout=20, limits=OutputLimits(read_limit=1 << 20))
    assert res.killed == "output_limit" and res.duration_s < 10


def test_timeout_kills_the_whole_process_group(tmp_path: Path):
    pidfile = tmp_path / "child.pid"
    started = time.monotonic()
    res = run_capped(["bash", "-c", f"sleep 60 & echo $! > {pidfile}; wait"], cwd=None, env=None, timeout=0.5)
    assert res.timed_out and time.monotonic() - started < 5
    child = int(pidfile.read_text())
    assert _gone_within(child, seconds=5)


def test_a_background_child_holding_the_pipe_does_not_block_the_result():
    started = time.monotonic()
    res = run_capped(["bash", "-c", "sleep 30 & echo done"], cwd=None, env=None, timeout=20)
    assert res.output == "done\n" and time.monotonic() - started < 5


def test_stdin_is_passed_and_otherwise_closed():
    assert run_capped(["cat"], cwd=None, env=None, timeout=5, stdin=b"abc").output == "abc"
    assert run_capped(["cat"], cwd=None, env=None, timeout=5).output == ""


def test_host_background_processes_end_with_the_session(tmp_path: Path):
    sandbox = HostSandbox(tmp_path)
    proc = sandbox.start_background(["sleep", "60"])
    assert [p.id for p in sandbox.background()] == [proc.id]
    sandbox.close()
    assert _gone_within(proc.pid, seconds=5)


def _gone_within(pid: int, *, seconds: float) -> bool:
    """SIGKILL is asynchronous: give the kernel a moment to finish the process off."""
    deadline = time.monotonic() + seconds
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False
