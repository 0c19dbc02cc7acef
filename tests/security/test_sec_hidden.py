"""What the sandbox must not reach on the host beyond the default masks: Unix sockets wherever they are bound
(class 7), home directories wherever they are (class 8), files only root may read and the workspace's disk
(class 18)."""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from branchwise.sandbox.isolation.bwrap import BwrapSandbox
from branchwise.sandbox.settings import LimitSettings, SandboxSettings
from tests.security.sbx_helpers import py, sh
from tests.security.unprivileged import ROOT, as_nobody, give_to_nobody, needs_root

CONNECT = (
    "import socket, sys\nfor a in sys.argv[1:]:\n s = socket.socket(socket.AF_UNIX)\n"
    " try:\n  s.connect(a); print('connected')\n except OSError as e: print(e.errno)"
)


class UnixServers:
    """Listening Unix sockets on the host at the given paths, counting the connections they accept."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths, self.accepted = paths, []
        self.servers = []
        for path in paths:
            srv = socket.socket(socket.AF_UNIX)
            srv.bind(str(path))
            srv.listen()
            srv.settimeout(0.1)
            self.servers.append(srv)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            for srv in self.servers:
                try:
                    conn, _ = srv.accept()
                except (TimeoutError, OSError):
                    continue
                self.accepted.append(srv.getsockname())
                conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for srv in self.servers:
            srv.close()


@pytest.fixture
def outside_dir() -> Iterator[Path]:
    """A folder outside every default mask (not under /tmp, /run, /home, /root): /var/lib as root."""
    if os.geteuid() != 0:
        pytest.skip("creating a folder under /var/lib needs root")
    path = Path("/var/lib") / f"branchwise-test-{secrets.token_hex(4)}"
    path.mkdir(mode=0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize("network", ["off", "proxy"])
def test_host_unix_sockets_are_unreachable_wherever_they_are_bound(workspace: Path, tmp_path: Path,
                                                                   network: str, request) -> None:  # fmt: skip
    roots = tmp_path / "writable"
    roots.mkdir()
    (workspace / "sub").mkdir()
    places = [workspace / "db.sock", workspace / "sub" / "x.sock", roots / "w.sock"]
    if os.geteuid() == 0:
        places.append(request.getfixturevalue("outside_dir") / "mysqld.sock")
    servers = UnixServers(places)
    try:
        with BwrapSandbox(workspace, SandboxSettings(network=network, writable_roots=[roots],
                                                     allowed_domains=["localhost"])) as box:  # fmt: skip
            result = box.run(["/usr/bin/python3", "-c", CONNECT, *map(str, places)])
        assert "connected" not in result.output.split(), (places, result.output)
        for path in places:  # the servers do answer on the host
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(str(path))
        time.sleep(0.3)
        assert len(servers.accepted) == len(places)
    finally:
        servers.close()


def test_a_socket_in_the_workspace_made_by_the_sandbox_still_works(box: BwrapSandbox) -> None:
    # The masks are the host's sockets only: a server a command starts in the workspace is the session's own.
    code = ("import socket, os\ns = socket.socket(socket.AF_UNIX); s.bind('own.sock'); s.listen()\n"
            "c = socket.socket(socket.AF_UNIX); c.connect('own.sock'); print('ok')")  # fmt: skip
    assert py(box, code).output.strip() == "ok"


# -- class 8: home directories wherever they are ------------------------------------------------------------


@needs_root
def test_the_users_home_is_hidden_wherever_it_is(workspace: Path, outside_dir: Path, monkeypatch) -> None:
    home = outside_dir / "ci-home"
    for name in (".npmrc", ".pypirc", ".bash_history", ".cargo/credentials.toml", ".config/gh/hosts.yml"):
        (home / name).parent.mkdir(parents=True, exist_ok=True)
        (home / name).write_text("token = ghp_secret\n")
    monkeypatch.setenv("HOME", str(home))
    with BwrapSandbox(workspace) as box:
        result = sh(box, f"ls -A {home}; cat {home}/.npmrc {home}/.pypirc 2>&1 | head -2; echo end")
    assert "ghp_secret" not in result.output and result.output.split()[0].startswith("cat:"), result.output


def test_every_accounts_home_outside_the_system_folders_is_hidden(workspace: Path) -> None:
    from branchwise.sandbox.isolation.hidden import home_directories

    homes = [h for h in home_directories() if not str(h).startswith(("/home", "/root", "/tmp"))]
    listing = "; ".join(f"echo {h}: $(ls -A {h} 2>/dev/null | wc -l)" for h in homes) or "true"
    with BwrapSandbox(workspace) as box:
        result = sh(box, listing)
    for home in homes:
        assert f"{home}: 0" in result.output, (home, result.output)
    names = {e.pw_dir for e in pwd.getpwall()}
    assert "/usr/sbin" not in map(str, home_directories()) and ("/usr/sbin" in names or not names)


# -- class 18: root-only files and a disk quota ---------------------------------------------------------------


ROOT_ONLY_PROBE = """
import json, sys
from pathlib import Path
from branchwise.sandbox.isolation.bwrap import BwrapSandbox
ws, paths = Path(sys.argv[1]), sys.argv[2:]
with BwrapSandbox(ws) as box:
    out = {p: box.run(["/bin/cat", p]).output for p in paths}
