"""The Model seam: messages and tool schemas in, replies (text, tool calls, usage, cost) out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from branchwise.agent.record.events import ModelDelta, ModelReply, Purpose, ToolCallRecord, Usage

Message = dict[str, Any]
"""One chat message in OpenAI's format (role, content, tool_calls, tool_call_id)."""


@dataclass
class Reply:
    """One candidate answer of the model."""

    content: str | None = None
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    truncated: bool = False
    """The model stopped at its output-token limit (finish_reason "length"): the reply may be cut off."""

    def as_message(self) -> Message:
        """The assistant message to append to the conversation."""
        message: Message = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.raw_arguments or _dump(call.arguments)},
                }
                for call in self.tool_calls
            ]
        return message


def _dump(arguments: dict[str, Any] | None) -> str:
    import json

    return json.dumps(arguments or {}, ensure_ascii=False)


ModelKind = Literal["litellm", "scripted"]
DeltaSink = Callable[[ModelDelta], None]
"""Receives a reply's pieces as they stream in. A model that can stream has, besides `query`,
`query_stream(messages, tools, *, temperature, deadline, on_delta) -> list[Reply]` (one reply), which
the Asker uses when a live view wants deltas; the reply it returns is the same as `query`'s."""


def text_deltas(reply: Reply, piece: int = 12) -> list[ModelDelta]:
    """A finished reply cut into the deltas a streaming server would send (text, then each call's name and
    argument fragments): how models without real streaming still feed a live view."""
    text = reply.content or ""
    deltas = [ModelDelta(content=text[i : i + piece]) for i in range(0, len(text), piece)]
    for index, call in enumerate(reply.tool_calls):
        raw = call.raw_arguments if call.raw_arguments is not None else _dump(call.arguments)
        deltas.append(ModelDelta(index=index, name=call.name))
        deltas += [ModelDelta(index=index, arguments=raw[i : i + piece]) for i in range(0, len(raw), piece)]
    return deltas


class Model(Protocol):
    """Anything that can answer a conversation with candidate replies."""

    name: str
    kind: ModelKind
    """litellm: a real model behind litellm; scripted: replies replayed from a file (no LLM)."""
    supports_n: bool
    """Whether one query can return several candidates (`n > 1`); otherwise they are asked for in turn."""
    supports_images: bool
    """Whether pictures named in tool results (a message's `image` path: a browser screenshot) are sent as images;
    otherwise only the tool's text is (see images.py)."""
    keep_images: int
    """How many of the newest pictures a prompt carries; older ones are left out."""

    def query(
        self,
        messages: list[Message],
        tools: list[dict[str, Any]],
        *,
        n: int = 1,
        temperature: float | None = None,
        deadline: float | None = None,
    ) -> list[Reply]:
        """Return `n` candidate replies to the conversation (tools are OpenAI function schemas). When
        `deadline` (time.monotonic()) passes before the reply arrives, raise BudgetExceeded (limit wall)."""
        ...

    def count_tokens(self, messages: list[Message], tools: list[dict[str, Any]]) -> int:
        """Tokens of this prompt, tool schemas included, with the model's tokenizer where one is known."""
        ...

    def context_window(self) -> int | None:
        """Input tokens the model accepts, when known."""
        ...

    def describe(self) -> dict[str, Any]:
        """Name, kind and settings for the trajectory (never secrets)."""
        ...


def estimate_tokens(messages: list[Message], tools: list[dict[str, Any]] | None = None) -> int:
    """A rough token count (4 characters a token), for small prompts and models that report none."""
    import json

    return max(1, (len(json.dumps(messages, ensure_ascii=False)) + len(json.dumps(tools or []))) // 4)


def reply_event(reply: Reply, model: str, purpose: Purpose = "act") -> ModelReply:
    """The trajectory event of one reply (replay feeds these back in order, whatever their purpose)."""
    return ModelReply(
        content=reply.content,
        tool_calls=reply.tool_calls,
        usage=reply.usage,
        cost_usd=reply.cost_usd,
        model=model,
        purpose=purpose,
        truncated=reply.truncated,
    )
