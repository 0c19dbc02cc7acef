"""Seccomp filters for sandboxed commands: a deny-list compiled to BPF once per process.

The filter allows by default and refuses the syscalls that open kernel attack surface or reach
outside the sandbox's namespaces. bwrap loads it with `--seccomp FD` after setting no_new_privs.
"""

from __future__ import annotations

import errno
import functools
import os
import socket
import stat
from typing import Any, Literal

from branchwise.sandbox.base import SandboxUnavailable

SocketPolicy = Literal["unix", "loopback", "any"]
"""unix: only AF_UNIX sockets; loopback: AF_UNIX, AF_INET, AF_INET6 (the namespace has no route out);
any: no socket restriction (network on)."""

# Each of these returns EPERM: tracing other processes, mounting, loading kernel code, keyrings,
# namespace changes, and interfaces with a history of privilege-escalation bugs.
DENIED_SYSCALLS = (
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "mount",
    "umount2",
    "pivot_root",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
    "mount_setattr",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "bpf",
    "perf_event_open",
    "keyctl",
    "add_key",
    "request_key",
    "setns",
    "unshare",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "open_by_handle_at",
    "swapon",
    "swapoff",
    "reboot",
    "syslog",
    "acct",
    "quotactl",
    "quotactl_fd",
    "lookup_dcookie",
    "vhangup",
)

_CLONE_NEWUSER = 0x10000000
_PERSONALITY_QUERY = 0xFFFFFFFF
# socket() families let through by the loopback policy; every other number is refused.
_LOOPBACK_FAMILIES = (socket.AF_UNIX, socket.AF_INET, socket.AF_INET6)


# What a program with its own namespace sandbox (Chromium) needs: it makes user, pid and network namespaces
# for its renderers. Everything else of the deny-list still holds.
_NESTED_SANDBOX_ALLOWED = frozenset({"unshare", "setns"})


@functools.cache
def filter_bpf(sockets: SocketPolicy, *, nested_sandbox: bool = False) -> bytes:
    """The compiled BPF program for `sockets`; raises SandboxUnavailable without libseccomp. `nested_sandbox`
    lets the program create namespaces of its own (Chromium's renderer sandbox)."""
    try:
        import pyseccomp as sc
    except (ImportError, RuntimeError) as exc:  # pyseccomp raises RuntimeError when libseccomp is absent
        raise SandboxUnavailable(
            f"seccomp is unavailable ({exc}): apt-get install libseccomp2 && pip install pyseccomp"
        ) from None
    flt = sc.SyscallFilter(sc.ALLOW)
    eperm = sc.ERRNO(errno.EPERM)
    for name in DENIED_SYSCALLS:
        if nested_sandbox and name in _NESTED_SANDBOX_ALLOWED:
            continue
        if sc.resolve_syscall(sc.Arch.NATIVE, name) >= 0:  # older libseccomp lacks the newest names
            flt.add_rule(eperm, name)
    if not nested_sandbox:
        flt.add_rule(eperm, "clone", sc.Arg(0, sc.MASKED_EQ, _CLONE_NEWUSER, _CLONE_NEWUSER))
    # clone3 passes its flags in memory that BPF cannot read; ENOSYS makes libc fall back to clone.
    flt.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    # Only the query form of personality(); setting flags such as ADDR_NO_RANDOMIZE is refused.
    flt.add_rule(eperm, "personality", sc.Arg(0, sc.NE, _PERSONALITY_QUERY))
    _add_socket_rules(sc, flt, sockets)
    _add_setid_rules(sc, flt)
    fd = os.memfd_create("branchwise-seccomp", os.MFD_CLOEXEC)
    with os.fdopen(fd, "w+b") as f:
        flt.export_bpf(f)
        f.seek(0)
        return f.read()


# Where each call that sets a mode takes it (argument index), and where open() takes its flags.
_MODE_ARGUMENT = {"chmod": 1, "fchmod": 1, "fchmodat": 2, "fchmodat2": 2, "mkdir": 1, "mkdirat": 2, "mknod": 1,
                  "mknodat": 2, "creat": 1}  # fmt: skip
_OPEN_ARGUMENTS = {"open": (1, 2), "openat": (2, 3)}
_O_TMPFILE_BIT = 0o20000000  # __O_TMPFILE: an unnamed file, given a mode now and a name by linkat later


def _add_setid_rules(sc: Any, flt: Any) -> None:
    """No set-user-id or set-group-id bit on anything the sandbox creates or changes: its files live on after
    it, and started by root its uid is root's for the files it writes (a setuid copy of bash would be a root
    shell for every user of the machine). File capabilities need CAP_SETFCAP, which the sandbox never has."""
    eperm = sc.ERRNO(errno.EPERM)
    for bit in (stat.S_ISUID, stat.S_ISGID):
        for call, index in _MODE_ARGUMENT.items():
            if sc.resolve_syscall(sc.Arch.NATIVE, call) >= 0:
                flt.add_rule(eperm, call, sc.Arg(index, sc.MASKED_EQ, bit, bit))
        for call, (flags, mode) in _OPEN_ARGUMENTS.items():
            for creating in (os.O_CREAT, _O_TMPFILE_BIT):
                flt.add_rule(eperm, call, sc.Arg(flags, sc.MASKED_EQ, creating, creating),
                             sc.Arg(mode, sc.MASKED_EQ, bit, bit))  # fmt: skip
    # openat2 passes its mode in memory that BPF cannot read; ENOSYS makes callers fall back to openat.
    flt.add_rule(sc.ERRNO(errno.ENOSYS), "openat2")


def _add_socket_rules(sc: Any, flt: Any, sockets: SocketPolicy) -> None:
    eperm = sc.ERRNO(errno.EPERM)
    if sockets == "any":
        return
    if sockets == "unix":
        for call in ("socket", "socketpair"):
            flt.add_rule(eperm, call, sc.Arg(0, sc.NE, socket.AF_UNIX))
        return
    # Rules on one argument cannot say "not in {1, 2, 10}", so refuse the gaps one by one and all above.
    highest = max(_LOOPBACK_FAMILIES)
    for family in range(highest):
        if family not in _LOOPBACK_FAMILIES:
            flt.add_rule(eperm, "socket", sc.Arg(0, sc.EQ, family))
    flt.add_rule(eperm, "socket", sc.Arg(0, sc.GT, highest))
    flt.add_rule(eperm, "socketpair", sc.Arg(0, sc.NE, socket.AF_UNIX))
