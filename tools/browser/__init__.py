"""Browser tools: Playwright driving Debian's Chromium inside the session's sandbox (nothing imports playwright
until a browser tool runs)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from branchwise.tools.browser.settings import BrowserSettings

if TYPE_CHECKING:
    from branchwise.tools.base import ToolBox, ToolContext
    from branchwise.tools.browser.session import BrowserSession
    from branchwise.tools.browser.state import OutsideState, Snapshots


def attach_browser(settings: BrowserSettings, toolbox: ToolBox, ctx: ToolContext,
                   artifacts: Path) -> BrowserSession | None:  # fmt: skip
    """Add the browser tools to a session's toolbox (their session closes with the toolbox); None when off."""
    if not settings.enabled:
        return None
    from branchwise.tools.browser.session import BrowserSession
    from branchwise.tools.browser.tools import browser_tools

    session = BrowserSession(settings, ctx.sandbox, ctx.workspace, artifacts)
    tools = browser_tools(session)
    for tool in tools:
        toolbox.add(tool)
    return session


def outside_state(snapshots: Snapshots, toolbox: ToolBox, ctx: ToolContext,
                  browser: BrowserSession | None) -> OutsideState:  # fmt: skip
    """The search's snapshots with the browser's page and the background processes in them."""
    from branchwise.tools.browser.state import OutsideState
    from branchwise.tools.browser.tools import replayer

    replay = replayer(list(toolbox.tools.values()), ctx) if browser is not None else None
    return OutsideState(snapshots, ctx.sandbox, browser, replay)


__all__ = ["BrowserSettings", "attach_browser", "outside_state"]
