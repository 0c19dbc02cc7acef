"""BwrapSandbox as the agent uses it: the Sandbox protocol end to end, on a real bwrap."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from branchwise.sandbox.base import BackgroundError, SandboxError
from branchwise.sandbox.isolation.bwrap import BwrapSandbox


@pytest.fixture
def box(tmp_path: Path) -> BwrapSandbox:
    (tmp_path / "ws" / "sub").mkdir(parents=True)
    sandbox = BwrapSandbox(tmp_path / "ws")
    yield sandbox  # type: ignore[misc]
    sandbox.close()


def test_exit_codes_stdin_env_and_cwd(box: BwrapSandbox) -> None:
    assert box.run(["sh", "-c", "exit 3"]).exit_code == 3
    assert box.run(["cat"], stdin=b"from stdin").output == "from stdin"
    assert box.run(["sh", "-c", "echo $GREETING"], env={"GREETING": "hi"}).output == "hi\n"
    assert box.run(["pwd"], cwd=box.workspace / "sub").output == f"{box.workspace}/sub\n"
    assert box.run(["pwd"], cwd=Path("sub")).output == f"{box.workspace}/sub\n"
    assert box.run(["sh", "-c", "echo $HOME $TMPDIR; echo $PATH"]).output == (
        "/tmp/home /tmp\n/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
    )
    missing = box.run(["no-such-command-xyz"])
    assert missing.exit_code != 0
    assert "no-such-command-xyz" in missing.output


def test_invalid_input_is_an_error_not_a_result(box: BwrapSandbox) -> None:
    with pytest.raises(SandboxError):
        box.run([])
    with pytest.raises(SandboxError):
        box.run(["echo", "a\0b"])
    with pytest.raises(SandboxError):
        box.run(["true"], env={"A=B": "x"})


def test_concurrent_commands(box: BwrapSandbox) -> None:
    outputs: list[str] = []
    threads = [threading.Thread(target=lambda i=i: outputs.append(box.run(["echo", str(i)]).output)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outputs) == [f"{i}\n" for i in range(8)]


def test_background_lifecycle(box: BwrapSandbox) -> None:
    proc = box.start_background(["sh", "-c", "echo started; sleep 30"], cwd=box.workspace / "sub")
    assert proc.argv == ["sh", "-c", "echo started; sleep 30"]
    assert proc.cwd == box.workspace / "sub"
    assert [p.id for p in box.background()] == [proc.id]
    deadline = time.monotonic() + 5
    while "started" not in proc.log_path.read_text() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.log_path.read_text() == "started\n"
    box.stop_background(proc.id)
    assert box.background() == []
    with pytest.raises(BackgroundError):
        box.stop_background("bg-nope")


def test_closed_sandbox_refuses_work(tmp_path: Path) -> None:
    box = BwrapSandbox(tmp_path)
    box.close()
    box.close()  # idempotent
    with pytest.raises(SandboxError, match="closed"):
        box.run(["true"])
