"""The agent: configuration, models, the executor, search, planning and trajectories."""

from __future__ import annotations


def version() -> str:
    """The installed distribution's version (one source: pyproject.toml)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("branchwise")
    except PackageNotFoundError:
        return "0+unknown"
