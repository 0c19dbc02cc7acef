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

Protected paths inside the workspace that exist (`.git` and the folders on the way, `.git/hooks`,
`.git/config`, the git stand-ins) are bound there too, and checked before each command against this
namespace's mount table (`ensure_binds`): a rename over a mount point, or its deletion, on the host (the
user's git rewrites `.git/config` that way) detaches the mounts other namespaces have on it, and the
protections are then made again before the next command. bwrap's recursive bind of the workspace brings
them into each command. Only mounts over missing paths stay bwrap's (it makes and removes their mount points).

The same goes for /dev: bwrap's `--dev` makes a tmpfs, binds six device nodes into it one by one (a table
reread each) and mounts a devpts, for every command. Here that tree is made once, read-only, and each
command binds it whole (`--dev-bind`, one reread). What differs from `--dev`: the session's commands share
one devpts instance (a new one, not the host's: they see each other's pseudo-terminals, as they share
their loopback), and /dev itself is read-only (/dev/shm is a private tmpfs per command all the same).
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import re
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path

from branchwise.sandbox.base import SandboxError

_CLONE_NEWNS, _CLONE_FS = 0x00020000, 0x00000200
_MS_RDONLY, _MS_NOSUID, _MS_NODEV = 0x1, 0x2, 0x4
_MS_NOEXEC, _MS_REMOUNT, _MS_BIND, _MS_REC, _MS_SLAVE = 0x8, 0x20, 0x1000, 0x4000, 0x80000
_MNT_DETACH = 0x2
_libc = ctypes.CDLL(None, use_errno=True)
# What bwrap's --dev puts in /dev (bwrap 0.8's setup_newroot): device nodes bound from the host, links.
_DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
_DEV_LINKS = {"stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2",
              "fd": "/proc/self/fd", "core": "/proc/kcore", "ptmx": "pts/ptmx"}  # fmt: skip


def _fail(what: str) -> str:
    return f"{what}: {os.strerror(ctypes.get_errno())}"


def open_exactly(path: str, flags: int = 0) -> int:
    """An O_PATH descriptor of `path`, refused (OSError) unless the kernel reached it without following a link."""
    fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC | flags)
    if str(Path(f"/proc/self/fd/{fd}").readlink()) != path or stat.S_ISLNK(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(f"{path} is a link or is reached through one")
    return fd


def join_process_namespace() -> None:
    """Move the calling thread into the mount namespace of the process's main thread."""
    fd = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.unshare(_CLONE_FS) != 0 or _libc.setns(fd, _CLONE_NEWNS) != 0:
            raise SandboxError(_fail("cannot join the process's mount namespace"))
    finally:
        os.close(fd)


@dataclasses.dataclass
class SpawnerWork:
    """What the spawner's namespace must hold before a command is forked: host `files` masked, and the
    workspace's protected paths bound (source, target, read-only), in order; None leaves them as they are."""

    files: list[str]
    binds: list[tuple[str, str, bool]] | None


def _mount_points() -> list[str]:
    """The mount points of the calling thread's namespace (thread-self: /proc/self is the main thread's)."""
    points = []
    for line in Path("/proc/thread-self/mountinfo").read_text().splitlines():
        fields = line.split(" ")
        if len(fields) > 4:  # the fifth field, with space, tab, newline and backslash octal-escaped
            points.append(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4]))
    return points


