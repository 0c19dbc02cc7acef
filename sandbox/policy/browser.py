"""Built-in policy for browser calls, from the URL they open and the facts their tool reads off the page.

- Not overridable (`builtin:browser-scheme`): only http(s) pages and about:blank; file:, chrome:, data:,
  javascript:, view-source: and the like are refused, whatever the rules say.
- Defaults (`default:browser-*`, after the user's rules): navigation follows the sandbox's network: with
  network off only the session's loopback is reachable; with proxy the allowed and denied domains decide,
  as the proxy itself will for every request; form submits, logins, payments and downloads ask.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from branchwise.sandbox.isolation.proxy import DomainRules, normalize_host
from branchwise.sandbox.settings import Action, SandboxSettings

_SCHEMES = ("http", "https")
_LOOPBACK = ("localhost", "127.0.0.1", "::1")
_KIND_REASONS = {
    "submit": "submits a form (it may change a server)",
    "login": "logs in (sends credentials)",
    "payment": "looks like a payment or an order",
    "download": "downloads a file",
}


def urls_of(args: dict[str, Any], facts: dict[str, Any]) -> list[str]:
    """The URLs a browser call would open."""
    found = [facts.get("url"), args.get("url")]
    return list(dict.fromkeys(u for u in found if isinstance(u, str) and u))


def scheme_refusal(url: str) -> str | None:
    """Why a URL may not be opened at all, or None."""
    url = url.strip()
    if url == "about:blank":
        return None
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme.lower() not in _SCHEMES:
        return f"{parts.scheme or 'this'}: URLs are never opened by the browser (only http and https)"
    return None


def network_decision(url: str, sandbox: SandboxSettings) -> tuple[Action, str] | None:
    """(deny, why) when the session's network cannot or may not reach the URL's host; None when it may."""
    if url.strip() == "about:blank":
        return None
    parts = urlsplit(url if "://" in url else f"http://{url}")
    host = normalize_host(parts.hostname or "")
    if host is None:
        return "deny", f"{url[:200]} names no valid host"
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return "deny", f"{url[:200]} has an invalid port"
    loopback = host in _LOOPBACK or host.startswith("127.")
    if sandbox.mode == "full-access" or sandbox.network == "on":
        return None
    if sandbox.network == "off":
        if loopback:
            return None
        return "deny", f"{host} is off the machine and the network is off (only the session's own loopback)"
    listed = any(f"{host}:{port}" == e or host == e for e in sandbox.allowed_domains)
    if loopback and not listed:
        return None  # the session's own loopback, reached directly
    allowed, why, _ = DomainRules(sandbox.allowed_domains, sandbox.denied_domains).check(host, port)
    return None if allowed else ("deny", why)


def kind_reason(facts: dict[str, Any]) -> tuple[str, str] | None:
    """(kind, reason) for a call that submits, logs in, pays or downloads."""
    kind = facts.get("kind")
    return (kind, _KIND_REASONS[kind]) if isinstance(kind, str) and kind in _KIND_REASONS else None
