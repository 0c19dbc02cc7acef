"""`branchwise mcp list | tools NAME`: the configured MCP servers, started exactly as a run starts them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from branchwise.agent.config.layers import load_config
from branchwise.agent.errors import EXIT_ENVIRONMENT, EXIT_USAGE, BranchwiseError
from branchwise.agent.run.wiring import make_sandbox_for
from branchwise.cli.common import workspace_for
from branchwise.cli.render.output import Output
from branchwise.tools.mcp.manager import McpManager, ServerStatus

NO_SERVERS = "no MCP servers are configured (add a [mcp.servers.NAME] table to your user config; see the README)"


def list_command(*, as_json: bool, start: bool, cd: Path | None, out: Output | None = None) -> int:
    """Print every configured server and its state; exit 4 if an enabled one cannot be started."""
    out = out or Output()
    try:
        workspace, config = _load(cd)
        if not config.mcp.servers:
            out.data({"servers": []}) if as_json else out.info(NO_SERVERS)
            return 0
        sandbox = make_sandbox_for(config, workspace)
    except BranchwiseError as err:
        out.error(str(err))
        return err.exit_code
    with sandbox:
        manager = McpManager(config.mcp, sandbox, workspace, warn=lambda message: None)
        try:
            rows = manager.status(start=start)
        finally:
            manager.close()
    if as_json:
        out.data({"servers": [vars(row) for row in rows]})
    else:
        _print_rows(out, rows)
    return EXIT_ENVIRONMENT if any(row.state == "failed" for row in rows) else 0


def _print_rows(out: Output, rows: list[ServerStatus]) -> None:
    width = max(len(r.name) for r in rows)
    for r in rows:
        offers = f"{r.tools} tools, {r.resources} resources, {r.prompts} prompts" if r.state == "ready" else ""
        took = f"started in {r.started_s:.2f} s" if r.started_s is not None else ""
        line = "  ".join(part for part in (r.name.ljust(width), r.state.ljust(8), r.where, offers, took) if part)
        out.info(line)
        if r.error:
            out.info(f"{' ' * width}  {r.error}")


def tools_command(name: str, *, as_json: bool, cd: Path | None, out: Output | None = None) -> int:
    """Start one server and print its tools (as the agent sees them), resources and prompts."""
    out = out or Output()
    try:
        workspace, config = _load(cd)
        if name not in config.mcp.servers:
            known = ", ".join(config.mcp.servers) or "none"
            out.error(f"no MCP server named {name!r} is configured (configured: {known})")
            return EXIT_USAGE
        if name not in config.mcp.active():
            out.error(f"MCP server {name} is disabled (mcp.servers.{name}.enabled or mcp.enabled)")
            return EXIT_USAGE
        sandbox = make_sandbox_for(config, workspace)
    except BranchwiseError as err:
        out.error(str(err))
        return err.exit_code
    with sandbox:
        manager = McpManager(config.mcp, sandbox, workspace, warn=out.warn)
        try:
            outcome = manager.start([name])[name]
            if isinstance(outcome, Exception):
                out.error(str(outcome))
                return EXIT_ENVIRONMENT
            tools = manager.tools_for(name)
        finally:
            manager.close()
    report = _report(name, outcome, tools)
    if as_json:
        out.data(report)
    else:
        _print_report(out, report)
    return 0


def _report(name: str, listing: Any, tools: list[Any]) -> dict[str, Any]:
    offered = {getattr(t, "remote_name", ""): t for t in tools}
    rows = []
    for remote in listing.tools:
        tool = offered.get(remote.name)
        rows.append({
            "name": tool.name if tool else None,
            "remote_name": remote.name,
            "offered": tool is not None,
            "effect": tool.effect if tool else None,
            "description": remote.description or "",
            "input_schema": remote.input_schema,
            "annotations": remote.annotations.model_dump(exclude_none=True) if remote.annotations else {},
        })  # fmt: skip
    return {
        "server": name,
        "implementation": listing.server,
        "tools": rows,
        "resources": [{"uri": r.uri, "name": r.name, "description": r.description} for r in listing.resources],
        "prompts": [{"name": p.name, "description": p.description} for p in listing.prompts],
    }


def _print_report(out: Output, report: dict[str, Any]) -> None:
    out.info(f"{report['server']}: {report['implementation']}")
    width = max((len(t["name"] or t["remote_name"]) for t in report["tools"]), default=0)
    for t in report["tools"]:
        first = (t["description"].strip().splitlines() or [""])[0][:100]
        label = t["name"] if t["offered"] else t["remote_name"]
        effect = t["effect"] if t["offered"] else "not offered"
        out.info(f"  {label.ljust(width)}  {effect:<11}  {first}")
    for kind in ("resources", "prompts"):
        if report[kind]:
            out.info(f"{kind}:")
            for item in report[kind]:
                out.info(f"  {item.get('uri') or item['name']}  {(item.get('description') or '').strip()[:100]}")


def _load(cd: Path | None) -> tuple[Path, Any]:
    workspace = workspace_for(cd)
    return workspace, load_config(workspace).config


SERVE_INSTRUCTIONS = (
    "branchwise is a coding agent. run_task gives it a task in a repository: it plans, works in its own sandbox, "
    "verifies with the checks, and returns the final JSON object of `branchwise run -o json` (status, exit_code, "
    "summary, changed_files, checks, ...). exit_code 0 means completed and verified."
)


def serve_command() -> int:
    """Serve branchwise over stdio as an MCP server with one tool, run_task (each run is a `branchwise run`)."""
    from branchwise.agent import version
    from branchwise.cli.commands.mcp_serve import make_server

    make_server(version(), SERVE_INSTRUCTIONS).run()
    return 0
