"""`branchwise map [PATH]`: the repository map, as the agent sees it, for a person."""

from __future__ import annotations

from pathlib import Path

from branchwise.agent.config.layers import load_config
from branchwise.agent.errors import BranchwiseError, EnvironmentProblem, UsageError
from branchwise.cli.render.output import Output


def map_command(
    path: Path | None,
    *,
    tokens: int | None,
    focus: str,
    symbols: list[str],
    as_json: bool,
    cd: Path | None,
    out: Output | None = None,
) -> int:
    """Print the map of the workspace (centred on PATH when given) and what the index saw."""
    out = out or Output()
    try:
        return _print_map(path, tokens=tokens, focus=focus, symbols=symbols, as_json=as_json, cd=cd, out=out)
    except BranchwiseError as err:
        out.error(str(err))
        return err.exit_code


def _print_map(
    path: Path | None,
    *,
    tokens: int | None,
    focus: str,
    symbols: list[str],
    as_json: bool,
    cd: Path | None,
    out: Output,
) -> int:
    from branchwise.cli.common import workspace_for

    start = (cd or Path.cwd()).resolve()
    workspace = workspace_for(cd)
    config = load_config(workspace).config
    budget = tokens if tokens is not None else config.map.tokens
    if budget <= 0:
        raise UsageError("the token budget must be positive (--tokens)")
    paths: list[str] = []
    if path is not None:
        target = (start / path).resolve()
        if not target.exists():
            raise UsageError(f"{path}: no such file or directory")
        if not target.is_relative_to(workspace):
            raise UsageError(f"{path}: outside the workspace {workspace}")
        if target != workspace:
            paths.append(str(target.relative_to(workspace)))
    from branchwise.tools.repomap.languages import GrammarMissing
    from branchwise.tools.repomap.service import RepoMap

    index = RepoMap(
        workspace,
        max_file_bytes=config.map.max_file_bytes,
        max_files=config.map.max_files,
        deny_read=config.sandbox.deny_read,
    )
    try:
        result = index.build(budget, text=focus, paths=paths, symbols=symbols)
    except (GrammarMissing, ImportError) as exc:
        raise EnvironmentProblem(f"the repository map cannot parse code here: {exc}") from None
    finally:
        index.close()
    if as_json:
        out.data(
            {
                "map": result.text,
                "tokens": result.tokens,
                "budget": result.budget,
                "counter": result.counter,
                "files_shown": result.files_shown,
                "files": result.stats.files,
                "parsed": result.stats.parsed,
                "cached": result.stats.reused,
                "skipped": dict(result.stats.skipped),
                "seconds": round(result.seconds, 3),
            }
        )
        return 0
    if not result.text:
        out.warn(f"nothing to map in {workspace}: {result.stats.describe()}")
        return 0
    out.info(result.text.rstrip("\n"))
    # The summary goes to stderr, so that `branchwise map > map.txt` holds the map alone.
    summary = f"{result.tokens} of {result.budget} tokens ({result.counter}); {result.stats.describe()}"
    print(f"[{summary}; {result.seconds:.2f} s]", file=out.err)
    return 0
