"""Configuration of the sandbox and of the policy engine: the `[sandbox]` and `[policy]` TOML sections."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SandboxMode = Literal["read-only", "workspace-write", "full-access"]
NetworkMode = Literal["off", "proxy", "on"]
ApprovalMode = Literal["untrusted", "on-request", "never"]
Action = Literal["allow", "ask", "deny"]

# Paths inside the workspace that a sandboxed command must not change: each one can make the host
# (git, direnv, a shell, an editor, branchwise itself) run code the next time it is used.
DEFAULT_PROTECTED = [
    ".git/hooks",
    ".git/config",
    # Where git finds another common directory, per-worktree configuration, other worktrees' and submodules' git
    # directories (each with its own config and hooks) and other object stores: all read by host-side git.
    ".git/commondir",
    ".git/config.worktree",
    ".git/worktrees",
    ".git/modules",
    ".git/objects/info/alternates",
    ".branchwise",
    ".envrc",
    ".bashrc",
    ".bash_profile",
    ".bash_login",
    ".profile",
    ".zshrc",
    ".zprofile",
    ".zshenv",
    ".vscode",
    ".idea",
]

# Credentials in a home directory (hidden anyway unless the workspace is inside that home), and host
# files that stay readable to a root-mapped sandbox unless masked: a sandbox started by root reads
# every root-owned file (the uid inside maps back to 0), capabilities or not. Started by root, the
# sandbox also hides every other file only root may read under /etc, /var, /srv, /opt, /mnt, /media
# and /boot (see isolation/hidden.py); this list names the ones to hide for every user.
DEFAULT_DENY_READ = [
    "~/.ssh",
    "~/.aws",
    "~/.gnupg",
    "~/.config/gcloud",
    "~/.config/gh",
    "~/.kube",
    "~/.docker",
    "~/.netrc",
    "~/.git-credentials",
    "/etc/shadow",
    "/etc/shadow-",
    "/etc/gshadow",
    "/etc/gshadow-",
    "/etc/security/opasswd",
    "/etc/sudoers",
    "/etc/sudoers.d",
    "/etc/ssh/ssh_host_*_key",
    "/etc/ssl/private",
    "/etc/krb5.keytab",
    "/etc/ipsec.secrets",
    "/etc/ppp/*-secrets",
    "/etc/wireguard",
    "/etc/letsencrypt/archive",
    "/etc/letsencrypt/keys",
    "/etc/mysql/debian.cnf",
    "/etc/apt/auth.conf",
    "/etc/apt/auth.conf.d",
    "/var/cache/debconf/passwords.dat",
    "/var/backups",
    "/etc/NetworkManager/system-connections",
    "/etc/credstore",
    "/var/lib/private",
    "/var/log",
    "/var/spool/cron",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


_M = TypeVar("_M", bound=_Strict)


class LimitSettings(_Strict):
    """Resource limits: per session (cgroup) where noted, otherwise per process (rlimit)."""

    pids_max: int = Field(default=512, ge=8)
    """Processes and threads alive at once in the whole session (cgroup pids.max)."""
    memory_mb: int = Field(default=4096, ge=32)
    """Memory of the whole session, tmpfs pages included (cgroup memory limit); OOM kills inside it."""
    cpu_seconds: int = Field(default=900, ge=1)
    """CPU time of any one process (RLIMIT_CPU); SIGKILL when it runs out."""
    file_size_mb: int = Field(default=1024, ge=1)
    """Largest file a command may write (RLIMIT_FSIZE); SIGXFSZ beyond it."""
    open_files: int = Field(default=4096, ge=64)
    """Open file descriptors per process (RLIMIT_NOFILE)."""
    tmp_size_mb: int = Field(default=1024, ge=1)
    """Size of the private /tmp tmpfs each command gets (it counts against memory_mb)."""
    workspace_mb: int | None = Field(default=None, ge=1)
    """Disk space the workspace and writable roots may gain in one session; past it every command of the
    session is stopped (checked about five times a second; unset: no quota)."""


class SandboxSettings(_Strict):
    """Where commands run: filesystem view, network reach and limits (`[sandbox]`)."""

    mode: SandboxMode = "workspace-write"
    """read-only: nothing writable but private tmpfs; workspace-write: the workspace too;
    full-access: no sandbox at all (needs an explicit --dangerously-full-access)."""
    network: NetworkMode = "off"
    """off: a private loopback only; proxy: HTTP(S) through a filtering proxy; on: the host's network."""
    allowed_domains: list[str] = Field(default_factory=list)
    """Proxy mode: hosts reachable, as globs with an optional :port (`*.pypi.org`, `localhost:8080`).
    Empty means nothing is reachable; IP literals are reachable only when listed literally."""
    denied_domains: list[str] = Field(default_factory=list)
    """Proxy mode: hosts never reachable, same syntax; a deny entry wins over any allow entry."""
    loopback: bool = True
    """With network off or proxy, commands and background processes of one session share a private
    127.0.0.1 (no route out). false forbids every socket family but AF_UNIX when network is off."""
    protected: list[str] = Field(default_factory=lambda: list(DEFAULT_PROTECTED))
    """Workspace-relative paths kept read-only in workspace-write mode; missing ones cannot be created."""

    @field_validator("protected")
    @classmethod
    def _relative_paths(cls, paths: list[str]) -> list[str]:
        out = []
        for path in paths:
            parts = [part for part in Path(path).parts if part != "."]
            if not parts or Path(path).is_absolute() or ".." in parts:
                raise ValueError(f"{path!r} is not a path inside the workspace (relative, without '..')")
            out.append("/".join(parts))
        return out

    writable_roots: list[Path] = Field(default_factory=list)
    """Extra host directories a command may write (besides the workspace and its private /tmp)."""
    deny_read: list[str] = Field(default_factory=lambda: list(DEFAULT_DENY_READ))
    """Host paths (globs allowed; relative ones are workspace-relative) hidden from commands and from the
    file tools; /root, /home, /tmp and /run are always hidden from commands."""
    limits: LimitSettings = Field(default_factory=LimitSettings)
    """Resource limits for commands."""
    bwrap: str = "bwrap"
    """The bubblewrap executable (a name looked up on PATH, or a path)."""


