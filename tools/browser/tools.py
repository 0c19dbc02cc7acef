"""The browser tools: one registry, schemas from pydantic, elements addressed by the snapshot's refs.

Page text is untrusted web content (taint source `web`). Each action returns the part of the page it
changed, not the whole page again. What an action is (a form submit, a login, a payment, a download) is
read from the element before it runs and given to the policy as facts; submits, logins and payments are
`external` calls, so a search commits to them instead of replaying them.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field

from branchwise.tools.base import Effect, Observation, OutputSource, Tool, ToolContext, ToolError
from branchwise.tools.browser.session import BrowserError, BrowserSession, Recorded

ALLOWED_SCHEMES = ("http", "https")
_ACTION_KINDS = ("payment", "login", "submit", "download")
_Ref = Field(description="The element's ref from the latest snapshot, e.g. e12 (never coordinates).")


def check_url(url: str) -> str:
    """The URL to open, or a ToolError: only http(s) and about:blank (no file:, chrome:, data:, javascript:)."""
    url = url.strip()
    if url == "about:blank":
        return url
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme.lower() not in ALLOWED_SCHEMES or not parts.hostname:
        raise ToolError(f"cannot open {url[:200]}: only http:// and https:// pages (no file:, chrome: or data:)")
    return parts.geturl()


def action_kind(facts: dict[str, Any]) -> str | None:
    """payment, login, submit or download: what clicking or submitting this element does, if any of those."""
    if facts.get("downloads"):
        return "download"
    if not facts.get("submits"):
        return "payment" if facts.get("payment_words") and facts.get("role") in ("button", "link") else None
    if facts.get("payment_words"):
        return "payment"
    return "login" if facts.get("password_form") else "submit"


class _NoArgs(BaseModel):
    pass


class BrowserTool(Tool):
    """A tool bound to the session's browser."""

    name: ClassVar[str] = "browser"
    description: ClassVar[str] = "browser"
    Args: ClassVar[type[BaseModel]] = _NoArgs
    effect: ClassVar[Effect] = "browser"
    output_source: ClassVar[OutputSource] = "web"
    replayable: ClassVar[bool] = True
    """Whether a search re-runs this call to rebuild the page of an earlier node."""

    def __init__(self, session: BrowserSession) -> None:
        self.session = session

    def run(self, args: Any, ctx: ToolContext) -> Observation:
        try:
            return self.act(args, ctx)
        except BrowserError:
            raise
        except ToolError:
            raise
        except Exception as exc:  # Playwright's errors: a timeout, a closed page, a detached element
            from playwright.sync_api import Error, TimeoutError

            if isinstance(exc, TimeoutError):
                raise ToolError(f"{self.name} timed out: {_first_line(exc)}") from None
            if isinstance(exc, Error):
                raise ToolError(f"{self.name} failed: {_first_line(exc)}") from None
            raise

    def act(self, args: Any, ctx: ToolContext) -> Observation:
        raise NotImplementedError

    def close(self) -> None:
        self.session.close()  # idempotent: the first of the eleven tools closes it

    def policy_facts(self, args: Any) -> dict[str, Any]:
        facts: dict[str, Any] = {"action": self.name.removeprefix("browser_")}
        if self.session.started:
            facts["page_url"] = self.session.page.url
        return facts

    def effect_of(self, args: Any) -> Effect:
        kind = self.policy_facts(args).get("kind")
        return "external" if kind in ("payment", "login", "submit") else self.effect

    def done(self, args: BaseModel, before: str, data: dict[str, Any] | None = None) -> Observation:
        text = self.session.acted(self.name, args.model_dump(), before)
        return Observation(text, data=self.page_data(data))

    def page_data(self, data: dict[str, Any] | None = None) -> dict[str, Any]:
        """The page's URL, and a thumbnail of it after an action (not while a search replays)."""
        out: dict[str, Any] = {"url": self.session.page.url, **(data or {})}
        thumb = None if self.session.replaying else self.session.thumbnail()
        if thumb is not None:
            out["thumbnail"] = str(thumb)
        return out


