"""Code search tools: grep (ripgrep through the sandbox, or a Python fallback) and glob."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator

from pydantic import BaseModel, Field

from branchwise.sandbox.base import OutputLimits, SandboxError
from branchwise.sandbox.globs import glob_regex
from branchwise.tools.base import Observation, Tool, ToolContext, ToolError
from branchwise.tools.files import SKIP_DIRS
from branchwise.tools.repomap.files import rg_files_argv, walk_unignored

MAX_MATCHES = 200
MAX_FILES = 500


class GrepArgs(BaseModel):
    pattern: str = Field(description="Regular expression to search for.")
    path: str = Field(".", description="File or directory to search, relative to the workspace root.")
    glob: str | None = Field(None, description="Only search files whose path matches this glob, e.g. '*.py'.")
    ignore_case: bool = Field(False, description="Match case-insensitively.")


class Grep(Tool):
    name = "grep"
    description = (
        "Search file contents with a regular expression; returns path:line:text for each match "
        f"(at most {MAX_MATCHES}). Skips .gitignore'd files, .git and dependency directories."
    )
    Args = GrepArgs
    effect = "read"
    path_args = ("path",)
    output_source = "file"

    def run(self, args: GrepArgs, ctx: ToolContext) -> Observation:
        if ctx.fs.stat(args.path) is None:
            raise ToolError(f"{args.path}: no such file or directory")
        try:
            regex = re.compile(args.pattern, re.IGNORECASE if args.ignore_case else 0)
        except re.error as exc:
            raise ToolError(f"invalid regular expression {args.pattern!r}: {exc}") from None
        if shutil.which("rg"):
            return self._ripgrep(args, ctx)
        return self._python(args, regex, ctx)

    def _ripgrep(self, args: GrepArgs, ctx: ToolContext) -> Observation:
        # --no-messages: a file the sandbox masks (deny_read) cannot be opened; that must not fail the search.
        argv = ["rg", "--line-number", "--no-heading", "--color=never", "--max-columns=300",
                "--max-columns-preview", "--max-count=50", "--no-require-git", "--no-messages"]  # fmt: skip
        if args.ignore_case:
            argv.append("--ignore-case")
        if args.glob:
            argv += ["--glob", args.glob]
        argv += ["-e", args.pattern]
        target = os.path.normpath(ctx.fs.relative(args.path))
        if target != ".":
            argv += ["--", target]  # without a path rg prints paths with no "./" prefix
        result = ctx.sandbox.run(
            argv, cwd=ctx.workspace, timeout=60, limits=OutputLimits(keep_head=60_000, keep_tail=0)
        )
        # Exit 2 with only matches (or nothing) printed: some files could not be read, the rest was searched.
        unreadable_files = result.exit_code == 2 and not result.output.startswith(("regex parse error", "error:"))
        if result.exit_code not in (0, 1) and not unreadable_files:
            raise ToolError(f"ripgrep failed: {result.output.strip()[:500]}")
        if not result.output.strip():
            return Observation("(no matches)", data={"matches": 0})
        lines = result.output.rstrip("\n").split("\n")
        return _format(lines)

    def _python(self, args: GrepArgs, regex: re.Pattern[str], ctx: ToolContext) -> Observation:
        matcher = glob_regex(args.glob) if args.glob else None
        lines: list[str] = []
        for rel in walk_files(ctx, args.path):
            if matcher and not (matcher.fullmatch(rel) or matcher.fullmatch(os.path.basename(rel))):
                continue
            try:
                data = ctx.fs.read_bytes(rel)
            except (OSError, SandboxError):  # gone, masked, a FIFO or too large: not searched
                continue
            if b"\0" in data[:8192]:
                continue
            for n, line in enumerate(data.decode("utf-8", "replace").split("\n"), start=1):
                if regex.search(line):
                    lines.append(f"{rel}:{n}:{line[:300]}")
                    if len(lines) > MAX_MATCHES:
                        return _format(lines)
        return _format(lines) if lines else Observation("(no matches)", data={"matches": 0})


def _format(lines: list[str]) -> Observation:
    more = len(lines) - MAX_MATCHES
    text = "\n".join(lines[:MAX_MATCHES])
    if more > 0:
        text += f"\n[{more} more matches not shown; narrow the pattern or the path]"
    return Observation(text, data={"matches": len(lines)})


def walk_files(ctx: ToolContext, start: str) -> Iterator[str]:
    """Workspace-relative paths of regular files under `start`, never following symlinks or entering SKIP_DIRS."""
    rel_start = os.path.normpath(ctx.fs.relative(start))
    top = ctx.workspace / rel_start
    if os.path.isfile(top) and not os.path.islink(top):
        yield rel_start
        return
    for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            if not os.path.islink(full):
                yield os.path.relpath(full, ctx.workspace)


class GlobArgs(BaseModel):
    pattern: str = Field(description="Glob over paths, e.g. '**/*.py' or 'src/*/test_*.py'.")
    path: str = Field(".", description="Directory to search from, relative to the workspace root.")


class Glob(Tool):
    name = "glob"
    description = (
        f"Find files whose path (relative to `path`) matches a glob; ** spans directories. At most {MAX_FILES} "
        "results, sorted by path; files ignored by .gitignore (or .ignore), .git and dependency directories are "
        "skipped."
    )
    Args = GlobArgs
    effect = "read"
    path_args = ("path",)
    output_source = "file"

    def run(self, args: GlobArgs, ctx: ToolContext) -> Observation:
        if ctx.fs.stat(args.path) is None:
            raise ToolError(f"{args.path}: no such directory")
        regex = glob_regex(args.pattern)
        base = os.path.normpath(ctx.fs.relative(args.path))
        files = self._ripgrep(args.pattern, base, ctx) if shutil.which("rg") else None
        if files is None:
            files = walk_unignored(ctx.workspace, base)
        hits = []
        for rel in files:
            below = rel if base == "." else os.path.relpath(rel, base)
            if regex.fullmatch(below):
                hits.append(rel)
        hits.sort()
        if not hits:
            return Observation("(no files match)", data={"matches": 0})
        more = f"\n[{len(hits) - MAX_FILES} more not shown]" if len(hits) > MAX_FILES else ""
        return Observation("\n".join(hits[:MAX_FILES]) + more, data={"matches": len(hits)})

    def _ripgrep(self, pattern: str, base: str, ctx: ToolContext) -> list[str] | None:
        """`rg --files` in the sandbox (as grep runs), narrowed by the pattern's last part; None if rg failed."""
        last = pattern.rsplit("/", 1)[-1]
        # A file type, unlike --glob, keeps the ignore rules; it matches file names, a superset of the pattern.
        narrow = "**" not in last and not any(c in last for c in ",:{}\\")
        argv = rg_files_argv(type_glob=last if narrow else None)
        if base != ".":
            argv += ["--", base]
        result = ctx.sandbox.run(
            argv,
            cwd=ctx.workspace,
            timeout=60,
            limits=OutputLimits(keep_head=32 << 20, keep_tail=0, read_limit=32 << 20),
        )
        if result.exit_code not in (0, 1) or result.truncated:
            return None
        return [line for line in result.output.split("\n") if line]


class FinishArgs(BaseModel):
    summary: str = Field(description="What was done and how it was verified, in a few sentences.")


class Finish(Tool):
    name = "finish"
    description = (
        "Call when the task is done (or cannot be done), with a short summary. The task's checks then run; "
        "if they fail you get their output and can continue."
    )
    Args = FinishArgs
    effect = "read"

    def run(self, args: FinishArgs, ctx: ToolContext) -> Observation:
        return Observation(args.summary, data={"finish": True})
