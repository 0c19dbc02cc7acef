"""The user's repository around a run: its map in the prompt and the code tools at the start, and the commit
of a verified result on a `branchwise/...` branch at the end (the user's branch and files left as they are)."""

from __future__ import annotations

import threading
from pathlib import Path

from branchwise.agent.config.schema import Config
from branchwise.agent.record.events import EventBus, Warning
from branchwise.sandbox.workspace.snapshots import ShadowGitWorkspace
from branchwise.tools import ToolBox

MAP_WAIT_S = 5.0  # a first map of a big repository takes longer: the run starts without it, the tools wait


class Repository:
    """Code understanding and git work for one session."""

    def __init__(self, config: Config, workspace: Path, toolbox: ToolBox, bus: EventBus) -> None:
        self.config, self.workspace, self.toolbox, self.bus = config, workspace, toolbox, bus
        self.index = None
        self.state = None
        self._refreshed = threading.Event()

    def add_tools(self) -> None:
        """The map and symbol tools (when `map.enabled`), and the read-only git tools (in a git repository)."""
        from branchwise.tools.git.readtools import git_tools

        if self.config.map.enabled:
            try:
                from branchwise.tools.repomap.service import RepoMap
                from branchwise.tools.repomap.tools import repomap_tools
            except ImportError as exc:  # tree-sitter missing: the agent works without a map
                self.bus.emit(Warning(message=f"no repository map: {exc}"))
            else:
                cfg = self.config.map
                self.index = RepoMap(self.workspace, max_file_bytes=cfg.max_file_bytes, max_files=cfg.max_files,
                                     deny_read=self.config.sandbox.deny_read)  # fmt: skip
                for tool in repomap_tools(self.index, cfg.tool_tokens):
                    self.toolbox.add(tool)
                threading.Thread(target=self._refresh, name="branchwise-repomap", daemon=True).start()
        if (self.workspace / ".git").exists():
            for tool in git_tools(self.config.sandbox.deny_read):
                self.toolbox.add(tool)

    def _refresh(self) -> None:
        try:
            if self.index is not None:
                self.index.refresh()
        finally:
            self._refreshed.set()

    def map_text(self, task: str) -> str:
        """The map for the system prompt within `map.tokens`, "" when it is off or not ready in time."""
        if self.index is None or not self.config.map.tokens:
            return ""
        if not self._refreshed.wait(MAP_WAIT_S):
            self.bus.emit(Warning(message="the repository map is still being built; the run starts without it"))
            return ""
        from branchwise.tools.repomap.prompt import map_section

        return map_section(self.index, self.config.map.tokens, task=task)

    def start(self) -> str | None:
        """Look at the repository before the run; its HEAD (None outside git or without commits)."""
        from branchwise.tools.git.commit import start_state
        from branchwise.tools.git.isolation import GitError

        try:
            self.state = start_state(self.workspace)
        except GitError as exc:
            self.bus.emit(Warning(message=f"git: {exc}"))
            return None
        if self.state is None:
            return None
        if self.state.in_progress:
            self.bus.emit(Warning(message=f"git: {self.state.in_progress} is in progress, so the result will not "
                                          "be committed; it stays in the working tree"))  # fmt: skip
        elif self.state.dirty and self.config.git.commit:
            self.bus.emit(Warning(message=f"git: {len(self.state.dirty)} file(s) have uncommitted changes; they stay "
                                          "yours and are left out of the commit"))  # fmt: skip
        return self.state.head

    def commit(self, snapshots: ShadowGitWorkspace, start: str, end: str, summary: str, run_id: str,
               task: str) -> str | None:  # fmt: skip
        """Commit a verified result on a new branch; its name, or None when nothing was committed."""
        from branchwise.tools.git.commit import commit_run
        from branchwise.tools.git.isolation import GitError

        if self.state is None or not self.config.git.commit:
            return None
        try:
            result = commit_run(snapshots, start_head=self.state.head, start_snapshot=start, end_snapshot=end,
                                summary=summary, run_id=run_id, settings=self.config.git, task=task)  # fmt: skip
        except GitError as exc:
            self.bus.emit(Warning(message=f"git: not committed: {exc}"))
            return None
        return None if result is None else result.branch

    def close(self) -> None:
        if self.index is not None:
            self._refreshed.wait(MAP_WAIT_S)
