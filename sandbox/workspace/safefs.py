"""File access confined to a workspace: openat2(RESOLVE_BENEATH) so symlinks and `..` cannot lead out.

Everything branchwise reads or writes in a workspace on the host (the file tools, instruction files,
the search's static checks) goes through `WorkspaceFS`: the kernel, not string checks, decides what is
beneath; paths the sandbox masks (`deny_read`) are refused whatever link leads to them; only regular
files are read or written (a FIFO would block, a device would never end), and reads stop at a size
cap, so a planted file cannot hang the agent or fill the host's memory.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from branchwise.sandbox.base import SandboxError
from branchwise.sandbox.globs import glob_regex

_SYS_OPENAT2 = 437  # the same number on every architecture (asm-generic)
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_BENEATH = 0x08


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


MAX_READ_BYTES = 16 * 1024 * 1024
"""Largest file `read_bytes` reads by default (the host's memory is outside the sandbox's limits)."""


class PathEscape(SandboxError):
    """A path (or a symlink on the way) leads outside the workspace."""


class UnreadableFile(SandboxError):
    """A path the agent may not read or write on the host: masked, not a regular file, or too large."""


@dataclass(frozen=True)
class Entry:
    """One directory entry as seen from inside the workspace."""

    name: str
    is_dir: bool
    is_symlink: bool
    size: int


def read_regular(path: Path, *, limit: int, follow_symlinks: bool = True) -> bytes:
    """The content of a regular file of at most `limit` bytes, for files outside a WorkspaceFS (run logs,
    reply files, configs): a FIFO, a device or a larger file is an UnreadableFile instead of a hang or a
    flood; without `follow_symlinks` a link is refused too (OSError ELOOP)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC | (0 if follow_symlinks else os.O_NOFOLLOW)
    fd = os.open(path, flags)
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise UnreadableFile(f"{path}: not a regular file")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise UnreadableFile(f"{path}: larger than {limit} bytes")
    return data


def openat2_beneath(dir_fd: int, path: str, flags: int, mode: int = 0) -> int:
    """openat2 with RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS; raises OSError like os.open."""
    if not flags & os.O_CREAT:
        mode = 0  # the kernel rejects a mode without O_CREAT
    how = _OpenHow(flags | os.O_CLOEXEC, mode, _RESOLVE_BENEATH | _RESOLVE_NO_MAGICLINKS)
    fd = _libc.syscall(_SYS_OPENAT2, dir_fd, os.fsencode(path), ctypes.byref(how), ctypes.sizeof(how))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)
    return int(fd)


