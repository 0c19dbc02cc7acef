"""One browser per agent session: Playwright's sync API on the host, Chromium in the session's sandbox.

Chromium starts on the first browser call. Tabs past `max_tabs` are closed as they open; console messages
and failed requests are kept for browser_console; downloads go to the workspace's download directory (or
are cancelled). Every browser call that changed the page is logged, so that the search can rebuild the
page of an earlier node on a fresh one (`reset` + `replay`).

Errors raised here (all reach the model as tool errors)::

    ToolError
    └── BrowserError      Chromium is missing, did not start, crashed, or a page call failed
"""

from __future__ import annotations

import base64
import contextlib
import shutil
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from branchwise.sandbox.base import Sandbox, SandboxError
from branchwise.tools.base import ToolError
from branchwise.tools.browser import snapshot as S
from branchwise.tools.browser.settings import BrowserSettings

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page, Playwright

_MAX_CONSOLE = 200


class BrowserError(ToolError):
    """The browser could not do what was asked."""


@dataclass
class Recorded:
    """One browser call that changed the page, as it is replayed."""

    tool: str
    args: dict[str, Any]


@dataclass
class PageLog:
    """Console messages and failed requests of the session's pages, newest last."""

    console: deque[str] = field(default_factory=lambda: deque(maxlen=_MAX_CONSOLE))
    failed: deque[str] = field(default_factory=lambda: deque(maxlen=_MAX_CONSOLE))
    closed_popups: int = 0
    crashed: list[str] = field(default_factory=list)


