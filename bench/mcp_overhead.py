"""What running an MCP server inside the session's sandbox costs, against the same server on the host.

Starts the npm filesystem server (installed by `make setup`) in both ways, interleaved so that load on the
machine hits both alike, and times start-up (spawn, initialize, list tools) and tool calls (list_directory and
read_text_file). Prints medians and the sandboxed/host ratios; the last line is a JSON summary.
Usage: python bench/mcp.py [--starts N] [--calls M]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measure(ws: Path, mode: str, calls: int) -> tuple[float, list[float]]:
    """One session: start-up seconds, then the seconds of each call."""
    from branchwise.sandbox.isolation.bwrap import BwrapSandbox
    from branchwise.sandbox.workspace.safefs import WorkspaceFS
    from branchwise.tools import ToolBox, ToolContext
    from branchwise.tools.mcp.manager import McpManager
    from branchwise.tools.mcp.settings import McpSettings
    from tests.support.mcp_servers import FS_SERVER

    server = {"command": str(FS_SERVER), "args": ["${workspace}"], "sandbox": mode, "startup_timeout_s": 120}
    with BwrapSandbox(ws) as sandbox:
        manager = McpManager(McpSettings.model_validate({"servers": {"fs": server}}), sandbox, ws, warn=print)
        started = time.perf_counter()
        box = ToolBox(manager.tools())
        startup = time.perf_counter() - started
        ctx = ToolContext(sandbox=sandbox, fs=WorkspaceFS(ws))
        times = []
        for i in range(calls):
            name, args = ("mcp__fs__list_directory", {"path": str(ws)}) if i % 2 else (
                "mcp__fs__read_text_file", {"path": str(ws / "a.txt")})  # fmt: skip
            t = time.perf_counter()
            obs = box.get(name).run(box.parse_args(name, args), ctx)
            times.append(time.perf_counter() - t)
            assert not obs.is_error, obs.output
        manager.close()
    return startup, times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--calls", type=int, default=40)
    opts = parser.parse_args()
    starts: dict[str, list[float]] = {"session": [], "host": []}
    calls: dict[str, list[float]] = {"session": [], "host": []}
    with tempfile.TemporaryDirectory(prefix="branchwise-bench-mcp-") as tmp:
        ws = Path(tmp)
        (ws / "a.txt").write_text("hello\n" * 100)
        for _ in range(opts.starts):
            for mode in ("session", "host"):
                startup, times = measure(ws, mode, opts.calls)
                starts[mode].append(startup)
                calls[mode] += times
    summary: dict[str, object] = {"bench": "mcp", "starts": opts.starts, "calls": opts.calls * opts.starts}
    print(f"{'':>10} {'start ms':>10} {'call ms':>9}")
    for mode in ("session", "host"):
        start_ms, call_ms = statistics.median(starts[mode]) * 1000, statistics.median(calls[mode]) * 1000
        summary[mode] = {"start_ms": round(start_ms, 1), "call_ms": round(call_ms, 2)}
        print(f"{mode:>10} {start_ms:>10.1f} {call_ms:>9.2f}")
    ratios = {
        "start": round(statistics.median(starts["session"]) / statistics.median(starts["host"]), 2),
        "call": round(statistics.median(calls["session"]) / statistics.median(calls["host"]), 2),
    }
    summary["sandboxed_over_host"] = ratios
    print(f"sandboxed / host: start {ratios['start']}x, call {ratios['call']}x")
    print(json.dumps(summary))


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