class WorkspaceFS:
    """Reads and writes files under `root` only, never the paths `hidden` names (deny_read globs: relative ones
    are workspace-relative, `~` is the user's home)."""

    def __init__(self, root: Path, hidden: Sequence[str] = ()) -> None:
        self.root = root.resolve()
        self.hidden = [(p, glob_regex(str(self.root / Path(p).expanduser()))) for p in hidden]

    def relative(self, path: str | os.PathLike[str]) -> str:
        """A workspace-relative path for `path` (absolute paths must lie under the root)."""
        p = PurePosixPath(os.fspath(path))
        if p.is_absolute():
            try:
                p = p.relative_to(PurePosixPath(self.root))
            except ValueError:
                raise PathEscape(f"{path}: outside the workspace {self.root}") from None
        text = str(p)
        return "." if text in ("", ".") else text

    def _open(self, path: str | os.PathLike[str], flags: int, mode: int = 0o644) -> int:
        rel = self.relative(path)
        root_fd = os.open(self.root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fd = openat2_beneath(root_fd, rel, flags, mode)
        except OSError as exc:
            if exc.errno in (errno.EXDEV, errno.ELOOP):
                raise PathEscape(f"{path}: resolves outside the workspace") from None
            raise
        finally:
            os.close(root_fd)
        try:
            self._check_hidden(path, rel, fd)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _check_hidden(self, path: str | os.PathLike[str], rel: str, fd: int) -> None:
        """Refuse a masked path, whether it is named directly or reached through a link inside the workspace."""
        if not self.hidden:
            return
        real = Path(f"/proc/self/fd/{fd}").readlink()
        for candidate in {real, Path(os.path.normpath(self.root / rel))}:
            for above in [candidate, *candidate.parents]:
                if above == self.root or self.root not in above.parents:
                    break
                for pattern, regex in self.hidden:
                    if regex.fullmatch(str(above)):
                        raise UnreadableFile(f"{path}: hidden from the agent (deny_read {pattern})")

    def read_bytes(self, path: str | os.PathLike[str], *, limit: int = MAX_READ_BYTES, truncate: bool = False) -> bytes:
        """The content of a regular file of at most `limit` bytes (with `truncate`, its first `limit` bytes)."""
        fd = self._open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(f.fileno())
            if stat.S_ISDIR(info.st_mode):
                raise IsADirectoryError(errno.EISDIR, "is a directory", str(path))
            if not stat.S_ISREG(info.st_mode):
                raise UnreadableFile(f"{path}: not a regular file (a pipe, socket or device); use the shell")
            if truncate:
                return f.read(limit)
            if info.st_size > limit:
                raise UnreadableFile(f"{path}: {info.st_size} bytes, more than the {limit} the file tools read; "
                                     "use the shell (head, sed -n, grep) for parts of it")  # fmt: skip
            data = f.read(limit + 1)
            if len(data) > limit:  # it grew while being read
                raise UnreadableFile(f"{path}: more than {limit} bytes")
            return data

    def stat(self, path: str | os.PathLike[str]) -> os.stat_result | None:
        """stat() of the path's target, or None when it does not exist."""
        try:
            fd = self._open(path, os.O_PATH)
        except FileNotFoundError:
            return None
        try:
            return os.fstat(fd)
        finally:
            os.close(fd)

    def write_bytes(self, path: str | os.PathLike[str], data: bytes) -> bool:
        """Write a file, creating parent directories; returns True when the file is new."""
        rel = self.relative(path)
        parent = str(PurePosixPath(rel).parent)
        if parent not in ("", "."):
            self.make_dirs(parent)
        existed = self.stat(rel) is not None
        # No O_TRUNC: the checks below must run before the file's old content is touched. O_NONBLOCK: opening
        # a FIFO for writing would wait for a reader forever.
        fd = self._open(rel, os.O_WRONLY | os.O_CREAT | os.O_NOCTTY | os.O_NONBLOCK, 0o644)
        with os.fdopen(fd, "wb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise UnreadableFile(f"{path}: not a regular file; use the shell")
            if info.st_nlink > 1:
                # A hard link may point at a file outside the workspace; the kernel cannot tell.
                raise PathEscape(f"{path}: has other hard links; refusing to write through it")
            f.truncate(0)
            f.write(data)
        return not existed

    def make_dirs(self, path: str | os.PathLike[str]) -> None:
        """mkdir -p beneath the root, one component at a time."""
        done = PurePosixPath()
        for part in PurePosixPath(self.relative(path)).parts:
            done = done / part
            st = self.stat(done)
            if st is None:
                parent_fd = self._open(done.parent, os.O_PATH | os.O_DIRECTORY)
                try:
                    os.mkdir(part, dir_fd=parent_fd)
                finally:
                    os.close(parent_fd)
            elif not stat.S_ISDIR(st.st_mode):
                raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(done))

    def unlink(self, path: str | os.PathLike[str]) -> None:
        rel = PurePosixPath(self.relative(path))
        parent_fd = self._open(rel.parent, os.O_PATH | os.O_DIRECTORY)
        try:
            os.unlink(rel.name, dir_fd=parent_fd)
        finally:
            os.close(parent_fd)

    def list_dir(self, path: str | os.PathLike[str]) -> list[Entry]:
        fd = self._open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            entries = []
            for name in sorted(os.listdir(fd)):
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                entries.append(Entry(name, stat.S_ISDIR(st.st_mode), stat.S_ISLNK(st.st_mode), st.st_size))
            return entries
        finally:
            os.close(fd)
