"""File tools: view, create, str_replace, insert, undo_edit. They run on the host, confined by WorkspaceFS."""

from __future__ import annotations

import os
import stat

from pydantic import BaseModel, Field

from branchwise.sandbox.workspace.safefs import UnreadableFile
from branchwise.tools.base import Observation, Tool, ToolContext, ToolError

MAX_VIEW_LINES = 2000
MAX_LINE_CHARS = 2000
MAX_DIR_ENTRIES = 400
SNIPPET_CONTEXT = 4
# Directories a listing does not descend into: they are large and rarely what the task is about.
SKIP_DIRS = frozenset({".git", "node_modules", ".venv", "venv", "__pycache__", ".mypy_cache", ".pytest_cache",
                       ".ruff_cache", ".tox", ".nox", ".hypothesis", ".branchwise"})  # fmt: skip


def _key(ctx: ToolContext, path: str) -> str:
    return os.path.normpath(ctx.fs.relative(path))


def read_text(ctx: ToolContext, path: str) -> str:
    """A workspace file as text; missing or binary files are tool errors."""
    try:
        data = ctx.fs.read_bytes(path)
    except FileNotFoundError:
        raise ToolError(f"{path}: no such file; use `view` on a directory or `glob` to find it") from None
    except IsADirectoryError:
        raise ToolError(f"{path}: is a directory") from None
    except UnreadableFile as exc:  # masked, a FIFO or device, or too large to read on the host
        raise ToolError(str(exc)) from None
    if b"\0" in data[:8192]:
        raise ToolError(f"{path}: binary file ({len(data)} bytes); use the shell to inspect it")
    return data.decode("utf-8", errors="replace")


def write_text(ctx: ToolContext, path: str, text: str) -> bool:
    """Write a file and remember its previous content for undo_edit; True when it is new."""
    key = _key(ctx, path)
    try:
        previous: bytes | None = ctx.fs.read_bytes(path)
    except FileNotFoundError:
        previous = None
    except IsADirectoryError:
        raise ToolError(f"{path}: is a directory") from None
    except UnreadableFile as exc:  # a FIFO or device is not overwritten, a huge file not kept for undo
        raise ToolError(str(exc)) from None
    created = ctx.fs.write_bytes(path, text.encode("utf-8"))
    ctx.edit_history.setdefault(key, []).append(previous)
    return created


def numbered(lines: list[str], first: int) -> str:
    return "\n".join(f"{n:6}\t{line[:MAX_LINE_CHARS]}" for n, line in enumerate(lines, start=first))


def snippet(text: str, start_line: int, end_line: int) -> str:
    """Lines around an edit, numbered, so the model can check it."""
    lines = text.split("\n")
    lo = max(1, start_line - SNIPPET_CONTEXT)
    hi = min(len(lines), end_line + SNIPPET_CONTEXT)
    return numbered(lines[lo - 1 : hi], lo)


class ViewArgs(BaseModel):
    path: str = Field(description="File or directory, relative to the workspace root (or absolute inside it).")
    view_range: list[int] | None = Field(
        None,
        min_length=2,
        max_length=2,
        description="[first, last] line numbers (1-based; last = -1 for the end).",
    )


class View(Tool):
    name = "view"
    description = "Show a file with line numbers (optionally only a line range), or list a directory two levels deep."
    Args = ViewArgs
    effect = "read"
    path_args = ("path",)
    output_source = "file"

    def run(self, args: ViewArgs, ctx: ToolContext) -> Observation:
        st = ctx.fs.stat(args.path)
        if st is None:
            raise ToolError(f"{args.path}: no such file or directory")
        if stat.S_ISDIR(st.st_mode):
            return Observation(self._listing(args.path, ctx))
        text = read_text(ctx, args.path)
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        first, last = 1, len(lines)
        if args.view_range:
            first, last = args.view_range[0], args.view_range[1]
            last = len(lines) if last == -1 else last
            if not 1 <= first <= max(last, 1) or last > len(lines):
                raise ToolError(f"view_range {args.view_range} is outside the file's {len(lines)} lines")
        notes = ""
        if last - first + 1 > MAX_VIEW_LINES:
            last = first + MAX_VIEW_LINES - 1
            notes = f"\n[showing lines {first}-{last} of {len(lines)}; use view_range for more]"
        return Observation(numbered(lines[first - 1 : last], first) + notes if lines else "(empty file)")

    def _listing(self, path: str, ctx: ToolContext) -> str:
        out: list[str] = []

        def walk(rel: str, depth: int) -> None:
            for entry in ctx.fs.list_dir(rel):
                if len(out) >= MAX_DIR_ENTRIES:
                    return
                child = entry.name if rel == "." else f"{rel}/{entry.name}"
                if entry.is_dir and not entry.is_symlink:
                    out.append(f"{child}/")
                    if depth < 2 and entry.name not in SKIP_DIRS and not entry.name.startswith("."):
                        walk(child, depth + 1)
                else:
                    out.append(child + (" -> (symlink)" if entry.is_symlink else ""))

        walk(ctx.fs.relative(path), 1)
        more = f"\n[listing stopped at {MAX_DIR_ENTRIES} entries]" if len(out) >= MAX_DIR_ENTRIES else ""
        return ("\n".join(out) or "(empty directory)") + more


