"""ScriptedModel: replays replies from a YAML file, so demos and tests run with no LLM.

The file format is public (users and tests write it)::

    replies:
      - content: "Run the tests first."
        tool_calls:
          - name: shell
            arguments: {command: "python -m pytest -q"}
      - tool_calls:
          - name: finish
            arguments: {summary: "Fixed the off-by-one in add()."}
        cost_usd: 0.01   # optional: what the reply would have cost (to exercise budgets offline)
    supports_images: false   # optional, top level: act as a model that takes images (screenshots attached)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from branchwise.agent.errors import ConfigError, ScriptExhausted
from branchwise.agent.models import images
from branchwise.agent.models.base import DeltaSink, Message, ModelKind, Reply, text_deltas
from branchwise.agent.models.tokens import count_estimated_first, tiktoken_count
from branchwise.agent.record.events import ToolCallRecord, Usage
from branchwise.sandbox.base import SandboxError
from branchwise.sandbox.workspace.safefs import read_regular

MAX_SCRIPT_BYTES = 64 * 1024 * 1024


class _ScriptedCall(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    arguments: dict[str, Any] | str = {}
    id: str | None = None


class _ScriptedReply(BaseModel):
    model_config = ConfigDict(extra="forbid")
    content: str | None = None
    tool_calls: list[_ScriptedCall] = []
    cost_usd: float = Field(default=0.0, ge=0)


class _Script(BaseModel):
    model_config = ConfigDict(extra="forbid")
    replies: list[_ScriptedReply]
    supports_images: bool = False


def load_script(path: Path) -> list[Reply]:
    """Parse a reply file; a bad file is a one-line ConfigError naming it."""
    script = _load(path)
    return [_to_reply(i, r) for i, r in enumerate(script.replies)]


def _load(path: Path) -> _Script:
    import yaml

    try:
        raw = yaml.safe_load(read_regular(path, limit=MAX_SCRIPT_BYTES).decode("utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read scripted replies: {exc.strerror}") from None
    except (SandboxError, UnicodeDecodeError) as exc:  # a FIFO, a device, a huge or binary file
        raise ConfigError(f"cannot read scripted replies: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {str(exc).splitlines()[0]}") from None
    try:
        script = _Script.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"{path}: {where}: {err['msg']}") from None
    return script


def _to_reply(index: int, reply: _ScriptedReply) -> Reply:
    calls = []
    for j, call in enumerate(reply.tool_calls):
        call_id = call.id or f"call_{index}_{j}"
        if isinstance(call.arguments, str):
            # A string stands for what a model sent verbatim, e.g. malformed JSON.
            calls.append(ToolCallRecord(id=call_id, name=call.name, raw_arguments=call.arguments))
        else:
            calls.append(ToolCallRecord(id=call_id, name=call.name, arguments=call.arguments))
    return Reply(content=reply.content, tool_calls=calls, cost_usd=reply.cost_usd)


class ScriptedModel:
    """Hands out the scripted replies in order; running out is an error, not a hang."""

    kind: ModelKind = "scripted"
    supports_n = True

    def __init__(self, replies: list[Reply], *, name: str = "scripted", supports_images: bool = False) -> None:
        self.name = name
        self.supports_images = supports_images
        self.keep_images = 1
        self.last_prompt: list[Message] = []
        """The messages of the latest query as a real model would have been sent them (pictures attached)."""
        self._replies = replies
        self._next = 0
        self._count = count_estimated_first(tiktoken_count)

    @classmethod
    def from_file(cls, path: Path) -> ScriptedModel:
        script = _load(path)
        replies = [_to_reply(i, r) for i, r in enumerate(script.replies)]
        return cls(replies, name=f"scripted:{path}", supports_images=script.supports_images)

    @property
    def remaining(self) -> int:
        return len(self._replies) - self._next

    def query(
        self,
        messages: list[Message],
        tools: list[dict[str, Any]],
        *,
        n: int = 1,
        temperature: float | None = None,
        deadline: float | None = None,
    ) -> list[Reply]:
        if self.remaining < n:
            raise ScriptExhausted(
                f"{self.name}: ran out of scripted replies after {len(self._replies)} "
                "(the run needed more model calls than the file holds)"
            )
        replies = self._replies[self._next : self._next + n]
        self._next += n
        keep = self.keep_images if self.supports_images else 0
        self.last_prompt = images.with_images(messages, keep) if keep else images.strip(messages)
        # What a real model would report: the prompt (tools included) once, each candidate's own completion.
        prompt_tokens = self.count_tokens(messages, tools)
        return [
            Reply(
                content=r.content,
                tool_calls=[c.model_copy() for c in r.tool_calls],
                usage=Usage(prompt=prompt_tokens if i == 0 else 0, completion=self._completion_tokens(r)),
                cost_usd=r.cost_usd,
            )
            for i, r in enumerate(replies)
        ]

    def query_stream(
        self,
        messages: list[Message],
        tools: list[dict[str, Any]],
        *,
        temperature: float | None = None,
        deadline: float | None = None,
        on_delta: DeltaSink | None = None,
    ) -> list[Reply]:
        """The next reply, also handed out in pieces as a streaming server would send it."""
        replies = self.query(messages, tools, n=1, temperature=temperature, deadline=deadline)
        if on_delta is not None:
            for delta in text_deltas(replies[0]):
                on_delta(delta)
        return replies

    def count_tokens(self, messages: list[Message], tools: list[dict[str, Any]]) -> int:
        return images.count(self._count, messages, tools, self.keep_images if self.supports_images else 0)

    def context_window(self) -> int | None:
        return None

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "replies": len(self._replies)}

    def _completion_tokens(self, reply: Reply) -> int:
        calls = [{"function": {"name": c.name, "arguments": c.raw_arguments or json.dumps(c.arguments)}}
                 for c in reply.tool_calls]  # fmt: skip
        return max(1, self._count([{"role": "assistant", "content": reply.content, "tool_calls": calls}], []) - 6)
