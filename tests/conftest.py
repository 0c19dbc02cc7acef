"""Shared fixtures: real temporary git repositories, the real CLI in a subprocess, scripted reply files."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "calc"
BRANCHWISE = Path(sys.executable).with_name("branchwise")


def git(repo: Path, *args: str) -> str:
    out = subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True)
    return out.stdout


def make_repo(path: Path, files: dict[str, str] | None = None, *, source: Path | None = None) -> Path:
    """A real git repository with one commit, from a source tree and/or a dict of files."""
    if source is not None:
        shutil.copytree(source, path)
    path.mkdir(parents=True, exist_ok=True)
    for name, text in (files or {}).items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-q", "-m", "init")
    return path


def write_script(path: Path, replies: list[dict[str, Any]]) -> Path:
    """A scripted-model reply file in the public YAML format."""
    path.write_text(yaml.safe_dump({"replies": replies}, sort_keys=False))
    return path


def shell(command: str) -> dict[str, Any]:
    return {"tool_calls": [{"name": "shell", "arguments": {"command": command}}]}


def finish(summary: str = "done") -> dict[str, Any]:
    return {"tool_calls": [{"name": "finish", "arguments": {"summary": summary}}]}


@pytest.fixture
def example_repo(tmp_path: Path) -> Path:
    """A copy of examples/calc as its own git repository (its median() test fails)."""
    return make_repo(tmp_path / "calc", source=EXAMPLE)


@pytest.fixture
def clean_env(tmp_path: Path) -> dict[str, str]:
    """An environment with no user config, no BRANCHWISE_* settings and no API keys."""
    home = tmp_path / "home"
    home.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("BRANCHWISE_") and not k.endswith("_API_KEY") and k not in ("XDG_CONFIG_HOME",)
    }
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), XDG_STATE_HOME=str(home / ".state"))
    env["XDG_DATA_HOME"] = str(home / ".state" / "data")  # the memory database, kept with the state
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    # Most tests drive the executor with short scripts; planner tests and the demo turn planning back on.
    env["BRANCHWISE_PLANNER_ENABLED"] = "false"
    # Learning from a verified run asks the model to reflect unless told otherwise; tests that count model calls
    # must not see those (memory tests choose their reflector themselves).
    env["BRANCHWISE_MEMORY_REFLECTOR"] = "trace"
    return env


# The default path users get: plan first (the fixture below turns it off for short executor scripts).
PLANNING = {"BRANCHWISE_PLANNER_ENABLED": "true"}

CliRunner = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def cli(clean_env: dict[str, str]) -> CliRunner:
    """Run the installed `branchwise` command in a subprocess (the real entry point, real exit codes)."""

    def run(
        *args: str,
        cwd: Path,
        env: dict[str, str] | None = None,
        timeout: float = 120,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        full_env = {**clean_env, **(env or {})}
        return subprocess.run(
            [str(BRANCHWISE), *args],
            cwd=cwd,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
        )

    return run


# Figures of the security harness (tests/security/harness.py), recorded with record_property("harness", {...}).
# Collected here, on the controller, so that they are printed under xdist too.
_HARNESS_FIGURES: list[dict[str, Any]] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call":
        _HARNESS_FIGURES.extend(value for name, value in report.user_properties if name == "harness")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _HARNESS_FIGURES:
        terminalreporter.section("security harness: benign utility, utility under attack, attack success rate")
        for figures in sorted(_HARNESS_FIGURES, key=lambda f: str(f["case"])):
            rest = ", ".join(f"{k} {v}" for k, v in figures.items() if k != "case")
            terminalreporter.write_line(f"{figures['case']}: {rest}")
