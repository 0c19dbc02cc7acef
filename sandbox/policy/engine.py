"""The policy engine: for each tool call, allow, ask the user, or deny, and name the rule that decided.

Order of evaluation:
1. Built-in protections (not overridable): host-side file tools may not touch paths outside the
   workspace or paths the sandbox masks (deny_read), may not write protected paths, and may not
   write at all in read-only mode.
2. Rules, the user's and then the built-in defaults, ordered by priority (lower first) and, within
   one priority, deny before ask before allow; the first that matches decides.
3. With no match, the approval mode's default for that kind of tool.
4. Taint: an allowed call that reaches a sink carrying untrusted indicators is raised to ask.
5. Under approval = never, ask becomes deny; the reason is meant to go back to the model.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from branchwise.sandbox.policy.rules import CallInfo, CompiledRule, PolicyError, glob_regex, resolve_path
from branchwise.sandbox.policy.taint import TaintTracker
from branchwise.sandbox.settings import Action, PolicySettings, Rule, SandboxSettings

__all__ = ["READ_TOOLS", "WRITE_TOOLS", "CallInfo", "Decision", "Policy", "PolicyError", "TaintTracker"]

READ_TOOLS = frozenset({"view", "grep", "glob", "background"})
WRITE_TOOLS = frozenset({"create", "str_replace", "insert", "undo_edit"})
FREE_TOOLS = frozenset({"finish"})
_SEVERITY = {"deny": 0, "ask": 1, "allow": 2}
_DEFAULT_PRIORITY = 1000
_PUBLISHERS = ["npm", "yarn", "pnpm", "cargo", "poetry", "twine", "gem"]

DEFAULT_RULES = [
    Rule(name="default:git-push", tool="shell", argv_prefix=["git", "push"], decision="ask",
         priority=_DEFAULT_PRIORITY, justification="publishes code off the machine"),
    Rule(name="default:publish", tool="shell", argv_prefix=[_PUBLISHERS, ["publish", "upload", "push"]],
         decision="ask", priority=_DEFAULT_PRIORITY, justification="publishes a package"),
]  # fmt: skip
# Commands that only read, allowed without a question even under approval = untrusted.
UNTRUSTED_ALLOW_RULES = [
    Rule(name="default:read-only-command", tool="shell", decision="allow", priority=_DEFAULT_PRIORITY,
         argv_prefix=[["ls", "cat", "head", "tail", "wc", "pwd", "echo", "grep", "rg", "tree", "stat"]],
         justification="reads only"),
    Rule(name="default:git-read", tool="shell", decision="allow", priority=_DEFAULT_PRIORITY,
         argv_prefix=["git", ["status", "diff", "log", "show", "branch", "rev-parse"]],
         justification="reads only"),
]  # fmt: skip


@dataclass(frozen=True)
class Decision:
    """What to do with a call, which rule decided, why, and the taint that raised it, if any."""

    action: Action
    rule: str
    reason: str
    tainted_by: list[str] = field(default_factory=list)
    indicators: list[str] = field(default_factory=list)


class Policy:
    """Decides tool calls for one workspace under one approval mode."""

    def __init__(self, settings: PolicySettings, sandbox: SandboxSettings, workspace: Path) -> None:
        self.settings = settings
        self.approval = settings.approval
        self.sandbox_mode = sandbox.mode
        self.workspace = workspace.resolve()
        self.protected = [Path(p) for p in sandbox.protected]
        # What the sandbox masks inside the workspace, the host-side file tools must not show either.
        self.deny_read = [(p, glob_regex(str(self.workspace / Path(p).expanduser()))) for p in sandbox.deny_read]
        user = [CompiledRule(r, r.name or f"rule {i + 1}", self.workspace) for i, r in enumerate(settings.rules)]
        for rule in user:
            rule.check_examples()
        defaults = DEFAULT_RULES + (UNTRUSTED_ALLOW_RULES if self.approval == "untrusted" else [])
        builtin = [CompiledRule(r, r.name, self.workspace) for r in defaults]
        # sorted() is stable: at equal priority and severity, user rules come before defaults.
        self.rules = sorted(user + builtin, key=lambda m: (m.rule.priority, _SEVERITY[m.rule.decision]))

    @classmethod
    def from_settings(cls, policy: PolicySettings, sandbox: SandboxSettings, workspace: Path) -> Policy:
        """The policy for these settings; raises PolicyError when a rule fails its examples."""
        return cls(policy, sandbox, workspace)

    def decide(self, call: CallInfo, taint: TaintTracker | None = None) -> Decision:
        """The decision for one call, already reflecting taint and the approval mode."""
        decision = self._builtin(call) or self._by_rules(call) or self._default(call)
        if taint is not None and self.settings.taint and decision.action != "deny" and self._is_sink(call):
            hit = taint.check(call.strings())
            if hit is not None:
                rule = "taint" if decision.action == "allow" else decision.rule
                reason = hit.explain() if decision.action == "allow" else f"{decision.reason}; {hit.explain()}"
                decision = Decision("ask", rule, reason, hit.sources, hit.indicators)
        if self.approval == "never" and decision.action == "ask":
            reason = f"{decision.reason} (approval = never, so nobody can approve it: find another way)"
            decision = replace(decision, action="deny", reason=reason)
        return decision

    def _builtin(self, call: CallInfo) -> Decision | None:
        if call.tool not in READ_TOOLS | WRITE_TOOLS:
            return None
        writes = call.tool in WRITE_TOOLS
        for path in call.all_paths:
            full = resolve_path(path, self.workspace)
            if full != self.workspace and self.workspace not in full.parents:
                return Decision(
                    "deny", "builtin:outside-workspace", f"{path} is outside the workspace {self.workspace}"
                )
            if (hidden := self._masked(full, self._lexical(path))) is not None:
                return Decision("deny", "builtin:deny-read", f"{path} is hidden from the agent (deny_read {hidden})")
            if not writes:
                continue
            if self.sandbox_mode == "read-only":
                return Decision("deny", "builtin:read-only", "the sandbox is read-only: file edits are not allowed")
            # Both the path as written and where its symlinks lead must stay clear of protected paths.
            for rel in (self._lexical(path), full.relative_to(self.workspace)):
                if rel is not None and any(rel == p or p in rel.parents for p in self.protected):
                    return Decision("deny", "builtin:protected-path", f"{path} is protected ({rel})")
        return None

    def _masked(self, full: Path, lexical: Path | None) -> str | None:
        """The deny_read entry that hides this path (or a directory above it inside the workspace), if any."""
        candidates = {full, self.workspace / lexical if lexical is not None else full}
        for path in candidates:
            for above in [path, *path.parents]:
                if above == self.workspace or self.workspace not in above.parents:
                    break
                for pattern, regex in self.deny_read:
                    if regex.fullmatch(str(above)):
                        return pattern
        return None

    def _lexical(self, path: str) -> Path | None:
        """The workspace-relative path as written (`..` folded, symlinks not followed)."""
        p = Path(os.path.normpath(Path(path).expanduser()))
        if not p.is_absolute():
            return p
        return p.relative_to(self.workspace) if p.is_relative_to(self.workspace) else None

    def _by_rules(self, call: CallInfo) -> Decision | None:
        for rule in self.rules:
            if rule.matches(call):
                reason = rule.rule.justification or f"matched rule {rule.name}"
                return Decision(rule.rule.decision, rule.name, reason)
        return None

    def _default(self, call: CallInfo) -> Decision:
        if call.tool in READ_TOOLS | FREE_TOOLS:
            return Decision("allow", "default:read", "reads the workspace only")
        if self.approval == "untrusted":
            return Decision("ask", "default:untrusted", "approval = untrusted: calls outside the allow list need a yes")
        if call.tool == "shell":
            where = "without a sandbox (full-access)" if self.sandbox_mode == "full-access" else "in the sandbox"
            return Decision("allow", "default:shell", f"runs {where} ({self.sandbox_mode})")
        if call.tool in WRITE_TOOLS:
            return Decision("allow", "default:workspace-edit", "edits a file inside the workspace")
        return Decision("ask", "default:other-tool", f"{call.tool} is not covered by any rule")

    def _is_sink(self, call: CallInfo) -> bool:
        return any(fnmatch.fnmatchcase(call.tool, sink) for sink in self.settings.taint_sinks)
