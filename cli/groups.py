"""Command groups for typer whose --help stays light (no pydantic import on help paths)."""

from __future__ import annotations

import typer
from typer.core import TyperGroup, TyperOption


class LightGroup(TyperGroup):
    """A command group whose --help flag costs no pydantic import.

    typer (0.29+) coerces every parameter value through a pydantic adapter built on first use; a bool flag
    that is set skips it, but a group's --help flag is unset (None) on every subcommand's path, so `branchwise
    run --help` imported pydantic (about 70 ms) only to learn that None stays None. The help flag of every group
    gets typer's own pass-through coercion instead. Older typers have neither; nothing changes there.
    """

    def get_help_option(self, ctx: typer.Context) -> TyperOption | None:
        option = super().get_help_option(ctx)
        if option is not None and getattr(option, "_runtime_param", "") is None:
            try:
                from typer._coercion import PassThroughRuntimeParam
                from typer.models import OptionInfo
            except ImportError:  # a typer without runtime coercion
                return option
            option._runtime_param = PassThroughRuntimeParam(parameter_info=OptionInfo(), annotation=bool)
        return option


def light_typer(**kwargs: object) -> typer.Typer:
    """A typer app (a command group) whose --help stays light; see LightGroup."""
    return typer.Typer(cls=LightGroup, **kwargs)  # type: ignore[arg-type]
