"""Tables for people: rich tables that fit the terminal, plain aligned text when the output is not one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO

from branchwise.cli.render.inert import inert


def print_table(
    stream: TextIO,
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    wrap: Sequence[str] = (),
    styles: Sequence[str | None] | None = None,
) -> None:
    """Print rows under column headings. On a terminal the table fits its width (the `wrap` columns fold,
    the others are cut with an ellipsis); elsewhere columns are aligned with spaces and never cut."""
    rows = [[inert(cell, one_line=True) for cell in row] for row in rows]
    if not stream.isatty():
        _plain(stream, columns, rows)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    for name in columns:
        table.add_column(name, overflow="fold" if name in wrap else "ellipsis", no_wrap=name not in wrap)
    for i, row in enumerate(rows):
        table.add_row(*row, style=styles[i] if styles else None)
    Console(file=stream, highlight=False, markup=False).print(table)


def _plain(stream: TextIO, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max([len(columns[i]), *(len(r[i]) for r in rows)]) for i in range(len(columns))]
    for row in [list(columns), *rows]:
        cells = [cell.ljust(widths[i]) if i < len(row) - 1 else cell for i, cell in enumerate(row)]
        print("  ".join(cells).rstrip(), file=stream)
