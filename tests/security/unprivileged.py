"""Running part of a security test as an ordinary user, for the classes whose outcome depends on who starts
the sandbox: as root its uid is root's for the files it writes, as anyone else it is that user's."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import branchwise.sandbox

NOBODY = 65534
ROOT = Path(branchwise.sandbox.__file__).resolve().parent.parent  # the checkout: `branchwise` maps to it

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="dropping to another uid needs root")


def give_to_nobody(path: Path) -> None:
    """Hand a test's directory to uid 65534 (and open its parents for it to reach)."""
    for root, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            os.lchown(Path(root) / name, NOBODY, NOBODY)
    os.chown(path, NOBODY, NOBODY)
    for parent in path.parents:
        if parent.stat().st_mode & 0o001 == 0:
            parent.chmod(parent.stat().st_mode | 0o001)


def as_nobody(code: str, *, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run Python `code` as uid and gid 65534 with branchwise and the tests importable.

    The suite's own interpreter may live under /root (pyenv), out of reach; Debian's python3 of the same
    minor version reads the same site-packages."""
    python = shutil.which("python3", path="/usr/bin:/bin")
    version = subprocess.run([python or "python3", "-c", "import sys; print(sys.version_info[:2])"],
                             capture_output=True, text=True).stdout.strip()  # fmt: skip
    if python is None or version != str(tuple(sys.version_info[:2])):
        pytest.skip(f"no system python3 {sys.version_info[:2]} to run as an ordinary user")
    shim = Path(tempfile.mkdtemp(prefix="bw-nobody-"))
    shim.chmod(0o755)
    (shim / "branchwise").symlink_to(ROOT)
    path = os.pathsep.join([str(shim), str(ROOT), *site.getsitepackages()])
    env = {"PATH": "/usr/bin:/bin", "HOME": str(shim), "PYTHONPATH": path, "LANG": "C.UTF-8"}
    try:
        return subprocess.run(
            ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", python, "-c", code],
            env=env, capture_output=True, text=True, timeout=timeout, cwd=shim,
        )  # fmt: skip
    finally:
        shutil.rmtree(shim, ignore_errors=True)
