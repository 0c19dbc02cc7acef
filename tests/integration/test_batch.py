"""`branchwise batch` end to end on a real local Ray (inside a loopback-only network namespace), with scripted
models on real temporary repositories: results, exit codes, isolation of the copies, budgets, retries and
resuming after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BRANCHWISE, finish, git, make_repo, shell, write_script
from tests.support.netns import loopback_only, require_netns

# Ray starts in tens of seconds beside other heavy tests: the commands' own 300 s limits fire before pytest's.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(330)]


@pytest.fixture
def bw(clean_env):
    require_netns()

    def run(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(loopback_only([str(BRANCHWISE), *args]), cwd=cwd, env=clean_env, capture_output=True,
                              text=True, timeout=timeout)  # fmt: skip

    return run


def task_file(path: Path, prompt: str, replies: list[dict[str, Any]], *, extra: str = "") -> Path:
    """A task file beside its scripted replies, on the shared repository."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_script(path.with_suffix(".yaml"), replies)
    path.write_text(f'prompt = "{prompt}"\nrepo = "../repo"\nmodel = "scripted:{path.with_suffix(".yaml").name}"\n'
                    f"{extra}\n")  # fmt: skip
    return path


def results(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def test_mixed_batch_gives_each_task_its_result_and_exit_1(bw, tmp_path):
    repo = make_repo(tmp_path / "repo", {"README.md": "hello\n"})
    tasks = tmp_path / "tasks"
    task_file(tasks / "pass.toml", "write pass", [shell("echo pass > out.txt"), finish()],
              extra='checks = ["grep -q pass out.txt"]')  # fmt: skip
    task_file(tasks / "fail.toml", "write x", [shell("echo x > out.txt"), finish()],
              extra='checks = ["grep -q pass out.txt"]')  # fmt: skip
    task_file(tasks / "budget.toml", "loop", [shell("true"), shell("true"), shell("true"), finish()],
              extra="[limits]\nmax_steps = 1")  # fmt: skip
    (tasks / "malformed.toml").write_text('prompt = "unclosed\n')
    task_file(tasks / "recipe.toml", "say {{ word }}", [finish()], extra='[params.word]\ntype = "string"')
    out = tmp_path / "out"
    res = bw("batch", str(tasks), "--out", str(out), "-j", "2", cwd=tmp_path)
    assert res.returncode == 1, res.stdout + res.stderr
    by_id = {r["task_id"]: r for r in results(out)}
    assert set(by_id) == {"pass", "fail", "budget", "malformed", "recipe"}
    assert by_id["pass"]["passed"] and by_id["pass"]["exit_code"] == 0 and by_id["pass"]["branch"]
    assert not by_id["fail"]["passed"] and by_id["fail"]["exit_code"] == 1
    assert by_id["budget"]["status"] == "budget_exceeded" and by_id["budget"]["exit_code"] == 3
    assert by_id["budget"]["limit"] == "steps"
    assert by_id["malformed"]["status"] == "invalid" and by_id["malformed"]["exit_code"] == 2
    assert "parameter 'word' is required" in by_id["recipe"]["error"]
    for r in by_id.values():  # the final JSON of each run, plus the batch's fields
        if r["status"] != "invalid":
            assert {"run_id", "model", "strategy", "steps", "cost_usd", "checks"} <= set(r)
            assert r["strategy"] == "none" and r["model"].startswith("scripted:")
    # The summary table names every task; the report is written.
    lines = res.stdout.splitlines()
    assert lines[0].split()[:3] == ["task", "status", "passed"], res.stdout
    assert "5 tasks: 1 passed, 4 failed" in res.stdout
    assert "malformed" in (out / "report.html").read_text()
    # The user's repository was never touched: no out.txt, no new branch, a clean status.
    assert not (repo / "out.txt").exists()
    assert git(repo, "status", "--porcelain") == "" and git(repo, "branch", "--list").split() == ["*", "main"]


def test_tasks_on_one_repository_never_see_each_other(bw, tmp_path):
    repo = make_repo(tmp_path / "repo", {"README.md": "hello\n"})
    lines = []
    for me, other in (("a", "b"), ("b", "a")):
        replies = tmp_path / f"{me}.yaml"
        write_script(replies, [shell(f"echo {me} > {me}.txt && sleep 2"), finish()])
        lines.append({"id": f"writes-{me}", "prompt": f"write {me}", "repo": "repo", "model": f"scripted:{replies}",
                      "checks": [f"test -f {me}.txt && test ! -f {other}.txt"]})  # fmt: skip
    (tmp_path / "tasks.jsonl").write_text("".join(json.dumps(obj) + "\n" for obj in lines))
    out = tmp_path / "out"
    res = bw("batch", "tasks.jsonl", "--out", str(out), "-j", "2", "-o", "json", cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    summary = json.loads(res.stdout.splitlines()[-1])
    assert summary["passed"] == 2 and summary["exit_code"] == 0 and summary["pass_rate"] == 1.0
    rows = results(out)
    assert len({r["workdir"] for r in rows}) == 2
    # They really ran at the same time (each sleeps 2 s): their runs overlap.
    assert sorted(r["task_id"] for r in rows) == ["writes-a", "writes-b"]
    assert not (repo / "a.txt").exists() and not (repo / "b.txt").exists()


def test_batch_budget_stops_starting_tasks_and_exits_3(bw, tmp_path):
    make_repo(tmp_path / "repo", {"README.md": "hello\n"})
    for name in ("t1", "t2", "t3"):
        task_file(tmp_path / "tasks" / f"{name}.toml", name, [{**finish(), "cost_usd": 0.5}])
    out = tmp_path / "out"
    res = bw("batch", "tasks", "--out", str(out), "-j", "1", "--max-cost", "0.9", cwd=tmp_path)
    assert res.returncode == 3, res.stdout + res.stderr
    rows = results(out)
    assert [r["task_id"] for r in rows] == ["t1", "t2"] and all(r["cost_usd"] == 0.5 for r in rows)
    assert "1 not run (batch cost)" in res.stdout
    # A rerun with a bigger budget runs only the task that is missing.
    res = bw("batch", "tasks", "--out", str(out), "-j", "1", "--max-cost", "2", cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert [r["task_id"] for r in results(out)] == ["t1", "t2", "t3"]


def test_environment_failures_are_retried_then_exit_4(bw, tmp_path):
    make_repo(tmp_path / "repo", {"README.md": "hello\n"})
    task_file(tmp_path / "tasks" / "gone.toml", "x", [finish()], extra='ref = "no-such-commit"')
    out = tmp_path / "out"
    res = bw("batch", "tasks", "--out", str(out), "--retries", "2", cwd=tmp_path)
    assert res.returncode == 4, res.stdout + res.stderr
    (row,) = results(out)
    assert row["exit_code"] == 4 and row["attempt"] == 3 and "no-such-commit" in row["error"]
    assert res.stderr.count("environment failure, trying again") == 2


def _alive(pattern: str) -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if pattern in cmdline:
                found.append(cmdline)
    return found


def test_sigkilled_batch_rerun_finishes_only_the_missing_tasks(bw, clean_env, tmp_path):
    require_netns()
    make_repo(tmp_path / "repo", {"README.md": "hello\n"})
    names = [f"t{i}" for i in range(4)]
    for name in names:
        task_file(tmp_path / "tasks" / f"{name}.toml", name, [shell("sleep 1.5"), finish()])
    out = tmp_path / "out"
    args = loopback_only([str(BRANCHWISE), "batch", "tasks", "--out", str(out), "-j", "1"])
    proc = subprocess.Popen(args, cwd=tmp_path, env=clean_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if (out / "results.jsonl").is_file() and len(results(out)) >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    first = results(out)
    assert 2 <= len(first) < 4, first
    # Everything the batch started dies with it: Ray's processes and the runs they were running.
    deadline = time.monotonic() + 60
    while _alive(str(out)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(str(out)), _alive(str(out))
    res = bw("batch", "tasks", "--out", str(out), "-j", "1", cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    rows = results(out)
    assert rows[: len(first)] == first  # nothing lost or rewritten
    assert sorted(r["task_id"] for r in rows) == names  # each task exactly once: only the missing ones ran
    assert res.stderr.count("(finished earlier)") == len(first)


def test_ctrl_c_stops_cleanly_and_keeps_what_finished(bw, clean_env, tmp_path):
    require_netns()
    make_repo(tmp_path / "repo", {"README.md": "hello\n"})
    names = [f"t{i}" for i in range(3)]
    for name in names:
        task_file(tmp_path / "tasks" / f"{name}.toml", name, [shell("sleep 2"), finish()])
    out = tmp_path / "out"
    args = loopback_only([str(BRANCHWISE), "batch", "tasks", "--out", str(out), "-j", "1"])
    proc = subprocess.Popen(args, cwd=tmp_path, env=clean_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not ((out / "results.jsonl").is_file() and results(out)):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stdout + stderr
    finished = [r["task_id"] for r in results(out) if r["exit_code"] == 0]
    assert 1 <= len(finished) < 3
    assert "not run (batch stopped)" in stdout and "Traceback" not in stderr
    deadline = time.monotonic() + 60
    while _alive(str(out)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(str(out))  # the running task's run was stopped with the batch
    res = bw("batch", "tasks", "--out", str(out), "-j", "1", cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stderr.count("(finished earlier)") == len(finished)


CHROMIUM_FLAGS = ["--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]


def test_report_renders_in_headless_chromium(tmp_path):
    """The HTML report of a mixed outcome, opened in Debian's Chromium: every task is a row, failures are red."""
    sync_api = pytest.importorskip("playwright.sync_api")
    from branchwise.agent.batch.runner import BatchOutcome
    from branchwise.agent.batch.tasks import Task
    from branchwise.cli.render.batch_report import render_outcome

    rows = {
        "ok": {"task_id": "ok", "status": "completed", "exit_code": 0, "passed": True, "cost_usd": 0.01,
               "duration_s": 1.5, "model": "m", "strategy": "mcts", "checks": [{"passed": True}], "steps": 3},
        "bad": {"task_id": "bad", "status": "failed", "exit_code": 1, "passed": False, "cost_usd": 0.02,
                "duration_s": 2.5, "model": "m", "strategy": "mcts", "error": "<b>checks</b> failed", "steps": 4},
    }  # fmt: skip
    tasks = [Task(id=t, source=tmp_path) for t in ("ok", "bad", "later")]
    outcome = BatchOutcome(results=rows, not_run=["later"], budget="cost", wall_s=4.0)
    code = render_outcome(outcome, tasks, tmp_path, title="mixed", output_format="json")
    assert code == 3
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_FLAGS)
        page = browser.new_page()
        page.goto((tmp_path / "report.html").as_uri())
        assert page.locator("tr.pass").count() == 1 and page.locator("tr.fail").count() == 1
        assert page.locator("tr.skip td.st").inner_text() == "not run"
        colour = page.locator("tr.fail td.st").evaluate("e => getComputedStyle(e).color")
        assert colour == "rgb(207, 34, 46)"
        assert page.locator(".err").inner_text() == "<b>checks</b> failed"  # shown as text, not markup
        assert "50%" in page.locator("table").first.inner_text()  # pass@1 of mcts on m: 1 of 2
        page.screenshot(path=str(os.environ.get("REPORT_SCREENSHOT", tmp_path / "report.png")), full_page=True)
        browser.close()


# `ray start --block` keeps the cluster's processes as its children and stops them when it is terminated, so the
# test ends exactly the processes it started (`ray stop` would kill every Ray process of the machine by name).
CLUSTER = """
export RAY_USAGE_STATS_ENABLED=0 RAY_AUTH_MODE=token
ray get-auth-token --generate > /dev/null 2>&1
ray start --head --block --node-ip-address 127.0.0.1 --port 6391 --num-cpus 2 --include-dashboard false \\
  --temp-dir "$RAY_TEMP" --disable-usage-stats > "$RAY_TEMP/start.log" 2>&1 &
head=$!
for _ in $(seq 300); do grep -q "Ray runtime started" "$RAY_TEMP/start.log" && break; sleep 0.2; done
"$BRANCHWISE" batch tasks --out out --address 127.0.0.1:6391 -j 2 -o json
code=$?
ray status --address 127.0.0.1:6391 > /dev/null 2>&1
echo $? > alive
kill -TERM "$head"
wait "$head"
exit $code
"""


def test_batch_runs_on_an_existing_cluster_by_its_address(clean_env, tmp_path):
    """A Ray cluster started apart (`ray start --head`), reached with --address; it is left running by the batch."""
    require_netns()
    make_repo(tmp_path / "repo", {"README.md": "hello\n"})
    for name in ("c1", "c2"):
        task_file(tmp_path / "tasks" / f"{name}.toml", name, [shell(f"echo {name} > out.txt"), finish()],
                  extra=f'checks = ["grep -q {name} out.txt"]')  # fmt: skip
    (tmp_path / "cluster.sh").write_text(CLUSTER)
    temp = Path(f"/tmp/bw-rc-{os.getpid()}")
    temp.mkdir(exist_ok=True)
    env = {**clean_env, "BRANCHWISE": str(BRANCHWISE), "RAY_TEMP": str(temp),
           "PATH": f"{BRANCHWISE.parent}:{clean_env['PATH']}"}  # fmt: skip
    try:
        res = subprocess.run(loopback_only(["bash", str(tmp_path / "cluster.sh")]), cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=300)  # fmt: skip
        log = (temp / "start.log").read_text(errors="replace") if (temp / "start.log").is_file() else ""
    finally:
        subprocess.run(["rm", "-rf", str(temp)], check=False)
    assert res.returncode == 0, res.stdout + res.stderr + log
    assert (tmp_path / "alive").read_text().strip() == "0"  # the batch disconnected; the cluster is still up
    summary = json.loads(res.stdout.splitlines()[-1])
    assert summary["passed"] == 2 and summary["tasks"] == 2, (tmp_path / "out" / "results.jsonl").read_text()
