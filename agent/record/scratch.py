"""Copying a workspace into a scratch directory without trusting its content: links are copied as links,
never followed; FIFOs, sockets and devices are skipped, never opened (opening a FIFO blocks); sparse files
stay sparse (only their data is copied); no set-id bit survives the copy."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

_CHUNK = 1024 * 1024


def copy_workspace(src: Path, dst: Path, *, skip: list[Path]) -> list[str]:
    """Copy the tree at `src` to the new directory `dst`, leaving out the workspace-relative paths in `skip`;
    returns the relative paths of the entries it did not copy (special files)."""
    skipped: list[str] = []
    dst.mkdir(mode=0o700, parents=True)
    stack = [Path()]
    while stack:
        rel = stack.pop()
        with os.scandir(src / rel) as entries:
            for entry in entries:
                child = rel / entry.name
                if child in skip:
                    continue
                st = entry.stat(follow_symlinks=False)
                target = dst / child
                if stat.S_ISLNK(st.st_mode):
                    target.symlink_to(Path(entry.path).readlink())
                elif stat.S_ISDIR(st.st_mode):
                    target.mkdir(0o700)
                    stack.append(child)
                elif stat.S_ISREG(st.st_mode):
                    _copy_file(Path(entry.path), target, st)
                else:
                    skipped.append(str(child))
                if stat.S_ISDIR(st.st_mode):
                    target.chmod(stat.S_IMODE(st.st_mode) & 0o777 | 0o700)
    return skipped


def _copy_file(src: Path, dst: Path, st: os.stat_result) -> None:
    """Copy one regular file's data extents (holes stay holes), its permission bits and times."""
    source = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(source).st_mode):  # replaced since it was listed
            return
        target = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            for start, end in _extents(source, st.st_size):
                _copy_range(source, target, start, end)
            os.ftruncate(target, st.st_size)
            os.fchmod(target, stat.S_IMODE(st.st_mode) & 0o777)
        finally:
            os.close(target)
        os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
    finally:
        os.close(source)


def _extents(fd: int, size: int) -> list[tuple[int, int]]:
    """(start, end) of each run of data in the file; the whole file where holes cannot be asked for."""
    extents, pos = [], 0
    try:
        while pos < size:
            start = os.lseek(fd, pos, os.SEEK_DATA)
            end = os.lseek(fd, start, os.SEEK_HOLE)
            extents.append((start, end))
            pos = end
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # no data after pos: the rest is a hole
            return extents
        return [(0, size)]
    return extents


def _copy_range(source: int, target: int, start: int, end: int) -> None:
    pos = start
    while pos < end:
        count = min(_CHUNK, end - pos)
        try:
            done = os.copy_file_range(source, target, count, pos, pos)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                raise
            data = os.pread(source, count, pos)
            done = os.pwrite(target, data, pos) if data else 0
        if done == 0:  # the file shrank while being copied
            return
        pos += done