class _ElementTool(BrowserTool):
    """Acts on one element: its facts come from the page."""

    submits_by_args: ClassVar[bool] = False

    def policy_facts(self, args: Any) -> dict[str, Any]:
        facts = super().policy_facts(args)
        ref = getattr(args, "ref", None)
        if ref and not self.session.replaying:
            element = self.session.facts(ref)
            facts["element"] = element
            kind = action_kind(element)
            if kind is None and self.submits_by_args and element.get("in_form"):
                kind = "login" if element.get("password_form") else "submit"
            if kind is not None:
                facts["kind"] = kind
        return facts


class NavigateArgs(BaseModel):
    url: str = Field(description="http:// or https:// URL to open in the current tab.")


class Navigate(BrowserTool):
    name = "browser_navigate"
    description = (
        "Open a URL in the browser's current tab (only http(s); the browser has the session's network, so a server "
        "you started in the sandbox is at http://127.0.0.1:PORT). Returns the page as an accessibility snapshot "
        "whose [ref=eN] marks address elements for the other browser tools."
    )
    Args = NavigateArgs

    def policy_facts(self, args: Any) -> dict[str, Any]:
        return {**super().policy_facts(args), "url": args.url}

    def act(self, args: NavigateArgs, ctx: ToolContext) -> Observation:
        url = check_url(args.url)
        status = None
        try:
            response = self._goto(url)
            status = response.status if response is not None else None
        except Exception as exc:
            from playwright.sync_api import TimeoutError

            if not isinstance(exc, TimeoutError):
                raise ToolError(f"cannot open {url}: {_first_line(exc)}") from None
            # No window.stop(): page calls wait for the new document, which never comes; the next navigation
            # replaces the pending one.
            raise ToolError(f"{url} did not finish loading within {self.session.settings.navigation_timeout_s:g} s; "
                            "check the server, or open another page") from None  # fmt: skip
        if not self.session.replaying:
            self.session.log.append(Recorded(self.name, args.model_dump()))
        note = f" (HTTP {status})" if status and status >= 400 else ""
        view = self.session.view()
        return Observation(view + note, data=self.page_data({"status": status}))

    def _goto(self, url: str) -> Any:
        """page.goto; while a search replays, a server it has just restarted gets a few seconds to listen."""
        deadline = time.monotonic() + (10 if self.session.replaying else 0)
        while True:
            try:
                return self.session.page.goto(url, wait_until="domcontentloaded")
            except Exception as exc:
                if "ERR_CONNECTION_REFUSED" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


class SnapshotArgs(BaseModel):
    pass


class Snapshot(BrowserTool):
    name = "browser_snapshot"
    description = (
        "The current page as an accessibility tree: roles, names, values and a [ref=eN] per element to use with "
        "browser_click, browser_type, browser_select and browser_wait_for. Long pages are cut to a token budget."
    )
    Args = SnapshotArgs
    effect = "read"
    replayable = False

    def act(self, args: SnapshotArgs, ctx: ToolContext) -> Observation:
        return Observation(self.session.view(), data={"url": self.session.page.url})


class ClickArgs(BaseModel):
    ref: str = _Ref
    double: bool = Field(False, description="Double-click instead.")


class Click(_ElementTool):
    name = "browser_click"
    description = "Click an element by its snapshot ref. Returns what changed on the page."
    Args = ClickArgs

    def act(self, args: ClickArgs, ctx: ToolContext) -> Observation:
        before = self.session.last_snapshot
        element = self.session.element(args.ref)
        if args.double:
            element.dblclick()
        else:
            element.click()
        return self.done(args, before)


class TypeArgs(BaseModel):
    ref: str = _Ref
    text: str = Field(description="Text to put into the field (it replaces what is there).")
    submit: bool = Field(False, description="Press Enter afterwards (submits the form).")


class Type(_ElementTool):
    name = "browser_type"
    description = "Type text into an input or text area by its snapshot ref; optionally press Enter to submit."
    Args = TypeArgs

    def policy_facts(self, args: Any) -> dict[str, Any]:
        facts = super().policy_facts(args)
        if not args.submit:
            facts.pop("kind", None)  # typing alone submits nothing
        elif "kind" not in facts and facts.get("element", {}).get("in_form"):
            facts["kind"] = "login" if facts["element"].get("password_form") else "submit"
        return facts

    def act(self, args: TypeArgs, ctx: ToolContext) -> Observation:
        before = self.session.last_snapshot
        element = self.session.element(args.ref)
        element.fill(args.text)
        if args.submit:
            element.press("Enter")
        return self.done(args, before)


