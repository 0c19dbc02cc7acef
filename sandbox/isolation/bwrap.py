"""BwrapSandbox: every command in bubblewrap, with namespaces, seccomp, session cgroups and a private network.

Everything per session (seccomp program, cgroups, network namespace, keeper, proxy) is set up once
in the constructor. Commands are forked by one spawner thread that has joined the session's cgroups
and network namespace, so each is born inside them; it is launched as `sh -c <set rlimits> -- bwrap
<flags> -- argv` from an empty environment (bwrap's own pid 1 keeps the environment it is started
with, and the sandbox can read it from /proc/1/environ). A command costs one sh and one bwrap. As root
the spawner thread also has a mount namespace of its own, where host files are masked once (mountns.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from branchwise.sandbox.base import BackgroundProcess, ExecResult, OutputLimits, SandboxError, SandboxUnavailable
from branchwise.sandbox.isolation.cgroups import SessionCgroups
from branchwise.sandbox.isolation.hidden import prefetch_root_only
from branchwise.sandbox.isolation.host import BackgroundSet, HostSandbox
from branchwise.sandbox.isolation.keeper import SessionKeeper
from branchwise.sandbox.isolation.launch import EXTERNAL_SECCOMP_FD, WAITER_ARGV, Launch, launcher_argv
from branchwise.sandbox.isolation.layout import (
    HOME_IN_SANDBOX,
    MASKED_DIRS,
    SANDBOX_PATH,
    CommandMasks,
    base_mount_args,
    command_mask_args,
    namespace_args,
    protected_args,
    remove_mount_points,
    writable_args,
)
from branchwise.sandbox.isolation.mountns import SpawnerMounts, SpawnerWork
from branchwise.sandbox.isolation.process import Detach, run_capped
from branchwise.sandbox.isolation.proxy import PROXY_PORT, EgressDecision, EgressProxy, bridge_script
from branchwise.sandbox.isolation.quota import WorkspaceQuota
from branchwise.sandbox.isolation.seccomp import SocketPolicy, filter_bpf
from branchwise.sandbox.settings import SandboxSettings

from branchwise.sandbox.base import Sandbox  # isort: skip  (the Protocol, for make_sandbox's return type)

_BRIDGE_IN_SANDBOX = "/run/branchwise/bridge.py"
_SOCKET_IN_SANDBOX = "/run/branchwise/egress.sock"
_BRIDGE_START_S = 5.0


class _SpawnFailed(Exception):
    """The launcher could not be forked; reported as a command result, like a shell would."""


_NO_BWRAP = "bubblewrap is not installed ({} not found): apt-get install bubblewrap"


@functools.cache
def check_bwrap(bwrap: str) -> str:
    """The bwrap path, once it has been seen to create a user namespace; else SandboxUnavailable."""
    path = shutil.which(bwrap)
    if path is None:
        raise SandboxUnavailable(_NO_BWRAP.format(bwrap))
    probe = [path, *namespace_args(unshare_net=True), "--ro-bind", "/", "/", "--", "/bin/true"]
    try:
        done = subprocess.run(probe, env={}, capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SandboxUnavailable(f"bubblewrap does not start ({exc})") from None
    if done.returncode != 0:
        why = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no error message"]
        raise SandboxUnavailable(
            f"bubblewrap cannot create an unprivileged user namespace ({why[0]}): "
            "enable them: sysctl -w user.max_user_namespaces=15000 kernel.unprivileged_userns_clone=1"
        )
    return path


class BwrapSandbox:
    """Runs each command in a bubblewrap sandbox; background processes live until close()."""

    def __init__(
        self,
        workspace: Path,
        settings: SandboxSettings | None = None,
        *,
        on_egress: Callable[[EgressDecision], None] | None = None,
    ) -> None:
        self.settings = settings = settings or SandboxSettings()
        if settings.mode == "full-access":
            raise SandboxError("full-access mode runs without a sandbox: use make_sandbox()")
        self.workspace = workspace.resolve()
        if not self.workspace.is_dir():
            raise SandboxError(f"workspace {workspace} is not a directory")
        for root in settings.writable_roots:
            if not root.is_dir():
                raise SandboxError(f"writable root {root} is not a directory")
        if shutil.which(settings.bwrap) is None:  # at once; the probe of what it can do runs during the set-up
            raise SandboxUnavailable(_NO_BWRAP.format(settings.bwrap))
        self.session_dir = Path(tempfile.mkdtemp(prefix="branchwise-sbx-"))
        self.degraded: list[str] = []
        self._closed = False
        self._lock = threading.Lock()
        self._active = 0
        self._leftovers: set[Path] = set()
        self._held: set[Path] = set()  # mount points and stand-ins that stay until the session ends
        # Commands are started from one long-lived thread: it joins the session's cgroups and network,
        # and bwrap's --die-with-parent fires when the *thread* that forked bwrap exits.
        self._spawner = ThreadPoolExecutor(1, thread_name_prefix="branchwise-sandbox")
        self._mounts = SpawnerMounts()  # as root, the spawner masks host files in a mount namespace of its own
        self._bg = BackgroundSet(self.session_dir)
        self._infra = BackgroundSet(self.session_dir)
        self._launches: dict[str, Launch] = {}
        self._cgroups: SessionCgroups | None = None
        self._keeper: SessionKeeper | None = None
        self._quota: WorkspaceQuota | None = None
        self._running: set[Launch] = set()  # commands being run now, for the quota to stop
        self.proxy: EgressProxy | None = None
        try:
            self._setup(on_egress)
        except BaseException:
            self.close()
            raise

    def _setup(self, on_egress: Callable[[EgressDecision], None] | None) -> None:
        # The slow steps wait on processes or on the kernel, not on this interpreter, so they overlap: the bwrap
        # probe and the cgroup join (a wait for the kernel) in the spawner thread, the keeper's start in its own
        # process, the root-only scan in find(1), while this thread compiles the seccomp filter.
        s = self.settings
        prefetch_root_only()  # the first command's masks need it
        probe = self._spawner.submit(check_bwrap, s.bwrap)  # before the thread joins the cgroups
        self._cgroups = SessionCgroups(pids_max=s.limits.pids_max, memory_mb=s.limits.memory_mb)
        self.degraded += self._cgroups.degraded
        procs = [d / "cgroup.procs" for d in self._cgroups.dirs]
        keeper_error: SandboxUnavailable | None = None
        try:
            self._keeper = SessionKeeper(
                private_net=s.network != "on", cgroup_procs=procs, session_dir=self.session_dir
            )
        except SandboxUnavailable as exc:
            keeper_error = exc
        joined = self._spawner.submit(self._join_spawner)
        self._bpf = filter_bpf(self._socket_policy())
        self._bwrap = probe.result()  # a bwrap that cannot sandbox is the first error to report
        if self._keeper is not None:
            try:
                self._keeper.wait_ready()
            except SandboxUnavailable as exc:
                keeper_error, self._keeper = exc, None
        joined.result()
        if keeper_error is not None:
            if s.network == "proxy":
                raise keeper_error
            lost = "no cleanup if the agent is killed"
            lost += "" if s.network == "on" else ", and every command gets its own loopback"
            self.degraded.append(f"no session keeper ({keeper_error}): {lost}")
        elif self._keeper is not None:
            self._spawner.submit(self._keeper.join_thread).result()
        shared_net = self._keeper is not None and self._keeper.private_net
        hidden = [] if any(self.session_dir.is_relative_to(d) for d in MASKED_DIRS) else [self.session_dir]
        base = base_mount_args(s, self.workspace, hidden=hidden)
        self._masked = frozenset(base.masked)
        self._head = [*namespace_args(unshare_net=s.network != "on" and not shared_net), *base.head]
        # Forked by the spawner, a command binds the /dev it made (see mountns.py); others get bwrap's own.
        self._spawner_head = self._head
        if self._mounts.dev is not None:
            at = self._head.index("--dev")
            self._spawner_head = [*self._head[:at], "--dev-bind", str(self._mounts.dev), "/dev", *self._head[at + 2 :]]
        self._static_files, self._early, self._late = base.files, base.early, base.late
        self._writable = writable_args(self.workspace, s)
        empty = self.session_dir / "empty"  # what a missing protected path reads as (see protected_args)
        empty.touch(0o444)
        self._empty = str(empty)
        self._env = {"PATH": SANDBOX_PATH, "HOME": HOME_IN_SANDBOX, "TMPDIR": "/tmp", "LANG": "C.UTF-8"}
        prefix = self._keeper.prefix if self._keeper else []
        limits = s.limits
        if limits.workspace_mb is not None:  # no single file may be larger than the whole quota
            limits = limits.model_copy(update={"file_size_mb": min(limits.file_size_mb, limits.workspace_mb)})
            roots = [self.workspace, *s.writable_roots] if s.mode != "read-only" else []
            self._quota = WorkspaceQuota(roots, limits.workspace_mb, self._over_quota) if roots else None
        self._launcher = launcher_argv(
            limits, cgroup_procs=self._cgroups.launcher_procs, prefix=prefix, bwrap=self._bwrap
        )
        # Command lines started by someone else (command_line) join the cgroups and the network themselves.
        seccomp_file = self.session_dir / "seccomp.bpf"
        seccomp_file.write_bytes(self._bpf)
        self._external_launcher = launcher_argv(
            s.limits,
            cgroup_procs=[d / "cgroup.procs" for d in self._cgroups.dirs],
            prefix=self._keeper.external_prefix() if self._keeper else [],
            bwrap=self._bwrap,
            seccomp_file=seccomp_file,
        )
        if s.network == "proxy":
            self._start_proxy(on_egress)

    def _join_spawner(self) -> None:
        """Runs in the spawner thread: join the session's cgroups and make its mount namespace, once, for every
        command (the network comes once the keeper is ready)."""
        if self._cgroups is not None:
            self._cgroups.join_thread()
        if self._mounts.enter() is None:  # when it cannot (not root), bwrap masks the files and makes /dev itself
            dev = self.session_dir / "dev"
            dev.mkdir()
            self._mounts.prepare_dev(dev)

    def _spawn(self, masks: SpawnerWork | None, start: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Runs in the spawner thread: its namespace's masks and protections as `masks` says, then `start`."""
        if masks is not None:
            if masks.binds is not None:
                self._mounts.ensure_binds(masks.binds)
            self._mounts.ensure(masks.files)  # after: nothing bound may cover a mask
        return start(*args, **kwargs)

    def _popen(self, masks: SpawnerWork | None, *args: Any, **kwargs: Any) -> subprocess.Popen[Any]:
        return self._spawner.submit(self._spawn, masks, subprocess.Popen, *args, **kwargs).result()

    def _socket_policy(self) -> SocketPolicy:
        if self.settings.network == "on":
            return "any"
        if self.settings.network == "proxy" or self.settings.loopback:
            return "loopback"
        return "unix"

    def _start_proxy(self, on_egress: Callable[[EgressDecision], None] | None) -> None:
        sock = self.session_dir / "egress.sock"
        self.proxy = EgressProxy(
            sock,
            allowed=self.settings.allowed_domains,
            denied=self.settings.denied_domains,
            log_path=self.session_dir / "egress.jsonl",
            on_decision=on_egress,
        )
        script = self.session_dir / "bridge.py"
        script.write_text(bridge_script())
        # Only the bridge's own sandbox contains the proxy socket; commands reach it over the loopback.
        extra = ["--ro-bind", str(script), _BRIDGE_IN_SANDBOX, "--ro-bind", str(sock), _SOCKET_IN_SANDBOX]
        argv = ["/usr/bin/python3", "-I", "-S", _BRIDGE_IN_SANDBOX, _SOCKET_IN_SANDBOX, str(PROXY_PORT)]
        bridge = self._start(self._infra, argv, Path("/"), None, extra=extra, protect=False)
        deadline = time.monotonic() + _BRIDGE_START_S
        while b"ready" not in bridge.log_path.read_bytes():
            if time.monotonic() > deadline or not self._infra.running():
                log = bridge.log_path.read_text(errors="replace").strip()
                raise SandboxUnavailable(f"the network proxy bridge did not start: {log[-300:]}")
            time.sleep(0.005)
        url = f"http://127.0.0.1:{PROXY_PORT}"
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
            self._env[name] = url
        # The session's own loopback servers are reached directly, not through the host proxy.
        self._env["NO_PROXY"] = self._env["no_proxy"] = "localhost,127.0.0.1,::1"

    @contextlib.contextmanager
    def _command(
        self,
        argv: Sequence[str],
        cwd: Path | None,
        env: Mapping[str, str] | None,
        *,
        extra: Sequence[str] = (),
        protect: bool = True,
        status: bool = False,
    ) -> Iterator[tuple[list[str], Launch, SpawnerWork | None]]:
        """The full command line for one command, its Launch, and the host files the spawner masks for it."""
        with self._lock:
            if self._closed:
                raise SandboxError("the sandbox session is closed")
            self._active += 1
        created: list[Path] = []
        try:
            launch = Launch(self._bpf, status=status)
            if status:
                argv = [*WAITER_ARGV, str(launch.status_w), *argv]
            flags, created, masks = self._flags(argv, cwd, env, extra=extra, protect=protect, in_spawner=True)
            yield [*self._launcher, *flags, *launch.bwrap_args, "--", *argv], launch, masks
        finally:
            with self._lock:
                self._active -= 1
                self._leftovers.update(created)
            self._remove_leftovers_if_idle()

    def _flags(
        self,
        argv: Sequence[str],
        cwd: Path | None,
        env: Mapping[str, str] | None,
        *,
        extra: Sequence[str] = (),
        protect: bool = True,
        read_only: bool = False,
        in_spawner: bool = False,
    ) -> tuple[list[str], list[Path], SpawnerWork | None]:
        """bwrap's flags for one command (all but the per-launch fds), the mount-point files bwrap will create
        for missing protected paths, and what the spawner's namespace must hold for it (`in_spawner`: the
        command is forked there; else, or without that namespace, None, and bwrap makes every mount itself).
        `read_only`: the workspace and writable roots are bound read-only (no protected-path mounts needed, so
        none are left behind)."""
        if not argv or any("\0" in arg for arg in argv):
            raise SandboxError("empty command, or an argument with a NUL byte")
        created: list[Path] = []
        masks = CommandMasks(inside=[], late=[], files=[])
        if protect:
            masks = command_mask_args(self.settings, self.workspace, masked=self._masked)
        files = [*self._static_files, *masks.files]
        in_namespace = in_spawner and self._mounts.active
        file_flags = [] if in_namespace else [a for p in files for a in ("--ro-bind", "/dev/null", str(p))]
        binds = masks.inside
        if read_only:
            binds = [*_read_only_binds(self._writable, self.workspace, self.settings.writable_roots), *binds]
        ns_binds: list[tuple[str, str, bool]] | None = None  # None: leave the namespace's protections as they are
        if not read_only and protect and self.settings.mode == "workspace-write":
            protected, created, stand_ins = protected_args(
                self.workspace, self.settings.protected, empty=self._empty, writable=self.settings.writable_roots
            )
            if in_namespace:  # paths that exist (and stand-ins) are protected there; bwrap binds over missing ones
                protected, ns_binds = _namespace_binds(protected)
            binds += protected
            # The stand-ins inside .git mean what absence means: they stay until the session ends, which saves
            # making and removing them around every command.
            self._held.update(stand_ins)
        env_args: list[str] = []
        for key, value in {**self._env, **(env or {})}.items():
            if not key or "=" in key or "\0" in key + value:
                raise SandboxError(f"invalid environment variable {key!r}")
            env_args += ["--setenv", key, value]
        workdir = self.workspace / cwd if cwd is not None else self.workspace  # relative: to the workspace
        head = self._spawner_head if in_spawner else self._head
        mounts = [*head, *file_flags, *self._early, *self._writable, *binds, *masks.late, *self._late]
        flags = [*mounts, *extra, "--clearenv", *env_args, "--chdir", str(workdir)]
        return flags, created, SpawnerWork([str(p) for p in files], ns_binds) if in_namespace else None

    def _remove_leftovers_if_idle(self) -> None:
        # Unlinking a mount point detaches it in every sandbox still using it, so wait for none.
        with self._lock:
            if self._active == 0 and self._leftovers and not self._bg.running():
                remove_mount_points(sorted(self._leftovers))
                self._leftovers.clear()

    def _start(self, into: BackgroundSet, argv: Sequence[str], cwd: Path | None,
               env: Mapping[str, str] | None, **opts: Any) -> BackgroundProcess:  # fmt: skip
        with self._command(argv, cwd, env, **opts) as (full, launch, masks):
            try:
                start = self._spawner.submit(
                    self._spawn, masks, into.start, full, cwd=Path("/"), env={}, pass_fds=launch.pass_fds
                )
                record = start.result()
            except BaseException:
                launch.close()
                raise
            launch.started()
        self._launches[record.id] = launch
        record.argv, record.cwd = list(argv), self.workspace / cwd if cwd is not None else self.workspace
        return record

    def run(
        self,
        argv: Sequence[str],
        *,
        cwd: Path | None = None,
        timeout: float = 120.0,
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
        limits: OutputLimits | None = None,
        keep_background: bool = False,
    ) -> ExecResult:
        result = self._run_once(argv, cwd, timeout, env, stdin, limits, keep_background)
        if _mount_point_vanished(result):  # a masked host path went away while bwrap started: masks anew
            result = self._run_once(argv, cwd, timeout, env, stdin, limits, keep_background)
        return result

    def _run_once(self, argv: Sequence[str], cwd: Path | None, timeout: float, env: Mapping[str, str] | None,
                  stdin: bytes | None, limits: OutputLimits | None, keep_background: bool) -> ExecResult:  # fmt: skip
        if self._quota:
            self._quota.settle()
        with self._command(argv, cwd, env, status=keep_background) as (full, launch, masks):
            trips = self._quota.trips if self._quota else 0
            self._running.add(launch)
            detach = None
            if keep_background:
                workdir = self.workspace / cwd if cwd is not None else self.workspace
                detach = Detach(adopt=lambda proc, _code: self._adopt(proc, launch, argv, workdir),
                                status_fd=launch.status_r)  # fmt: skip
            try:
                popen = functools.partial(self._started, launch, masks)
                result = run_capped(
                    full, cwd=Path("/"), env={}, timeout=timeout, stdin=stdin, limits=limits,
                    pass_fds=launch.pass_fds, popen=popen, detach=detach,
                )  # fmt: skip
                if result.killed:
                    launch.kill_tree()
                if self._quota:
                    self._quota.check()  # a command that ended between two of the watchdog's checks
                    if self._quota.trips > trips:
                        result = self._quota_result(result)
                return result
            except _SpawnFailed as exc:
                return ExecResult(exit_code=126, output=f"branchwise sandbox: cannot start the command: {exc}")
            finally:
                self._running.discard(launch)
                if not any(held is launch for held in self._launches.values()):
                    launch.close()  # an adopted command keeps its launch: stopping it kills its tree

    def _adopt(self, proc: subprocess.Popen[Any], launch: Launch, argv: Sequence[str], cwd: Path) -> BackgroundProcess:
        """A command left processes running: they become a background process of the session."""
        record = self._bg.adopt(proc, argv, cwd)
        self._launches[record.id] = launch
        return record

    def command_line(
        self,
        argv: Sequence[str],
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        nested_sandbox: bool = False,
        writable: Sequence[Path] = (),
    ) -> list[str]:
        """See `Sandbox.command_line`. `nested_sandbox` lets the program make namespaces of its own (Chromium's
        renderer sandbox needs user namespaces): no --disable-userns, and a seccomp filter without the
        namespace rules; every other flag, mask and limit is the same. `writable` host directories are bound
        read-write at their own paths (the browser's download directory)."""
        extra = [arg for path in writable for arg in ("--bind", str(path), str(path))]
        with self._lock:
            if self._closed:
                raise SandboxError("the sandbox session is closed")
            flags, created, _ = self._flags(argv, cwd, env, extra=extra, read_only=nested_sandbox)
            # Its mount points must stay while it may run: they go when the session closes.
            self._held.update(created)
        launcher = self._external_launcher
        if nested_sandbox:
            flags = _nested_sandbox_flags(flags)
            launcher = self._nested_launcher()
        return [*launcher, *flags, "--seccomp", str(EXTERNAL_SECCOMP_FD), "--", *argv]

    def _nested_launcher(self) -> list[str]:
        seccomp_file = self.session_dir / "seccomp-nested.bpf"
        if not seccomp_file.exists():
            seccomp_file.write_bytes(filter_bpf(self._socket_policy(), nested_sandbox=True))
        assert self._cgroups is not None
        return launcher_argv(
            self.settings.limits,
            cgroup_procs=[d / "cgroup.procs" for d in self._cgroups.dirs],
            prefix=self._keeper.external_prefix() if self._keeper else [],
            bwrap=self._bwrap,
            seccomp_file=seccomp_file,
        )

    def _started(self, launch: Launch, masks: SpawnerWork | None, *args: Any, **kwargs: Any) -> subprocess.Popen[Any]:
        try:
            proc = self._popen(masks, *args, **kwargs)
        except (OSError, SandboxError) as exc:  # fork failed (the session's pids limit is exhausted), or a mask
            raise _SpawnFailed(str(exc)) from exc
        launch.started()
        return proc

    def _over_quota(self) -> None:
        """The workspace outgrew sandbox.limits.workspace_mb: stop every process of the session."""
        if self._cgroups is not None:
            self._cgroups.kill_all()
        for launch in [*self._running, *self._launches.values()]:
            launch.kill_tree(wait_s=0.5)

    def _quota_result(self, result: ExecResult) -> ExecResult:
        assert self._quota is not None
        quota = self.settings.limits.workspace_mb
        note = (f"\n[branchwise sandbox: stopped: the workspace grew by {self._quota.gained_mb():.0f} MB, past "
                f"sandbox.limits.workspace_mb = {quota}; delete files to make room]")  # fmt: skip
        return dataclasses.replace(result, output=result.output + note, exit_code=result.exit_code or 137)

    def start_background(
        self, argv: Sequence[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None
    ) -> BackgroundProcess:
        return self._start(self._bg, argv, cwd, env)

    def background(self) -> list[BackgroundProcess]:
        return self._bg.running()

    def stop_background(self, process_id: str | None = None) -> None:
        ids = [p.id for p in self._bg.all()] if process_id is None else [process_id]
        for pid in ids:
            if (launch := self._launches.pop(pid, None)) is not None:
                launch.kill_tree()
                launch.close()
        self._bg.stop(process_id)
        self._remove_leftovers_if_idle()

    def processes(self) -> list[int]:
        """Host pids of every process still running in this session (empty without a cgroup)."""
        return sorted(self._cgroups.pids()) if self._cgroups else []

    def limit_events(self) -> dict[str, int]:
        """How often the session's limits bit: forks refused at pids_max, OOM kills."""
        return self._cgroups.events() if self._cgroups else {}

    def egress_log(self) -> list[EgressDecision]:
        """Every decision the network proxy made in this session (empty unless network = proxy)."""
        return self.proxy.decisions() if self.proxy else []

    def describe(self) -> dict[str, object]:
        s = self.settings
        shared = self._keeper is not None and self._keeper.private_net
        facts: dict[str, object] = {
            "kind": "bwrap",
            "isolated": True,
            "mode": s.mode,
            "network": s.network,
            "loopback": "host" if s.network == "on" else ("session" if shared else "per-command"),
            "workspace": str(self.workspace),
            "limits": s.limits.model_dump(),
            "degraded": list(self.degraded),
        }
        if s.network == "proxy":
            facts["allowed_domains"] = list(s.allowed_domains)
        return facts

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.stop_background()
        self._infra.stop()
        for launch in self._launches.values():
            launch.close()
        # The spawner thread sits in the session's cgroups; they can only go once it has exited.
        self._spawner.shutdown(wait=True)
        if self._cgroups is not None:
            self._cgroups.close()
        if self._keeper is not None:
            self._keeper.close()
        if self.proxy is not None:
            self.proxy.close()
        if self._quota is not None:
            self._quota.close()
        remove_mount_points(sorted(self._leftovers | self._held))
        self._leftovers.clear()
        self._held.clear()
        shutil.rmtree(self.session_dir, ignore_errors=True)

    def __enter__(self) -> BwrapSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _namespace_binds(protected: list[str]) -> tuple[list[str], list[tuple[str, str, bool]]]:
    """Split protected_args' flags: (what bwrap still binds: /dev/null or the empty file over a missing path,
    whose mount point only bwrap makes and removes), [(source, target, read-only)] of every path bound onto
    itself, which the spawner's namespace holds for the session."""
    kept: list[str] = []
    own: list[tuple[str, str, bool]] = []
    for i in range(0, len(protected), 3):
        op, source, target = protected[i : i + 3]
        if source == target:
            own.append((source, target, op != "--bind"))
        else:
            kept += [op, source, target]
    return kept, own


def _read_only_binds(writable: list[str], workspace: Path, roots: list[Path]) -> list[str]:
    """Binds that cover the writable workspace and roots (bound by `writable`) with read-only ones."""
    if "--bind" not in writable:
        return []
    return [arg for path in (workspace, *roots) for arg in ("--ro-bind", str(path), str(path))]


# Chromium's sandbox writes the uid_map of the namespaces it creates, which a read-only /proc refuses; the
# host-global parts of /proc (what a root-mapped sandbox could otherwise write) stay read-only one by one.
_PROC_READ_ONLY = ("/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus", "/proc/fs")


def _nested_sandbox_flags(flags: list[str]) -> list[str]:
    """bwrap flags that let the program create namespaces of its own, all else kept."""
    out: list[str] = []
    i = 0
    while i < len(flags):
        if flags[i] == "--disable-userns":
            i += 1
            continue
        if flags[i : i + 2] == ["--remount-ro", "/proc"]:
            for path in _PROC_READ_ONLY:
                out += ["--ro-bind-try", path, path]
            i += 2
            continue
        out.append(flags[i])
        i += 1
    return out


_VANISHED = re.compile(r"bwrap: Can't (?:mkdir parents for|create file at|mkdir) (/[^:\n]+)")


def _mount_point_vanished(result: ExecResult) -> bool:
    return result.exit_code == 1 and mount_point_vanished(result.output)


def mount_point_vanished(output: str) -> bool:
    """bwrap (its error first in `output`) refused to start because a path it was to mount over (a socket, a
    root-only file) is gone: starting again, with masks made anew, is the answer."""
    match = _VANISHED.match(output)
    return match is not None and not os.path.lexists(match.group(1))


def make_sandbox(settings: SandboxSettings, workspace: Path, *, allow_unsandboxed: bool = False) -> Sandbox:
    """The sandbox `settings` ask for; raises SandboxUnavailable rather than silently running unsandboxed.

    `allow_unsandboxed` is the user's explicit opt-out (`--dangerously-full-access`): it is required
    for full-access mode, and it lets a machine without working bubblewrap fall back to the host.
    """
    if settings.mode == "full-access":
        if not allow_unsandboxed:
            raise SandboxUnavailable(
                "full-access mode runs commands without a sandbox: pass --dangerously-full-access to confirm"
            )
        return HostSandbox(workspace)
    try:
        return BwrapSandbox(workspace, settings)
    except SandboxUnavailable:
        if allow_unsandboxed:
            return HostSandbox(workspace)
        raise