class CreateArgs(BaseModel):
    path: str = Field(description="File to create or overwrite, relative to the workspace root.")
    file_text: str = Field(description="The complete content of the file.")


class Create(Tool):
    name = "create"
    description = "Create a file (parent directories too) or overwrite an existing one with the given content."
    Args = CreateArgs
    effect = "file"
    path_args = ("path",)

    def run(self, args: CreateArgs, ctx: ToolContext) -> Observation:
        created = write_text(ctx, args.path, args.file_text)
        verb = "Created" if created else "Overwrote"
        return Observation(f"{verb} {args.path} ({args.file_text.count(chr(10)) + 1} lines)", data={"path": args.path})


class StrReplaceArgs(BaseModel):
    path: str = Field(description="File to edit, relative to the workspace root.")
    old_str: str = Field(description="Exact text to replace; it must occur exactly once in the file.")
    new_str: str = Field("", description="Replacement text (empty to delete old_str).")


class StrReplace(Tool):
    name = "str_replace"
    description = (
        "Replace one exact occurrence of old_str in a file with new_str. old_str must match the file exactly "
        "(whitespace and indentation included) and occur exactly once; include surrounding lines to make it unique."
    )
    Args = StrReplaceArgs
    effect = "file"
    path_args = ("path",)

    def run(self, args: StrReplaceArgs, ctx: ToolContext) -> Observation:
        if not args.old_str:
            raise ToolError("old_str is empty; use insert to add text, or create to write a whole file")
        text = read_text(ctx, args.path)
        old, new = args.old_str, args.new_str
        if "\r\n" in text and old not in text and old.replace("\n", "\r\n") in text:
            old, new = old.replace("\n", "\r\n"), new.replace("\n", "\r\n")
        count = text.count(old)
        if count == 0:
            raise ToolError(self._no_match_hint(args.path, text, args.old_str))
        if count > 1:
            lines = _match_lines(text, old)
            raise ToolError(
                f"old_str occurs {count} times in {args.path} (lines {', '.join(map(str, lines))}); "
                "include more surrounding text so it matches exactly once"
            )
        start = text.index(old)
        updated = text[:start] + new + text[start + len(old) :]
        write_text(ctx, args.path, updated)
        first = text.count("\n", 0, start) + 1
        return Observation(
            f"Edited {args.path}:\n" + snippet(updated, first, first + new.count("\n")),
            data={"path": args.path},
        )

    @staticmethod
    def _no_match_hint(path: str, text: str, old: str) -> str:
        squash = " ".join(old.split())
        if squash and squash in " ".join(text.split()):
            return (
                f"old_str not found in {path} as written, but it matches if whitespace is ignored; "
                "copy the exact text (indentation included) from `view`"
            )
        return f"old_str not found in {path}; `view` the file and copy the exact text to replace"


def _match_lines(text: str, needle: str) -> list[int]:
    lines, pos = [], text.find(needle)
    while pos >= 0:
        lines.append(text.count("\n", 0, pos) + 1)
        pos = text.find(needle, pos + 1)
    return lines


class InsertArgs(BaseModel):
    path: str = Field(description="File to edit, relative to the workspace root.")
    insert_line: int = Field(ge=0, description="Insert after this line number (0 = at the top of the file).")
    new_str: str = Field(description="Text to insert.")


class Insert(Tool):
    name = "insert"
    description = "Insert text after a given line of a file (line 0 inserts at the top)."
    Args = InsertArgs
    effect = "file"
    path_args = ("path",)

    def run(self, args: InsertArgs, ctx: ToolContext) -> Observation:
        text = read_text(ctx, args.path)
        lines = text.split("\n")
        trailing_newline = text.endswith("\n")
        if trailing_newline:
            lines.pop()
        if args.insert_line > len(lines):
            raise ToolError(f"insert_line {args.insert_line} is past the end of {args.path} ({len(lines)} lines)")
        new_lines = args.new_str.removesuffix("\n").split("\n")
        lines[args.insert_line : args.insert_line] = new_lines
        updated = "\n".join(lines) + ("\n" if trailing_newline or not text else "")
        write_text(ctx, args.path, updated)
        first = args.insert_line + 1
        return Observation(
            f"Inserted into {args.path}:\n" + snippet(updated, first, first + len(new_lines) - 1),
            data={"path": args.path},
        )


class UndoEditArgs(BaseModel):
    path: str = Field(description="File whose last create/str_replace/insert should be undone.")


class UndoEdit(Tool):
    name = "undo_edit"
    description = "Undo the last change made to a file by create, str_replace or insert (repeatable)."
    Args = UndoEditArgs
    effect = "file"
    path_args = ("path",)

    def run(self, args: UndoEditArgs, ctx: ToolContext) -> Observation:
        history = ctx.edit_history.get(_key(ctx, args.path))
        if not history:
            raise ToolError(f"no edit of {args.path} to undo")
        previous = history.pop()
        if previous is None:
            ctx.fs.unlink(args.path)
            return Observation(
                f"Removed {args.path} (it did not exist before it was created)", data={"path": args.path}
            )
        ctx.fs.write_bytes(args.path, previous)
        return Observation(f"Restored {args.path} to its content before the last edit", data={"path": args.path})