class SpawnerMounts:
    """File masks kept in the spawner thread's mount namespace. `enter` and `ensure` run in that thread only."""

    def __init__(self) -> None:
        self.active = False
        self.dev: Path | None = None  # the prepared /dev, once made
        self._masked: set[str] = set()
        self._binds: tuple[tuple[str, str, bool], ...] = ()  # what ensure_binds last asked for
        self._bound: dict[str, int] = {}  # target -> O_PATH descriptor of the mount made there, in order
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
        # What the host mounts below /dev (its devpts, /dev/shm) no sandbox sees: each gets a /dev of its own on
        # top. Gone from here, they are not copied into every command's mount table twice (as bwrap's old root
        # and in its new one), which every bind rereads. Below /proc they stay: where a container hides parts of
        # /proc with mounts, the kernel refuses a new proc only while they are there, and so must bwrap.
        for point in sorted(_mount_points(), reverse=True):
            if point.startswith("/dev/"):
                _libc.umount2(point.encode(), _MNT_DETACH)
        return None

    def prepare_dev(self, where: Path) -> str | None:
        """Build the /dev every command binds, at `where` (an empty directory, seen as such outside this
        namespace); None when done (then `dev` is set), else why not (commands keep bwrap's --dev)."""
        if not self.active:
            return "no mount namespace"
        target = str(where).encode()
        if _libc.mount(b"tmpfs", target, b"tmpfs", _MS_NOSUID | _MS_NODEV, b"mode=0755,size=1m") != 0:
            return _fail("mount a tmpfs for /dev")
        try:
            for name in _DEVICES:
                node = where / name
                node.touch(0o644)
                if _libc.mount(f"/dev/{name}".encode(), str(node).encode(), None, _MS_BIND, None) != 0:
                    raise OSError(_fail(f"bind /dev/{name}"))
            for name, to in _DEV_LINKS.items():
                (where / name).symlink_to(to)
            (where / "shm").mkdir(0o755)
            (where / "pts").mkdir(0o755)
            options = b"newinstance,ptmxmode=0666,mode=620"
            if _libc.mount(b"devpts", str(where / "pts").encode(), b"devpts", _MS_NOSUID | _MS_NOEXEC, options) != 0:
                raise OSError(_fail("mount a devpts"))
            flags = _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_NOSUID | _MS_NODEV
            if _libc.mount(None, target, None, flags, None) != 0:
                raise OSError(_fail("make /dev read-only"))
        except OSError as exc:
            _libc.umount2(target, _MNT_DETACH)
            return str(exc)
        self.dev = where
        return None

    def ensure_binds(self, binds: Sequence[tuple[str, str, bool]]) -> None:
        """Make the workspace's protected paths what `binds` says, in order: (source, target, read-only); a
        target that does not exist is skipped. Done again from scratch when they change, when one of the
        mounts made is gone from this namespace (the host deleted, replaced or moved the path: the kernel
        detaches the mounts of another namespace then), or when a target skipped before exists now, so a
        protection never lapses for the session. Targets are opened without following links (a link swapped
        in would lead the mount out of the workspace) and mounted through their descriptors."""
        want = tuple(binds)
        if want == self._binds and self._holding(want):
            return
        for fd in reversed(self._bound.values()):
            _libc.umount2(f"/proc/self/fd/{fd}".encode(), _MNT_DETACH)
            os.close(fd)
        self._bound, self._binds = {}, ()
        for source, target, read_only in want:
            try:
                fd = open_exactly(target)
            except FileNotFoundError:
                continue  # nothing there to protect (yet)
            except OSError as exc:
                raise SandboxError(f"cannot protect {target}: {exc}") from None
            try:
                if source != target:
                    raise SandboxError(f"cannot protect {target}: not bound onto itself")
                where = f"/proc/self/fd/{fd}".encode()
                if _libc.mount(where, where, None, _MS_BIND | _MS_REC, None) != 0:
                    raise SandboxError(_fail(f"cannot protect {target}"))
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)
            mounted = open_exactly(target)  # the new mount's root: what to unmount it by
            self._bound[target] = mounted
            flags = _MS_REMOUNT | _MS_BIND | _MS_NOSUID | _MS_NODEV | (_MS_RDONLY if read_only else 0)
            if _libc.mount(None, f"/proc/self/fd/{mounted}".encode(), None, flags, None) != 0:
                raise SandboxError(_fail(f"cannot make the protection of {target} read-only"))
        self._binds = want

    def _holding(self, want: tuple[tuple[str, str, bool], ...]) -> bool:
        """Whether every mount made is still in place and every target that was skipped is still missing."""
        points = set(_mount_points()) if self._bound else set()
        for _source, target, _read_only in want:
            if target in self._bound:
                if target not in points:
                    return False
            elif os.path.lexists(target):
                return False
        return True

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
