"""Chromium inside the session's sandbox: the launcher Playwright starts as its `executable_path`.

Playwright's driver stays on the host and talks to Chromium over the remote-debugging pipe (fds 3 and 4),
which passes through bwrap unchanged. Chromium gets the session's filesystem view, cgroups and network:
with network off only the session's private loopback (so a dev server the agent started is reachable and
nothing else is); with network proxy every other host goes through the filtering proxy, which decides and
logs each connection. Its own renderer sandbox (user, pid and network namespaces per renderer) is kept
inside bwrap unless asked otherwise. bwrap's --die-with-parent and the session keeper end it with the agent.
"""

from __future__ import annotations

import base64
import json
import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from branchwise.sandbox.base import Sandbox, SandboxError

# Flags that keep Chromium from calling home or waiting on first-run dialogs (Playwright adds most as well).
QUIET_FLAGS = (
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-default-apps",
    "--disable-breakpad",
    "--disable-domain-reliability",
    "--metrics-recording-only",
    "--no-pings",
)
_PROXY = "127.0.0.1:3128"


@dataclass(frozen=True)
class BrowserLaunch:
    """What Playwright's launch() needs: the wrapper to run as Chromium, and the arguments to give it."""

    executable: Path
    args: list[str] = field(default_factory=list)
    chromium_sandbox: bool = True
    isolated: bool = True


def proxy_pac(allowed: Sequence[str]) -> str:
    """A PAC script for network = proxy: the session's own loopback direct, loopback hosts the allow list names
    exactly (a server the user runs on the host) and every other host through the filtering proxy."""
    host_loopback = sorted({e.lower() for e in allowed if _is_loopback_entry(e)})
    return (
        "function FindProxyForURL(url, host) {\n"
        f"  var listed = {json.dumps(host_loopback)};\n"
        "  var m = url.match(/^[a-z]+:\\/\\/(?:[^@\\/]*@)?(\\[[^\\]]+\\]|[^:\\/]+)(?::(\\d+))?/i);\n"
        "  var port = m && m[2] ? m[2] : (url.substring(0, 5) == 'https' ? '443' : '80');\n"
        "  var h = host.toLowerCase();\n"
        "  if (listed.indexOf(h + ':' + port) >= 0 || listed.indexOf(h) >= 0) return 'PROXY " + _PROXY + "';\n"
        "  if (h == 'localhost' || h == '[::1]' || h == '::1' || shExpMatch(h, '127.*')) return 'DIRECT';\n"
        "  return 'PROXY " + _PROXY + "';\n"
        "}\n"
    )


def _is_loopback_entry(entry: str) -> bool:
    host = entry.rsplit(":", 1)[0] if entry.count(":") == 1 else entry
    return host.strip("[]").lower() in ("localhost", "::1") or host.startswith("127.")


def chromium_args(*, network: str, allowed: Sequence[str], js_heap_mb: int, viewport: tuple[int, int]) -> list[str]:
    """Chromium's command-line flags for the session's network."""
    args = [*QUIET_FLAGS, f"--js-flags=--max-old-space-size={js_heap_mb}",
            f"--window-size={viewport[0]},{viewport[1]}"]  # fmt: skip
    if network == "proxy":
        pac = base64.b64encode(proxy_pac(allowed).encode()).decode()
        args.append(f"--proxy-pac-url=data:application/x-ns-proxy-autoconfig;base64,{pac}")
    return args


def prepare_launch(
    sandbox: Sandbox,
    *,
    executable: str,
    scratch: Path,
    downloads: Path,
    chromium_sandbox: bool,
    js_heap_mb: int = 512,
    viewport: tuple[int, int] = (1280, 800),
) -> BrowserLaunch:
    """Write the launcher into `scratch` (a private host directory) and return how to launch through it."""
    if not Path(executable).is_file() or not os.access(executable, os.X_OK):
        raise SandboxError(f"Chromium is not installed at {executable}: apt-get install chromium (make setup)")
    facts = sandbox.describe()
    isolated = bool(facts.get("isolated"))
    network = str(facts.get("network", "on"))
    allowed = [str(a) for a in facts.get("allowed_domains", []) or []]
    if isolated:
        line = sandbox.command_line([executable], nested_sandbox=chromium_sandbox, writable=[downloads])
    else:  # full-access: the user opted out of the sandbox; Chromium runs as a host program
        line = sandbox.command_line([executable])
        chromium_sandbox = chromium_sandbox and os.geteuid() != 0  # root cannot run Chromium's sandbox
    launcher = scratch / "chromium-in-sandbox"
    launcher.write_text("#!/bin/sh\nexec " + " ".join(shlex.quote(a) for a in line) + ' "$@"\n')
    launcher.chmod(0o700)
    args = chromium_args(network=network if isolated else "on", allowed=allowed, js_heap_mb=js_heap_mb,
                         viewport=viewport)  # fmt: skip
    return BrowserLaunch(launcher, args, chromium_sandbox=chromium_sandbox, isolated=isolated)
