"""How to reach one server: the command line that starts it (inside the session's sandbox by default), or its URL."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from branchwise.sandbox.base import Sandbox, SandboxError
from branchwise.sandbox.isolation.layout import MASKED_DIRS
from branchwise.tools.mcp.settings import McpServerSettings

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# What a server started on the host gets of the user's environment, besides its own `env` (as the SDK does).
_HOST_ENV = ("HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER", "LANG")


class LaunchError(Exception):
    """The server's configuration cannot be turned into something to start."""


@dataclass(frozen=True)
class Launch:
    """A stdio command line (argv, env, cwd for the host process) or an HTTP endpoint (url, headers)."""

    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    sandboxed: bool = False
    """The server runs inside an isolating sandbox (its effects are bounded by the session's)."""
    rebuild: Callable[[], list[str]] | None = field(default=None, compare=False, repr=False)
    """Makes the sandboxed command line again: each start gets the host's masks of that moment."""

    def command(self) -> list[str]:
        """The argv to start now."""
        return self.rebuild() if self.rebuild is not None else self.argv

    def describe(self) -> str:
        if self.url is not None:
            return f"http {self.url}"
        return "stdio, " + ("in the sandbox" if self.sandboxed else "UNSANDBOXED on the host")


def make_launch(
    name: str, settings: McpServerSettings, sandbox: Sandbox, workspace: Path, environ: Mapping[str, str]
) -> Launch:
    """The launch of one server; raises LaunchError with a message that says what to change."""
    values = {**environ, "workspace": str(workspace)}
    if settings.url is not None:
        headers = {k: _expand(v, values, f"headers.{k}") for k, v in settings.headers.items()}
        return Launch(url=settings.url, headers=headers)
    assert settings.command is not None
    args = [_expand(a, values, "args") for a in settings.args]
    env = {k: _expand(v, values, f"env.{k}") for k, v in settings.env.items()}
    cwd = workspace / settings.cwd if settings.cwd is not None else workspace
    command = _resolve(settings.command, environ)
    if settings.sandbox == "host":
        host_env = {k: environ[k] for k in _HOST_ENV if k in environ}
        return Launch(argv=[command, *args], env={**host_env, **env}, cwd=str(cwd))
    isolated = bool(sandbox.describe().get("isolated"))
    for program in (Path(command), *_interpreter(Path(command))) if isolated else ():
        if hidden := _hidden_by_sandbox(program, workspace):
            what = str(program) if program == Path(command) else f"{program}, the interpreter of {command},"
            if program.resolve() != program:
                what = f"{what} (really {program.resolve()})"
            raise LaunchError(
                f"{what} is under {hidden}, which the sandbox hides from commands: install the server elsewhere "
                f'(a virtualenv or npm prefix outside {", ".join(MASKED_DIRS)}) or set sandbox = "host" for '
                f"[mcp.servers.{name}] in your user configuration"
            )

    def rebuild() -> list[str]:
        return sandbox.command_line([command, *args], cwd=cwd, env=env)

    try:
        argv = rebuild()
    except SandboxError as exc:
        raise LaunchError(str(exc)) from None
    # The launcher clears the environment itself (bwrap --clearenv), and needs no working directory.
    return Launch(argv=argv, env={"PATH": os.defpath}, cwd="/", sandboxed=isolated, rebuild=rebuild)


def _expand(value: str, values: Mapping[str, str], where: str) -> str:
    def sub(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise LaunchError(f"{where} uses ${{{key}}}, but the environment variable {key} is not set")
        return values[key]

    return _VAR.sub(sub, value)


def _resolve(command: str, environ: Mapping[str, str]) -> str:
    """An absolute path to the program, looked up on the user's PATH (the sandbox's own PATH is shorter)."""
    if "/" in command:
        path = Path(command).expanduser()
        if not path.is_absolute():
            raise LaunchError(f"command {command!r}: give a name on PATH or an absolute path")
        return str(path)
    found = shutil.which(command, path=environ.get("PATH", os.defpath))
    if found is None:
        raise LaunchError(f"command {command!r} is not on PATH")
    return found


def _interpreter(program: Path) -> list[Path]:
    """The interpreter a script's #! line names (none for `/usr/bin/env NAME`, which the sandbox's PATH finds)."""
    try:
        with program.open("rb") as f:
            first = f.readline(256)
    except OSError:
        return []
    words = first[2:].decode("utf-8", "replace").split() if first.startswith(b"#!") else []
    return [Path(words[0])] if words and Path(words[0]).name != "env" else []


def _hidden_by_sandbox(path: Path, workspace: Path) -> str | None:
    """The masked directory that hides this program (or what its symlinks point to) inside the sandbox, if any."""
    for candidate in (path, path.resolve()):
        if candidate.is_relative_to(workspace):
            continue  # the workspace is bound in wherever it is
        for masked in MASKED_DIRS:
            if candidate == Path(masked) or Path(masked) in candidate.parents:
                return masked
    return None
