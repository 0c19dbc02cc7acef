"""The code-understanding tools: repo_map, find_symbol, find_references and outline, over one `RepoMap`.

They read the workspace only (effect `read`) and run on the host: the tags come from the session's
index, which refreshes itself before every answer, so edits made by earlier steps are always seen.
"""

from __future__ import annotations

import os

from pydantic import BaseModel, Field

from branchwise.tools.base import Observation, Tool, ToolContext, ToolError
from branchwise.tools.repomap.render import entry_line, with_ancestors
from branchwise.tools.repomap.service import RepoMap

MAX_HITS = 100


class RepoMapArgs(BaseModel):
    paths: list[str] = Field(default_factory=list, description="Files or directories to centre the map on.")
    symbols: list[str] = Field(default_factory=list, description="Names (functions, classes, ...) to centre it on.")
    tokens: int | None = Field(None, ge=128, le=32_000, description="Token budget of the map (default: the session's).")


class RepoMapTool(Tool):
    name = "repo_map"
    description = (
        "A map of the repository: the most relevant files and the definitions in them (line│source), ranked by "
        "how the code references itself and fitted to a token budget. Centre it on paths or symbols to explore "
        "around them."
    )
    Args = RepoMapArgs
    effect = "read"
    path_args = ("paths",)
    output_source = "file"

    def __init__(self, index: RepoMap, default_tokens: int = 2048) -> None:
        self.index = index
        self.default_tokens = default_tokens

    def close(self) -> None:
        """The index's cache connection goes with the session's tools (the other three share the index)."""
        self.index.close()

    def run(self, args: RepoMapArgs, ctx: ToolContext) -> Observation:
        budget = args.tokens or self.default_tokens
        result = self.index.build(budget, paths=args.paths, symbols=args.symbols)
        if not result.text:
            raise ToolError(f"the map is empty ({result.stats.describe()}); use glob and grep")
        note = f"\n[{result.tokens} of {budget} tokens; {result.stats.describe()}]"
        return Observation(result.text + note, data={"tokens": result.tokens, "files": result.files_shown})


class SymbolArgs(BaseModel):
    name: str = Field(description="The exact name of a function, class, method, type or constant.")


class FindSymbol(Tool):
    name = "find_symbol"
    description = "Where a name is defined: path:line, its kind and its source line, with the enclosing class."
    Args = SymbolArgs
    effect = "read"
    output_source = "file"

    def __init__(self, index: RepoMap) -> None:
        self.index = index

    def run(self, args: SymbolArgs, ctx: ToolContext) -> Observation:
        found = self.index.find_symbol(args.name)
        if not found:
            close = self.index.similar_names(args.name)
            hint = f"; similar names: {', '.join(close)}" if close else "; try find_references or grep"
            raise ToolError(f"no definition named {args.name!r}{hint}")
        lines = []
        for path, d in found[:MAX_HITS]:
            tags = self.index.tags(path)
            parent = tags.defs[d.parent].name if tags and d.parent >= 0 else ""
            inside = f" in {parent}" if parent else ""
            lines.append(f"{path}:{d.line}: {d.kind}{inside}: {d.text.strip()}")
        if len(found) > MAX_HITS:
            lines.append(f"[{len(found) - MAX_HITS} more not shown]")
        return Observation("\n".join(lines), data={"matches": len(found)})


class FindReferences(Tool):
    name = "find_references"
    description = (
        "Files that use a name (as an identifier in code, not in strings or comments), most uses first, with "
        "the first lines of each. Covers every supported language; for other text use grep."
    )
    Args = SymbolArgs
    effect = "read"
    output_source = "file"

    def __init__(self, index: RepoMap) -> None:
        self.index = index

    def run(self, args: SymbolArgs, ctx: ToolContext) -> Observation:
        found = self.index.find_references(args.name)
        if not found:
            raise ToolError(f"no references to {args.name!r} in the indexed source files; try grep")
        lines = [
            f"{path}: {count} use{'s' if count != 1 else ''}, lines {', '.join(map(str, first))}"
            + (" …" if count > len(first) else "")
            for path, count, first in found[:MAX_HITS]
        ]
        if len(found) > MAX_HITS:
            lines.append(f"[{len(found) - MAX_HITS} more files not shown]")
        return Observation("\n".join(lines), data={"files": len(found)})


class OutlineArgs(BaseModel):
    path: str = Field(description="A source file, relative to the workspace root.")


class Outline(Tool):
    name = "outline"
    description = (
        "The structure of one source file: every definition (classes, functions, methods, ...) as line│source."
    )
    Args = OutlineArgs
    effect = "read"
    path_args = ("path",)
    output_source = "file"

    def __init__(self, index: RepoMap) -> None:
        self.index = index

    def run(self, args: OutlineArgs, ctx: ToolContext) -> Observation:
        rel = os.path.normpath(ctx.fs.relative(args.path))
        if ctx.fs.stat(rel) is None:
            raise ToolError(f"{args.path}: no such file")
        tags, status = self.index.outline(rel)
        if tags is None:
            raise ToolError(f"{args.path}: no outline ({status}); use view")
        if not tags.defs:
            return Observation(f"{rel}: no definitions found", data={"definitions": 0})
        shown = with_ancestors(tags, range(len(tags.defs)))
        body = "\n".join(entry_line(tags.defs[i].line, tags.defs[i].text) for i in shown)
        errors = "\n[the file has syntax errors; the outline may be incomplete]" if tags.has_errors else ""
        return Observation(f"{rel}:\n{body}{errors}", data={"definitions": len(tags.defs)})


def repomap_tools(index: RepoMap, default_tokens: int = 2048) -> list[Tool]:
    """The four code-understanding tools over one session's index."""
    return [RepoMapTool(index, default_tokens), FindSymbol(index), FindReferences(index), Outline(index)]
