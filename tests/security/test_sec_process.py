"""Adversarial cases 3, 6, 7 and 8: environment secrets, privileges, seccomp, host processes."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from branchwise.sandbox.isolation.bwrap import BwrapSandbox
from tests.security.sbx_helpers import errno_of, py, sh

SECRET = "sk-test-secret-4f1c9e"


# Case 3: host environment secrets are visible neither in env nor in bwrap's pid 1 (/proc/1/environ).
def test_env_secrets_do_not_reach_the_sandbox(
    monkeypatch: pytest.MonkeyPatch, make_box: Callable[..., BwrapSandbox]
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("GITHUB_TOKEN", SECRET)
    box = make_box()
    result = sh(box, "env; cat /proc/1/environ /proc/1/cmdline /proc/self/environ | tr '\\0' '\\n'")
    assert result.ok, result.output
    assert "PATH=" in result.output  # the listing itself worked
    assert SECRET not in result.output
    assert "OPENAI_API_KEY" not in result.output


# Case 6: no capabilities, no_new_privs, seccomp filter mode; su, mknod, remount and unshare fail.
def test_privileges_are_dropped(box: BwrapSandbox) -> None:
    status = dict(
        line.split(":\t", 1) for line in sh(box, "cat /proc/self/status").output.splitlines() if ":\t" in line
    )
    assert status["CapEff"].strip() == "0000000000000000"
    assert status["CapPrm"].strip() == "0000000000000000"
    assert status["CapBnd"].strip() == "0000000000000000"
    assert status["NoNewPrivs"].strip() == "1"
    assert status["Seccomp"].strip() == "2"
    assert status["Uid"].split()[0] == "1000"


@pytest.mark.parametrize(
    "command",
    [
        "su -c true root </dev/null",
        "mknod ./devnode c 1 3",
        "mount -o remount,rw /",
        "unshare -Ur true",
        "unshare -n true",
    ],
)
def test_privileged_operations_fail(box: BwrapSandbox, workspace: Path, command: str) -> None:
    result = sh(box, command)
    assert result.exit_code != 0, result.output
    assert not (workspace / "devnode").exists()


KERNEL_KNOBS = [
    "/proc/sys/kernel/core_pattern",  # "|/path" here would run a program as host root on a crash
    "/proc/sys/kernel/modprobe",
    "/proc/sys/vm/drop_caches",
    "/proc/sysrq-trigger",
    "/proc/irq/default_smp_affinity",
    "/sys/kernel/uevent_helper",
    "/sys/fs/cgroup/pids/cgroup.procs",
]


@pytest.mark.parametrize("knob", [k for k in KERNEL_KNOBS if Path(k).exists()])
def test_kernel_knobs_cannot_be_opened_for_writing(box: BwrapSandbox, knob: str) -> None:
    # Only opened, never written: a successful open is already the failure.
    assert errno_of(box, f"os.open({knob!r}, os.O_WRONLY)") in ("30", "13")  # EROFS or EACCES


# Case 7: seccomp refuses the listed syscalls with EPERM (clone3 with ENOSYS so libc falls back).
SYSCALL_PROBE = r"""
import ctypes, json
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def call(nr, *args):
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    return ctypes.get_errno() if r == -1 else 0
buf = ctypes.create_string_buffer(256)
results = {
    "ptrace": call(101, 0, 0, 0, 0),                      # PTRACE_TRACEME
    "io_uring_setup": call(425, 8, ctypes.addressof(buf)),
    "bpf": call(321, 0, ctypes.addressof(buf), 48),
    "keyctl": call(250, 0, 0),
    "unshare_newuser": call(272, 0x10000000),
    "unshare_newns": call(272, 0x00020000),
    "setns": call(308, 0, 0),
    "perf_event_open": call(298, ctypes.addressof(buf), 0, -1, -1, 0),
    "userfaultfd": call(323, 0),
    "clone_newuser": call(56, 0x10000000 | 17, 0, 0, 0, 0),
    "clone3": call(435, ctypes.addressof(buf), 88),
    "personality_no_aslr": call(135, 0x0040000),
    "mount": call(165, 0, 0, 0, 0, 0),
}
print(json.dumps(results))
"""


def test_seccomp_denies_dangerous_syscalls(box: BwrapSandbox) -> None:
    result = py(box, SYSCALL_PROBE)
    assert result.ok, result.output
    errnos = json.loads(result.output)
    eperm, enosys = 1, 38
    expected = dict.fromkeys(errnos, eperm) | {"clone3": enosys}
    assert errnos == expected


def test_ordinary_tools_work_under_the_filter(box: BwrapSandbox) -> None:
    script = "git init -q repo && cd repo && git -c user.email=a@b -c user.name=a commit -q --allow-empty -m x"
    script += " && git log --oneline | wc -l"
    script += " && python3 -c 'import subprocess; print(subprocess.run([\"true\"]).returncode)'"
    result = sh(box, script)
    assert result.output.split() == ["1", "0"], result.output


# Case 8: host processes are invisible and cannot be signalled.
def test_host_processes_are_invisible_and_unkillable(box: BwrapSandbox) -> None:
    victim = subprocess.Popen(["sleep", "60"])
    try:
        result = sh(box, f"kill -9 {victim.pid}; echo rc=$?; ls /proc | grep -c '^[0-9]'")
        assert "rc=1" in result.output or "No such process" in result.output, result.output
        visible = int(result.output.strip().splitlines()[-1])
        assert visible < 10  # only the sandbox's own few processes
        assert victim.poll() is None  # still running
        assert sh(box, f"test -e /proc/{victim.pid}/cmdline && cat /proc/{victim.pid}/cmdline; true").output == ""
    finally:
        victim.kill()
        victim.wait()


def test_the_agent_process_is_not_reachable(box: BwrapSandbox) -> None:
    result = sh(box, f"kill -0 {os.getpid()} && echo reachable || echo unreachable")
    assert result.output.strip().endswith("unreachable")