class SelectArgs(BaseModel):
    ref: str = _Ref
    values: list[str] = Field(description="Option values or labels to select.", min_length=1)


class Select(_ElementTool):
    name = "browser_select"
    description = "Choose options of a <select> element by its snapshot ref."
    Args = SelectArgs

    def act(self, args: SelectArgs, ctx: ToolContext) -> Observation:
        before = self.session.last_snapshot
        element = self.session.element(args.ref)
        try:
            element.select_option(args.values)
        except Exception:
            element.select_option(label=args.values)
        return self.done(args, before)


class PressArgs(BaseModel):
    key: str = Field(description="A key or chord as Playwright names them: Enter, Escape, ArrowDown, Control+a.")
    ref: str | None = Field(None, description="Focus this element first (a ref from the latest snapshot).")


class Press(_ElementTool):
    name = "browser_press"
    description = "Press a key in the page (optionally in one element), e.g. Enter, Tab, Escape, PageDown."
    Args = PressArgs

    def policy_facts(self, args: Any) -> dict[str, Any]:
        facts = super().policy_facts(args)
        if args.key.split("+")[-1] == "Enter" and facts.get("element", {}).get("in_form") and "kind" not in facts:
            facts["kind"] = "login" if facts["element"].get("password_form") else "submit"
        elif args.key.split("+")[-1] != "Enter":
            facts.pop("kind", None)
        return facts

    def act(self, args: PressArgs, ctx: ToolContext) -> Observation:
        before = self.session.last_snapshot
        if args.ref:
            self.session.element(args.ref).press(args.key)
        else:
            self.session.page.keyboard.press(args.key)
        return self.done(args, before)


class BackArgs(BaseModel):
    pass


class Back(BrowserTool):
    name = "browser_back"
    description = "Go back one page in the current tab's history."
    Args = BackArgs

    def act(self, args: BackArgs, ctx: ToolContext) -> Observation:
        before = self.session.last_snapshot
        if self.session.page.go_back(wait_until="domcontentloaded") is None:
            raise ToolError("there is no earlier page in this tab")
        return self.done(args, before)


class WaitArgs(BaseModel):
    text: str | None = Field(None, description="Wait until this text is visible on the page.")
    ref: str | None = Field(None, description="Or wait on this element (a ref from the latest snapshot).")
    gone: bool = Field(False, description="Wait until the text or element is hidden instead.")
    timeout_s: float = Field(10.0, gt=0, le=120, description="Seconds to wait at most.")


class WaitFor(BrowserTool):
    name = "browser_wait_for"
    description = "Wait until a text or an element appears (or, with gone, disappears); returns the page then."
    Args = WaitArgs
    effect = "read"
    replayable = False

    def act(self, args: WaitArgs, ctx: ToolContext) -> Observation:
        if not args.text and not args.ref:
            raise ToolError("give text or ref to wait for")
        page = self.session.page
        state: Literal["hidden", "visible"] = "hidden" if args.gone else "visible"
        target = self.session.element(args.ref) if args.ref else page.get_by_text(args.text or "").first
        try:
            target.wait_for(state=state, timeout=args.timeout_s * 1000)
        except Exception as exc:
            from playwright.sync_api import TimeoutError

            if isinstance(exc, TimeoutError):
                what = repr(args.text) if args.text else args.ref
                raise ToolError(f"{what} was not {state} within {args.timeout_s:g} s") from None
            raise
        return Observation(self.session.view(), data={"url": page.url})


class ScreenshotArgs(BaseModel):
    full_page: bool = Field(False, description="The whole scrollable page instead of the visible part.")


