"""A tiny statistics library used by the branchwise demo."""

from .stats import mean, median

__all__ = ["mean", "median"]
