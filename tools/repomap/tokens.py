"""Token counting for the map's budget: tiktoken's cl100k_base, without importing litellm or using the network.

tiktoken is installed with litellm, which also ships the encoding files; tiktoken looks files up by the
SHA-1 of their URL in $TIKTOKEN_CACHE_DIR, so pointing it at litellm's copy for the one call that loads
the encoding is enough (litellm itself does the same when imported). Without tiktoken the count is a
deliberate overestimate, so a budget is still never exceeded under the estimate's own measure.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os
from pathlib import Path
from typing import Protocol

ENCODING = "cl100k_base"
BYTES_PER_TOKEN_ESTIMATE = 2.5  # code runs 3.5-4.5 bytes per cl100k token; 2.5 errs on the side of fewer lines


class TokenCounter(Protocol):
    name: str

    def count(self, text: str) -> int: ...


class TiktokenCounter:
    """Exact counts in one tiktoken encoding."""

    def __init__(self, encoding: object, name: str) -> None:
        self._encoding = encoding
        self.name = name

    def count(self, text: str) -> int:
        return len(self._encoding.encode_ordinary(text))  # type: ignore[attr-defined]


class EstimateCounter:
    """An overestimate from the UTF-8 length, for when tiktoken cannot be loaded."""

    name = f"estimate ({BYTES_PER_TOKEN_ESTIMATE} bytes per token)"

    def count(self, text: str) -> int:
        return math.ceil(len(text.encode("utf-8")) / BYTES_PER_TOKEN_ESTIMATE)


def _bundled_cache_dir() -> str | None:
    """litellm's directory of tiktoken files, found without importing litellm."""
    try:
        spec = importlib.util.find_spec("litellm")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "litellm_core_utils" / "tokenizers"
    return str(path) if path.is_dir() else None


@functools.cache
def default_counter() -> TokenCounter:
    """cl100k_base through tiktoken when it loads offline, else the overestimate."""
    try:
        import tiktoken
    except ImportError:
        return EstimateCounter()
    previous = os.environ.get("TIKTOKEN_CACHE_DIR")
    bundled = _bundled_cache_dir() if previous is None else None
    try:
        if bundled:
            os.environ["TIKTOKEN_CACHE_DIR"] = bundled
        return TiktokenCounter(tiktoken.get_encoding(ENCODING), f"tiktoken {ENCODING}")
    except Exception:  # tiktoken raises bare network and hash errors when the file is missing
        return EstimateCounter()
    finally:
        if bundled:
            os.environ.pop("TIKTOKEN_CACHE_DIR", None)
