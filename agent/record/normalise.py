"""Comparing observations across runs and steps: the parts that change by themselves are masked."""

from __future__ import annotations

import re

# Timings, clock times and memory addresses differ between two runs of the same command.
_VOLATILE = [
    (re.compile(r"\b\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d+)?\b"), "<timestamp>"),
    (re.compile(r"\b\d+(\.\d+)?\s?(s|ms|sec|secs|seconds)\b"), "<time>"),
    (re.compile(r"\b0x[0-9a-fA-F]{6,}\b"), "<addr>"),
]


def normalise(text: str, workspace: str | None = None) -> str:
    """`text` with volatile parts masked (and the workspace path, when given, replaced by a placeholder)."""
    if workspace:
        text = text.replace(workspace, "<workspace>")
    for pattern, replacement in _VOLATILE:
        text = pattern.sub(replacement, text)
    return text
