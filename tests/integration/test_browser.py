"""The browser tools against real Chromium in the session's sandbox, on pages a server in the sandbox serves."""

from __future__ import annotations

from pathlib import Path

import pytest

from branchwise.tools.base import ToolError
from branchwise.tools.browser.settings import BrowserSettings
from tests.support.browser_pages import Browser

pytestmark = pytest.mark.slow


@pytest.fixture
def browser(tmp_path: Path):
    ws = tmp_path / "ws"
    ws.mkdir()
    b = Browser(ws, BrowserSettings(navigation_timeout_s=3, action_timeout_s=3))
    yield b
    b.close()


def test_every_tool_on_a_local_page(browser: Browser) -> None:
    page = browser("browser_navigate", url=browser.url()).output
    assert 'heading "Hello"' in page and "[ref=" in page and browser.session.isolated
    assert 'heading "Hello"' in browser("browser_snapshot").output
    changed = browser("browser_click", ref=browser.ref("button", "Change")).output
    assert 'heading "Changed"' in changed and "next page" not in changed  # only what changed comes back
    typed = browser("browser_type", ref=browser.ref("textbox", "Name"), text="Ada").output
    assert "Ada" in typed
    selected = browser("browser_select", ref=browser.ref("combobox", "Size"), values=["large"]).output
    assert "large" in selected
    browser("browser_click", ref=browser.ref("button", "Later"))
    assert "late text" in browser("browser_wait_for", text="late text").output
    browser("browser_click", ref=browser.ref("button", "Log"))
    console = browser("browser_console").output
    assert "boom from page" in console and "404" in console
    assert "Page B" in browser("browser_click", ref=browser.ref("link", "next page")).output
    assert 'heading "Hello"' in browser("browser_back").output
    browser("browser_press", key="Tab")
    shot = browser("browser_screenshot")
    assert Path(shot.data["image"]).read_bytes()[:4] == b"\x89PNG"
    tabs = browser("browser_tabs", action="new", url=browser.url("b.html")).output
    assert "* 1: " + browser.url("b.html") in tabs
    assert "0: " in browser("browser_tabs", action="close", index=1).output
    assert len(browser.session.tabs()) == 1


def test_refs_stay_valid_across_a_re_render(browser: Browser) -> None:
    browser("browser_navigate", url=browser.url("rerender.html"))
    ref = browser.ref("button", "Increment")
    browser("browser_click", ref=ref)  # replaces the button with a new element
    browser("browser_click", ref=ref)  # the old ref still finds it
    assert "paragraph [ref=" in browser.session.last_snapshot
    assert ': "2"' in browser.session.last_snapshot or ": 2" in browser.session.last_snapshot


def test_a_page_that_never_loads_times_out_cleanly(browser: Browser) -> None:
    browser.sandbox.start_background(["python3", "hang.py"])
    from tests.support.browser_pages import wait_for_port

    wait_for_port(browser.sandbox, 8766)
    with pytest.raises(ToolError, match="did not finish loading within 3 s"):
        browser("browser_navigate", url="http://127.0.0.1:8766/")
    assert "Hello" in browser("browser_navigate", url=browser.url()).output  # the browser still works


def test_popups_are_capped_by_the_tab_limit(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    b = Browser(ws, BrowserSettings(max_tabs=4, action_timeout_s=60))
    try:
        b("browser_navigate", url=b.url("popups.html"))
        b("browser_click", ref=b.ref("button", "Open"))
        b("browser_wait_for", text="Open")
        assert len(b.session.tabs()) <= 4
        assert b.session.pages.closed_popups >= 90
        assert "popups closed at the tab limit" in b("browser_console").output
    finally:
        b.close()


def test_a_page_allocating_without_end_is_stopped(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    b = Browser(ws, BrowserSettings(js_heap_mb=128, action_timeout_s=20))
    try:
        b("browser_navigate", url=b.url("hog.html"))
        eat = b.ref("button", "Eat")
        with pytest.raises(ToolError, match=r"crashed|closed|timed out|failed"):
            _click_then_read(b, eat)
        b.session.reset()
        assert "Hello" in b("browser_navigate", url=b.url()).output  # a fresh tab works again
    finally:
        b.close()


def _click_then_read(b: Browser, ref: str) -> None:
    """The click may come back before the tab dies; reading the page after it must fail."""
    try:
        b("browser_click", ref=ref)
    except ToolError:
        raise
    b("browser_snapshot")


def test_form_submit_is_a_commit_point_with_facts_for_the_policy(browser: Browser) -> None:
    browser("browser_navigate", url=browser.url())
    facts = browser.facts("browser_click", ref=browser.ref("button", "Send"))
    assert facts["kind"] == "submit" and facts["page_url"] == browser.url()
    assert (
        browser.tools["browser_click"].effect_of(browser.tools["browser_click"].Args(ref=browser.ref("button", "Send")))
        == "external"
    )
    assert "kind" not in browser.facts("browser_click", ref=browser.ref("button", "Change"))
    assert "kind" not in browser.facts("browser_type", ref=browser.ref("textbox", "Name"), text="x")
    assert browser.facts("browser_type", ref=browser.ref("textbox", "Name"), text="x", submit=True)["kind"] == "submit"


def test_file_urls_are_refused_by_the_tool_itself(browser: Browser) -> None:
    with pytest.raises(ToolError, match="only http"):
        browser("browser_navigate", url="file:///etc/passwd")
    with pytest.raises(ToolError, match="only http"):
        browser("browser_tabs", action="new", url="chrome://settings")
