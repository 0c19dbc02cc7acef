"""Long-term memory on real runs: `branchwise run` with the scripted model on real git repositories, then
reflection over the run's trajectory with shortcut replay in the real sandbox, `branchwise memory list`, and a
second, similar task that retrieves what the first one learned."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bench.sim.memory_rig import replay_tools, run_task
from branchwise.agent.memory.service import LongTermMemory
from branchwise.agent.models.scripted import ScriptedModel, load_script
from branchwise.agent.record.trajectory import read_events
from tests.conftest import PLANNING, finish, write_script

CHECK = "python3 -m unittest discover -s tests -q"
FIXED = "return (ordered[middle - 1] + ordered[middle]) / 2"
BUGGY = "return (ordered[middle] + ordered[middle + 1]) / 2"


@pytest.fixture
def env(clean_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The CLI's environment; in-process code uses the same state directory (the run's snapshots live there)."""
    monkeypatch.setenv("XDG_STATE_HOME", clean_env["XDG_STATE_HOME"])
    return clean_env


def memory_for(repo: Path, env: dict[str, str]) -> LongTermMemory:
    return LongTermMemory.open(repo, env=env)


def demo_run(cli: Any, repo: Path) -> dict[str, Any]:
    res = cli("run", "-f", "task.toml", "-o", "json", cwd=repo, env=PLANNING)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def learn_from(repo: Path, run_id: str, env: dict[str, str]) -> Any:
    events = read_events(repo / ".branchwise" / "runs" / run_id / "events.jsonl")
    memory = memory_for(repo, env)
    try:
        with replay_tools(repo, env=env) as (calls, snapshots, ctx):
            return memory.reflect(events, calls=calls, snapshots=snapshots, ctx=ctx)
    finally:
        memory.close()


def test_a_verified_demo_run_writes_a_tip_and_a_replayed_shortcut_listed_with_provenance(cli, example_repo, env):
    result = demo_run(cli, example_repo)
    written = result["memory"]["written"]  # the run reflected on itself, after its checks passed
    assert {w["kind"] for w in written if w["op"] == "add"} == {"tip", "shortcut"}, written
    assert all(w["status"] == "candidate" for w in written if w["op"] == "add")  # written as candidates first
    events = read_events(example_repo / ".branchwise" / "runs" / result["run_id"] / "events.jsonl")
    assert any(e.type == "memory_written" for e in events)
    listing = cli("memory", "list", "--json", cwd=example_repo)
    assert listing.returncode == 0, listing.stderr
    items = json.loads(listing.stdout)
    (sc,) = [i for i in items if i["kind"] == "shortcut"]
    assert sc["status"] == "active" and sc["validation"]["replay"] == "passed"
    assert all(i["evidence"][0]["run_id"] == result["run_id"] for i in items)
    assert all(i["provenance"]["trust"] == "verified" and not i["untrusted"] for i in items)
    text = cli("memory", "list", cwd=example_repo).stdout
    assert f"reflector/trace {result['run_id']}" in text
    # The replay ran from the start snapshot and put the files back: the fix the run made is still there.
    assert FIXED in (example_repo / "calc" / "stats.py").read_text()


def test_a_run_whose_checks_fail_writes_nothing(cli, example_repo, env, tmp_path):
    script = write_script(tmp_path / "r.yaml", [finish("nothing to do")] * 2)
    res = cli(
        "run",
        "fix it",
        "-m",
        f"scripted:{script}",
        "--check",
        CHECK,
        "-o",
        "json",
        cwd=example_repo,
        env={"BRANCHWISE_LIMITS_MAX_FINISH_REJECTIONS": "1"},
    )
    result = json.loads(res.stdout)
    assert result["status"] == "failed" and result["memory"]["written"] == []
    report = learn_from(example_repo, result["run_id"], env)  # asked again, by hand: still nothing
    assert report.verification == "none" and report.written == []
    assert json.loads(cli("memory", "list", "--json", cwd=example_repo).stdout) == []


def reintroduce_the_bug(repo: Path) -> None:
    stats = repo / "calc" / "stats.py"
    stats.write_text(stats.read_text().replace(FIXED, BUGGY))
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)


def test_a_second_similar_task_retrieves_what_the_first_learned_and_takes_fewer_steps(cli, example_repo, env):
    first = demo_run(cli, example_repo)
    reintroduce_the_bug(example_repo)
    memory = memory_for(example_repo, env)
    try:
        (tool,) = [i.tool_name() for i in memory.store.items(kinds=["shortcut"])]
        model = ScriptedModel(
            load_script(
                write_script(
                    example_repo.parent / "second.yaml",
                    [{"tool_calls": [{"name": tool, "arguments": {}}]}, finish("fixed median() with the shortcut")],
                )
            )
        )
        second = run_task(
            example_repo,
            "median() is wrong again for an even number of values; fix it.",
            [CHECK],
            model,
            memory,
            env=env,
        )
    finally:
        memory.close()
    assert second.finished.status == "completed" and second.finished.steps < first["steps"]
    retrieved = [e for e in second.events if e.type == "memory_retrieved"]
    assert retrieved and any(i["kind"] == "shortcut" for e in retrieved for i in e.items)
    assert any(i["kind"] == "tip" for e in retrieved for i in e.items)
    assert FIXED in (example_repo / "calc" / "stats.py").read_text()
    assert any(f.reason == "helped" for f in second.feedback)


def test_end_to_end_through_the_cli_alone(cli, example_repo, env):
    """The acceptance scenario with nothing but the command line: the run path retrieves and reflects itself."""
    first = demo_run(cli, example_repo)
    listing = json.loads(cli("memory", "list", "--json", cwd=example_repo).stdout)
    assert {i["kind"] for i in listing} == {"tip", "shortcut"}
    assert all(i["evidence"][0]["run_id"] == first["run_id"] for i in listing)
    events = read_events(example_repo / ".branchwise" / "runs" / first["run_id"] / "events.jsonl")
    assert any(e.type == "memory_written" for e in events)
    reintroduce_the_bug(example_repo)
    (tool,) = [i["name"] for i in listing if i["kind"] == "shortcut"]
    script = write_script(
        example_repo.parent / "second.yaml",
        [{"tool_calls": [{"name": f"shortcut_{tool}", "arguments": {}}]}, finish("fixed with the shortcut")],
    )
    res = cli(
        "run",
        "median() is wrong again for an even number of values; fix it.",
        "-m",
        f"scripted:{script}",
        "--check",
        CHECK,
        "--no-plan",
        "-o",
        "json",
        cwd=example_repo,
    )
    second = json.loads(res.stdout)
    assert second["status"] == "completed" and second["steps"] < first["steps"]
    assert second["memory"]["retrieved"] and second["memory"]["used"]