class RuleExamples(_Strict):
    """Calls a rule must and must not match; checked when the rules load."""

    match: list[str | dict[str, Any]] = Field(default_factory=list)
    """Calls the rule matches: a command (shell), a path (file tools) or a table of arguments."""
    not_match: list[str | dict[str, Any]] = Field(default_factory=list)
    """Calls the rule must not match, in the same forms."""


class Rule(_Strict):
    """One `[[policy.rules]]` entry: which calls it matches and what to do with them."""

    name: str = ""
    """Shown in decisions and errors; defaults to `rule <index>`."""
    tool: str
    """Tool name or glob (`shell`, `create`, `browser_*`, `*`)."""
    argv_prefix: list[str | list[str]] | None = None
    """Shell: leading argv tokens; a nested list lists alternatives (`["git", ["push", "fetch"]]`).
    An allow rule never matches a compound command (`;`, `&&`, `|`, `$(`, redirects, newlines)."""
    path_glob: str | None = None
    """File tools: glob over the path (`**/.env*`, `src/**`); relative globs are workspace-relative."""
    args_schema: dict[str, Any] | None = None
    """JSON Schema the call's arguments must satisfy."""
    decision: Action
    """allow, ask or deny."""
    priority: int = 100
    """Lower is considered first; within one priority deny beats ask beats allow."""
    justification: str = ""
    """Why the rule exists; shown when it asks or denies."""
    examples: RuleExamples = Field(default_factory=RuleExamples)
    """Calls the rule must (match) and must not (not_match) match."""

    @model_validator(mode="after")
    def _prefix_not_empty(self) -> Rule:
        if self.argv_prefix is not None and not self.argv_prefix:
            raise ValueError("argv_prefix must not be empty")
        return self


