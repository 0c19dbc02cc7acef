"""Read-only git tools for the model: git_status, git_diff, git_log, git_show, git_blame.

They run git on the host through gitpython, isolated (tools/git/isolation.py), never through the shell:
no pager, hook, filter, textconv or external diff can run, and the user's index is never rewritten.
Revisions are checked before use (no option injection), paths must stay in the workspace, and files
hidden by deny_read are refused by name and cut out of diffs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, Field

from branchwise.sandbox.globs import glob_regex
from branchwise.tools.base import Effect, Observation, OutputSource, Tool, ToolContext, ToolError
from branchwise.tools.git.isolation import GitError, open_repo

_REV = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./~^@{}:+-]{0,199}")
_DIFF_START = re.compile(r"^diff --git a/(.*?) b/", re.MULTILINE)


class _GitTool:
    """Common ground of the git tools (a mixin before Tool): checked revisions and paths, masks, capped output."""

    effect: ClassVar[Effect] = "read"
    output_source: ClassVar[OutputSource] = "file"

    def __init__(self, deny_read: Sequence[str] = ()) -> None:
        self._deny = list(deny_read)

    def git(self, ctx: ToolContext, *args: str) -> str:
        """Run one read-only git command in the workspace's repository and return its output."""
        import git

        try:
            with open_repo(ctx.workspace) as repo:
                return str(repo.git.execute(["git", *args], stdout_as_string=True, strip_newline_in_stdout=False))
        except GitError as exc:
            raise ToolError(f"{exc}; git tools need a git repository") from None
        except git.GitCommandError as exc:
            first = next((ln for ln in str(exc.stderr).splitlines() if ln.strip()), "").strip(" '")
            raise ToolError(f"git {args[0]} failed: {first.removeprefix('stderr: ').strip(chr(39))}") from None

    def rev(self, value: str | None) -> list[str]:
        if value is None:
            return []
        if not _REV.fullmatch(value):  # it cannot start with "-", so it is never taken for an option
            raise ToolError(f"{value!r} is not a revision (use a branch, tag, commit id, HEAD~2, a..b)")
        return [value]

    def paths(self, ctx: ToolContext, paths: Sequence[str]) -> list[str]:
        out = []
        for p in paths:
            rel = ctx.fs.relative(p)
            if rel.startswith("../") or rel == "..":
                raise ToolError(f"{p}: outside the workspace")
            if self._masked(ctx, rel):
                raise ToolError(f"{p} is hidden from the agent (deny_read)")
            out.append(rel)
        return ["--", *out] if out else []

    def _masked(self, ctx: ToolContext, rel: str) -> bool:
        full = ctx.workspace / rel
        regexes = [glob_regex(str(ctx.workspace / Path(p).expanduser())) for p in self._deny]
        return any(r.fullmatch(str(q)) for r in regexes for q in (full, *full.parents) if q != ctx.workspace)

    def without_masked(self, ctx: ToolContext, patch: str) -> str:
        """Drop the sections of a patch that belong to hidden files."""
        if not self._deny:
            return patch
        starts = [m.start() for m in _DIFF_START.finditer(patch)]
        if not starts:
            return patch
        kept = [patch[: starts[0]]]
        for begin, end in zip(starts, [*starts[1:], len(patch)], strict=True):
            section = patch[begin:end]
            match = _DIFF_START.match(section)
            if match and self._masked(ctx, match.group(1)):
                kept.append(f"[diff of {match.group(1)} hidden (deny_read)]\n")
            else:
                kept.append(section)
        return "".join(kept)

    def cap(self, ctx: ToolContext, text: str) -> Observation:
        limit = ctx.output_limit_bytes
        data = text.encode("utf-8", "replace")
        if len(data) <= limit:
            return Observation(text or "(no output)")
        head = data[: limit - 200].decode("utf-8", "ignore")
        return Observation(head + f"\n[{len(data) - len(head.encode())} more bytes not shown; narrow it with paths]")


class StatusArgs(BaseModel):
    pass


class GitStatus(_GitTool, Tool):
    name = "git_status"
    description = "The branch and the changed, staged and untracked files of the repository (git status)."
    Args = StatusArgs

    def run(self, args: StatusArgs, ctx: ToolContext) -> Observation:
        return self.cap(ctx, self.git(ctx, "status", "--porcelain=v1", "--branch", "--untracked-files=normal"))


