"""The Sandbox seam: where commands run, and what comes back.

Errors raised by this package (commands that fail are results, not errors)::

    SandboxError
    ├── SandboxUnavailable      the isolation asked for cannot be had here (exit 4)
    └── BackgroundError         a background process id is unknown or could not start
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

KillReason = Literal["timeout", "output_limit"]


class SandboxError(Exception):
    """Base of every error raised by the sandbox package."""


class SandboxUnavailable(SandboxError):
    """The requested isolation is not available on this machine."""


class BackgroundError(SandboxError):
    """A background process could not be started or found."""


@dataclass
class BackgroundProcess:
    """A long-running process owned by a sandbox session; its output goes to a log file."""

    id: str
    argv: list[str]
    pid: int
    log_path: Path
    cwd: Path
    extra: dict[str, object] = field(default_factory=dict)
    started: float = 0.0
    """time.time() when it started (or when a command left it behind)."""


@dataclass(frozen=True)
class ExecResult:
    """What one command did: combined output (capped), exit code and why it was stopped, if it was."""

    exit_code: int
    output: str
    truncated: bool = False
    killed: KillReason | None = None
    duration_s: float = 0.0
    background: tuple[BackgroundProcess, ...] = ()
    """Processes the command started and left running (only with `keep_background`): they are now
    background processes of the session, their further output in their log."""

    @property
    def timed_out(self) -> bool:
        return self.killed == "timeout"

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.killed is None


@dataclass(frozen=True)
class OutputLimits:
    """How much output a command may produce and how much of it is kept."""

    keep_head: int = 16_000
    """Bytes kept from the start of the output."""
    keep_tail: int = 16_000
    """Bytes kept from the end of the output."""
    read_limit: int = 8 * 1024 * 1024
    """Bytes read in all before the command is killed."""


class Sandbox(Protocol):
    """Runs commands for one agent session. A failing command is a result, never an exception."""

    workspace: Path

    def run(
        self,
        argv: Sequence[str],
        *,
        cwd: Path | None = None,
        timeout: float = 120.0,
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
        limits: OutputLimits | None = None,
        keep_background: bool = False,
    ) -> ExecResult:
        """Run one command to completion (or until a limit stops it). With `keep_background`, processes the
        command starts and leaves running (`server &`) live on as background processes of the session."""
        ...

    def command_line(
        self, argv: Sequence[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None
    ) -> list[str]:
        """A host command line that runs argv in this session's sandbox, whoever starts it (Playwright's
        browser launch, an MCP client's server process): same filesystem view, network and limits, and it
        ends with the session. File descriptors it inherits pass through to argv."""
        ...

    def start_background(
        self, argv: Sequence[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None
    ) -> BackgroundProcess:
        """Start a process that outlives this call but not the session."""
        ...

    def background(self) -> list[BackgroundProcess]:
        """The session's background processes that are still running."""
        ...

    def stop_background(self, process_id: str | None = None) -> None:
        """Stop one background process, or all of them when no id is given."""
        ...

    def describe(self) -> dict[str, object]:
        """Facts for the system prompt, doctor and the trajectory (kind, isolated, mode, network)."""
        ...

    def close(self) -> None:
        """Stop everything the session started and release its resources."""
        ...
