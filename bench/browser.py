"""Browser tools: the sandboxed Chromium against the same Chromium launched unsandboxed by Playwright, in one run.

Latencies (median of N): launch (start to a blank page), navigate, snapshot (AI snapshot) and click, sandboxed
(bwrap + Chromium's own sandbox, the session's loopback) over unsandboxed (a host Chromium on the host loopback,
with the same context set-up as the session: viewport, cache off). The launch is broken down in the same run:
the bwrap chain alone (/bin/true in the sandbox) and the sandboxed browser without Chromium's own renderer
sandbox (`browser.chromium_sandbox = false`; Playwright's unsandboxed default is --no-sandbox, and root cannot
run Chromium's sandbox at all), so the ratio says what the bwrap layer costs and what the renderer sandbox does.

Sizes: browser_snapshot's tokens (compacted: refs only on what can be acted on, capped at snapshot_tokens; the
uncapped compact tree and Playwright's AI snapshot as it comes are shown too) against the page's HTML (the
rendered DOM, page.content(); the served file as well) and the full accessibility tree (CDP
Accessibility.getFullAXTree as JSON), all counted with the same chars/4 estimate, on real-world pages where they
are on this machine: the Python documentation Debian's python3-doc ships (a long library page, the module index
table, the builtins page) and Swagger UI from npm's swagger-ui-dist (a React single-page app, rendering a local
OpenAPI document); plus generated pages with a real site's markup density (framework classes, inline styles and
scripts, tracking attributes, nav and footer): a sign-up form and a news list. Each page says which it is.
Last line: JSON summary.
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
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from branchwise.sandbox.isolation.browser import QUIET_FLAGS
from branchwise.sandbox.isolation.bwrap import BwrapSandbox
from branchwise.tools.browser.session import BrowserSession
from branchwise.tools.browser.settings import BrowserSettings
from branchwise.tools.browser.snapshot import cap, compact, tokens
from tests.support.browser_pages import wait_for_port

N = 5
PORT = 8790
CHROMIUM = "/usr/bin/chromium"


PY_DOCS = Path("/usr/share/doc/python3/html")
SWAGGER_PACKAGE = "swagger-ui-dist@5"


def _chrome(title: str, body: str) -> str:
    """A page with what real sites put around their content: meta and preload tags, a tag manager, JSON-LD,
    a nav with a mega menu, cookie banner and footer, framework classes and data/tracking attributes."""
    nav = "".join(
        f'<li class="nav-item dropdown position-relative" data-track="nav-{i}"><a class="nav-link dropdown-toggle '
        f'px-3 py-2 text-sm font-medium" href="/c/{i}" data-bs-toggle="dropdown" aria-expanded="false">Category {i}</a>'
        '<ul class="dropdown-menu shadow-lg rounded-3 border-0">'
        + "".join(
            f'<li><a class="dropdown-item small" href="/c/{i}/{j}" data-analytics-id="m{i}-{j}">Item {j}</a></li>'
            for j in range(8)
        )
        + "</ul></li>"
        for i in range(7)
    )
    foot = "".join(f'<div class="col-6 col-md-3 mb-3"><h5 class="text-uppercase fw-bold small">Group {i}</h5><ul '
                   'class="list-unstyled">' + "".join(f'<li class="mb-1"><a class="link-secondary text-decoration-none"'
                                                      f' href="/f/{i}/{j}">Footer link {j}</a></li>' for j in range(6))
                   + "</ul></div>" for i in range(4))  # fmt: skip
    flags = json.dumps({"flags": {f"exp_{i}": i % 2 == 0 for i in range(40)}, "locale": "en-US"})
    tracking = (
        "<script>(function(w,d,s,l,i){w[l]=w[l]||[];w[l].push({'gtm.start':new Date().getTime(),"
        f"event:'gtm.js'}});}})(window,document,'script','dataLayer','GTM-X');var cfg={flags};</script>"
    )
    meta = "".join(f'<meta property="og:tag{i}" content="value {i}">' for i in range(12))
    meta += "".join(f'<link rel="preload" href="/static/chunk-{i}.js" as="script">' for i in range(10))
    ld = '<script type="application/ld+json">' + json.dumps(
        {"@context": "https://schema.org", "@type": "WebPage", "name": title, "breadcrumb": [f"l{i}" for i in range(5)]}
    )
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>{meta}{ld}</script>'
            f"{tracking}<style>.btn{{padding:.375rem .75rem}}.card{{border-radius:.5rem}}</style></head>"
            '<body class="d-flex flex-column min-vh-100 bg-light"><header class="navbar navbar-expand-lg sticky-top">'
            f'<nav class="container-xxl" aria-label="Main"><ul class="navbar-nav me-auto">{nav}</ul></nav></header>'
            f'<main class="container my-4 flex-grow-1" id="content">{body}</main>'
            '<div class="cookie-banner fixed-bottom p-3 bg-dark text-white" role="dialog" aria-label="Cookies">We use'
            ' cookies. <button class="btn btn-sm btn-primary" type="button" data-consent="all">Accept</button></div>'
            f'<footer class="footer mt-auto py-5 border-top"><div class="container"><div class="row">{foot}</div>'
            '</div></footer><button type="button" id="go" onclick="this.textContent=\'Clicked\'">Go</button>'
            "</body></html>")  # fmt: skip


def generated_pages() -> dict[str, str]:
    """Pages with a real site's markup density, written here (no real form or news page ships in a package)."""
    fields = "".join(
        f'<div class="mb-3 form-floating col-md-6" data-field="f{i}"><input type="text" class="form-control '
        f'form-control-lg rounded-2 shadow-sm" id="f{i}" name="f{i}" placeholder="Field {i}" autocomplete="off" '
        f'data-validate="required" aria-describedby="h{i}" style="min-height:3.5rem"><label for="f{i}">Field {i}'
        f'</label><div id="h{i}" class="form-text text-muted small">Help for field {i}.</div></div>'
        for i in range(14)
    )
    countries = "".join(f'<option value="c{i}">Country {i}</option>' for i in range(60))
    form = (f'<div class="row justify-content-center"><div class="col-lg-8"><div class="card p-4 shadow"><h1 class='
            f'"h3 mb-3 fw-normal">Create your account</h1><form class="needs-validation row g-3" novalidate '
            f'action="/signup" method="post" data-form-id="signup">{fields}<div class="col-12"><select class="form-'
            f'select" name="country" aria-label="Country">{countries}</select></div><div class="col-12 form-check">'
            '<input class="form-check-input" type="checkbox" id="tos"><label class="form-check-label" for="tos">I '
            'agree</label></div><button class="btn btn-primary btn-lg w-100" type="submit">Sign up</button></form>'
            "</div></div></div>")  # fmt: skip
    stories = "".join(
        f'<article class="story d-flex gap-3 py-3 border-bottom" data-story-id="{i}" data-rank="{i + 1}" itemscope '
        f'itemtype="https://schema.org/NewsArticle"><img class="rounded flex-shrink-0" width="96" height="64" alt="" '
        f'loading="lazy" src="/img/{i}.jpg"><div class="flex-grow-1"><h2 class="h6 mb-1" itemprop="headline"><a '
        f'class="stretched-link text-dark" href="/s/{i}?utm_source=home&amp;utm_medium=list">Story number {i} about '
        f'things that happened</a></h2><p class="small text-muted mb-0"><span itemprop="author">user{i}</span> · '
        f'<time datetime="2026-01-{i % 28 + 1:02d}">{i} hours ago</time> · <a href="/c/{i}" data-track="comments">{i} '
        "comments</a></p></div></article>"
        for i in range(60)
    )
    return {"form": _chrome("Sign up", form), "news": _chrome("News", f'<section class="feed">{stories}</section>')}


