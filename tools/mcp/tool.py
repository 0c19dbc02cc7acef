"""The MCP servers' tools as branchwise tools: one Tool subclass per remote tool, its JSON Schema the one schema."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar

import mcp_types
from jsonschema import SchemaError
from jsonschema.validators import validator_for
from pydantic import BaseModel, ConfigDict, model_validator

from branchwise.tools.base import Observation, Tool, ToolContext
from branchwise.tools.mcp.connection import CallFault, McpServerError, ServerConnection
from branchwise.tools.mcp.convert import (
    cap,
    describe,
    effect_of,
    input_schema,
    output_source_of,
    render_content,
    tool_name,
)


class JsonSchemaArgs(BaseModel):
    """Arguments checked against the server's JSON Schema rather than pydantic fields; they pass through as given."""

    model_config = ConfigDict(extra="allow")
    schema_validator: ClassVar[Any] = None

    @model_validator(mode="before")
    @classmethod
    def _check(cls, data: Any) -> Any:
        if cls.schema_validator is not None:
            errors = sorted(cls.schema_validator.iter_errors(data), key=lambda e: list(e.absolute_path))
            if errors:
                raise ValueError("; ".join(_explain(e) for e in errors[:5]))
        return data


def _explain(error: Any) -> str:
    where = ".".join(str(p) for p in error.absolute_path)
    return f"{where}: {error.message}" if where else str(error.message)


class McpTool(Tool):
    """A tool of an MCP server; subclasses are made per remote tool by `make_tool`."""

    name = "mcp"
    description = "A tool of an MCP server."
    Args = JsonSchemaArgs
    server: ClassVar[str] = ""
    remote_name: ClassVar[str] = ""
    parameters: ClassVar[dict[str, Any]] = {"type": "object", "properties": {}}

    def __init__(self, connection: ServerConnection, on_close: Callable[[], None]) -> None:
        self.connection, self.on_close = connection, on_close

    @classmethod
    def schema(cls) -> dict[str, Any]:
        return {"type": "function", "function": {"name": cls.name, "description": cls.description,
                                                 "parameters": cls.parameters}}  # fmt: skip

    def run(self, args: Any, ctx: ToolContext) -> Observation:
        timeout = call_timeout(self.connection.settings.tool_timeout_s, ctx)
        if timeout is None:
            return Observation("Error: the run's time is up; the tool was not called.", is_error=True)
        data: dict[str, Any] = {"mcp_server": self.server, "mcp_tool": self.remote_name}
        try:
            result = self.connection.call_tool(self.remote_name, args.model_dump(), timeout)
        except (CallFault, McpServerError) as exc:
            data["mcp_fault"] = exc.kind if isinstance(exc, CallFault) else "down"
            return Observation(f"Error: {exc}", is_error=True, data=data)
        text = render_content(result.content, result.structured_content) or "(the tool returned no content)"
        return Observation(cap(text, ctx.output_limit_bytes), is_error=result.is_error, data=data)

    def close(self) -> None:
        self.on_close()  # the session's MCP manager: stops every server once, then its loop thread


def call_timeout(configured: float, ctx: ToolContext) -> float | None:
    """The tool timeout, capped by the run's deadline; None when no time is left."""
    if ctx.deadline is None:
        return configured
    left = ctx.deadline - time.monotonic()
    return min(configured, left) if left > 0.5 else None


def make_tool(
    connection: ServerConnection, remote: mcp_types.Tool, on_close: Callable[[], None], *, max_description: int
) -> McpTool:
    """A branchwise tool for one remote tool; raises ValueError when its input schema is not a valid JSON Schema."""
    params = input_schema(remote.input_schema)
    try:
        cls = validator_for(params)
        cls.check_schema(params)
    except SchemaError as exc:
        raise ValueError(f"tool {remote.name!r} has an invalid input schema: {exc.message}") from None

    class Args(JsonSchemaArgs):
        schema_validator: ClassVar[Any] = cls(params)

    server = connection.name
    contained = connection.launch.sandboxed
    attrs = {
        "name": tool_name(server, remote.name),
        "description": describe(server, remote.description, max_description),
        "Args": Args,
        "effect": effect_of(remote.annotations, contained=contained),
        "output_source": output_source_of(remote.annotations),
        "server": server,
        "remote_name": remote.name,
        "parameters": params,
        "__module__": __name__,
    }
    return type(f"Mcp_{attrs['name']}", (McpTool,), attrs)(connection, on_close)


class ReadResource(Tool):
    """Read one of an MCP server's resources; subclassed per server that offers any."""

    name = "mcp_read_resource"
    description = "Read a resource of an MCP server."
    effect = "read"
    server: ClassVar[str] = ""

    class Args(BaseModel):
        uri: str
        """The resource's URI, as listed."""

    def __init__(self, connection: ServerConnection, on_close: Callable[[], None]) -> None:
        self.connection, self.on_close = connection, on_close

    def run(self, args: Any, ctx: ToolContext) -> Observation:
        timeout = call_timeout(self.connection.settings.tool_timeout_s, ctx)
        if timeout is None:
            return Observation("Error: the run's time is up; the resource was not read.", is_error=True)
        try:
            result = self.connection.read_resource(args.uri, timeout)
        except (CallFault, McpServerError) as exc:
            return Observation(f"Error: {exc}", is_error=True, data={"mcp_server": self.server})
        blocks = [mcp_types.EmbeddedResource(type="resource", resource=c) for c in result.contents]
        text = render_content(blocks, None) or "(the resource is empty)"
        return Observation(cap(text, ctx.output_limit_bytes), data={"mcp_server": self.server, "uri": args.uri})

    def close(self) -> None:
        self.on_close()


def make_resource_tool(
    connection: ServerConnection, resources: list[mcp_types.Resource], on_close: Callable[[], None]
) -> ReadResource:
    """The read-resource tool of one server, its description listing (some of) the server's resources."""
    shown = [f"{r.uri}" + (f" ({r.name})" if r.name and r.name != r.uri else "") for r in resources[:20]]
    more = f" and {len(resources) - 20} more" if len(resources) > 20 else ""
    server = connection.name
    description = f"[MCP server {server}] Read a resource by URI. Resources: {'; '.join(shown)}{more}."
    name = tool_name(server, "read_resource")
    attrs = {"name": name, "description": description[:2000], "server": server, "__module__": __name__}
    return type(f"Mcp_{name}", (ReadResource,), attrs)(connection, on_close)
