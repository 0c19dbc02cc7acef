"""The agent: configuration, models, the run loop, search, planning and trajectories."""

from __future__ import annotations

__version__ = "0.1.0"
"""The version: pyproject.toml reads it from here (setuptools' dynamic version), so there is one source."""


def version() -> str:
    """The version (a constant: `importlib.metadata` alone costs `--version` about 50 ms)."""
    return __version__
