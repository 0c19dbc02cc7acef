"""What else a sandbox must not see, found on the host: home directories wherever they are, files only root
may read (a sandbox started by root reads them as root), and the host's Unix sockets.

Homes are found once a minute at most; root-only files by a walk of /etc, /var, /srv, /opt, /mnt, /media and
/boot (thousands of entries; find(1) in a process of its own, waited for by a background thread), again when the
last walk is a minute old; sockets for every command (one read of /proc/net/unix).
"""

from __future__ import annotations

import functools
import os
import pwd
import shutil
import stat
import subprocess
import threading
import time
from collections.abc import Iterable
from pathlib import Path

# Home directories that are system folders, never hidden: hiding /usr/sbin (daemon's "home") would break
# every command. Anything below these is not a home either.
_SYSTEM = ("/", "/bin", "/sbin", "/usr", "/lib", "/lib32", "/lib64", "/libx32", "/dev", "/proc", "/sys", "/etc",
           "/boot", "/nonexistent", "/var", "/var/lib", "/var/cache", "/var/spool", "/var/run", "/opt", "/srv",
           "/mnt", "/media", "/run", "/tmp")  # fmt: skip
_BELOW_SYSTEM = ("/usr/", "/bin/", "/sbin/", "/lib", "/dev/", "/proc/", "/sys/", "/etc/", "/boot/", "/nonexistent/")
# Where root-only files are looked for, and how deep.
_ROOT_ONLY_TOP = ("/etc", "/var", "/srv", "/opt", "/mnt", "/media", "/boot", "/usr/local/etc")
_ROOT_ONLY_DEPTH = 6
_ROOT_ONLY_MAX_ENTRIES = 200_000
# Package metadata: thousands of public files, and root-only lock files that hold nothing.
_PUBLIC_TREES = ("/var/lib/dpkg", "/var/lib/apt", "/var/cache/apt", "/var/cache/man", "/etc/alternatives",
                 "/etc/ssl/certs")  # fmt: skip
_CACHE_S = 60.0


