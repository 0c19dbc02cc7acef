"""`branchwise doctor`: what this machine offers the agent, each item ok / degraded / missing with a fix."""

from __future__ import annotations

from pathlib import Path

from branchwise.agent.config.layers import load_config
from branchwise.agent.errors import EXIT_ENVIRONMENT, BranchwiseError
from branchwise.cli.common import workspace_for
from branchwise.cli.render.output import Output
from branchwise.cli.render.tables import print_table
from branchwise.sandbox.isolation.probe import Probe, run_probes, sandbox_available

STYLE = {"ok": "green", "degraded": "yellow", "missing": "red"}


def model_probe(workspace: Path) -> Probe:
    """Whether the configured model can be used: named, known to litellm, with a key (no call is made)."""
    try:
        config = load_config(workspace).config
        from branchwise.agent.models.factory import make_model

        model = make_model(config)
    except BranchwiseError as err:
        return Probe("model", "missing", str(err), "set model (and its API key) in a config file or BRANCHWISE_MODEL")
    kind = getattr(model, "kind", "")
    detail = f"{model.name} (scripted replies, not an LLM)" if kind == "scripted" else model.name
    return Probe("model", "ok", detail, "")


def doctor_command(*, cd: Path | None, out: Output | None = None) -> int:
    out = out or Output()
    workspace = workspace_for(cd)
    settings = load_config(workspace).config.sandbox
    probes = [*run_probes(settings), model_probe(workspace)]
    rows = [[p.name, p.status, p.detail, p.fix] for p in probes]
    styles = [STYLE.get(p.status) for p in probes]
    print_table(out.out, ["check", "status", "detail", "fix"], rows, wrap=["detail", "fix"], styles=styles)
    available, reason = sandbox_available(settings)
    if not available:
        out.error(f"the sandbox cannot be had: {reason}; runs will refuse to start (exit 4)")
        return EXIT_ENVIRONMENT
    return 0