def swagger_site(folder: Path) -> bool:
    """Swagger UI from npm (swagger-ui-dist, fetched with `npm pack` into the bench's scratch directory) with a
    local OpenAPI document, as spa.html; False when npm or the registry is not there."""
    import subprocess
    import tarfile

    try:
        done = subprocess.run(["npm", "pack", "--silent", SWAGGER_PACKAGE], cwd=folder, capture_output=True,
                              text=True, timeout=180)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return False
    tarballs = sorted(folder.glob("swagger-ui-dist-*.tgz"))
    if done.returncode != 0 or not tarballs:
        return False
    with tarfile.open(tarballs[-1]) as tar:
        tar.extractall(folder, filter="data")
    paths = {
        f"/pets/{{id}}/item{i}": {
            m: {
                "summary": f"{m} item {i}",
                "tags": [f"group{i % 4}"],
                "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}],
                "responses": {"200": {"description": "OK"}},
            }
            for m in ("get", "put", "delete")
        }
        for i in range(12)
    }
    spec = {"openapi": "3.0.0", "info": {"title": "Pet store", "version": "1.0"}, "paths": paths}
    (folder / "package" / "spa.html").write_text(
        '<!doctype html><html><head><meta charset="utf-8"><title>spa</title><link rel="stylesheet" '
        'href="swagger-ui.css"></head><body><div id="swagger-ui"></div><script src="swagger-ui-bundle.js"></script>'
        f"<script>window.ui=SwaggerUIBundle({{spec:{json.dumps(spec)},dom_id:'#swagger-ui'}});</script>"
        '<button type="button" id="go" onclick="this.textContent=\'Clicked\'">Go</button></body></html>'
    )
    return True


