"""Turn a branchwise run's final JSON into GitHub step outputs and a job summary (Markdown).

Usage: report.py DIR, where DIR holds result.json and exit_code (written by run.sh). Writes to the files named
by GITHUB_OUTPUT and GITHUB_STEP_SUMMARY, and DIR/summary.md. Text from the run (the model's summary, file
names) is untrusted: it is escaped for Markdown and HTML, and multi-line outputs use a random delimiter.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from pathlib import Path
from typing import Any


def load(directory: Path) -> dict[str, Any]:
    try:
        lines = (directory / "result.json").read_text(encoding="utf-8").strip().splitlines()
        result = json.loads(lines[-1]) if lines else {}
    except (OSError, json.JSONDecodeError):
        result = {}
    if not isinstance(result, dict) or "exit_code" not in result:
        code = (directory / "exit_code").read_text().strip() if (directory / "exit_code").is_file() else "4"
        result = {"status": "error", "exit_code": int(code) if code.isdigit() else 4,
                  "error": "branchwise wrote no result (see the step's log)"}  # fmt: skip
    return result


def escape(text: Any) -> str:
    """Untrusted text inside Markdown: no HTML, no table breaks, no links or images made from it."""
    out = str(text if text is not None else "")
    for a, b in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("|", "\\|"), ("[", "\\["), ("]", "\\]"),
                 ("`", "\\`"), ("!", "\\!")):  # fmt: skip
        out = out.replace(a, b)
    return out.replace("\r", " ").replace("\n", "<br>")


def markdown(r: dict[str, Any]) -> str:
    icon = "✅" if r.get("exit_code") == 0 else "❌"
    rows = [("status", r.get("status")), ("exit code", r.get("exit_code")), ("run", r.get("run_id")),
            ("model", r.get("model")), ("strategy", r.get("strategy")), ("branch", r.get("branch") or "none"),
            ("steps", r.get("steps")), ("cost", f"${float(r.get('cost_usd') or 0):.4f}"),
            ("time", f"{float(r.get('duration_s') or 0):.1f}s")]  # fmt: skip
    lines = [f"## {icon} branchwise: {escape(r.get('status'))}", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {escape(v)} |" for k, v in rows if v is not None]
    if r.get("summary"):
        lines += ["", "**Summary:** " + escape(r["summary"])]
    if r.get("error"):
        lines += ["", "**Error:** " + escape(r["error"])]
    if r.get("checks"):
        lines += ["", "| check | result |", "|---|---|"]
        lines += [
            f"| `{escape(c.get('command'))}` | {'passed' if c.get('passed') else 'failed'} |" for c in r["checks"]
        ]
    if r.get("changed_files"):
        lines += ["", "Changed files: " + ", ".join(escape(f) for f in r["changed_files"])]
    return "\n".join(lines) + "\n"


def write_outputs(path: str, values: dict[str, str]) -> None:
    with open(path, "a", encoding="utf-8") as f:
        for key, value in values.items():
            delimiter = f"EOF_{secrets.token_hex(8)}"
            f.write(f"{key}<<{delimiter}\n{value}\n{delimiter}\n")


def main(argv: list[str]) -> int:
    directory = Path(argv[1] if len(argv) > 1 else os.environ.get("RUNNER_TEMP", "/tmp") + "/branchwise")
    directory.mkdir(parents=True, exist_ok=True)
    result = load(directory)
    summary = markdown(result)
    (directory / "summary.md").write_text(summary, encoding="utf-8")
    outputs = {"status": str(result.get("status") or ""), "exit-code": str(result.get("exit_code")),
               "run-id": str(result.get("run_id") or ""), "branch": str(result.get("branch") or ""),
               "cost-usd": str(result.get("cost_usd") or 0), "result-json": str(directory / "result.json"),
               "summary-file": str(directory / "summary.md")}  # fmt: skip
    if os.environ.get("GITHUB_OUTPUT"):
        write_outputs(os.environ["GITHUB_OUTPUT"], outputs)
    if os.environ.get("GITHUB_STEP_SUMMARY"):
        with open(os.environ["GITHUB_STEP_SUMMARY"], "a", encoding="utf-8") as f:
            f.write(summary)
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
