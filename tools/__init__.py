"""What the agent can do: shell, file editing, code search, finish."""

from __future__ import annotations

from branchwise.tools.base import Observation, Tool, ToolBox, ToolContext, ToolError


def default_tools() -> list[Tool]:
    """The core tool set, with exactly the names the models and scripted reply files use."""
    from branchwise.tools.background import Background
    from branchwise.tools.code_search import Finish, Glob, Grep
    from branchwise.tools.files import Create, Insert, StrReplace, UndoEdit, View
    from branchwise.tools.shell import Shell

    return [Shell(), View(), Create(), StrReplace(), Insert(), UndoEdit(), Grep(), Glob(), Background(), Finish()]


__all__ = ["Observation", "Tool", "ToolBox", "ToolContext", "ToolError", "default_tools"]