class BrowserSession:
    """The session's browser; `page` starts it. Use `close()` (the toolbox does) to end Chromium."""

    def __init__(self, settings: BrowserSettings, sandbox: Sandbox, workspace: Path,
                 artifacts: Path | None = None) -> None:  # fmt: skip
        self.settings, self.sandbox, self.workspace = settings, sandbox, workspace
        self.artifacts = artifacts  # the run's browser/ directory: screenshots
        self.log: list[Recorded] = []
        self.replaying = False
        self.pages = PageLog()
        self.last_snapshot = ""
        self.launches = 0
        self.on_download: Callable[[str, Path | None], None] | None = None
        self._pw: Playwright | None = None
        self._browser: Browser | None = None
        self._context: BrowserContext | None = None
        self._page: Page | None = None
        self._scratch: Path | None = None
        self._pending: list[Any] = []
        self._uncached: list[Page] = []
        self._excess: list[Page] = []
        self._seen: dict[str, tuple[str, str, int]] = {}
        self.isolated = True
        self.thumbnails = False
        """Save a small JPEG of the page after each action that changed it (a search's tree view shows them)."""
        self._thumbs = 0

    # -- life cycle --------------------------------------------------------------------------------

    @property
    def started(self) -> bool:
        return self._browser is not None

    @property
    def page(self) -> Page:
        """The current tab, starting Chromium (and a first blank tab) when needed."""
        if self._browser is None:
            self._start()
        if self._page is None or self._page.is_closed():
            assert self._context is not None
            alive = [p for p in self._context.pages if not p.is_closed()]
            self._page = alive[-1] if alive else self._context.new_page()
        if self._page not in self._uncached:
            self._uncached.append(self._page)
            with contextlib.suppress(Exception):  # like a developer's browser: no stale script after an edit
                assert self._context is not None
                cdp = self._context.new_cdp_session(self._page)
                cdp.send("Network.enable")
                cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
        return self._page

    def _start(self) -> None:
        from playwright.sync_api import Error, sync_playwright

        from branchwise.sandbox.isolation.browser import prepare_launch

        self._scratch = Path(tempfile.mkdtemp(prefix="branchwise-browser-"))
        downloads = self._scratch / "downloads"
        downloads.mkdir()
        try:
            launch = prepare_launch(self.sandbox, executable=self.settings.executable, scratch=self._scratch,
                                    downloads=downloads, chromium_sandbox=self.settings.chromium_sandbox,
                                    js_heap_mb=self.settings.js_heap_mb, viewport=self.settings.viewport)  # fmt: skip
        except SandboxError as exc:
            raise BrowserError(str(exc)) from None
        self.isolated = launch.isolated
        try:
            self._pw = sync_playwright().start()
            self._browser = self._pw.chromium.launch(
                executable_path=str(launch.executable),
                args=launch.args if launch.chromium_sandbox else [*launch.args, "--no-sandbox"],
                chromium_sandbox=launch.chromium_sandbox,
                downloads_path=str(downloads),
                timeout=60_000,
                handle_sigint=False,
                handle_sigterm=False,
                handle_sighup=False,
            )
        except Error as exc:
            self.close()
            raise BrowserError(f"Chromium did not start: {_first_line(exc)}") from None
        self.launches += 1
        self._new_context()

    def _new_context(self) -> None:
        assert self._browser is not None
        width, height = self.settings.viewport
        self._context = self._browser.new_context(viewport={"width": width, "height": height},
                                                  accept_downloads=self.settings.downloads)  # fmt: skip
        self._context.set_default_timeout(self.settings.action_timeout_s * 1000)
        self._context.set_default_navigation_timeout(self.settings.navigation_timeout_s * 1000)
        self._context.on("page", self._watch)
        self._page = self._context.new_page()
        self._uncached = []

    def _watch(self, page: Page) -> None:
        """Every new tab: the tab limit, and its console, failed requests, crashes and downloads."""
        assert self._context is not None
        if len([p for p in self._context.pages if not p.is_closed()]) > self.settings.max_tabs:
            # Closed after the action returns: a handler may not call back into Playwright's sync API.
            self._excess.append(page)
            return
        page.on("console", lambda m: self.pages.console.append(f"[{m.type}] {m.text}"[:500]))
        page.on("pageerror", lambda e: self.pages.console.append(f"[pageerror] {e}"[:500]))
        page.on("requestfailed", lambda r: self.pages.failed.append(f"{r.method} {r.url[:200]}: {r.failure}"))
        page.on("crash", lambda p: self.pages.crashed.append(p.url))
        page.on("download", lambda d: self._pending.append(d))

    def close_excess_tabs(self) -> None:
        """Close the tabs that opened past `max_tabs` (popups) since the last call."""
        while self._excess:
            page = self._excess.pop(0)
            self.pages.closed_popups += 1
            with contextlib.suppress(Exception):  # it may already be gone
                page.close()

    def _save_downloads(self) -> list[str]:
        """Save (or cancel) the downloads the last action started; handlers may not call back into Playwright."""
        notes = []
        while self._pending:
            note = self._download(self._pending.pop(0))
            notes.append(note)
        return notes

    def _download(self, download: Any) -> str:
        target: Path | None = None
        if self.settings.downloads:
            folder = self.workspace / self.settings.download_dir
            name = Path(download.suggested_filename).name or "download"
            try:
                folder.mkdir(parents=True, exist_ok=True)
                target = folder / name
                download.save_as(target)
            except Exception:  # a failed or cancelled download is reported, not raised in Playwright's thread
                target = None
        else:
            with contextlib.suppress(Exception):
                download.cancel()
        if self.on_download is not None:
            self.on_download(download.url, target)
        if target is None:
            return f"[a download of {download.url[:200]} was refused (browser.downloads is false) or failed]"
        return f"[downloaded {download.url[:200]} to {target.relative_to(self.workspace)}]"

    def reset(self) -> None:
        """A fresh context and tab (no cookies, storage or history): the start of a replay."""
        if self._browser is None:
            self.log.clear()
            return
        if self._context is not None:
            with contextlib.suppress(Exception):
                self._context.close()
        self._new_context()
        self.log.clear()
        self.last_snapshot = ""

    def close(self) -> None:
        """End Chromium and the driver; safe to call twice."""
        for thing in (self._context, self._browser):
            if thing is not None:
                with contextlib.suppress(Exception):
                    thing.close()
        if self._pw is not None:
            with contextlib.suppress(Exception):
                self._pw.stop()
        self._pw = self._browser = self._context = self._page = None
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    # -- what the tools share ----------------------------------------------------------------------

    def tabs(self) -> list[Page]:
        if self._context is None:
            return []
        return [p for p in self._context.pages if not p.is_closed()]

    def select(self, page: Page) -> None:
        self._page = page
        page.bring_to_front()

    def snapshot(self) -> str:
        """A fresh AI snapshot of the current tab (its refs are now the current ones)."""
        page = self.page
        self._check_crash(page)
        try:
            text = page.aria_snapshot(mode="ai", timeout=self.settings.action_timeout_s * 1000)
        except Exception as exc:
            raise BrowserError(f"cannot read the page: {_first_line(exc)}") from None
        self.last_snapshot = text
        counts: dict[tuple[str, str], int] = {}
        for el in S.elements(text).values():
            key = (el.role, el.name)
            self._seen[el.ref] = (el.role, el.name, counts.get(key, 0))
            counts[key] = counts.get(key, 0) + 1
        return text

    def view(self, text: str | None = None) -> str:
        """The page header and its (capped) snapshot, as a tool returns it."""
        text = self.snapshot() if text is None else text
        return f"{self.header()}\n{S.cap(S.compact(text), self.settings.snapshot_tokens)}"

    def header(self) -> str:
        page = self.page
        try:
            title = page.title()
        except Exception:
            title = ""
        extra = f"; {len(self.tabs())} tabs" if len(self.tabs()) > 1 else ""
        return f"[page {page.url} — {title!r}{extra}]"

    def element(self, ref: str) -> Any:
        """The locator of a ref. A ref the page no longer has (the element was rendered anew) is followed to the
        element with the same role, name and position among its namesakes in a fresh snapshot."""
        if not self.last_snapshot:
            self.snapshot()
        if f"[ref={ref}]" in self.last_snapshot and self.page.get_by_ref(ref).count() == 1:
            return self.page.get_by_ref(ref)
        seen = self._seen.get(ref)
        if seen is not None:
            fresh = self.snapshot()
            same = [e for e in S.elements(fresh).values() if (e.role, e.name) == seen[:2]]
            if len(same) > seen[2]:
                return self.page.get_by_ref(same[seen[2]].ref)
        raise BrowserError(f"no element with ref {ref} on the page now; take browser_snapshot and use a current ref")

    def facts(self, ref: str) -> dict[str, Any]:
        """What the element of a ref is, for the policy: role, name, and whether it submits a form, logs in,
        pays or downloads. Reads the page only; empty when the browser has not started."""
        if self._browser is None or not self.last_snapshot:
            return {}
        element = S.elements(self.last_snapshot).get(ref)
        facts: dict[str, Any] = {"role": element.role, "name": element.name} if element else {}
        try:
            facts.update(self.page.get_by_ref(ref).evaluate(_ELEMENT_FACTS, timeout=1500))
        except Exception:
            pass  # a stale ref: the call will fail with a clear message when it runs
        return facts

    def acted(self, tool: str, args: dict[str, Any], before: str) -> str:
        """After an action: wait for the page to settle, log the call, and return what changed."""
        page = self.page
        with contextlib.suppress(Exception):
            page.wait_for_load_state("domcontentloaded", timeout=self.settings.navigation_timeout_s * 1000)
        if not self.replaying:
            self.log.append(Recorded(tool, dict(args)))
        self.close_excess_tabs()
        notes = self._save_downloads()
        after = self.snapshot()
        return "\n".join(
            [self.header(), *notes, S.changes(S.compact(before), S.compact(after), self.settings.snapshot_tokens)]
        )

    def thumbnail(self) -> Path | None:
        """A quarter-size, low-quality JPEG of the current tab's viewport in the run's browser/ directory, when
        `thumbnails` is on (None otherwise, or when the page cannot be captured)."""
        if not self.thumbnails or self.artifacts is None or self._context is None or self._page is None:
            return None
        width, height = self.settings.viewport
        clip = {"x": 0, "y": 0, "width": width, "height": height, "scale": 0.25}
        try:  # CDP scales while capturing: a 320x200 image costs a few milliseconds and a few kilobytes
            cdp = self._context.new_cdp_session(self._page)
            try:
                shot = cdp.send("Page.captureScreenshot", {"format": "jpeg", "quality": 40, "clip": clip})
            finally:
                cdp.detach()
            self.artifacts.mkdir(parents=True, exist_ok=True)
            self._thumbs += 1
            path = self.artifacts / f"thumb-{self._thumbs}.jpg"
            path.write_bytes(base64.b64decode(shot["data"]))
        except Exception:  # a crashed or closing tab: the tree shows the node without a picture
            return None
        return path

    def _check_crash(self, page: Page) -> None:
        if page.url in self.pages.crashed or (self.pages.crashed and page.is_closed()):
            raise BrowserError("the tab crashed (out of memory, or the page was killed); open it again")

    def replay(self, calls: list[Recorded], run: Callable[[Recorded], None]) -> None:
        """Rebuild a page by running `calls` again on a fresh context (they are logged anew as they run)."""
        self.reset()
        started = time.monotonic()
        for call in calls:
            run(call)
            if time.monotonic() - started > 120:
                raise BrowserError("replaying the browser's earlier actions took too long")


_ELEMENT_FACTS = """el => {
  const form = el.form || el.closest('form');
  const type = (el.getAttribute('type') || '').toLowerCase();
  const tag = el.tagName.toLowerCase();
  const submits = !!form && (type === 'submit' || type === 'image' || (tag === 'button' && type !== 'button'
    && type !== 'reset'));
  const text = [el.innerText, el.value, el.getAttribute('aria-label'), el.getAttribute('name'),
    form && form.getAttribute('action'), form && form.id].filter(Boolean).join(' ').toLowerCase();
  const link = el.closest('a');
  return {
    tag, type, in_form: !!form, submits,
    password_form: !!form && !!form.querySelector('input[type=password]'),
    payment_words: /\\b(pay|payment|checkout|purchase|buy|order|donate|subscribe|card)\\b/.test(text),
    downloads: !!(link && link.hasAttribute('download')),
    href: link ? link.href : null,
  };
}"""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
