"""Programs whose effect depends on their arguments: transfer tools (a POST, an upload, a remote path),
build tools whose tasks publish, and installers that reach outside the workspace."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from urllib.parse import urlsplit

from branchwise.sandbox.policy import programs as P
from branchwise.sandbox.policy.shellwords import Word

Found = tuple[P.Action, str] | None
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_HTTPIE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE", "CONNECT", "TRACE"})
_HTTPIE_ITEM = re.compile(r"^[^=:@/]*(:=@|=@|:=|==|=|@)")


def is_loopback(host: str) -> bool:
    """Whether a host name or address stays on this machine (the session's own loopback)."""
    host = host.strip("[]").lower()
    if host in ("localhost", "localhost.localdomain", "ip6-localhost") or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def argument_action(name: str, args: list[Word]) -> Found:
    """What a program does that depends on its arguments, or None."""
    judge = _JUDGES.get(name)
    return judge(name, args) if judge is not None else None


def _positionals(args: list[Word]) -> list[Word]:
    return [w for w in args if not (w.text.startswith("-") and len(w.text) > 1)]


def _all_loopback(targets: list[Word], host_of: Callable[[str], str]) -> bool:
    """Every target names a loopback host (a computed one may name anything)."""
    return bool(targets) and all(w.static and is_loopback(host_of(w.text)) for w in targets)


def _url_host(text: str) -> str:
    url = text if "://" in text else f"http://{text}"
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""


def _has_option(args: list[Word], shorts: str, longs: tuple[str, ...]) -> str | None:
    """The first option among these (short letters inside clusters, long names and their prefixes)."""
    for word in args:
        text = word.text
        if text.startswith("--"):
            key = text.split("=", 1)[0]
            if len(key) > 3 and any(opt.startswith(key) or key.startswith(opt) for opt in longs):
                return text
        elif text.startswith("-") and len(text) > 1 and any(c in shorts for c in text[1:]):
            return text
    return None


def _curl(name: str, args: list[Word]) -> Found:
    urls = [w for w in _positionals(args) if "://" in w.text or "." in w.text or not w.static]
    urls += [args[i + 1] for i, w in enumerate(args[:-1]) if w.text == "--url"]
    non_http = [w for w in urls if "://" in w.text and not w.text.lower().startswith(("http://", "https://"))]
    method = _method(args, ("-X", "--request"))
    option = _has_option(
        args,
        "dFTK",
        (
            "--data",
            "--form",
            "--upload-file",
            "--json",
            "--config",
            "--post",
            "--mail-rcpt",
            "--mail-from",
            "--data-binary",
            "--data-urlencode",
        ),
    )
    if not (option or non_http or (method and method.upper() not in _READ_METHODS)):
        return None
    if _all_loopback(urls, _url_host):
        return None
    return P.REMOTE, f"{name} {option or method or non_http[0].text}"


def _method(args: list[Word], options: tuple[str, ...]) -> str | None:
    for i, word in enumerate(args):
        for option in options:
            if word.text == option:
                return args[i + 1].text if i + 1 < len(args) else None
            if word.text.startswith(option) and len(word.text) > len(option):
                return word.text[len(option) :].lstrip("=")
    return None


def _wget(name: str, args: list[Word]) -> Found:
    option = _has_option(args, "e", ("--post-data", "--post-file", "--method", "--body-data", "--body-file",
                                     "--execute"))  # fmt: skip
    if option is None or _all_loopback(_positionals(args), _url_host):
        return None
    return P.REMOTE, f"{name} {option}"


def _httpie(name: str, args: list[Word]) -> Found:
    rest = _positionals(args)
    writes = bool(rest) and rest[0].text.upper() in _HTTPIE_METHODS
    urls = rest[1:2] if writes else rest[:1]
    writes |= any(_HTTPIE_ITEM.match(w.text) for w in rest[len(urls) + int(writes) :])
    writes |= _has_option(args, "f", ("--form", "--raw", "--multipart")) is not None
    if not writes or _all_loopback(urls, _url_host):
        return None
    return P.REMOTE, f"{name} {' '.join(w.text for w in rest[:2])}"


def _rsync(name: str, args: list[Word]) -> Found:
    remote = [w for w in _positionals(args) if re.match(r"^[^/]*:", w.text) or w.text.startswith("rsync://")]
    shell = _has_option(args, "e", ("--rsh",))
    if not remote and not shell:
        return None
    hosts = [Word(w.text.split("://", 1)[-1].split(":", 1)[0].rsplit("@", 1)[-1], dynamic=not w.static)
             for w in remote]  # fmt: skip
    if remote and not shell and _all_loopback(hosts, lambda h: h):
        return None
    return P.REMOTE, f"{name} {(remote[0].text if remote else shell) or ''}"


def _netcat(name: str, args: list[Word]) -> Found:
    if _has_option(args, "l", ("--listen",)):
        return None  # a local server
    hosts = [w for w in _positionals(args) if not w.text.isdigit()]
    if _all_loopback(hosts, lambda h: h):
        return None
    return P.REMOTE, f"{name} {' '.join(w.text for w in hosts[:1])}"


def _socat(name: str, args: list[Word]) -> Found:
    addresses = _positionals(args)
    for word in addresses:
        kind, _, rest = word.text.partition(":")
        if kind.upper().startswith(("TCP", "UDP", "OPENSSL", "SSL", "SCTP", "PROXY", "SOCKS", "DCCP", "UDPLITE")):
            host = rest.split(":", 1)[0].split(",", 1)[0]
            if rest and not (word.static and is_loopback(host)) and "LISTEN" not in kind.upper():
                return P.REMOTE, f"{name} {word.text}"
    return None


def _maven(name: str, args: list[Word]) -> Found:
    goals = {w.text for w in _positionals(args)}
    hit = goals & {"deploy", "deploy:deploy", "deploy:deploy-file", "release:perform", "release:prepare",
                   "site-deploy", "jib:build", "gpg:sign-and-deploy-file", "nexus-staging:release"}  # fmt: skip
    return (P.PUBLISH, f"{name} {sorted(hit)[0]}") if hit else None


def _gradle(name: str, args: list[Word]) -> Found:
    for word in _positionals(args):
        task = word.text.rsplit(":", 1)[-1]
        local = task.endswith(("ToMavenLocal", "ToLocal"))
        if not local and (task.startswith(("publish", "upload", "bintray", "closeAndRelease", "githubRelease"))
                          or task in ("release", "jib", "releaseRepository")):  # fmt: skip
            return P.PUBLISH, f"{name} {word.text}"
    return None


def _sbt(name: str, args: list[Word]) -> Found:
    for word in args:
        text = word.text
        if ("publish" in text and "publishLocal" not in text and "publishM2" not in text) or "Release" in text:
            return P.PUBLISH, f"{name} {text}"
    return None


def _pip(name: str, args: list[Word]) -> Found:
    texts = [w.text for w in args]
    local = {"-t", "--target", "--prefix", "--root"} & {t.split("=", 1)[0] for t in texts}
    if texts[:1] == ["install"] and "--user" in texts and not local:
        return P.STATEFUL, f"{name} install --user"
    return None


def _node_packages(name: str, args: list[Word]) -> Found:
    texts = [w.text for w in args]
    if (texts[:1] in (["install"], ["i"], ["add"]) and {"-g", "--global"} & set(texts)) or texts[:2] == [
        "global",
        "add",
    ]:
        return P.STATEFUL, f"{name} global install"
    return None


def _sqlite(name: str, args: list[Word]) -> Found:
    files = _positionals(args)
    return (P.STATEFUL, f"{name} {files[0].text}") if files and files[0].text.startswith("/") else None


def _rails(name: str, args: list[Word]) -> Found:
    tasks = [w.text for w in _positionals(args)]
    return (P.STATEFUL, f"{name} {tasks[0]}") if tasks and tasks[0].startswith("db:") else None


_JUDGES: dict[str, Callable[[str, list[Word]], Found]] = {
    "curl": _curl, "wget": _wget, "wget2": _wget, "http": _httpie, "https": _httpie, "xh": _httpie,
    "xhs": _httpie, "rsync": _rsync, "nc": _netcat, "ncat": _netcat, "netcat": _netcat, "socat": _socat,
    "mvn": _maven, "gradle": _gradle, "sbt": _sbt, "pip": _pip, "npm": _node_packages, "yarn": _node_packages,
    "pnpm": _node_packages, "sqlite3": _sqlite, "rails": _rails, "rake": _rails,
}  # fmt: skip
