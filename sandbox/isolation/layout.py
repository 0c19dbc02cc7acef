"""The filesystem a sandboxed command sees, as bwrap arguments.

Order matters to bwrap: later mounts cover earlier ones. The root goes in read-only, then /dev/null over
secret files, the tmpfs masks that hold the workspace (/tmp, when it is there), the workspace and other
writable roots, the protected paths inside the workspace (read-only again), and last every other tmpfs mask
(directories that hold secrets or host sockets): bwrap rereads the whole mount table for each bind, and the
table is shorter while those are not yet mounted. Started by root, the session masks host files in the
spawner's mount namespace instead (see mountns.py), and they are not bwrap flags at all.
"""

from __future__ import annotations

import dataclasses
import functools
import glob
import os
import stat
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from branchwise.sandbox.isolation.hidden import (
    home_directories,
    host_unix_sockets,
    root_only_generation,
    root_only_paths,
)
from branchwise.sandbox.isolation.mountns import open_exactly
from branchwise.sandbox.settings import SandboxSettings

SANDBOX_UID = 1000
HOME_IN_SANDBOX = "/tmp/home"
SANDBOX_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SHELL_RC_FILES = frozenset(
    {".bashrc", ".bash_profile", ".bash_login", ".bash_logout", ".profile", ".zshrc", ".zprofile", ".zshenv"}
)
# Directories that hold host secrets or host Unix sockets (docker, dbus, ssh-agent): always covered.
MASKED_DIRS = ("/tmp", "/var/tmp", "/run", "/dev/shm", "/root", "/home")
_RESCAN_S = 60.0


def namespace_args(*, unshare_net: bool) -> list[str]:
    """Namespaces and privileges: a uid that is not root, no capabilities, no nested user namespaces."""
    args = ["--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--cap-drop", "ALL"]
    args += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    if unshare_net:  # only when the session has no shared namespace to join
        args.append("--unshare-net")
    return [*args, "--die-with-parent", "--new-session", "--disable-userns"]


@dataclasses.dataclass
class BaseMounts:
    """The mounts every command of a session gets, in bwrap's order around the workspace bind: `head` first
    (read-only root, /dev, /proc), then the `files` to cover with /dev/null, then `early` (the tmpfs masks that
    hold or lie inside the workspace or a writable root), the workspace, and `late` (every other tmpfs mask and
    the HOME). bwrap rereads the whole mount table for each bind it makes, so binds made while the table is
    still short cost less: masks that need not come before the workspace come after what binds inside it."""

    head: list[str]
    files: list[Path]
    early: list[str]
    late: list[str]
    masked: list[Path]  # the static_masks among them


def base_mount_args(settings: SandboxSettings, workspace: Path, *, hidden: list[Path]) -> BaseMounts:
    """Read-only root, fresh /dev and /proc, tmpfs masks (the MASKED_DIRS and every home directory, wherever
    it is), deny_read masks outside the workspace, a HOME."""
    # A read-only /proc: the uid inside maps to the caller's, so a sandbox started by root would pass
    # the owner checks of host-global files such as /proc/sys/kernel/core_pattern. bwrap only covers
    # /proc/sys when its own access() test says it is writable, and that test runs without caps.
    head = ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--remount-ro", "/proc"]
    roots = [workspace, *settings.writable_roots]
    early: list[str] = []
    late: list[str] = []
    files: list[Path] = []
    dirs = tmpfs_dirs()
    masked = static_masks(settings, workspace, hidden=hidden, tmpfs=dirs)
    # Writable (private, per command) rather than read-only: the workspace may lie inside one of them, and
    # bwrap must be able to create the folders it is mounted on.
    for path in [*dirs, *masked]:
        if not path.is_dir():
            files.append(path)
            continue
        mask = mask_args(path, private_size=settings.limits.tmp_size_mb)
        (early if any(_under(r, path) or _under(path, r) for r in roots) else late).extend(mask)
    return BaseMounts(head=head, files=files, early=early, late=[*late, "--dir", HOME_IN_SANDBOX], masked=masked)


def static_masks(settings: SandboxSettings, workspace: Path, *, hidden: list[Path], tmpfs: list[Path]) -> list[Path]:
    """The paths outside the workspace that every command of a session gets masked (deny_read, `hidden`), but
    for those under a `tmpfs` mask."""
    outside = [p for p in expand_deny_read(settings.deny_read, workspace) if not _under(p, workspace)]
    return [path for path in [*outside, *hidden] if not any(_under(path, d) for d in tmpfs)]