def home_directories() -> list[Path]:
    """The user's real home ($HOME and the password database's) and every account's home directory that
    is not a system folder: CI users under /srv, service accounts under /var/lib, backups under /var."""
    return list(_homes(os.environ.get("HOME", ""), int(time.monotonic() // _CACHE_S)))


@functools.lru_cache(maxsize=4)
def _homes(env_home: str, _epoch: int) -> tuple[Path, ...]:
    found = {env_home, _own_home()}
    found.update(entry.pw_dir for entry in _accounts())
    homes = []
    for text in sorted(p for p in found if p):
        path = Path(os.path.normpath(text))
        if not path.is_absolute() or str(path) in _SYSTEM or str(path).startswith(_BELOW_SYSTEM):
            continue
        if path.is_dir() and not path.is_symlink():
            homes.append(path)
    return tuple(homes)


def _own_home() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_dir
    except KeyError:
        return ""


def _accounts() -> list[pwd.struct_passwd]:
    try:
        return pwd.getpwall()
    except OSError:
        return []


def root_only_paths(keep: Iterable[Path]) -> list[Path]:
    """Files and directories other users may not read, when the sandbox would read them as root (the agent
    runs as root): each is hidden whole. Folders that hold a path in `keep` (the workspace, writable roots)
    are searched into instead of hidden."""
    if os.geteuid() != 0:
        return []
    keep = tuple(keep)
    return [p for p in _ROOT_ONLY.latest()[1] if not any(_under(k, p) for k in keep)]


def root_only_generation() -> int:
    """Which root-only scan root_only_paths answers from now: it changes when a new scan lands."""
    return _ROOT_ONLY.latest()[0] if os.geteuid() == 0 else 0


def prefetch_root_only() -> None:
    """Start the root-only scan in the background (a session calls it first thing, so that the first command
    rarely waits for it)."""
    if os.geteuid() == 0:
        _ROOT_ONLY.latest(wait=False)


class _Rescan:
    """The root-only scan, made in a background thread: the first caller waits for the first scan; later ones
    get the last result at once, and one older than a minute starts a new scan that they use when it lands.
    A command never waits for a rescan (the walk takes 0.1 s to seconds, with a big /opt)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        self._found: tuple[Path, ...] | None = None
        self._taken = 0.0
        self._generation = 0
        self._scanning = False

    def latest(self, *, wait: bool = True) -> tuple[int, tuple[Path, ...]]:
        with self._lock:
            stale = self._found is None or time.monotonic() - self._taken > _CACHE_S
            if stale and not self._scanning:
                self._scanning = True
                threading.Thread(target=self._scan, name="branchwise-root-only-scan", daemon=True).start()
            while wait and self._found is None:
                self._done.wait()
            return self._generation, self._found or ()

    def _scan(self) -> None:
        started = time.monotonic()
        found: list[str] = []
        try:
            found = _root_only_scan()
        finally:
            with self._lock:
                self._found, self._taken = tuple(map(Path, found)), started
                self._generation += 1
                self._scanning = False
                self._done.notify_all()


_ROOT_ONLY = _Rescan()
_FIND_TIMEOUT_S = 30.0


def _root_only_scan() -> list[str]:
    """Every root-only path under _ROOT_ONLY_TOP. By find(1), in a process of its own, when there is one: the
    walk visits thousands of entries, and done here it would hold the interpreter lock the agent's threads (a
    session being set up, a streamed reply) need meanwhile. Else by `_walk`, here. Always in the process's own
    mount namespace: the sandbox spawner's has masks over these very files."""
    _in_process_mount_namespace()
    find = "/usr/bin/find" if Path("/usr/bin/find").exists() else shutil.which("find")
    tops = [top for top in _ROOT_ONLY_TOP if Path(top).is_dir()]
    if find and tops:
        public = [arg for tree in _PUBLIC_TREES for arg in ("-o", "-path", tree)][1:]
        argv = [find, *tops, "-mindepth", "1", "-maxdepth", str(_ROOT_ONLY_DEPTH + 1), "(", *public, ")", "-prune",
                "-o", "-type", "l", "-prune", "-o", "-type", "s", "-prune",  # a link is judged at its target
                "-o", "-type", "d", "!", "-perm", "-005", "-print0", "-prune",  # others may not list or enter it
                "-o", "!", "-type", "d", "!", "-perm", "-004", "-print0"]  # fmt: skip
        try:
            out = subprocess.run(argv, capture_output=True, env={}, timeout=_FIND_TIMEOUT_S, check=False).stdout
        except subprocess.TimeoutExpired as exc:  # a huge /opt: what was found so far, as the walk's budget does
            out = exc.stdout or b""
        except OSError:
            out = None
        if out is not None:
            return [os.fsdecode(path) for path in out.split(b"\0") if path]
    found: list[str] = []
    budget = [_ROOT_ONLY_MAX_ENTRIES]
    for top in _ROOT_ONLY_TOP:
        _walk(top, 0, found, budget)
    return found


def _in_process_mount_namespace() -> None:
    """Move the calling thread into the main thread's mount namespace if it is elsewhere (a thread started by
    the sandbox spawner would be in the spawner's)."""
    if Path("/proc/thread-self/ns/mnt").readlink() == Path("/proc/self/ns/mnt").readlink():
        return
    from branchwise.sandbox.isolation.mountns import join_process_namespace

    join_process_namespace()


def _walk(directory: str, depth: int, found: list[str], budget: list[int]) -> None:
    # Strings, not Paths: this visits thousands of entries, and only the few found become Paths.
    try:
        with os.scandir(directory) as it:
            entries = list(it)
    except OSError:
        return
    for entry in entries:
        budget[0] -= 1
        if budget[0] < 0:
            return
        if entry.path in _PUBLIC_TREES:
            continue
        try:
            mode = entry.stat(follow_symlinks=False).st_mode
        except OSError:
            continue
        if stat.S_ISLNK(mode) or stat.S_ISSOCK(mode):
            continue  # a link is judged at its target; sockets are masked per command
        if stat.S_ISDIR(mode):
            if mode & 0o005 != 0o005:
                found.append(entry.path)  # others may not list or enter it: hide all of it
            elif depth < _ROOT_ONLY_DEPTH:
                _walk(entry.path, depth + 1, found, budget)
        elif not mode & 0o004:
            found.append(entry.path)


def host_unix_sockets() -> list[Path]:
    """Paths of the Unix sockets bound on this machine (as the agent's and init's network namespaces list
    them): connecting to one needs only its path, whatever network namespace the caller is in."""
    paths: set[str] = set()
    for listing in ("/proc/self/net/unix", "/proc/1/net/unix"):
        try:
            text = Path(listing).read_text(errors="replace")
        except OSError:
            continue
        for line in text.splitlines()[1:]:
            fields = line.split(None, 7)
            if len(fields) == 8 and fields[7].startswith("/"):
                paths.add(fields[7])
    sockets = []
    for text in sorted(paths):
        try:
            if stat.S_ISSOCK(os.lstat(text).st_mode):
                sockets.append(Path(text))
        except OSError:
            continue  # gone, or bound with a name that no longer exists
    return sockets


def _under(path: Path, parent: Path) -> bool:
    return path == parent or parent in path.parents
