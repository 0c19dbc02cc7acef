"""The spawner thread's own mount namespace, where host files that no command may read are masked once.

bwrap rereads the whole mount table for every bind it makes, so each `/dev/null` it binds over a file costs
every command about 0.3 ms, and a sandbox started by root masks a dozen such files (/etc/shadow and every
other file only root may read). As root the spawner thread instead moves into a mount namespace of its own
(unshare(CLONE_NEWNS) works on one thread: it unshares the thread's filesystem context with it) and covers
those files there with read-only /dev/null binds. Every bwrap is forked from that thread, so it starts from
that view of the host and its recursive bind of `/` carries the masks along; coming from a more privileged
namespace they are locked in the sandbox's, which cannot unmount them. The namespace lives and dies with
the thread (and the processes it started), so nothing is left on the host. Without root the thread cannot
make one, and bwrap masks the files itself, command by command.
"""

from __future__ import annotations

import ctypes
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from branchwise.sandbox.base import SandboxError

_CLONE_NEWNS = 0x00020000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV = 0x1, 0x2, 0x4
_MS_REMOUNT, _MS_BIND, _MS_REC, _MS_SLAVE = 0x20, 0x1000, 0x4000, 0x80000
_MNT_DETACH = 0x2
_libc = ctypes.CDLL(None, use_errno=True)


def _fail(what: str) -> str:
    return f"{what}: {os.strerror(ctypes.get_errno())}"


class SpawnerMounts:
    """File masks kept in the spawner thread's mount namespace. `enter` and `ensure` run in that thread only."""

    def __init__(self) -> None:
        self.active = False
        self._masked: set[str] = set()
        self._null = Path("/dev/null").stat().st_rdev

    def enter(self) -> str | None:
        """Move the calling thread into a new mount namespace that follows the host's (slave) but sends
        nothing back; None when done, else why not (then every mask stays a bwrap flag)."""
        if os.geteuid() != 0:
            return "not root"
        if _libc.unshare(_CLONE_NEWNS) != 0:
            return _fail("unshare")
        # Until this succeeds, a mount made here would show on the host: never mask anything then.
        if _libc.mount(b"none", b"/", None, _MS_REC | _MS_SLAVE, None) != 0:
            return _fail("make / a slave")
        self.active = True
        return None

    def ensure(self, paths: Iterable[str]) -> None:
        """Make exactly `paths` (those that exist) masked, before a command is forked. A path the host has
        deleted or replaced since loses its mask (the kernel detaches it), so each is checked every time:
        one lstat, which sees /dev/null where the mask holds."""
        want = set(paths)
        for path in self._masked - want:  # no longer to be hidden (a file that became readable to all)
            _libc.umount2(path.encode(), _MNT_DETACH)
            self._masked.discard(path)
        for path in want:
            try:
                st = os.lstat(path)
            except OSError:
                self._masked.discard(path)  # gone: nothing to hide, and no mount point to make
                continue
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == self._null:
                self._masked.add(path)
                continue
            target = path.encode()
            if _libc.mount(b"/dev/null", target, None, _MS_BIND, None) != 0:
                if ctypes.get_errno() == 2:  # vanished since the lstat
                    continue
                raise SandboxError(_fail(f"cannot mask {path}"))
            flags = _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_NOSUID | _MS_NODEV
            if _libc.mount(None, target, None, flags, None) != 0:
                err = _fail(f"cannot make the mask over {path} read-only")
                _libc.umount2(target, _MNT_DETACH)
                raise SandboxError(err)
            self._masked.add(path)
