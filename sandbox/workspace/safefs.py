"""File access confined to a workspace: openat2(RESOLVE_BENEATH) so symlinks and `..` cannot lead out.

Host-side file tools go through `WorkspaceFS`; the kernel, not string checks, decides what is beneath.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from branchwise.sandbox.base import SandboxError

_SYS_OPENAT2 = 437  # the same number on every architecture (asm-generic)
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_BENEATH = 0x08


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class PathEscape(SandboxError):
    """A path (or a symlink on the way) leads outside the workspace."""


@dataclass(frozen=True)
class Entry:
    """One directory entry as seen from inside the workspace."""

    name: str
    is_dir: bool
    is_symlink: bool
    size: int


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
    """Reads and writes files under `root` only."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

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
            return openat2_beneath(root_fd, rel, flags, mode)
        except OSError as exc:
            if exc.errno in (errno.EXDEV, errno.ELOOP):
                raise PathEscape(f"{path}: resolves outside the workspace") from None
            raise
        finally:
            os.close(root_fd)

    def read_bytes(self, path: str | os.PathLike[str]) -> bytes:
        fd = self._open(path, os.O_RDONLY)
        with os.fdopen(fd, "rb") as f:
            if stat.S_ISDIR(os.fstat(f.fileno()).st_mode):
                raise IsADirectoryError(errno.EISDIR, "is a directory", str(path))
            return f.read()

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
        # No O_TRUNC: the checks below must run before the file's old content is touched.
        fd = self._open(rel, os.O_WRONLY | os.O_CREAT | os.O_NOCTTY, 0o644)
        with os.fdopen(fd, "wb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise IsADirectoryError(errno.EISDIR, "not a regular file", str(path))
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
