"""The Tool seam: a name, a description, a pydantic argument model (the one schema source) and `run`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ValidationError

from branchwise.sandbox.base import Sandbox
from branchwise.sandbox.workspace.safefs import WorkspaceFS


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
    # file: only changes files in the workspace; read: changes nothing; exec: runs commands (see agent.search).
    effect: ClassVar[str] = "exec"

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
        self.tools = {tool.name: tool for tool in tools}
        # Built once: every model call sends them, and pydantic is slow to generate them.
        self._schemas = [tool.schema() for tool in tools]

    def schemas(self) -> list[dict[str, Any]]:
        return self._schemas

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