def realistic_pages(root: Path) -> list[tuple[str, str, str]]:
    """(name, URL path under the sandbox's server, where it comes from) for every page of the size table."""
    out = []
    if (PY_DOCS / "library" / "os.html").is_file():
        src = "real: Python docs, Debian python3-doc"
        out += [("docs", "py/library/os.html", src), ("table", "py/py-modindex.html", src),
                ("builtins", "py/library/functions.html", src)]  # fmt: skip
    if swagger_site(root / "ws" / "site"):
        out.append(("spa", "package/spa.html", f"real: Swagger UI, npm {SWAGGER_PACKAGE}"))
    out += [(name, f"{name}.html", "generated, realistic markup density") for name in generated_pages()]
    return out


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a page closed while its images were still loading (BrokenPipe): the same for both browsers


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def median_ms(values: list[float]) -> float:
    return round(statistics.median(values) * 1000, 1)


def measure(variants: dict[str, tuple[Any, Any, tuple[str, ...]]]) -> dict[str, dict[str, list[float]]]:
    """Launch, navigate, snapshot, click: N rounds, each on a fresh browser, the variants taking turns within each
    round (a machine shared with other work drifts in speed; measured one after the other, that drift would show
    up as a ratio)."""
    times = {v: {"launch": [], "navigate": [], "snapshot": [], "click": []} for v in variants}
    for _ in range(N):
        for variant, (launch, url_of, pages) in variants.items():
            t = time.perf_counter()
            page, close = launch()
            times[variant]["launch"].append(time.perf_counter() - t)
            for name in pages:
                t = time.perf_counter()
                page.goto(url_of(f"{name}.html"), wait_until="domcontentloaded")
                times[variant]["navigate"].append(time.perf_counter() - t)
                t = time.perf_counter()
                page.aria_snapshot(mode="ai")
                times[variant]["snapshot"].append(time.perf_counter() - t)
                t = time.perf_counter()
                page.locator("#go").click()
                times[variant]["click"].append(time.perf_counter() - t)
            close()
    return times


def bwrap_floor_s(sandbox: BwrapSandbox) -> tuple[float, float]:
    """Median seconds of /bin/true through the browser's sandbox launcher, and of /bin/true alone."""
    import subprocess

    line = sandbox.command_line(["/bin/true"], nested_sandbox=True)
    boxed, plain = [], []
    for _ in range(2 * N):
        t = time.perf_counter()
        subprocess.run(line, check=False)
        boxed.append(time.perf_counter() - t)
        t = time.perf_counter()
        subprocess.run(["/bin/true"], check=False)
        plain.append(time.perf_counter() - t)
    return statistics.median(boxed), statistics.median(plain)