class DiffArgs(BaseModel):
    base: str | None = Field(None, description="Compare from this revision (default: the index, or HEAD if staged).")
    target: str | None = Field(None, description="Compare to this revision (default: the working tree).")
    staged: bool = Field(False, description="Show staged changes (git diff --cached).")
    paths: list[str] = Field(default_factory=list, description="Only these files or directories.")
    stat: bool = Field(False, description="Only a summary of changed files and lines.")


class GitDiff(_GitTool, Tool):
    name = "git_diff"
    description = "Changes as a unified diff (git diff): working tree, staged, or between two revisions."
    Args = DiffArgs
    path_args = ("paths",)

    def run(self, args: DiffArgs, ctx: ToolContext) -> Observation:
        flags = ["--no-color", "--stat" if args.stat else "--patch", *(["--cached"] if args.staged else [])]
        revs = self.rev(args.base) + self.rev(args.target)
        out = self.git(ctx, "diff", *flags, *revs, *self.paths(ctx, args.paths))
        return self.cap(ctx, self.without_masked(ctx, out))


class LogArgs(BaseModel):
    revision: str | None = Field(None, description="Start from this revision or range (default: HEAD).")
    paths: list[str] = Field(default_factory=list, description="Only commits touching these paths.")
    max_count: int = Field(20, ge=1, le=200, description="Commits at most.")
    grep: str | None = Field(None, max_length=200, description="Only commits whose message matches this regex.")


class GitLog(_GitTool, Tool):
    name = "git_log"
    description = "Commit history, one line per commit: short id, date, author, subject (git log)."
    Args = LogArgs
    path_args = ("paths",)

    def run(self, args: LogArgs, ctx: ToolContext) -> Observation:
        flags = ["--no-color", f"--max-count={args.max_count}", "--date=short", "--format=%h %ad %an: %s"]
        if args.grep:
            flags.append(f"--grep={args.grep}")
        out = self.git(ctx, "log", *flags, *self.rev(args.revision), *self.paths(ctx, args.paths))
        return self.cap(ctx, out)


class ShowArgs(BaseModel):
    revision: str = Field("HEAD", description="A commit (its message and diff), or REV:path for a file's content.")
    stat: bool = Field(False, description="Only the message and a summary of changed files.")


class GitShow(_GitTool, Tool):
    name = "git_show"
    description = "A commit's message and diff, or a file as it was in a revision (REV:path) (git show)."
    Args = ShowArgs

    def run(self, args: ShowArgs, ctx: ToolContext) -> Observation:
        rev, _, path = args.revision.partition(":")
        if path:
            self.paths(ctx, [path])  # refuses hidden or outside paths
        self.rev(rev or "HEAD")
        flags = ["--no-color", "--stat" if args.stat else "--patch"]
        out = self.git(ctx, "show", *flags, "--end-of-options", args.revision)
        return self.cap(ctx, self.without_masked(ctx, out))


class BlameArgs(BaseModel):
    path: str = Field(description="The file, relative to the workspace root.")
    start_line: int = Field(1, ge=1, description="First line.")
    end_line: int | None = Field(None, ge=1, description="Last line (default: start_line + 99).")
    revision: str | None = Field(None, description="Blame as of this revision (default: the working tree).")


class GitBlame(_GitTool, Tool):
    name = "git_blame"
    description = "Who last changed each line of a file, and in which commit (git blame), 100 lines at most."
    Args = BlameArgs
    path_args = ("path",)

    def run(self, args: BlameArgs, ctx: ToolContext) -> Observation:
        end = args.end_line or args.start_line + 99
        if end < args.start_line:
            raise ToolError("end_line is before start_line")
        end = min(end, args.start_line + 199)
        flags = ["--date=short", f"-L{args.start_line},{end}"]
        out = self.git(ctx, "blame", *flags, *self.rev(args.revision), *self.paths(ctx, [args.path]))
        return self.cap(ctx, out)


def git_tools(deny_read: Sequence[str] = ()) -> list[Any]:
    """The read-only git tools, hiding the files `deny_read` names."""
    return [cls(deny_read) for cls in (GitStatus, GitDiff, GitLog, GitShow, GitBlame)]
