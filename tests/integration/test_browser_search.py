"""A search over a browser task backtracks by replay: a restored node gets a fresh page rebuilt from its
ancestors' browser actions (and the dev server they used, started again), and the run ends on the right page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from branchwise.agent.config.layers import load_config
from branchwise.agent.models.scripted import ScriptedModel, load_script
from branchwise.agent.run.session import Session
from branchwise.agent.run.wiring import make_sandbox_for
from branchwise.cli.commands.tree import load_trees, render_html
from tests.conftest import finish, make_repo, write_script
from tests.support.browser_pages import PAGES, PORT

pytestmark = pytest.mark.slow
INDEX = f"http://127.0.0.1:{PORT}/index.html"

CONFIG = """
checks = ["grep -q 'Page B' answer.txt"]
[planner]
enabled = false
[search]
strategy = "best-of-n"
attempts = 2
min_verified = 2
judge = "off"
check_after_edits = false
[memory]
enabled = false
[limits]
max_finish_rejections = 0
"""


def step(*calls: dict) -> dict:
    return {"tool_calls": list(calls)}


def tool(name: str, **args: object) -> dict:
    return {"name": name, "arguments": args}


SERVER = tool("shell", command=f"python3 -m http.server {PORT} --directory site", background=True)


def test_best_of_n_backtracks_by_replay_and_ends_on_the_right_page(tmp_path: Path, clean_env, monkeypatch) -> None:
    for key in [k for k in __import__("os").environ if k.startswith("BRANCHWISE_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", clean_env["HOME"])
    monkeypatch.setenv("XDG_CONFIG_HOME", clean_env["XDG_CONFIG_HOME"])
    repo = make_repo(
        tmp_path / "repo", {f"site/{n}": t for n, t in PAGES.items()} | {".branchwise/config.toml": CONFIG}
    )
    replies = [
        # Attempt 1: the right page (B), noted in answer.txt: verified.
        step(SERVER, tool("browser_navigate", url=INDEX)),
        step(tool("browser_click", ref="e8")),  # the "next page" link
        step(tool("create", path="answer.txt", file_text="Page B\n")),
        finish("on page B"),
        # Attempt 2, from the start again (a fresh page): stays on the index and fails the check.
        step(SERVER, tool("browser_navigate", url=INDEX + "?again")),
        step(tool("browser_wait_for", text="Hello")),
        finish("on the index"),
    ]
    script = write_script(tmp_path / "r.yaml", replies)
    loaded = load_config(repo, env={})
    sandbox = make_sandbox_for(loaded.config, repo)
    model = ScriptedModel(load_script(script))
    with Session(loaded=loaded, workspace=repo, sandbox=sandbox, model=model) as session:
        finished = session.run(f"find page B from {INDEX} and note its heading in answer.txt")
        assert session.browser is not None
        url = session.browser.page.url
        replays, restarts = session.outside.replays, session.outside.restarts
        run_dir = session.run_dir
    assert finished.status == "completed", finished.summary
    assert finished.summary == "on page B"
    assert url == f"http://127.0.0.1:{PORT}/b.html"  # the chosen node's page, rebuilt by replay at the end
    assert (repo / "answer.txt").read_text() == "Page B\n"
    assert replays >= 2  # back to the root for attempt 2 (a fresh page), then back to attempt 1's page
    assert restarts >= 1  # attempt 1's dev server, started again for the replay

    # The tree view shows each browser step's page: its URL and an embedded thumbnail.
    page = render_html(load_trees(run_dir), "r", run_dir)
    on_b = page.split(f"page: http://127.0.0.1:{PORT}/b.html", 1)[1].split("</details>", 1)[0]
    assert f'<img class=page alt="http://127.0.0.1:{PORT}/b.html" src="data:image/jpeg;base64,' in on_b
    assert len(re.findall(r"src=\"data:image/jpeg;base64,", page)) >= 2  # attempt 1's index and page B at least