def tmpfs_dirs() -> list[Path]:
    """Directories replaced by an empty private tmpfs: /tmp, /run, ... and every home directory."""
    dirs = [Path(d) for d in MASKED_DIRS if Path(d).is_dir() and not Path(d).is_symlink()]
    return dirs + [h for h in home_directories() if not any(_under(h, d) for d in dirs)]


@dataclasses.dataclass
class CommandMasks:
    """Masks computed for each command: `inside` follow the workspace bind, `late` are tmpfs masks elsewhere
    (they go with BaseMounts.late), `files` are host files outside the workspace to cover with /dev/null."""

    inside: list[str]
    late: list[str]
    files: list[Path]


def command_mask_args(
    settings: SandboxSettings, workspace: Path, *, masked: frozenset[Path] = frozenset()
) -> CommandMasks:
    """Masks computed for each command (they follow the workspace bind): deny_read paths inside the workspace,
    files only root may read when the sandbox reads as root, and, unless the network is on, the host's Unix
    sockets (network off means no host socket of any family, and a socket is reached by its path alone).
    `masked`: paths the session's static flags mask already (each mount costs every command time)."""
    masks = CommandMasks(inside=workspace_mask_args(workspace, settings.deny_read), late=[], files=[])
    writable = (workspace, *settings.writable_roots)
    epoch = int(time.monotonic() // _RESCAN_S)
    covered, root_only = _host_masks(tuple(settings.deny_read), writable, epoch, root_only_generation())
    for path in root_only:
        if path not in masked and os.path.lexists(path):  # a mask over a path that is gone fails every command
            if path.is_dir():
                masks.late += mask_args(path, private_size=settings.limits.tmp_size_mb)
            else:
                masks.files.append(path)
    if settings.network != "on":
        for sock in host_unix_sockets():
            # Under a tmpfs mask it is gone anyway (and bwrap could not create a mount point in a read-only one);
            # inside the workspace or a writable root it is visible again, so it is masked there too.
            if any(_under(sock, w) for w in writable):
                masks.inside += ["--ro-bind", "/dev/null", str(sock)]
            elif not any(_under(sock, d) for d in covered):
                masks.files.append(sock)
    return masks


@functools.lru_cache(maxsize=8)
def _host_masks(
    deny_read: tuple[str, ...], writable: tuple[Path, ...], _epoch: int, _generation: int
) -> tuple[tuple[Path, ...], tuple[Path, ...]]:
    """(directories already hidden by a tmpfs, root-only paths to hide on top): recomputed once a minute, and
    when a new root-only scan (its `_generation`) has landed."""
    covered = [*tmpfs_dirs(), *(p for p in expand_deny_read(list(deny_read), writable[0]) if p.is_dir())]
    root_only = [
        path
        for path in root_only_paths(writable)
        if not any(_under(path, d) or _under(d, path) for d in [*covered, *writable])
    ]
    return tuple(covered), tuple(root_only)


def mask_args(path: Path, *, private_size: int | None = None) -> list[str]:
    """Hide a path: an empty tmpfs over a directory, /dev/null over anything else.

    The tmpfs is read-only, or, with `private_size` (MB), writable and private to the command: what is
    written there is gone when it ends. Outside the workspace that is as safe and saves bwrap a remount
    (bwrap rereads the whole mount table for each one, so every mount costs each command time); inside
    it, a write that silently vanished would mislead, so masks there stay read-only."""
    if path.is_dir():
        if private_size is not None:
            return ["--size", str(private_size * 1024 * 1024), "--tmpfs", str(path)]
        return ["--tmpfs", str(path), "--remount-ro", str(path)]
    return ["--ro-bind", "/dev/null", str(path)]


def expand_deny_read(patterns: list[str], workspace: Path) -> list[Path]:
    """Existing paths named by the deny_read globs; relative globs are workspace-relative, `~` is expanded."""
    found: list[Path] = []
    for pattern in patterns:
        full = Path(pattern).expanduser()
        full = full if full.is_absolute() else workspace / full
        for match in sorted(glob.glob(str(full))):  # noqa: PTH207 (absolute globs)
            path = Path(match)
            if not path.is_symlink():
                found.append(path)
    return found


def workspace_mask_args(workspace: Path, deny_read: list[str]) -> list[str]:
    """Masks for deny_read paths inside the workspace; they must follow the workspace bind."""
    # Globbing runs for every command, so skip patterns that cannot land inside the workspace.
    relevant = _relevant_patterns(tuple(deny_read), workspace)
    inside = [p for p in expand_deny_read(relevant, workspace) if _under(p, workspace) and p != workspace]
    return [arg for path in inside for arg in mask_args(path)]


@functools.lru_cache(maxsize=32)
def _relevant_patterns(deny_read: tuple[str, ...], workspace: Path) -> list[str]:
    return [p for p in deny_read if _may_be_under(Path(p).expanduser(), workspace)]


def _may_be_under(pattern: Path, workspace: Path) -> bool:
    """Whether a deny_read pattern can name something inside the workspace."""
    if not pattern.is_absolute():
        return True
    parts = pattern.parts
    glob_at = next((i for i, part in enumerate(parts) if any(c in part for c in "*?[")), len(parts))
    literal = Path(*parts[:glob_at])
    return _under(literal, workspace) or _under(workspace, literal)


def writable_args(workspace: Path, settings: SandboxSettings) -> list[str]:
    """The workspace (read-only in read-only mode) and any extra writable roots."""
    bind = "--ro-bind" if settings.mode == "read-only" else "--bind"
    args = [bind, str(workspace), str(workspace)]
    for root in settings.writable_roots:
        args += [bind, str(root), str(root)]
    return args


def protected_args(
    workspace: Path, protected: list[str], *, empty: str = "/dev/null", writable: Sequence[Path] = ()
) -> tuple[list[str], list[Path], list[Path]]:
    """Binds that keep protected paths read-only, the mount-point files bwrap will create on the host, and the
    stand-ins made for missing git-directory entries (they may stay while the session lasts).

    An existing path is bound onto itself read-only (writes fail with EROFS, rename and delete with
    EBUSY). A missing one gets the `empty` file, read-only, so it cannot be created; bwrap leaves an empty
    file behind for that, which `remove_mount_points` deletes later. (An empty regular file rather than
    /dev/null: the mount is nodev, so /dev/null there fails every read with EACCES, and git, which reads
    `.git/objects/info/alternates` when it exists, would warn about it on every command.) Missing shell rc
    files are left alone unless the workspace is a home directory, the only place a shell reads them (each
    mount costs ~0.3 ms per command). Every directory between the workspace and a protected path is bound onto itself
    (writable) so it cannot be renamed away with the protection inside it.

    A protected path reached through a symbolic link is protected where the link leads, when that is inside the
    workspace or one of the `writable` roots; anywhere else the sandbox cannot write it, and no mount is made
    (a bind followed out of the workspace would cover the masks there: `.git/hooks -> /etc` over /etc/shadow's).
    """
    self_binds: list[str] = []
    ro_binds: list[str] = []
    created: list[Path] = []
    stand_ins: list[Path] = []
    home_like = workspace == Path.home() or workspace.parent in (Path("/home"), Path("/root"))
    root = str(workspace)
    kinds: dict[str, int | None] = {}  # path -> st_mode (None: missing); strings: this runs for every command

    def mode(path: str) -> int | None:
        if path not in kinds:
            try:
                kinds[path] = os.lstat(path).st_mode
            except OSError:  # NotADirectory: `.git` is a file in worktrees; ELOOP: a link swapped in meanwhile
                kinds[path] = None
        return kinds[path]

    bases = [root, *(os.path.realpath(w) for w in writable)]
    for rel in protected:
        root, named = bases[0], Path(rel)  # `named`: what the setting names, whatever a link resolves it to
        if _through_link(root, rel, mode):
            found = _resolved(root + "/" + rel, bases)
            if found is None:
                continue
            root, rel = found
        parts = rel.split("/")
        for depth in range(1, len(parts)):
            d = root + "/" + "/".join(parts[:depth])
            kind = mode(d)
            if kind is not None and stat.S_ISDIR(kind):
                if d not in self_binds:
                    self_binds += ["--bind", d, d]
            elif kind is not None and Path(d).is_file() and d not in ro_binds:  # a file, or a link to one
                # A linked worktree's `.git` file names the git dir: rewriting it could swap in hooks.
                ro_binds += ["--ro-bind", d, d]
                break
        target = root + "/" + rel
        if mode(target) is None:
            parent = mode(target.rsplit("/", 1)[0])
            if parent is not None and stat.S_ISDIR(parent) and (home_like or parts[-1] not in SHELL_RC_FILES):
                path = Path(target)
                if _git_placeholder(path, named):
                    ro_binds += ["--ro-bind", target, target]
                    stand_ins.append(path)
                else:
                    ro_binds += ["--ro-bind", empty, target]
                    created.append(path)
            continue
        # -try: a dangling symlink has nothing to protect.
        ro_binds += ["--ro-bind-try", target, target]
    return self_binds + ro_binds, created, stand_ins


def _through_link(root: str, rel: str, mode: Callable[[str], int | None]) -> bool:
    """Whether a component of root/rel is a symbolic link (`mode` lstats, cached)."""
    path = root
    for part in rel.split("/"):
        path += "/" + part
        kind = mode(path)
        if kind is None:
            return False  # the rest does not exist
        if stat.S_ISLNK(kind):
            return True
    return False


def _resolved(path: str, bases: list[str]) -> tuple[str, str] | None:
    """(base, path relative to it) of where `path` leads, when strictly inside one of `bases`; else None."""
    try:
        real = os.path.realpath(path)
    except OSError:
        return None
    for base in bases:
        if real.startswith(base.rstrip("/") + "/"):
            return base, real[len(base.rstrip("/")) + 1 :]
    return None


# Missing paths inside a git directory that git itself reads when they exist: the stand-in the host sees while the
# session lasts must mean what their absence means, or the user's own git breaks meanwhile (an empty `commondir`
# is a fatal error to git; `.` names the git directory itself; an empty config.worktree or alternates is no
# configuration and no other object store). Directories get an empty directory.
_GIT_FILE_PLACEHOLDERS = {"commondir": b".\n", "config.worktree": b"", "alternates": b""}
_GIT_DIR_PLACEHOLDERS = frozenset({"worktrees", "modules"})


def _in_git_dir(target: Path) -> bool:
    """`.git/<name>`, or `.git/objects/info/alternates`."""
    if target.name == "alternates":
        return (
            target.parent.name == "info"
            and target.parent.parent.name == "objects"
            and (target.parent.parent.parent.name == ".git")
        )
    return target.parent.name == ".git"


def _git_placeholder(target: Path, named: Path) -> bool:
    """Create a harmless stand-in on the host for a missing git-directory entry; False if none is needed. `named`
    is the protected path as configured (`.git/commondir`), which decides: `.git` may be a link to a git
    directory of another name. Made in its folder as opened without following a link anywhere on the way (the
    sandbox may swap one in meanwhile)."""
    if not _in_git_dir(named) or (named.name not in _GIT_DIR_PLACEHOLDERS and named.name not in _GIT_FILE_PLACEHOLDERS):
        return False
    try:
        folder = open_exactly(str(target.parent), os.O_DIRECTORY)
    except OSError:
        return False
    try:
        if named.name in _GIT_DIR_PLACEHOLDERS:
            os.mkdir(target.name, 0o755, dir_fd=folder)
            return True
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(target.name, flags, 0o644, dir_fd=folder)
        try:
            os.write(fd, _GIT_FILE_PLACEHOLDERS[named.name])
        finally:
            os.close(fd)
        return True
    except FileExistsError:
        return True  # another command of the session holds the same stand-in
    except OSError:
        return False
    finally:
        os.close(folder)


def remove_mount_points(paths: list[Path]) -> None:
    """Delete the mount points bwrap created for missing protected paths (empty files), and the stand-ins: each
    in its folder as opened without following a link (the sandbox may have made `.git` a link to elsewhere)."""
    for path in paths:
        try:
            folder = open_exactly(str(path.parent), os.O_DIRECTORY)
        except OSError:
            continue
        try:
            st = os.lstat(path.name, dir_fd=folder)
            if stat.S_ISDIR(st.st_mode) and path.name in _GIT_DIR_PLACEHOLDERS:
                os.rmdir(path.name, dir_fd=folder)  # only while still empty
            elif stat.S_ISREG(st.st_mode) and (st.st_size == 0 or _is_stand_in(path.name, folder, st)):
                os.unlink(path.name, dir_fd=folder)
        except OSError:
            pass
        finally:
            os.close(folder)


def _is_stand_in(name: str, folder: int, st: os.stat_result) -> bool:
    content = _GIT_FILE_PLACEHOLDERS.get(name)
    if content is None or st.st_size != len(content):
        return False
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=folder)
    except OSError:
        return False
    try:
        return os.read(fd, len(content) + 1) == content
    finally:
        os.close(fd)


def _under(path: Path, parent: Path) -> bool:
    p, d = str(path), str(parent)  # string prefixes: Path.parents is slow, and this runs for every command
    return p == d or p.startswith(d.rstrip("/") + "/")
