"""A real terminal for end-to-end tests: the program runs in a detached tmux session of a given size; keys go in
with send-keys and the screen comes back with capture-pane (the REPL sees a real pseudo-terminal)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Terminal:
    def __init__(self, argv: list[str], *, cwd: Path, env: dict[str, str], width: int = 80, height: int = 30,
                 socket_dir: Path) -> None:  # fmt: skip
        if shutil.which("tmux") is None:
            raise RuntimeError("tmux is not installed (make setup installs it)")
        socket_dir.mkdir(parents=True, exist_ok=True)
        self.socket = str(socket_dir / "tmux.sock")
        # COLUMNS and LINES from the test runner would override the terminal's real size.
        self.env = {**{k: v for k, v in env.items() if k not in ("COLUMNS", "LINES")}, "TERM": "xterm-256color"}
        inner = f"cd {shlex.quote(str(cwd))} && {shlex.join(argv)}; echo EXITED=$?; sleep 600"
        self._tmux("-f", "/dev/null", "new-session", "-d", "-s", "t", "-x", str(width), "-y", str(height), inner)

    def _tmux(self, *args: str) -> str:
        out = subprocess.run(["tmux", "-S", self.socket, *args], env=self.env, capture_output=True, text=True,
                             timeout=30)  # fmt: skip
        return out.stdout

    def type(self, text: str, *, enter: bool = True) -> None:
        self._tmux("send-keys", "-t", "t", "-l", text)
        if enter:
            time.sleep(0.05)
            self._tmux("send-keys", "-t", "t", "Enter")

    def key(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", "t", *keys)

    def screen(self) -> str:
        """The visible screen, as a person sees it."""
        return self._tmux("capture-pane", "-t", "t", "-p")

    def history(self) -> str:
        """Everything written so far (scrollback included), lines joined where they wrapped."""
        return self._tmux("capture-pane", "-t", "t", "-p", "-J", "-S", "-5000")

    def wait_for(self, pattern: str, *, timeout: float = 60.0, count: int = 1) -> str:
        """Wait until `pattern` (a regular expression) shows `count` times; the history then."""
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.history()
            if len(re.findall(pattern, text)) >= count:
                return text
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {pattern!r} (x{count}); the terminal shows:\n{text}")

    def close(self) -> None:
        subprocess.run(["tmux", "-S", self.socket, "kill-server"], capture_output=True, timeout=30)
