"""examples/webapp end to end: the scripted model serves the app in the sandbox, looks at it in the sandboxed
browser with the network off, fixes the count, and the browser check (headless Chromium) passes."""

from __future__ import annotations

import json

import pytest

from tests.conftest import ROOT, make_repo

pytestmark = [pytest.mark.slow, pytest.mark.timeout(330)]  # the run's own 300 s limit fires first


def test_webapp_example_runs_end_to_end_with_network_off(cli, tmp_path):
    repo = make_repo(tmp_path / "webapp", source=ROOT / "examples" / "webapp")
    res = cli("run", "-f", "task.toml", "-o", "stream-json", cwd=repo, timeout=300)
    events = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    assert res.returncode == 0, res.stderr[-2000:]
    started = next(e for e in events if e["type"] == "run_started")
    assert started["sandbox"]["kind"] == "bwrap" and started["sandbox"]["network"] == "off"
    results = [e for e in events if e["type"] == "tool_result"]
    pages = [e["output"] for e in results if e["name"] == "browser_navigate"]
    assert "status" in pages[0] and ": 2 items" in pages[0]  # the bug, as only the rendered page shows it
    assert ": 3 items" in pages[-1]  # the fix, seen in the browser
    clicked = next(e["output"] for e in results if e["name"] == "browser_click")
    assert ": 3 items" in clicked and "apples" in clicked  # four items, still counted one short
    end = events[-1]
    assert end["status"] == "completed" and end["changed_files"] == ["app/app.js"]
    assert all(c["passed"] for c in end["checks"]) and end["checks"][0]["command"] == "sh check.sh"
    assert "items.length - 1" not in (repo / "app" / "app.js").read_text()


def test_the_browser_check_fails_on_the_unfixed_app(tmp_path):
    repo = make_repo(tmp_path / "webapp", source=ROOT / "examples" / "webapp")
    from branchwise.sandbox.isolation.bwrap import BwrapSandbox

    with BwrapSandbox(repo) as sandbox:
        result = sandbox.run(["sh", "check.sh"], timeout=120)
    assert result.exit_code == 1 and "2 items" in result.output, result.output
