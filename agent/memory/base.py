"""The Memory seam: tips and shortcuts retrieved for a task (the long-term memory itself is not built yet)."""

from __future__ import annotations

from typing import Protocol


class Memory(Protocol):
    """Where lessons from earlier runs come from."""

    def retrieve(self, task: str, scope: str) -> tuple[list[str], list[dict[str, object]]]:
        """Tips (short lessons) and shortcuts (replayable action sequences) relevant to a task."""
        ...


class NoMemory:
    """The memory of a fresh install: nothing learned yet."""

    def retrieve(self, task: str, scope: str) -> tuple[list[str], list[dict[str, object]]]:
        return [], []
