"""Command groups for typer whose --help stays light (no pydantic import on help paths)."""

from __future__ import annotations

from typing import Any

import click
import typer
from typer.core import TyperGroup


class LightGroup(TyperGroup):
    """A command group whose unset options cost no pydantic import.

    typer (0.29+) coerces every parameter value through a pydantic adapter built on first use, even to learn that
    an unset value (None) stays None. A group's own options (its --help flag, the REPL's options on the root) are
    unset on every subcommand's path, so `branchwise run --help` imported pydantic (about 70 ms) for nothing. Each
    of them gets a coercion that answers None for None and builds typer's own only for a real value. Older typers
    have no runtime coercion; nothing changes there.
    """

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        params = super().get_params(ctx)
        for param in params:
            if getattr(param, "_runtime_param", "") is None and hasattr(param, "type_descriptor"):
                param._runtime_param = _LazyCoercion()  # type: ignore[attr-defined]
        return params


class _LazyCoercion:
    """typer's RuntimeParam contract (`coerce`), building the real one only when there is a value to coerce."""

    def __init__(self) -> None:
        self.real: Any = None

    def coerce(self, value: Any, param: Any, ctx: click.Context) -> Any:
        if value is None:
            return () if (param.multiple or param.nargs == -1) else None
        if self.real is None:
            from typer._coercion import build_runtime_param

            self.real = build_runtime_param(param.type_descriptor)
        return self.real.coerce(value, param=param, ctx=ctx)


def light_typer(**kwargs: object) -> typer.Typer:
    """A typer app (a command group) whose --help stays light; see LightGroup."""
    return typer.Typer(cls=LightGroup, **kwargs)  # type: ignore[arg-type]