def main() -> int:
    from playwright.sync_api import sync_playwright

    root = Path(tempfile.mkdtemp(prefix="bench-browser-"))
    site = root / "ws" / "site"
    site.mkdir(parents=True)
    for name, html in generated_pages().items():
        (site / f"{name}.html").write_text(html)
    if PY_DOCS.is_dir():
        (site / "py").symlink_to(PY_DOCS.resolve())
    listed = realistic_pages(root)
    # Unsandboxed baseline: a host server on the host loopback.
    handler = functools.partial(_Quiet, directory=str(site))
    host_server = _QuietServer(("127.0.0.1", PORT + 1), handler)
    threading.Thread(target=host_server.serve_forever, daemon=True).start()
    settings = BrowserSettings()
    with BwrapSandbox(root / "ws") as sandbox:
        sandbox.start_background(["python3", "-m", "http.server", str(PORT), "--directory", "site"])
        wait_for_port(sandbox, PORT)

        def sandboxed(chromium_sandbox: bool = True):
            def launch():
                session = BrowserSession(BrowserSettings(chromium_sandbox=chromium_sandbox), sandbox, root / "ws")
                return session.page, session.close

            return launch

        def plain():
            # What the session does around the launch (its own Playwright driver, a context with the viewport, the
            # cache off), so the ratio is the sandbox's alone.
            driver = sync_playwright().start()
            browser = driver.chromium.launch(executable_path=CHROMIUM, args=list(QUIET_FLAGS))
            width, height = settings.viewport
            page = browser.new_context(viewport={"width": width, "height": height}).new_page()
            cdp = page.context.new_cdp_session(page)
            cdp.send("Network.enable")
            cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})

            def close() -> None:
                browser.close()
                driver.stop()

            return page, close

        host = lambda n: f"http://127.0.0.1:{PORT + 1}/{n}"  # noqa: E731
        box = lambda n: f"http://127.0.0.1:{PORT}/{n}"  # noqa: E731
        pages = ("form", "news")
        runs = measure({"base": (plain, host, pages), "boxed": (sandboxed(), box, pages),
                        "boxed_without_chromium_sandbox": (sandboxed(False), box, ())})  # fmt: skip
        base, boxed, no_renderer_sandbox = runs["base"], runs["boxed"], runs["boxed_without_chromium_sandbox"]
        floor, true_alone = bwrap_floor_s(sandbox)
        sizes = snapshot_sizes(sandbox, site, PORT, listed)
    host_server.shutdown()
    base_ms = {k: median_ms(v) for k, v in base.items()}
    boxed_ms = {k: median_ms(v) for k, v in boxed.items()}
    ratios = {k: round(boxed_ms[k] / base_ms[k], 2) for k in base_ms}
    launch = {
        "unsandboxed_ms": base_ms["launch"],
        "sandboxed_ms": boxed_ms["launch"],
        "sandboxed_without_chromium_sandbox_ms": median_ms(no_renderer_sandbox["launch"]),
        "bwrap_chain_ms": round((floor - true_alone) * 1000, 1),
        # The first launch of a session also compiles its nested seccomp filter; the medians above leave it out.
        "first_unsandboxed_ms": round(base["launch"][0] * 1000, 1),
        "first_sandboxed_ms": round(boxed["launch"][0] * 1000, 1),
    }
    launch["ratio_without_chromium_sandbox"] = round(
        launch["sandboxed_without_chromium_sandbox_ms"] / base_ms["launch"], 2
    )
    print("median ms (unsandboxed -> sandboxed, ratio):")
    for k in base_ms:
        print(f"  {k:9s} {base_ms[k]:8.1f} -> {boxed_ms[k]:8.1f}  x{ratios[k]}")
    print(f"launch breakdown: bwrap chain (/bin/true through the launcher) {launch['bwrap_chain_ms']} ms; "
          f"sandboxed without Chromium's own sandbox {launch['sandboxed_without_chromium_sandbox_ms']} ms "
          f"(x{launch['ratio_without_chromium_sandbox']}); first launch {launch['first_unsandboxed_ms']} -> "
          f"{launch['first_sandboxed_ms']} ms")  # fmt: skip
    print(
        "tokens (browser_snapshot / uncapped compact / Playwright's AI snapshot / full AX tree JSON / rendered HTML /"
        " served HTML):"
    )
    for name, row in sizes.items():
        over, uncapped = row["html"] / row["snapshot"], row["html"] / row["compact_full"]
        print(f"  {name:8s} {row['snapshot']:6d} / {row['compact_full']:6d} / {row['ai_full']:6d} / {row['ax_tree']:7d}"
              f" / {row['html']:7d} / {row['served']:7d}   HTML is x{over:.1f}, uncapped x{uncapped:.1f}"
              f"  [{row['source']}]")  # fmt: skip
    smallest = min(r["html"] / r["snapshot"] for r in sizes.values())
    smallest_real = min(
        (r["html"] / r["snapshot"] for r in sizes.values() if r["source"].startswith("real")), default=None
    )
    print(json.dumps({"bench": "browser", "n": N, "unsandboxed_ms": base_ms, "sandboxed_ms": boxed_ms, "ratio": ratios,
                      "launch": launch, "tokens": sizes, "min_html_over_snapshot": round(smallest, 1),
                      "min_html_over_snapshot_real_pages": smallest_real and round(smallest_real, 1)}))  # fmt: skip
    return 0


def snapshot_sizes(sandbox: BwrapSandbox, site: Path, port: int,
                   listed: list[tuple[str, str, str]]) -> dict[str, dict]:  # fmt: skip
    settings = BrowserSettings()
    session = BrowserSession(settings, sandbox, site.parent)
    out: dict[str, dict] = {}
    try:
        for name, path, source in listed:
            page = session.page
            page.goto(f"http://127.0.0.1:{port}/{path}", wait_until="load")
            if name == "spa":
                page.wait_for_selector(".opblock", timeout=30_000)  # React has rendered the operations
            full = page.aria_snapshot(mode="ai")
            cdp = page.context.new_cdp_session(page)
            ax = json.dumps(cdp.send("Accessibility.getFullAXTree"))
            served = (site / path).read_text(errors="replace")
            out[name] = {"snapshot": tokens(cap(compact(full), settings.snapshot_tokens)), "ai_full": tokens(full),
                         "compact_full": tokens(compact(full)),
                         "ax_tree": tokens(ax), "html": tokens(page.content()), "served": tokens(served),
                         "source": source}  # fmt: skip
    finally:
        session.close()
    return out


if __name__ == "__main__":
    sys.exit(main())
