"""Errors and stop reasons of the agent, each carrying the exit code the CLI returns.

The CLI catches BranchwiseError in one place (cli/main.py) and prints one line; nothing else
reaches the user as a traceback.

BranchwiseError                 exit 1 unless stated
├── UsageError                  bad command line or task                      (2)
├── ConfigError                 malformed config file, unknown key, bad value  (2)
├── EnvironmentProblem          missing dependency, sandbox unavailable       (4)
└── ModelError                  the model could not be queried
    ├── ModelConfigError        unknown model, missing API key, auth refused  (2)
    ├── ModelUnavailable        provider down, 5xx, timeouts after retries    (4)
    ├── ContextTooLong          the prompt no longer fits the model           (1)
    └── ScriptExhausted         a scripted model ran out of replies           (1)

StopRun                         control flow: why a run ended (not an error)
├── Completed                   the model finished (status completed/failed after checks)
├── Failed                      the model cannot go on (status failed)
├── BudgetExceeded              a limit of the run was reached; names it      (3)
└── Interrupted                 Ctrl-C or SIGTERM (status interrupted)
"""

from __future__ import annotations

from typing import ClassVar, Literal

Status = Literal["completed", "failed", "budget_exceeded", "interrupted", "error"]

EXIT_OK = 0
EXIT_NOT_COMPLETED = 1
EXIT_USAGE = 2
EXIT_BUDGET = 3
EXIT_ENVIRONMENT = 4
EXIT_INTERRUPTED = 130

STATUS_EXIT: dict[str, int] = {
    "completed": EXIT_OK,
    "failed": EXIT_NOT_COMPLETED,
    "budget_exceeded": EXIT_BUDGET,
    "interrupted": EXIT_INTERRUPTED,
}


class BranchwiseError(Exception):
    """An error shown to the user as one line, ending the process with `exit_code`."""

    exit_code: ClassVar[int] = EXIT_NOT_COMPLETED


class UsageError(BranchwiseError):
    exit_code = EXIT_USAGE


class ConfigError(BranchwiseError):
    exit_code = EXIT_USAGE


class EnvironmentProblem(BranchwiseError):
    exit_code = EXIT_ENVIRONMENT


class ModelError(BranchwiseError):
    """The model could not be queried."""


class ModelConfigError(ModelError):
    exit_code = EXIT_USAGE


class ModelUnavailable(ModelError):
    exit_code = EXIT_ENVIRONMENT


class ContextTooLong(ModelError):
    pass


class ScriptExhausted(ModelError):
    pass


class StopRun(Exception):
    """Ends a run; carries the status it ends with and a one-line reason."""

    status: ClassVar[Status]

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason


class Completed(StopRun):
    status = "completed"

    def __init__(self, summary: str) -> None:
        super().__init__(summary)
        self.summary = summary


class Failed(StopRun):
    status = "failed"


Limit = Literal["steps", "model_calls", "nodes", "tokens", "cost", "wall"]


class BudgetExceeded(StopRun):
    """A limit of the run was reached; `limit` names it (also in the final JSON)."""

    status = "budget_exceeded"

    def __init__(self, reason: str = "", limit: Limit | None = None) -> None:
        super().__init__(reason)
        self.limit = limit


class Interrupted(StopRun):
    status = "interrupted"
