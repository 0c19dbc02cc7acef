"""Browser tools: the sandboxed Chromium against the same Chromium launched unsandboxed by Playwright, in one run.

Latencies (median of N): launch (start to a blank page), navigate, snapshot (AI snapshot) and click, sandboxed
(bwrap + Chromium's own sandbox, the session's loopback) over unsandboxed (a host Chromium on the host loopback).
Sizes on five local pages: browser_snapshot's tokens against the HTML's and the full accessibility tree's
(CDP Accessibility.getFullAXTree as JSON), all counted with the same chars/4 estimate. Last line: JSON summary.
"""

from __future__ import annotations

import functools
import http.server
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from branchwise.sandbox.isolation.browser import QUIET_FLAGS
from branchwise.sandbox.isolation.bwrap import BwrapSandbox
from branchwise.tools.browser.session import BrowserSession
from branchwise.tools.browser.settings import BrowserSettings
from branchwise.tools.browser.snapshot import cap, tokens
from tests.support.browser_pages import wait_for_port

N = 5
PORT = 8790
CHROMIUM = "/usr/bin/chromium"


def pages() -> dict[str, str]:
    """Five realistic local pages: a long docs page, a form, a table, a single-page app, a news list."""
    para = "<p>The <code>open()</code> function opens a file and returns a stream. " * 3 + "</p>"
    docs = "<nav>" + "".join(f'<a href="#s{i}">Section {i}</a>' for i in range(60)) + "</nav><main>"
    docs += "".join(f'<h2 id="s{i}">Section {i}</h2>{para}<pre>with open("f") as f:\n    f.read()</pre>'
                    for i in range(60)) + "</main>"  # fmt: skip
    form = (
        "<form>"
        + "".join(
            f'<div class="row"><label for="f{i}">Field {i}</label><input id="f{i}" name="f{i}" class="input x{i}" '
            f'placeholder="value {i}" style="margin:4px"></div>'
            for i in range(25)
        )
        + '<select name="c">'
        + "".join(f"<option>Country {i}</option>" for i in range(40))
        + "</select>"
    )
    form += '<button type="submit">Send</button></form>'
    table = "<table><tr><th>Name</th><th>Qty</th><th>Price</th></tr>" + "".join(
        f'<tr class="r{i}"><td style="padding:2px">Item {i}</td><td>{i}</td><td>{i * 1.5:.2f}</td></tr>'
        for i in range(150)) + "</table>"  # fmt: skip
    spa = (
        '<div id="root"></div><script>'
        + "const data="
        + json.dumps([{"id": i, "title": f"Task {i}", "done": i % 3 == 0} for i in range(80)])
        + ';document.getElementById(\'root\').innerHTML=data.map(t=>`<div class="card" data-id="${t.id}">'
        "<input type=checkbox ${t.done?'checked':''}> <span class=\"t\">${t.title}</span>"
        "<button type=button>Edit</button></div>`).join('')</script>"
    )
    news = "<ul>" + "".join(f'<li class="story"><a href="/s/{i}" class="title">Story number {i} about things</a>'
                            f'<span class="meta">by user{i} | {i} points | <a href="/c/{i}">{i} comments</a>'
                            '</span></li>'
                            for i in range(100)) + "</ul>"  # fmt: skip
    shell = (
        '<!doctype html><html><head><meta charset="utf-8"><title>{t}</title><style>body{{font:14px sans-serif}}'
        ".card{{border:1px solid #ccc;margin:4px;padding:4px}}</style></head><body><h1>{t}</h1>{b}"
        '<button type="button" id="go" onclick="this.textContent=\'Clicked\'">Go</button></body></html>'
    )
    bodies = {"docs": docs, "form": form, "table": table, "spa": spa, "news": news}
    return {f"{k}.html": shell.format(t=k, b=v) for k, v in bodies.items()}


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def median_ms(values: list[float]) -> float:
    return round(statistics.median(values) * 1000, 1)


