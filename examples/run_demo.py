"""`make demo`: copy examples/calc to a scratch git repository and let branchwise fix its failing test.

With BRANCHWISE_MODEL set, that model does the work; otherwise a scripted model replays
examples/calc/replies.yaml (no LLM involved). The tracked example files are never modified.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def main() -> int:
    name = sys.argv[1] if len(sys.argv) > 1 else "calc"  # `run_demo.py webapp`: the browser example
    work = Path(tempfile.mkdtemp(prefix="branchwise-demo-")) / name
    shutil.copytree(EXAMPLES / name, work)
    git(work, "init", "-q", "-b", "main")
    git(work, "add", "-A")
    git(work, "-c", "user.name=demo", "-c", "user.email=demo@example.invalid", "commit", "-q", "-m", "calc")

    model = os.environ.get("BRANCHWISE_MODEL")
    if model:
        print(f"demo: BRANCHWISE_MODEL={model}: a real model does the work", flush=True)
    else:
        print("demo: BRANCHWISE_MODEL is not set: a SCRIPTED model replays examples/{name}/replies.yaml (not an LLM)")
    print(f"demo: working on a copy of examples/{name} in {work}\n", flush=True)

    branchwise = Path(sys.executable).with_name("branchwise")
    code = subprocess.run([str(branchwise), "run", "-f", "task.toml"], cwd=work).returncode

    print("\ndemo: the change branchwise made:", flush=True)
    subprocess.run(["git", "-C", str(work), "--no-pager", "diff", "--stat", "--patch", "--", "."])
    print(f"demo: branchwise exited with {code}; the copy stays in {work}")
    return code


if __name__ == "__main__":
    sys.exit(main())
