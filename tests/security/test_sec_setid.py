"""Class 2: nothing the sandbox leaves behind is set-user-id, set-group-id or carries file capabilities,
however it tries (chmod, install, cp -p, tar -p, open with a mode, O_TMPFILE, mknod, mkdir -m, the new
fchmodat2 and openat2 syscalls called directly, setcap). Run as root, where the sandbox's files are root's,
and as an ordinary user."""

from __future__ import annotations

import io
import json
import os
import stat
import tarfile
from pathlib import Path

from branchwise.sandbox.isolation.bwrap import BwrapSandbox
from tests.security.unprivileged import as_nobody, give_to_nobody, needs_root

SYSCALLS = r"""
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD = -100
class OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]
how = OpenHow(os.O_CREAT | os.O_WRONLY, 0o6755, 0)
print("openat2", libc.syscall(437, AT_FDCWD, b"via-openat2", ctypes.byref(how), ctypes.sizeof(how)), ctypes.get_errno())
open("via-fchmodat2", "w").close()
print("fchmodat2", libc.syscall(452, AT_FDCWD, b"via-fchmodat2", 0o6755, 0), ctypes.get_errno())
for name, call in [("open", lambda: os.close(os.open("via-open", os.O_CREAT | os.O_WRONLY, 0o4755))),
                   ("mknod", lambda: os.mknod("via-mknod", 0o102755)),
                   ("tmpfile", lambda: os.close(os.open(".", os.O_TMPFILE | os.O_WRONLY, 0o4755))),
                   ("fchmod", lambda: os.fchmod(os.open("via-open", os.O_RDONLY), 0o4755)),
                   ("xattr", lambda: os.setxattr("via-fchmodat2", "security.capability",
                                                 b"\x01\x00\x00\x02" + b"\xff" * 16))]:
    try:
        call()
    except OSError as exc:
        print(name, exc.errno)
"""

ATTEMPTS = f"""
cp /bin/bash root-shell && chmod 4755 root-shell; chmod u+s,g+s root-shell
install -m 6755 /bin/true installed
cp -p "$(command -v passwd || echo /bin/su)" copied-setuid
mkdir -m 2775 setgid-dir; mkdir plain-dir && chmod g+s plain-dir
tar xpf planted.tar
setcap cap_setuid+ep root-shell 2>/dev/null
python3 - <<'EOF'
{SYSCALLS}
EOF
true
"""


def tar_with_setid_members() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, mode in [("from-tar", 0o4755), ("from-tar-gid", 0o2755)]:
            info = tarfile.TarInfo(name)
            info.mode, info.size = mode, 3
            tar.addfile(info, io.BytesIO(b"#!\n"))
    return buf.getvalue()


def attack(workspace: Path) -> dict[str, object]:
    """Run every attempt in a sandbox over `workspace`; what it left with set-id bits or capabilities."""
    (workspace / "planted.tar").write_bytes(tar_with_setid_members())
    with BwrapSandbox(workspace) as box:
        result = box.run(["bash", "-c", ATTEMPTS], timeout=60)
    offenders = []
    for path in sorted(workspace.rglob("*")):
        st = path.lstat()
        if st.st_mode & (stat.S_ISUID | stat.S_ISGID):
            offenders.append(f"{path.name} {oct(st.st_mode)}")
        try:
            os.getxattr(path, "security.capability", follow_symlinks=False)
            offenders.append(f"{path.name} has file capabilities")
        except OSError:
            pass
    made = sorted(p.name for p in workspace.iterdir())
    return {"offenders": offenders, "made": made, "exit": result.exit_code, "output": result.output[-2000:]}


def check(outcome: dict) -> None:
    assert outcome["offenders"] == [], outcome
    # The attempts ran (the sandbox did create the files, only without the bits).
    assert {"root-shell", "via-fchmodat2", "plain-dir", "from-tar"} <= set(outcome["made"]), outcome


def test_files_left_by_the_sandbox_carry_no_setid_bits_or_capabilities(workspace: Path) -> None:
    check(attack(workspace))


@needs_root
def test_the_same_as_an_ordinary_user(tmp_path: Path) -> None:
    ws = tmp_path / "nobody-ws"
    ws.mkdir()
    give_to_nobody(ws)
    code = f"import json; from pathlib import Path; from tests.security.test_sec_setid import attack; " \
           f"print(json.dumps(attack(Path({str(ws)!r}))))"  # fmt: skip
    done = as_nobody(code)
    assert done.returncode == 0, done.stderr[-2000:]
    check(json.loads(done.stdout.strip().splitlines()[-1]))
