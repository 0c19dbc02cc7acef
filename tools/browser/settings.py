"""The `[browser]` section: the sandboxed Chromium the browser tools drive."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class BrowserSettings(BaseModel):
    """Browser tools: Playwright driving Debian's Chromium inside the session's sandbox (`[browser]`)."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    enabled: bool = True
    """Offer the browser_* tools; Chromium starts on their first use, never before."""
    executable: str = "/usr/bin/chromium"
    """The Chromium program (Debian's `chromium` package); a repository's config may not change it."""
    chromium_sandbox: bool = True
    """Keep Chromium's own renderer sandbox inside bwrap (user namespaces for its renderers); false runs it with
    --no-sandbox under the session's full seccomp filter. A repository's config may not turn it off."""
    downloads: bool = True
    """Let a page download files, into `download_dir` in the workspace (each download asks first by default).
    false refuses every download; a repository's config may not turn them on."""
    download_dir: str = "downloads"
    """Workspace-relative directory downloads are saved to."""
    max_tabs: int = Field(8, ge=1, le=64)
    """Tabs open at once; popups past it are closed as they open."""
    js_heap_mb: int = Field(512, ge=64)
    """JavaScript heap of a page (V8 --max-old-space-size); a page that allocates without end crashes its tab."""
    navigation_timeout_s: float = Field(20.0, gt=0)
    """Seconds a navigation may take before it is reported as timed out."""
    action_timeout_s: float = Field(5.0, gt=0)
    """Seconds a click, typing or a wait on an element may take."""
    snapshot_tokens: int = Field(3000, ge=200, le=50_000)
    """Token budget of one browser_snapshot (the accessibility tree is cut past it, with a note)."""
    viewport: tuple[int, int] = (1280, 800)
    """Page size in CSS pixels (width, height)."""
    images: Literal["auto", "on", "off"] = "auto"
    """Attach screenshots to the conversation as images: auto (for models litellm says take images), on, off."""
    keep_images: int = Field(1, ge=0)
    """Screenshots kept in the conversation at once; older ones are replaced by a note."""


def repository_browser_problems(data: dict[str, Any], below: dict[str, Any] | None = None) -> list[str]:
    """Why a config layer that comes with a repository may not say what it says about the browser: it may
    narrow it (fewer tabs, less memory, no downloads, no browser), never pick the program that runs, turn
    Chromium's own sandbox off or turn downloads on."""
    browser = data.get("browser")
    if browser is None:
        return []
    if not isinstance(browser, dict):
        return ["browser must be a table"]
    base = (below or {}).get("browser") or {}
    base = base if isinstance(base, dict) else {}
    problems = []
    if "executable" in browser:
        problems.append("browser.executable names a program branchwise runs on this machine")
    if browser.get("chromium_sandbox") is False:
        problems.append("browser.chromium_sandbox = false turns Chromium's own sandbox off")
    if browser.get("downloads") is True and base.get("downloads", True) is False:
        problems.append("browser.downloads = true lets pages write files that are off")
    if "download_dir" in browser:
        problems.append("browser.download_dir decides where pages write files")
    for key in ("max_tabs", "js_heap_mb"):
        value, limit = browser.get(key), base.get(key, BrowserSettings.model_fields[key].default)
        if isinstance(value, int) and isinstance(limit, int) and value > limit:
            problems.append(f"browser.{key} = {value} is above {limit}")
    return problems
