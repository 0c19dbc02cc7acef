"""Asking a model: the one place model calls are made, so the budget, the trajectory and every renderer see
each reply (the budget tallies the `model_reply` events)."""

from __future__ import annotations

import uuid
from typing import Any

from branchwise.agent import cancel
from branchwise.agent.models.base import Message, Model, Reply, reply_event
from branchwise.agent.record.events import EventBus, ModelDelta, Purpose
from branchwise.agent.run.budget import Budget


class Asker:
    """Asks models within the run's budget and announces every reply."""

    def __init__(self, bus: EventBus, budget: Budget) -> None:
        self.bus, self.budget = bus, budget
        self._ids: set[str] = set()

    def ask(
        self,
        model: Model,
        messages: list[Message],
        tools: list[dict[str, Any]],
        *,
        n: int = 1,
        temperature: float | None = None,
        purpose: Purpose = "act",
    ) -> list[Reply]:
        """`n` replies (fewer if the model gives fewer); raises BudgetExceeded when the run's limit is reached."""
        cancel.check()
        self.budget.check()
        stream = getattr(model, "query_stream", None) if n == 1 and self.bus.wants_deltas else None
        if stream is not None:  # a live view is watching: the reply streams in as model_delta events

            def on_delta(delta: ModelDelta) -> None:
                delta.purpose = purpose
                self.bus.emit(delta)

            replies = stream(messages, tools, temperature=temperature, deadline=self.budget.deadline,
                             on_delta=on_delta)  # fmt: skip
        else:
            replies = model.query(messages, tools, n=n, temperature=temperature, deadline=self.budget.deadline)
        for reply in replies:
            self._unique_ids(reply)
            self.bus.emit(reply_event(reply, model.name, purpose))
        cancel.check()  # stopped while the reply came: it is recorded, not acted on
        return replies

    def _unique_ids(self, reply: Reply) -> None:
        """Tool results are paired with their calls by id: an id seen before in this run gets a new one."""
        for call in reply.tool_calls:
            if not call.id or call.id in self._ids:
                call.id = f"call_{uuid.uuid4().hex[:12]}"
            self._ids.add(call.id)
