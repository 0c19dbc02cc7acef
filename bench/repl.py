"""The REPL: time from `branchwise` to a ready prompt, and the added cost of each streamed token.

1. Start-up: `branchwise` is started in a fresh pseudo-terminal in a scratch git repository, and timed until its
   prompt (`› `) has been drawn; `python -c pass` is timed alike (until it exits) in the same, interleaved runs.
   Target: a ready prompt under 0.3 s median (litellm and the agent load in the background after it shows).
2. Streaming: N one-token `model_delta` events go through the REPL's live view (the same subscriber the REPL
   uses, writing to /dev/null), against writing the same tokens to /dev/null directly; the difference per token
   is what the view adds.

Prints medians and ratios; the last line is a JSON summary.
"""

from __future__ import annotations

import json
import os
import pty
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS = 15
TOKENS = 5000
BRANCHWISE = str(Path(sys.executable).with_name("branchwise"))
PROMPT = "› ".encode()


def time_to_prompt(repo: Path, env: dict[str, str]) -> float:
    """Seconds from exec to the prompt on the terminal."""
    master, slave = pty.openpty()
    started = time.perf_counter()
    proc = subprocess.Popen([BRANCHWISE], cwd=repo, env=env, stdin=slave, stdout=slave, stderr=slave,
                            start_new_session=True)  # fmt: skip
    os.close(slave)
    seen = b""
    try:
        while PROMPT not in seen:
            ready, _, _ = select.select([master], [], [], 10)
            if not ready:
                raise RuntimeError(f"no prompt after 10 s; the terminal shows {seen[-400:]!r}")
            chunk = os.read(master, 65536)
            if not chunk:
                raise RuntimeError(f"branchwise exited before its prompt: {seen[-400:]!r}")
            seen += chunk
        elapsed = time.perf_counter() - started
        os.write(master, b"\x04")  # Ctrl-D: leave
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return elapsed


def time_python(env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
    return time.perf_counter() - started


def tokens(n: int) -> list[str]:
    words = ["the", " quick", " brown", " fox", " jumps", " over", " lazy", " dogs", ".", "\n"]
    return [words[i % len(words)] for i in range(n)]


def per_token_overhead() -> tuple[float, float]:
    """Seconds per token: through the live view, and written directly."""
    from branchwise.agent.record.events import ModelDelta
    from branchwise.cli.repl.view import LiveView

    toks = tokens(TOKENS)
    with open(os.devnull, "w") as sink:

        def direct() -> float:
            started = time.perf_counter()
            for tok in toks:
                sink.write(tok)
                sink.flush()
            return time.perf_counter() - started

        def viewed() -> float:
            view = LiveView(lambda text: (sink.write(text), sink.flush()), width=lambda: 80)
            events = [ModelDelta(content=tok) for tok in toks]  # the model layer makes these in either case
            started = time.perf_counter()
            for event in events:
                view(event)
                view.streaming_line()  # what the prompt redraw reads
            return time.perf_counter() - started

        d = statistics.median(direct() for _ in range(5))
        v = statistics.median(viewed() for _ in range(5))
    return v / TOKENS, d / TOKENS


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        repo.mkdir()
        subprocess.run(["git", "init", "-q", str(repo)], check=True)
        home = Path(tmp) / "home"
        home.mkdir()
        env = {**os.environ, "HOME": str(home), "XDG_STATE_HOME": str(home / "state"), "TERM": "xterm-256color",
               "XDG_CONFIG_HOME": str(home / "config")}  # fmt: skip
        time_to_prompt(repo, env)  # warm the page cache
        prompt_s, python_s = [], []
        for _ in range(RUNS):
            prompt_s.append(time_to_prompt(repo, env))
            python_s.append(time_python(env))
    prompt, python = statistics.median(prompt_s), statistics.median(python_s)
    print(f"branchwise to a ready prompt: median {prompt * 1000:.1f} ms (x{prompt / python:.2f} of python -c pass, "
          f"{python * 1000:.1f} ms); min {min(prompt_s) * 1000:.1f}, max {max(prompt_s) * 1000:.1f}")  # fmt: skip
    print(f"ready-prompt target 0.3 s: {'met' if prompt < 0.3 else 'MISSED'}")
    view, direct = per_token_overhead()
    print(f"per streamed token: {view * 1e6:.1f} µs through the live view vs {direct * 1e6:.2f} µs written "
          f"directly: +{(view - direct) * 1e6:.1f} µs per token")  # fmt: skip
    print(json.dumps({"bench": "repl", "runs": RUNS, "prompt_median_s": round(prompt, 4),
                      "python_median_s": round(python, 4), "prompt_ratio_to_python": round(prompt / python, 2),
                      "tokens": TOKENS, "view_us_per_token": round(view * 1e6, 2),
                      "direct_us_per_token": round(direct * 1e6, 2),
                      "added_us_per_token": round((view - direct) * 1e6, 2)}))  # fmt: skip


if __name__ == "__main__":
    main()