print(json.dumps(out))
"""


@needs_root
def test_files_only_root_may_read_stay_hidden_from_a_sandbox_started_by_root(workspace: Path,
                                                                           outside_dir: Path) -> None:  # fmt: skip
    planted = {outside_dir / "service.key": 0o600, outside_dir / "grouped.conf": 0o640}
    (outside_dir / "private").mkdir(mode=0o700)
    planted[outside_dir / "private" / "db.cnf"] = 0o644
    for path, mode in planted.items():
        path.write_text("password=hunter2\n")
        path.chmod(mode)
    (workspace / "own.secret").write_text("the project's own file\n")
    (workspace / "own.secret").chmod(0o600)
    listed = [
        p for p in ("/var/cache/debconf/passwords.dat", "/etc/security/opasswd", "/etc/shadow") if Path(p).exists()
    ]
    paths = [*map(str, planted), *listed, str(workspace / "own.secret")]
    # A fresh process: the scan for root-only files runs once a minute per process.
    done = subprocess.run([sys.executable, "-c", ROOT_ONLY_PROBE, str(workspace), *paths], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    for path in paths[:-1]:
        assert "hunter2" not in out[path] and "root:" not in out[path] and "$" not in out[path][:40], (path, out)
    assert out[str(workspace / "own.secret")] == "the project's own file\n"


def test_a_hidden_host_file_stays_hidden_when_the_host_replaces_it(workspace: Path, outside_dir: Path) -> None:
    # As root the masks over host files live in the spawner's own mount namespace, made once: one the host
    # replaces (rename over it, as editors and passwd do) or deletes and recreates must be covered again.
    secret = outside_dir / "token"
    secret.write_text("hunter2 v1\n")
    with BwrapSandbox(workspace, SandboxSettings(deny_read=[str(secret)])) as box:
        assert "hunter2" not in sh(box, f"cat {secret}").output
        fresh = outside_dir / "token.new"
        fresh.write_text("hunter2 v2\n")
        fresh.rename(secret)
        assert "hunter2" not in sh(box, f"cat {secret}").output
        secret.unlink()
        gone = sh(box, f"cat {secret}; echo ran")
        assert "ran" in gone.output, gone.output  # a mask over a path that is gone fails no command
        secret.write_text("hunter2 v3\n")
        again = sh(box, f"cat {secret}; umount {secret}; cat {secret}")
        assert "hunter2" not in again.output, again.output  # nor can the sandbox take the mask off
        # Nothing of it shows in the host's own mount table, and the host reads the file as it is.
        assert str(outside_dir) not in Path("/proc/self/mountinfo").read_text()
        assert secret.read_text() == "hunter2 v3\n"


@needs_root
def test_the_root_only_scan_sees_the_host_from_any_thread(workspace: Path, outside_dir: Path) -> None:
    # The find(1) scan and the Python walk agree; and a scan started from the sandbox's spawner thread, whose mount
    # namespace has /dev/null over each root-only file (world-readable there), still finds them.
    from branchwise.sandbox.isolation import hidden

    (outside_dir / "service.key").write_text("hunter2\n")
    (outside_dir / "service.key").chmod(0o600)
    walked: list[str] = []
    for top in hidden._ROOT_ONLY_TOP:
        hidden._walk(top, 0, walked, [hidden._ROOT_ONLY_MAX_ENTRIES])
    here = hidden._root_only_scan()
    assert sorted(here) == sorted(walked) and str(outside_dir / "service.key") in here
    if Path("/etc/shadow").exists():
        assert "/etc/shadow" in here  # and masked in the spawner's namespace from the first command on
    with BwrapSandbox(workspace) as box:
        assert sh(box, "true").ok
        there = box._spawner.submit(hidden._root_only_scan).result()
    assert sorted(there) == sorted(here)


def test_the_workspace_disk_quota_stops_a_command_that_fills_it(workspace: Path) -> None:
    limits = LimitSettings(workspace_mb=40)
    with BwrapSandbox(workspace, SandboxSettings(limits=limits)) as box:
        # 120 MB in 2 MB files, slowly enough that the watchdog stops it part way
        slow = sh(box, "for i in $(seq 1 60); do head -c 2M /dev/zero > fill$i; sleep 0.05; done; echo finished",
                  timeout=60)  # fmt: skip
        fast = []
        for _ in range(3):  # as fast as it can, perhaps between two checks, and again after the quota was reached
            sh(box, "rm -f fill*", timeout=60)
            fast.append(sh(box, "for i in $(seq 1 60); do head -c 2M /dev/zero > fill$i; done; echo done", timeout=60))
        one_file = sh(box, "head -c 60M /dev/zero > big; echo $?", timeout=60)
        cleaned = sh(box, "rm -f fill* big && echo cleaned", timeout=60)
    assert "finished" not in slow.output and "sandbox.limits.workspace_mb = 40" in slow.output, slow.output
    assert slow.exit_code != 0
    for filled in fast:
        assert "sandbox.limits.workspace_mb = 40" in filled.output and filled.exit_code != 0, filled.output
    assert one_file.exit_code != 0 or one_file.output.split()[0] != "0"  # no single file past the quota either
    assert cleaned.output.strip() == "cleaned"  # deleting is never stopped


@needs_root
def test_the_same_hiding_as_an_ordinary_user(tmp_path: Path) -> None:
    ws = tmp_path / "nobody-ws"
    ws.mkdir()
    give_to_nobody(ws)
    code = ("import json, sys; from pathlib import Path; from branchwise.sandbox.isolation.bwrap import BwrapSandbox\n"
            f"ws = Path({str(ws)!r})\n"
            "import socket; s = socket.socket(socket.AF_UNIX); s.bind(str(ws / 'host.sock')); s.listen()\n"
            "with BwrapSandbox(ws) as box:\n"
            f"    r = box.run(['/usr/bin/python3', '-c', {CONNECT!r}, str(ws / 'host.sock')])\n"
            "    h = box.run(['/bin/sh', '-c', 'find /root /home -mindepth 1 | wc -l'])\n"
            "print(json.dumps([r.output, h.output]))")  # fmt: skip
    done = as_nobody(code)
    assert done.returncode == 0, done.stderr[-2000:]
    connect, listing = json.loads(done.stdout.strip().splitlines()[-1])
    assert "connected" not in connect, connect
    assert listing.strip() == "0", listing


@needs_root
def test_parts_of_proc_a_container_hides_stay_hidden(workspace: Path) -> None:
    # Docker and Podman hide parts of /proc with mounts over them. The spawner's own mount namespace keeps those:
    # without them the kernel would let bwrap mount a whole new /proc with everything in it.
    code = ("import sys; from pathlib import Path; from branchwise.sandbox.isolation.bwrap import BwrapSandbox\n"
            f"box = BwrapSandbox(Path({str(workspace)!r}))\n"
            "print(box.run(['/bin/sh', '-c', 'head -c 300 /proc/timer_list']).output)\nbox.close()")  # fmt: skip
    script = f'mount --bind /dev/null /proc/timer_list && exec {sys.executable} -c "$0"'
    done = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script, code],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Timer List" not in done.stdout, done.stdout
