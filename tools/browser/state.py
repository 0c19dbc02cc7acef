"""State outside the workspace snapshot that a search must rebuild when it goes back to an earlier node.

The search restores a node by restoring its workspace snapshot (and stopping every background process).
`OutsideState` wraps the snapshots so that a snapshot id also names what else the node had:

- the browser's page, as the browser calls that built it: restoring opens a fresh context and replays them
  (backtracking by replay, Koh et al.); a submit is an `external` call, so the search never goes back past one;
- the background processes that were running (a dev server the agent started): they are started again the
  way they were started, so the page replayed against them finds its server.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from branchwise.sandbox.base import Sandbox
from branchwise.tools.browser.session import BrowserSession, Recorded


class Snapshots(Protocol):
    def snapshot(self, label: str = "") -> str: ...
    def restore(self, snapshot_id: str) -> None: ...
    def changed_paths(self, a: str, b: str | None = None) -> list[str]: ...
    def diff(self, a: str, b: str | None = None) -> Any: ...


@dataclass(frozen=True)
class Started:
    """How a background process was started, to start it again."""

    argv: tuple[str, ...]
    cwd: Path
    command: str | None
    """Set for processes the shell tool started with background=true; None for ones a command left running."""


@dataclass
class State:
    workspace: str
    browser: list[Recorded] = field(default_factory=list)
    background: list[Started] = field(default_factory=list)


class OutsideState:
    """The search's Workspace seam, with the browser's page and the background processes in each snapshot."""

    def __init__(self, inner: Snapshots, sandbox: Sandbox, browser: BrowserSession | None = None,
                 replay: Callable[[Recorded], None] | None = None) -> None:  # fmt: skip
        self.inner, self.sandbox, self.browser, self.replay = inner, sandbox, browser, replay
        self.states: dict[str, State] = {}
        self._ids = itertools.count(1)
        self.replays = 0
        self.restarts = 0

    def snapshot(self, label: str = "") -> str:
        ws = self.inner.snapshot(label)
        browser = list(self.browser.log) if self.browser is not None else []
        background = [Started(tuple(p.argv), p.cwd, _command(p.extra)) for p in self.sandbox.background()]
        if not browser and not background:
            return ws
        sid = f"{ws}+{next(self._ids)}"
        self.states[sid] = State(ws, browser, background)
        return sid

    def restore(self, snapshot_id: str) -> None:
        state = self.states.get(snapshot_id, State(snapshot_id))
        self.inner.restore(state.workspace)
        self._restart(state.background)
        if self.browser is not None and self.replay is not None and _key(self.browser.log) != _key(state.browser):
            self.replays += 1
            self.browser.replaying = True
            try:
                self.browser.replay(state.browser, self.replay)
            finally:
                self.browser.replaying = False
            self.browser.log = list(state.browser)

    def _restart(self, wanted: list[Started]) -> None:
        running = {(tuple(p.argv), p.cwd) for p in self.sandbox.background()}
        for start in wanted:
            if (start.argv, start.cwd) in running:
                continue
            self.restarts += 1
            if start.command is not None:
                process = self.sandbox.start_background(list(start.argv), cwd=start.cwd)
                process.extra["command"] = start.command
            else:  # a command that left it running: run that command again, and keep what it leaves
                self.sandbox.run(list(start.argv), cwd=start.cwd, timeout=60, keep_background=True)
        if wanted:
            time.sleep(0.2)  # a restarted server needs a moment to listen; replayed navigations also retry

    def workspace_id(self, snapshot_id: str) -> str:
        state = self.states.get(snapshot_id)
        return state.workspace if state is not None else snapshot_id

    def changed_paths(self, a: str, b: str | None = None) -> list[str]:
        return self.inner.changed_paths(self.workspace_id(a), self.workspace_id(b) if b else None)

    def diff(self, a: str, b: str | None = None) -> Any:
        return self.inner.diff(self.workspace_id(a), self.workspace_id(b) if b else None)

    def url_of(self, snapshot_id: str) -> str | None:
        """The page URL a snapshot's browser state ends on (the last navigation), for the tree view."""
        state = self.states.get(snapshot_id)
        for call in reversed(state.browser if state else []):
            if isinstance(call.args.get("url"), str):
                return str(call.args["url"])
        return None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _key(calls: list[Recorded]) -> list[tuple[str, str]]:
    return [(c.tool, repr(sorted(c.args.items()))) for c in calls]


def _command(extra: dict[str, object]) -> str | None:
    value = extra.get("command")
    return value if isinstance(value, str) else None
