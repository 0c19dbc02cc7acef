"""Counting prompt tokens: the model's own tokenizer where litellm knows it, gpt-4o's otherwise.

A small prompt is estimated (4 characters a token, off by up to 2x), since exactness only matters near
a budget; above `PRECISE_ABOVE` the real tokenizer counts, tool schemas included. Scripted models have
no tokenizer of their own: gpt-4o's (o200k) stands in, read by tiktoken from the encodings litellm
ships, so nothing is downloaded and litellm itself is not imported.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from branchwise.agent.models.base import Message, estimate_tokens

Counter = Callable[[list[Message], list[dict[str, Any]]], int]

PRECISE_ABOVE = 1500  # estimated tokens; below this the estimate is close enough and costs nothing
_PER_MESSAGE = 3  # chat formats add a few tokens of framing per message (OpenAI documents 3)


def count_estimated_first(precise: Counter) -> Counter:
    """A counter that estimates small prompts and counts big ones with `precise`."""

    def count(messages: list[Message], tools: list[dict[str, Any]]) -> int:
        rough = estimate_tokens(messages, tools)
        return rough if rough < PRECISE_ABOVE else precise(messages, tools)

    return count


@functools.cache
def _encoding() -> Any:
    """tiktoken's o200k encoding from litellm's bundled files (offline)."""
    spec = importlib.util.find_spec("litellm")
    if spec is not None and spec.submodule_search_locations:
        bundled = Path(next(iter(spec.submodule_search_locations))) / "litellm_core_utils" / "tokenizers"
        os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(bundled))
    import tiktoken

    return tiktoken.get_encoding("o200k_base")


def tiktoken_count(messages: list[Message], tools: list[dict[str, Any]]) -> int:
    """Tokens of a chat prompt with gpt-4o's encoding: each message's text, its framing, and the tools."""
    enc = _encoding()
    total = 0
    for message in messages:
        total += _PER_MESSAGE
        content = message.get("content")
        if isinstance(content, str):
            total += len(enc.encode(content, disallowed_special=()))
        elif content is not None:
            total += len(enc.encode(json.dumps(content, ensure_ascii=False), disallowed_special=()))
        for call in message.get("tool_calls") or []:
            total += len(enc.encode(json.dumps(call, ensure_ascii=False), disallowed_special=()))
    if tools:
        total += len(enc.encode(json.dumps(tools, ensure_ascii=False), disallowed_special=()))
    return total + 3