class PolicySettings(_Strict):
    """Which tool calls run, need a question, or are refused (`[policy]`)."""

    approval: ApprovalMode = "on-request"
    """untrusted: ask for everything not allow-listed; on-request: sandboxed work runs, leaving the
    sandbox asks; never: nobody is asked, so every ask becomes a deny that the model is told about."""
    rules: list[Rule] = Field(default_factory=list)
    """Rules, considered before the built-in defaults."""
    taint: bool = True
    """Raise calls that reach a sink with arguments taken from untrusted content to at least ask."""
    taint_sinks: list[str] = Field(
        default_factory=lambda: [
            "shell",
            "net",
            "fetch",
            "web_fetch",
            "browser_navigate",
            "browser_type",
            "browser_tabs",
            "mcp__*",
        ]
    )
    """Tools (globs) whose calls can carry data off the machine; taint raises their calls to ask."""


# Lists a repository's config adds to and never replaces: every entry makes the sandbox or the policy stricter.
MERGED_LISTS = (
    "sandbox.deny_read",
    "sandbox.protected",
    "sandbox.denied_domains",
    "policy.rules",
    "policy.taint_sinks",
)
_RANKS = {"mode": ("read-only", "workspace-write", "full-access"), "network": ("off", "proxy", "on")}


def repository_widening(data: dict[str, Any], below: dict[str, Any] | None = None) -> list[str]:
    """Why a config layer that comes with a repository (its `.branchwise/config.toml`, a task file) may not
    say what it says: such a layer may narrow the sandbox and the policy, never widen them, or opening a
    cloned repository would hand its author the machine. It is judged against `below`, the merged settings
    of every layer under it (the defaults and the user's own config); its MERGED_LISTS only add entries.
    One message per offending key."""
    sandbox, policy = data.get("sandbox") or {}, data.get("policy") or {}
    if not isinstance(sandbox, dict) or not isinstance(policy, dict):
        return []  # not a table: validation reports it
    base_sandbox = _validated(SandboxSettings, (below or {}).get("sandbox"))
    base_policy = _validated(PolicySettings, (below or {}).get("policy"))
    problems = []
    if "bwrap" in sandbox:
        problems.append("sandbox.bwrap names a program branchwise runs on this machine")
    for key, ranks in _RANKS.items():
        value, base = sandbox.get(key), getattr(base_sandbox, key)
        if value in ranks and ranks.index(value) > ranks.index(base):
            problems.append(f"sandbox.{key} = {value!r} is wider than {base!r}")
    if sandbox.get("loopback") is True and not base_sandbox.loopback:
        problems.append("sandbox.loopback = true opens a loopback network that is off")
    for key in ("allowed_domains", "writable_roots"):
        known = {str(v) for v in getattr(base_sandbox, key)}
        added = [str(v) for v in sandbox.get(key) or [] if str(v) not in known]
        if added:
            problems.append(f"sandbox.{key} adds {', '.join(added[:3])}: it widens what commands can reach")
    problems += _limits_widening(sandbox.get("limits"), base_sandbox.limits)
    approval = policy.get("approval")
    if approval is not None and approval != base_policy.approval and base_policy.approval != "on-request":
        problems.append(f"policy.approval = {approval!r} is wider than {base_policy.approval!r}")
    if policy.get("taint") is False and base_policy.taint:
        problems.append("policy.taint = false switches taint tracking off")
    for i, rule in enumerate(policy.get("rules") or []):
        if isinstance(rule, dict) and rule.get("decision") == "allow":
            problems.append(f"policy.rules[{i}] ({rule.get('name') or 'unnamed'}) is an allow rule")
    return problems


def _limits_widening(limits: Any, base: LimitSettings) -> list[str]:
    """Each limit a repository sets must be at most the one below it (None = unlimited)."""
    if not isinstance(limits, dict):
        return []
    problems = []
    for key, value in limits.items():
        below = getattr(base, key, None)
        if isinstance(value, int | float) and below is not None and value > below:
            problems.append(f"sandbox.limits.{key} = {value} is above {below}")
    return problems


def _validated(model: type[_M], data: Any) -> _M:
    try:
        return model.model_validate(data or {})
    except ValueError:  # the user's own layer is invalid: validation reports it; judge against the defaults
        return model()