class Screenshot(BrowserTool):
    name = "browser_screenshot"
    description = "Take a PNG screenshot of the current tab; it is saved in the run's directory (path returned)."
    Args = ScreenshotArgs
    effect = "read"
    replayable = False
    _numbers = itertools.count(1)

    def act(self, args: ScreenshotArgs, ctx: ToolContext) -> Observation:
        folder = self.session.artifacts or (ctx.workspace / ".branchwise" / "browser")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"shot-{time.strftime('%H%M%S')}-{next(self._numbers)}.png"
        self.session.page.screenshot(path=str(path), full_page=args.full_page)
        url = self.session.page.url
        return Observation(f"screenshot of {url} saved to {path}", data={"url": url, "image": str(path)})


class ConsoleArgs(BaseModel):
    limit: int = Field(50, ge=1, le=200, description="How many of the newest entries.")


class Console(BrowserTool):
    name = "browser_console"
    description = "The pages' console messages and JavaScript errors, and requests that failed, newest last."
    Args = ConsoleArgs
    effect = "read"
    replayable = False

    def act(self, args: ConsoleArgs, ctx: ToolContext) -> Observation:
        log = self.session.pages
        console = list(log.console)[-args.limit :] or ["(none)"]
        failed = list(log.failed)[-args.limit :] or ["(none)"]
        lines = ["console:", *console, "failed requests:", *failed]
        if log.closed_popups:
            lines.append(f"popups closed at the tab limit ({self.session.settings.max_tabs}): {log.closed_popups}")
        return Observation("\n".join(lines))


class TabsArgs(BaseModel):
    action: Literal["list", "new", "select", "close"] = Field("list", description="What to do with tabs.")
    index: int | None = Field(None, ge=0, description="select/close: the tab's number from list.")
    url: str | None = Field(None, description="new: the URL to open in the new tab.")


class Tabs(BrowserTool):
    name = "browser_tabs"
    description = "List the browser's tabs, open a new one (optionally at a URL), switch to one, or close one."
    Args = TabsArgs

    def policy_facts(self, args: Any) -> dict[str, Any]:
        facts = super().policy_facts(args)
        return {**facts, "url": args.url} if args.url else facts

    def effect_of(self, args: Any) -> Effect:
        return "read" if args.action == "list" else "browser"

    def act(self, args: TabsArgs, ctx: ToolContext) -> Observation:
        session = self.session
        if args.action == "list":
            return Observation(self._list())
        if args.action == "new":
            url = check_url(args.url) if args.url else None
            if len(session.tabs()) >= session.settings.max_tabs:
                raise ToolError(f"{session.settings.max_tabs} tabs are open (browser.max_tabs); close one first")
            assert session._context is not None
            page = session._context.new_page()
            session.select(page)
            if url:
                page.goto(url, wait_until="domcontentloaded")
        else:
            tabs = session.tabs()
            if args.index is None or args.index >= len(tabs):
                raise ToolError(f"no tab {args.index}; there are {len(tabs)} (see action=list)")
            if args.action == "select":
                session.select(tabs[args.index])
            else:
                tabs[args.index].close()
        if not session.replaying:
            session.log.append(Recorded(self.name, args.model_dump()))
        return Observation(f"{self._list()}\n{session.view()}", data=self.page_data())

    def _list(self) -> str:
        tabs = self.session.tabs()
        current = self.session.page
        return "\n".join(f"{'*' if p == current else ' '} {i}: {p.url}" for i, p in enumerate(tabs)) or "(no tabs)"


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else type(exc).__name__


def browser_tools(session: BrowserSession) -> list[Tool]:
    """The eleven browser tools, sharing one session."""
    kinds = [Navigate, Snapshot, Click, Type, Select, Press, Back, WaitFor, Screenshot, Console, Tabs]
    return [kind(session) for kind in kinds]


def replayer(tools: list[Tool], ctx: ToolContext) -> Any:
    """A function that re-runs one recorded call with the tool that made it."""
    by_name = {t.name: t for t in tools}

    def run(call: Recorded) -> None:
        tool = by_name[call.tool]
        tool.run(tool.Args.model_validate(call.args), ctx)

    return run


__all__ = ["ALLOWED_SCHEMES", "BrowserTool", "Path", "action_kind", "browser_tools", "check_url", "replayer"]
