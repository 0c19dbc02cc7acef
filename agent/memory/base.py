"""The Memory seam: tips and shortcuts retrieved for a task, learned from verified runs.

`LongTermMemory` (agent/memory/service.py) is the real one; `NoMemory` is memory switched off.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from branchwise.agent.memory.retrieve import Recall, TokenCounter
    from branchwise.agent.memory.shortcuts import CallRunner, Snapshots
    from branchwise.agent.models.base import Model
    from branchwise.tools.base import Tool, ToolContext


class Memory(Protocol):
    """Where lessons from earlier runs come from, and where a verified run's lessons go."""

    def retrieve(self, task: str, scope: str) -> tuple[list[str], list[dict[str, object]]]:
        """Tips (short lessons) and shortcuts (replayable action sequences) relevant to a task."""
        ...

    def recall(
        self,
        query: str,
        *,
        budget_tokens: int | None = None,
        purpose: str = "act",
        count: TokenCounter = ...,
        shortcuts: bool = True,
    ) -> Recall:
        """The delimited notes block for a prompt, within a token budget."""
        ...

    def shortcut_tools(self, recall: Recall, calls: CallRunner, snapshots: Snapshots) -> list[Tool]:
        """The recalled shortcuts as tools whose steps run through `calls`."""
        ...

    def feedback(self, events: Iterable[Any], verification: Any = None) -> list[Any]:
        """Count what the run's retrieved items did."""
        ...

    def reflect(
        self,
        events: Iterable[Any],
        *,
        verification: Any = None,
        calls: CallRunner | None = None,
        snapshots: Snapshots | None = None,
        ctx: ToolContext | None = None,
        model: Model | None = None,
    ) -> Any:
        """Learn from a run that was verified from outside the model."""
        ...

    def close(self) -> None: ...


class NoMemory:
    """Memory switched off (or a fresh install): nothing is retrieved, nothing is written."""

    def retrieve(self, task: str, scope: str) -> tuple[list[str], list[dict[str, object]]]:
        return [], []

    def recall(
        self,
        query: str,
        *,
        budget_tokens: int | None = None,
        purpose: str = "act",
        count: Any = None,
        shortcuts: bool = True,
    ) -> Recall:
        from branchwise.agent.memory.retrieve import Recall

        return Recall()

    def shortcut_tools(self, recall: Recall, calls: CallRunner, snapshots: Snapshots) -> list[Tool]:
        return []

    def feedback(self, events: Iterable[Any], verification: Any = None) -> list[Any]:
        return []

    def reflect(self, events: Iterable[Any], **kwargs: Any) -> None:
        return None

    def close(self) -> None:
        return None
