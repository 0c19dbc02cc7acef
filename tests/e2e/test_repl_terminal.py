"""The REPL end to end: the real `branchwise` in a real pseudo-terminal (tmux), typed at like a person would.

It streams a reply from the local OpenAI-compatible server, stops a slow tool call with Ctrl-C and carries on
with a second task, answers an approval yes and then no, and steers a running mcts search with /tree prune.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import BRANCHWISE, finish, make_repo, shell, write_script
from tests.support.openai_server import FakeOpenAI, reply
from tests.support.tmux import Terminal

pytestmark = pytest.mark.slow


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo", {"README.md": "# demo\n", "app.py": "print('hi')\n"})


@pytest.fixture
def terminal(tmp_path, clean_env, repo):
    opened: list[Terminal] = []

    def open_(*args: str, env: dict[str, str] | None = None, width: int = 80, height: int = 30) -> Terminal:
        term = Terminal([str(BRANCHWISE), *args], cwd=repo, env={**clean_env, **(env or {})}, width=width,
                        height=height, socket_dir=tmp_path / f"tmux{len(opened)}")  # fmt: skip
        opened.append(term)
        term.wait_for(r"› ", timeout=30)
        return term

    yield open_
    for term in opened:
        term.close()


def _exit(term: Terminal) -> str:
    term.type("/exit")
    return term.wait_for(r"EXITED=0", timeout=60)


def test_streamed_text_from_the_local_server_appears_as_it_arrives(terminal, repo):
    text = "Reading the app first, then I will say hello from the terminal test."
    with FakeOpenAI() as server:
        server.script(
            reply(
                text,
                tool_calls=[{"name": "shell", "arguments": {"command": "cat app.py"}}],
                stream_chunk=3,
                stream_delay=0.08,
            ),
            reply(tool_calls=[{"name": "finish", "arguments": {"summary": "Said hello."}}]),
            reply(tool_calls=[{"name": "finish", "arguments": {"summary": "Said it again."}}]),
        )
        env = {"BRANCHWISE_LLM_API_BASE": server.base_url, "NO_PROXY": "127.0.0.1,localhost",
               "BRANCHWISE_LLM_RETRY_BACKOFF_S": "0.05"}  # fmt: skip
        term = terminal("-m", "openai/fake-model", env=env)
        term.type("say hello")
        partial = False
        deadline = time.monotonic() + 90  # litellm's import comes first (seconds); then two seconds of stream
        while time.monotonic() < deadline:
            screen = term.screen()
            if "Reading the app" in screen and "terminal test." not in screen:
                partial = True  # a part of the reply is on screen before the rest has arrived
            if "completed" in screen:
                break
            time.sleep(0.05)
        history = term.wait_for(r"completed: Said hello\.", timeout=90)
        assert partial, history
        assert text in history and "print('hi')" in history  # the tool result panel
        assert server.chat_requests[0]["body"].get("stream") is True
        term.type("say it once more")  # the same session: the second task is told about the first
        term.wait_for(r"completed: Said it again\.", timeout=60)
        system = server.chat_requests[-1]["body"]["messages"][0]["content"]
        assert "Earlier in this interactive session" in system and "say hello" in system and "Said hello." in system
        _exit(term)


def test_ctrl_c_stops_a_slow_tool_call_and_the_session_goes_on(terminal, repo, tmp_path):
    script = write_script(tmp_path / "r.yaml", [
        shell("echo started; sleep 120; echo never"),
        shell("echo second-task-ran"),
        finish("Second task done."),
    ])  # fmt: skip
    term = terminal("-m", f"scripted:{script}")
    term.type("run the slow thing")
    term.wait_for(r"running shell: echo started", timeout=60)
    term.key("C-c")
    history = term.wait_for(r"interrupted: interrupted by the user", timeout=30)
    assert "shell · exit 137" in history  # the command was killed (SIGKILL), not waited for
    term.type("now the second task")
    history = term.wait_for(r"completed: Second task done\.", timeout=60)
    assert "second-task-ran" in history
    runs = sorted((repo / ".branchwise" / "runs").iterdir())
    assert len(runs) == 2  # both tasks have their trajectory
    first = [json.loads(line) for line in (runs[0] / "events.jsonl").read_text().splitlines()]
    assert first[-1]["type"] == "run_finished" and first[-1]["status"] == "interrupted"
    _exit(term)


def test_an_ask_is_approved_then_refused_inline(terminal, repo, tmp_path):
    script = write_script(tmp_path / "r.yaml", [
        shell("echo yes-ran > approved.txt"),
        shell("echo no-ran > refused.txt"),
        finish("Asked twice."),
    ])  # fmt: skip
    term = terminal("-m", f"scripted:{script}", env={"BRANCHWISE_POLICY_APPROVAL": "untrusted"})
    term.type("write two files")
    history = term.wait_for(r"approve\? \[y/n/a/e\]", timeout=60)
    assert "echo yes-ran > approved.txt" in history and "rule:" in history
    term.type("y")
    term.wait_for(r"approve\? \[y/n/a/e\]", timeout=60, count=2)
    term.type("n")
    history = term.wait_for(r"completed: Asked twice\.", timeout=60)
    assert "approved" in history and "refused" in history
    assert (repo / "approved.txt").read_text() == "yes-ran\n"
    assert not (repo / "refused.txt").exists()
    _exit(term)


MCTS_ENV = {"BRANCHWISE_SEARCH_MAX_NODES": "4"}


def _mcts_script(tmp_path: Path) -> Path:
    # Root expansion: #1 succeeds at once, #2 takes a while and fails; the search would then expand #1.
    replies = [shell("echo a > a1.txt"), shell("sleep 4; echo b > b1.txt; exit 1")]
    replies += [shell(f"echo c{i} > c{i}.txt") for i in range(8)]
    return write_script(tmp_path / "mcts.yaml", replies)


def _parents(repo: Path, run_dir: Path) -> dict[int, int | None]:
    tree = json.loads((run_dir / "tree.json").read_text())
    return {n["id"]: n["parent"] for n in tree["nodes"]}


def test_tree_prune_steers_a_running_mcts_search(terminal, repo, tmp_path, clean_env):
    # Without steering, the search expands #1 next (the control run, headless, same script).
    control = make_repo(tmp_path / "control", {"README.md": "# demo\n", "app.py": "print('hi')\n"})
    subprocess.run([str(BRANCHWISE), "run", "explore", "-m", f"scripted:{_mcts_script(tmp_path)}", "--search",
                    "mcts"], cwd=control, env={**clean_env, **MCTS_ENV}, capture_output=True, timeout=120)  # fmt: skip
    (run_dir,) = (control / ".branchwise" / "runs").iterdir()
    assert 1 in [p for n, p in _parents(control, run_dir).items() if n > 2]

    term = terminal("-m", f"scripted:{_mcts_script(tmp_path)}", "--search", "mcts", env=MCTS_ENV)
    term.type("explore")
    term.wait_for(r"running shell: sleep 4", timeout=60)  # #1 has run, #2 is running: the search goes on
    term.type("/tree prune 1")
    term.wait_for(r"steering: prune #1", timeout=30)
    term.wait_for(r"search \(mcts\): kept", timeout=90)
    term.type("/tree")
    history = term.wait_for(r"\[pruned\]", timeout=30)
    (run_dir,) = (repo / ".branchwise" / "runs").iterdir()
    parents = _parents(repo, run_dir)
    assert len(parents) > 3 and 1 not in [p for n, p in parents.items() if n > 2], (parents, history)
    _exit(term)


@pytest.mark.parametrize("width", [80, 160])
def test_layout_holds_at_80_and_160_columns(terminal, repo, tmp_path, width):
    script = write_script(tmp_path / "r.yaml", [
        {"content": "Let me look at the app and count its lines.",
         "tool_calls": [{"name": "shell", "arguments": {"command": "cat app.py; seq 1 40 | paste -sd' ' ; seq 1 30"}}]},
        {"tool_calls": [{"name": "str_replace", "arguments": {"path": "app.py", "old_str": "print('hi')",
                                                              "new_str": "print('hello, world')"}}]},
        finish("Greets the whole world now."),
    ])  # fmt: skip
    term = terminal("-m", f"scripted:{script}", width=width, height=40)
    term.type("make app.py greet the world")
    term.wait_for(r"completed: Greets the whole world now\.", timeout=60)
    toolbar = r"step \d+ │ .* tok │ \$0\.0000 │ search none │ idle │ scripted:r.yaml"
    term.wait_for(toolbar, timeout=10)  # the toolbar, on one line, redrawn after the run
    screen = term.screen()
    lines = screen.splitlines()
    assert all(len(line) <= width for line in lines)
    panel_edges = [line for line in lines if line.startswith(("╭", "╰"))]
    assert panel_edges and all(len(line.rstrip()) == width for line in panel_edges)  # panels fill the width, no more
    assert re.search(toolbar, screen)
    if os.environ.get("BRANCHWISE_CAPTURE_DIR"):  # how the README's captures are made
        (Path(os.environ["BRANCHWISE_CAPTURE_DIR"]) / f"repl-{width}.txt").write_text(screen)
    assert (repo / "app.py").read_text() == "print('hello, world')\n"
    term.type("/diff")
    term.wait_for(r"diff --git a/app.py b/app.py", timeout=30)
    term.type("/undo")
    term.wait_for(r"restored the working tree", timeout=30)
    assert (repo / "app.py").read_text() == "print('hi')\n"  # back to before the task
    _exit(term)


def test_sigterm_saves_the_running_task_and_exits_130(terminal, repo, tmp_path):
    script = write_script(tmp_path / "r.yaml", [shell("sleep 120"), finish("never")])
    term = terminal("-m", f"scripted:{script}")
    term.type("wait a long time")
    term.wait_for(r"running shell: sleep 120", timeout=60)
    pids = subprocess.run(["pgrep", "-f", f"scripted:{script}"], capture_output=True, text=True).stdout.split()
    argvs = {p: Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0") for p in pids}
    (main_pid,) = [p for p, argv in argvs.items() if any(a.endswith(b"bin/branchwise") for a in argv[:2])]
    subprocess.run(["kill", "-TERM", main_pid], check=True)
    term.wait_for(r"EXITED=130", timeout=60)
    (run_dir,) = (repo / ".branchwise" / "runs").iterdir()
    last = json.loads((run_dir / "events.jsonl").read_text().splitlines()[-1])
    assert last["type"] == "run_finished" and last["status"] == "interrupted"


def test_bare_branchwise_without_a_terminal_runs_the_task_from_stdin(cli, repo, tmp_path):
    script = write_script(tmp_path / "r.yaml", [shell("echo from-stdin-task"), finish("Ran headless.")])
    res = cli("-m", f"scripted:{script}", cwd=repo, input="echo something\n")
    assert res.returncode == 0, res.stderr
    assert "status: completed" in res.stdout and "Ran headless." in res.stdout
    res = cli(cwd=repo, input="")
    assert res.returncode == 2 and "no task given" in res.stderr


def test_esc_stops_the_step_too(terminal, repo, tmp_path):
    script = write_script(tmp_path / "r.yaml", [shell("sleep 120"), finish("never")])
    term = terminal("-m", f"scripted:{script}")
    term.type("wait")
    term.wait_for(r"running shell: sleep 120", timeout=60)
    term.key("Escape")
    term.wait_for(r"interrupted: interrupted by the user", timeout=30)
    _exit(term)


def test_plan_is_shown_edited_and_accepted_before_it_runs(terminal, repo, tmp_path):
    plan = {"tool_calls": [{"name": "submit_plan", "arguments": {"subgoals": [
        {"title": "Look around", "done_question": "Is it clear?"}, {"title": "Write notes"}]}}]}  # fmt: skip
    script = write_script(tmp_path / "r.yaml", [plan, shell("echo planned > notes.txt")])
    term = terminal("-m", f"scripted:{script}", env={"BRANCHWISE_PLANNER_ENABLED": "true"})
    term.type("/plan take notes")
    term.wait_for(r"run this plan\? \[y/e/n\]", timeout=60)
    assert not (repo / "notes.txt").exists()  # nothing ran yet
    term.type("e")
    term.wait_for(r"edit the plan › Look around", timeout=30)
    for key in ("C-a", "C-k", "BSpace", "C-a", "C-k"):  # emacs keys: empty the second line, join, empty the first
        term.key(key)
    term.type("Write notes.txt :: test -f notes.txt")
    history = term.wait_for(r"completed: completed the plan: Write notes\.txt", timeout=60)
    assert "✓ check test -f notes.txt" in history and "Look around" not in history.split("edit the plan")[1]
    assert (repo / "notes.txt").read_text() == "planned\n"
    _exit(term)


def test_resume_continues_from_a_saved_run(cli, terminal, repo, tmp_path):
    script = write_script(tmp_path / "r.yaml", [finish("First part done.")])
    res = cli("run", "do the first part", "-m", f"scripted:{script}", cwd=repo)
    assert res.returncode == 0, res.stderr
    term = terminal("--resume", "-m", f"scripted:{script}")
    term.wait_for(r"resumed run \S+: do the first part → completed: First part\s+done\.", timeout=30)
    term.type("/resume no-such-run")
    term.wait_for(r"error: no single run matches\s+.no-such-run.", timeout=30)
    _exit(term)