def measure(launch, url_of) -> dict[str, float]:
    """Launch, navigate, snapshot, click: N rounds each on a fresh browser."""
    times: dict[str, list[float]] = {"launch": [], "navigate": [], "snapshot": [], "click": []}
    for _ in range(N):
        t = time.perf_counter()
        page, close = launch()
        times["launch"].append(time.perf_counter() - t)
        for name in ("docs", "form", "table"):
            t = time.perf_counter()
            page.goto(url_of(f"{name}.html"), wait_until="domcontentloaded")
            times["navigate"].append(time.perf_counter() - t)
            t = time.perf_counter()
            page.aria_snapshot(mode="ai")
            times["snapshot"].append(time.perf_counter() - t)
            t = time.perf_counter()
            page.locator("#go").click()
            times["click"].append(time.perf_counter() - t)
        close()
    return {k: median_ms(v) for k, v in times.items()}


def main() -> int:
    from playwright.sync_api import sync_playwright

    root = Path(tempfile.mkdtemp(prefix="bench-browser-"))
    site = root / "ws" / "site"
    site.mkdir(parents=True)
    for name, html in pages().items():
        (site / name).write_text(html)
    # Unsandboxed baseline: a host server on the host loopback.
    handler = functools.partial(_Quiet, directory=str(site))
    host_server = http.server.ThreadingHTTPServer(("127.0.0.1", PORT + 1), handler)
    threading.Thread(target=host_server.serve_forever, daemon=True).start()
    with BwrapSandbox(root / "ws") as sandbox:
        sandbox.start_background(["python3", "-m", "http.server", str(PORT), "--directory", "site"])
        wait_for_port(sandbox, PORT)

        def sandboxed():
            session = BrowserSession(BrowserSettings(), sandbox, root / "ws")
            return session.page, session.close

        with sync_playwright() as p:

            def plain():
                browser = p.chromium.launch(executable_path=CHROMIUM, args=list(QUIET_FLAGS))
                return browser.new_page(), browser.close

            base = measure(plain, lambda n: f"http://127.0.0.1:{PORT + 1}/{n}")
        boxed = measure(sandboxed, lambda n: f"http://127.0.0.1:{PORT}/{n}")
        sizes = snapshot_sizes(sandbox, root, PORT)
    host_server.shutdown()
    ratios = {k: round(boxed[k] / base[k], 2) for k in base}
    print("median ms (unsandboxed -> sandboxed, ratio):")
    for k in base:
        print(f"  {k:9s} {base[k]:8.1f} -> {boxed[k]:8.1f}  x{ratios[k]}")
    print("tokens (browser_snapshot / full AI snapshot / full AX tree JSON / HTML):")
    for name, row in sizes.items():
        print(f"  {name:6s} {row['snapshot']:6d} / {row['ai_full']:6d} / {row['ax_tree']:7d} / {row['html']:6d}"
              f"   HTML is x{row['html'] / row['snapshot']:.1f}")  # fmt: skip
    smallest = min(r["html"] / r["snapshot"] for r in sizes.values())
    print(json.dumps({"bench": "browser", "n": N, "unsandboxed_ms": base, "sandboxed_ms": boxed, "ratio": ratios,
                      "tokens": sizes, "min_html_over_snapshot": round(smallest, 1)}))  # fmt: skip
    return 0


def snapshot_sizes(sandbox: BwrapSandbox, root: Path, port: int) -> dict[str, dict[str, int]]:
    settings = BrowserSettings()
    session = BrowserSession(settings, sandbox, root / "ws")
    out = {}
    try:
        for name, html in pages().items():
            page = session.page
            page.goto(f"http://127.0.0.1:{port}/{name}", wait_until="domcontentloaded")
            full = page.aria_snapshot(mode="ai")
            cdp = page.context.new_cdp_session(page)
            ax = json.dumps(cdp.send("Accessibility.getFullAXTree"))
            out[name.removesuffix(".html")] = {"snapshot": tokens(cap(full, settings.snapshot_tokens)),
                                               "ai_full": tokens(full), "ax_tree": tokens(ax),
                                               "html": tokens(html)}  # fmt: skip
    finally:
        session.close()
    return out


if __name__ == "__main__":
    sys.exit(main())
