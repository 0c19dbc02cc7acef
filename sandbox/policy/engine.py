"""The policy engine: for each tool call, allow, ask the user, or deny, and name the rule that decided.

Order of evaluation:
1. Built-in protections (not overridable): host-side file tools may not touch paths outside the
   workspace or paths the sandbox masks (deny_read), may not write protected paths, and may not
   write at all in read-only mode.
2. Rules, the user's and then the built-in defaults, ordered by priority (lower first) and, within
   one priority, deny before ask before allow; the first that matches decides.
   The defaults ask before every command `effects.py` finds irreversible (`default:git-push`,
   `default:publish`, `default:deploy`, `default:remote`, `default:unknown-program`).
3. With no match, the default for the call's declared effect: read and browser allow, file edits
   allow (ask under untrusted), exec allows sandboxed commands (under untrusted only read-only
   ones), external asks.
4. Taint: an allowed call that reaches a sink (an exec, browser or external call, or a tool in
   taint_sinks) carrying untrusted indicators is raised to ask.
5. Under approval = never, ask becomes deny; the reason is meant to go back to the model.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from branchwise.sandbox.policy import browser as B
from branchwise.sandbox.policy.effects import command_effect
from branchwise.sandbox.policy.rules import CallInfo, CompiledRule, PolicyError, glob_regex, resolve_path
from branchwise.sandbox.policy.taint import TaintTracker
from branchwise.sandbox.settings import Action, PolicySettings, Rule, SandboxSettings

__all__ = ["CallInfo", "Decision", "Policy", "PolicyError", "TaintTracker"]

_SEVERITY = {"deny": 0, "ask": 1, "allow": 2}
_DEFAULT_PRIORITY = 1000
# Calls with these effects can carry data off the machine: taint raises them to ask (besides taint_sinks).
_SINK_EFFECTS = frozenset({"exec", "browser", "external"})


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
        self.sandbox = sandbox
        self.workspace = workspace.resolve()
        self.protected = [Path(p) for p in sandbox.protected]
        # What the sandbox masks inside the workspace, the host-side file tools must not show either.
        self.deny_read = [(p, glob_regex(str(self.workspace / Path(p).expanduser()))) for p in sandbox.deny_read]
        user: list[CompiledRule | _EffectRule | _BrowserRule] = [
            CompiledRule(r, r.name or f"rule {i + 1}", self.workspace) for i, r in enumerate(settings.rules)
        ]
        for rule in user:
            rule.check_examples()
        # sorted() is stable: at equal priority and severity, user rules come before the defaults.
        rules = [*user, _EffectRule(), _BrowserRule(sandbox)]
        self.rules = sorted(rules, key=lambda m: (m.rule.priority, _SEVERITY[m.rule.decision]))

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
        """Host-side paths: every path argument a tool declares stays inside the workspace and out of the masks;
        a file-effect call must not write protected paths or write at all in read-only mode."""
        for url in B.urls_of(call.args, call.facts) if call.tool.startswith("browser_") else []:
            if (refusal := B.scheme_refusal(url)) is not None:
                return Decision("deny", "builtin:browser-scheme", refusal)
        writes = call.effect == "file"
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
            if isinstance(rule, _EffectRule | _BrowserRule):
                decision = rule.decide(call)
                if decision is not None:
                    return decision
                continue
            match = rule.match(call)
            reason = rule.rule.justification or f"matched rule {rule.name}"
            if match == "yes":
                return Decision(rule.rule.decision, rule.name, reason)
            if match == "maybe":  # only ask and deny rules say maybe: at least ask
                return Decision("ask", rule.name, f"{reason}; the command computes its program when it runs")
        return None

    def _default(self, call: CallInfo) -> Decision:
        """What a call's declared effect gets when no rule decided."""
        effect, untrusted = call.effect, self.approval == "untrusted"
        if effect == "read":
            return Decision("allow", "default:read", "reads the workspace only")
        if effect == "browser":
            return Decision("allow", "default:browser", "acts in the sandboxed browser")
        if effect == "external":
            return Decision("ask", "default:external", f"{call.tool} acts outside the machine or the sandbox")
        if effect == "file":
            if untrusted:
                return Decision("ask", "default:untrusted", "approval = untrusted: file edits need a yes")
            return Decision("allow", "default:workspace-edit", "edits a file inside the workspace")
        command = call.shell_command
        if command is None:
            return Decision("ask", "default:exec", f"{call.tool} runs something the policy cannot read")
        if untrusted:
            if command_effect(command).read_only:
                return Decision("allow", "default:read-only-command", "reads only (cannot execute or write)")
            return Decision("ask", "default:untrusted", "approval = untrusted: calls outside the allow list need a yes")
        where = "without a sandbox (full-access)" if self.sandbox_mode == "full-access" else "in the sandbox"
        return Decision("allow", "default:shell", f"runs {where} ({self.sandbox_mode})")

    def _is_sink(self, call: CallInfo) -> bool:
        if call.effect in _SINK_EFFECTS:
            return True
        return any(fnmatch.fnmatchcase(call.tool, sink) for sink in self.settings.taint_sinks)


class _EffectRule:
    """The built-in default rules: ask before a command whose effect is irreversible (`effects.py`)."""

    name = "default:effects"
    rule = Rule(name=name, tool="*", decision="ask", priority=_DEFAULT_PRIORITY)

    def check_examples(self) -> None:
        """Nothing to check: the effects reader has its own tests."""

    def decide(self, call: CallInfo) -> Decision | None:
        command = call.shell_command
        if call.effect != "exec" or command is None:
            return None
        finding = command_effect(command).irreversible
        if finding is None:
            return None
        reason = f"{finding.action.reason} ({finding.what})"
        return Decision("ask", f"default:{finding.action.category}", reason)


class _BrowserRule:
    """The built-in browser defaults: navigation follows the session's network; submits, logins, payments and
    downloads ask (`browser.py`)."""

    name = "default:browser"
    rule = Rule(name=name, tool="browser_*", decision="ask", priority=_DEFAULT_PRIORITY)

    def __init__(self, sandbox: SandboxSettings) -> None:
        self.sandbox = sandbox

    def check_examples(self) -> None:
        """Nothing to check: browser.py has its own tests."""

    def decide(self, call: CallInfo) -> Decision | None:
        if not call.tool.startswith("browser_"):
            return None
        for url in B.urls_of(call.args, call.facts):
            found = B.network_decision(url, self.sandbox)
            if found is not None:
                return Decision(found[0], "default:browser-network", found[1])
        kind = B.kind_reason(call.facts)
        if kind is not None:
            page = call.facts.get("page_url")
            return Decision("ask", f"default:browser-{kind[0]}", kind[1] + (f" on {page}" if page else ""))
        return None
