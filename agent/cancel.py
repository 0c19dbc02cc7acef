"""Stopping the step that is running from another thread: the REPL's Ctrl-C or Esc while a task runs.

A headless run is stopped by SIGINT in its own (main) thread. In the REPL the agent runs in a worker thread
while the prompt stays live, so a stop is a request: the sandboxed commands that are running are killed at
once (their process groups), a model call that is waited for is given up, and the next step boundary raises
KeyboardInterrupt in the worker, which the run path turns into an `interrupted` ending like any Ctrl-C.
"""

from __future__ import annotations

import threading

from branchwise.sandbox.isolation import process
from branchwise.sandbox.isolation.process import kill_running

_requested = threading.Event()
process.stop_requested = _requested.is_set  # a command started just after a request is stopped too


def request() -> None:
    """Stop the running step: kill its commands now; the worker stops at its next check."""
    _requested.set()
    kill_running()


def clear() -> None:
    """Forget an earlier request (a new task starts)."""
    _requested.clear()


def requested() -> bool:
    return _requested.is_set()


def check() -> None:
    """Raise KeyboardInterrupt when a stop was requested (called at step boundaries and while waiting)."""
    if _requested.is_set():
        raise KeyboardInterrupt
