"""The Tool seam: a name, a description, a pydantic argument model (the one schema source) and `run`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ValidationError

from branchwise.sandbox.base import Sandbox
from branchwise.sandbox.workspace.safefs import WorkspaceFS

Effect = Literal["read", "file", "exec", "browser", "external"]
"""What a tool call can change, as the tool declares it (the policy and the search both read it):
read: nothing; file: workspace files only (a snapshot restore undoes it); exec: runs a command, whose own
effect the shell classifier decides; browser: the browser's state only (replayable); external: the world
outside the machine or the sandbox (irreversible: the search commits to it, the policy asks by default)."""

OutputSource = Literal["file", "web", "tool_output"]
"""Where a tool's output comes from, for taint tracking: every tool output is untrusted content."""


class ToolError(Exception):
    """A tool could not do what was asked; the message goes back to the model and should say what to do."""


@dataclass
class Observation:
    """What a tool call produced, as the model will read it."""

    output: str
    is_error: bool = False
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class ToolContext:
    """What tools share within one session: where to run, the tracked shell directory, edit history."""

    sandbox: Sandbox
    fs: WorkspaceFS
    shell_timeout_s: float = 120.0
    output_limit_bytes: int = 30_000
    cwd: Path | None = None
    edit_history: dict[str, list[bytes | None]] = field(default_factory=dict)
    deadline: float | None = None
    """time.monotonic() by which the run must end (its wall-time limit); tools cap their own timeouts by it."""

    @property
    def workspace(self) -> Path:
        return self.fs.root

    @property
    def shell_cwd(self) -> Path:
        return self.cwd or self.workspace


class Tool:
    """Subclasses set `name`, `description`, `Args` and implement `run`; checked when the class is defined."""

    name: ClassVar[str]
    description: ClassVar[str]
    Args: ClassVar[type[BaseModel]]
    effect: ClassVar[Effect] = "exec"
    """The declared effect of every call; `effect_of` may refine it per call."""
    path_args: ClassVar[tuple[str, ...]] = ()
    """Arguments that name workspace paths (the policy checks them against masks and protected paths)."""
    output_source: ClassVar[OutputSource] = "tool_output"
    """What kind of untrusted content the output is, for taint tracking."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for attr in ("name", "description", "Args"):
            if not hasattr(cls, attr):
                raise TypeError(f"tool {cls.__name__} must define {attr}")
        if not (isinstance(cls.Args, type) and issubclass(cls.Args, BaseModel)):
            raise TypeError(f"tool {cls.__name__}: Args must be a pydantic model")
        cls.Args.model_json_schema()  # fails now, not mid-run, if the schema cannot be built

    def run(self, args: Any, ctx: ToolContext) -> Observation:
        raise NotImplementedError

    def effect_of(self, args: Any) -> Effect:
        """The effect of one call with these (validated) arguments; by default the declared one."""
        return self.effect

    def policy_facts(self, args: Any) -> dict[str, Any]:
        """What the policy may match besides the arguments (a browser action's page URL and element, and what
        it does: submit, login, payment, download); never taint-checked, since the tool, not the model, wrote it."""
        return {}

    def close(self) -> None:
        """Release what the tool holds for the session (a browser, a server connection); most hold nothing."""

    @classmethod
    def schema(cls) -> dict[str, Any]:
        """The OpenAI function-calling schema of this tool."""
        params = cls.Args.model_json_schema()
        params.pop("title", None)
        for prop in params.get("properties", {}).values():
            prop.pop("title", None)
        return {
            "type": "function",
            "function": {"name": cls.name, "description": cls.description, "parameters": params},
        }


class ToolBox:
    """The tools of a session, looked up by name; validates arguments against each tool's model."""

    def __init__(self, tools: list[Tool]) -> None:
        self.tools: dict[str, Tool] = {}
        # Built once per tool: every model call sends them, and pydantic is slow to generate them.
        self._schemas: list[dict[str, Any]] = []
        for tool in tools:
            self.add(tool)

    def add(self, tool: Tool) -> None:
        """Register one more tool for the session (browser, MCP, shortcuts); names must be unique."""
        if tool.name in self.tools:
            raise ValueError(f"two tools are named {tool.name!r}")
        self.tools[tool.name] = tool
        self._schemas.append(tool.schema())

    def schemas(self) -> list[dict[str, Any]]:
        return self._schemas

    def close(self) -> None:
        """Close every tool (each closes what it holds for the session)."""
        for tool in self.tools.values():
            tool.close()

    def get(self, name: str) -> Tool:
        tool = self.tools.get(name)
        if tool is None:
            raise ToolError(f"unknown tool {name!r}; available: {', '.join(self.tools)}")
        return tool

    def parse_args(self, name: str, arguments: dict[str, Any] | None) -> BaseModel:
        """Validate arguments; the error names each bad field so the model can fix its call."""
        tool = self.get(name)
        try:
            return tool.Args.model_validate(arguments or {})
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in exc.errors())
            raise ToolError(f"invalid arguments for {name}: {problems}") from None
