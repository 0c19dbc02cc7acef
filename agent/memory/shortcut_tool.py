"""Active shortcuts offered to the model as callable tools, with their own argument schemas as signatures."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from branchwise.agent.memory.records import Shortcut
from branchwise.agent.memory.shortcuts import ShortcutRunner
from branchwise.tools.base import Observation, Tool, ToolContext

_TYPES: dict[str, type] = {"string": str, "integer": int, "number": float, "boolean": bool}


class _NoArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ShortcutTool(Tool):
    """One shortcut as a tool; `make_tool` builds the subclass for a given shortcut."""

    name = "shortcut"
    description = "A shortcut from earlier tasks."
    Args = _NoArgs
    effect = "file"
    shortcut: ClassVar[Shortcut]

    def __init__(self, runner: ShortcutRunner) -> None:
        self.runner = runner

    def run(self, args: BaseModel, ctx: ToolContext) -> Observation:
        return self.runner.run(self.shortcut, args.model_dump(exclude_none=True), ctx)

    @classmethod
    def schema(cls) -> dict[str, Any]:
        """The shortcut's own JSON Schema is the signature the model sees (no pydantic rewriting)."""
        return {
            "type": "function",
            "function": {"name": cls.name, "description": cls.description, "parameters": cls.shortcut.arguments},
        }


def args_model(sc: Shortcut) -> type[BaseModel]:
    """A pydantic model of the shortcut's (restricted) argument schema, so bad calls fail as malformed."""
    props: dict[str, Any] = sc.arguments.get("properties", {})
    required = set(sc.arguments.get("required", []))
    fields: dict[str, Any] = {}
    for name, prop in props.items():
        typ: Any = _TYPES[prop.get("type", "string")]
        if "enum" in prop:
            typ = Literal[tuple(prop["enum"])]
        extra: dict[str, Any] = {"description": prop.get("description")}
        if typ is str:
            extra.update(pattern=prop.get("pattern"), max_length=prop.get("maxLength"))
        default = ... if name in required else None
        fields[name] = (typ if name in required else typ | None, Field(default, **extra))
    config = ConfigDict(extra="forbid", regex_engine="python-re")
    return create_model(f"{sc.name}_Args", __config__=config, **fields)


def describe(sc: Shortcut) -> str:
    """The tool description: what it does, its steps, its precondition, and that it is rolled back on failure."""
    steps = ", ".join(s.name for s in sc.atomic_action_sequence)
    parts = [
        sc.description.rstrip("."),
        f"A shortcut from earlier tasks: runs {len(sc.atomic_action_sequence)} "
        f"step(s) ({steps}) as one action and checks its postcondition",
    ]
    if sc.precondition.nl:
        parts.append(f"Precondition: {sc.precondition.nl.rstrip('.')}")
    if sc.postcondition.nl:
        parts.append(f"Afterwards: {sc.postcondition.nl.rstrip('.')}")
    parts.append("If a step or the postcondition fails, all of it is rolled back")
    return ". ".join(parts) + "."


def make_tool(sc: Shortcut, runner: ShortcutRunner) -> ShortcutTool:
    """The tool that runs `sc` through `runner`."""
    attrs = {
        "name": sc.tool_name(),
        "description": describe(sc),
        "Args": args_model(sc),
        "effect": "external" if sc.side_effects == "external" else "file",
        "shortcut": sc,
    }
    cls = type(f"Shortcut_{sc.name}", (ShortcutTool,), attrs)
    return cls(runner)
