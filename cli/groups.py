"""Command groups for typer whose --help stays light: no pydantic import on help paths, and a root that builds
only the subcommand a command line names."""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperCommand, TyperGroup
from typer.models import DefaultPlaceholder

if TYPE_CHECKING:  # for annotations only: typer 0.29+ carries its own copy of click, and click costs ~15 ms
    import click


class LightGroup(TyperGroup):
    """A command group whose unset options cost no pydantic import.

    typer (0.29+) coerces every parameter value through a pydantic adapter built on first use, even to learn that
    an unset value (None) stays None. A group's own options (its --help flag, the REPL's options on the root) are
    unset on every subcommand's path, so `branchwise run --help` imported pydantic (about 70 ms) for nothing. Each
    of them gets a coercion that answers None for None and builds typer's own only for a real value. Older typers
    have no runtime coercion; nothing changes there.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)  # in the order they were made; the names alone (typer's builds every command)

    def format_commands(self, ctx: click.Context, formatter: Any) -> None:
        """The command list of --help; a lazy root lists its commands from their summaries, building none."""
        if not isinstance(self.commands, LazyCommands):
            return super().format_commands(ctx, formatter)
        shown = [(name, cmd) for name in self.list_commands(ctx) if not (cmd := self.commands.preview(name)).hidden]
        if shown:
            limit = formatter.width - 6 - max(len(name) for name, _ in shown)
            with formatter.section("Commands"):
                formatter.write_dl([(name, cmd.get_short_help_str(limit)) for name, cmd in shown])
        return None

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


def light_typer(**kwargs: Any) -> typer.Typer:
    """A typer app (a command group) whose --help stays light; see LightGroup."""
    kwargs.setdefault("rich_markup_mode", None)
    return typer.Typer(cls=LightGroup, **kwargs)


class LazyTyper(typer.Typer):
    """The root app: its subcommands' parsers are built when a command line names them, not all at start.

    typer builds the parser of every command before it parses anything (their signatures and type hints,
    about 130 ms for branchwise's thirty), though a command line runs one. Here the root is built with its own
    options only; each command and group registered on it becomes an entry that LightGroup builds on first use,
    through typer's public `get_command` on a one-entry app with the root's settings, so it comes out as it would
    inside the whole tree. `branchwise --help` lists the commands from their help texts (`LazyCommands.preview`),
    building none.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("rich_markup_mode", None)
        super().__init__(cls=LightGroup, **kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.command_tree()(*args, **kwargs)

    def command_tree(self) -> click.Command:
        """The root command, its subcommands to be built on first use."""
        commands, groups = self.registered_commands, self.registered_groups
        self.registered_commands, self.registered_groups = [], []
        try:
            root = typer.main.get_command(self)
        finally:
            self.registered_commands, self.registered_groups = commands, groups
        assert isinstance(root, LightGroup)
        builders: dict[str, Callable[[], click.Command]] = {}
        previews: dict[str, click.Command] = {}
        for info in commands:
            name = info.name or typer.main.get_command_name(info.callback.__name__)  # type: ignore[union-attr]
            builders[name] = functools.partial(self._build, name, commands=[info])
            doc = info.help if info.help is not None else inspect.getdoc(info.callback)
            previews[name] = _preview(name, doc, info.short_help, info.hidden)
        for group in groups:
            assert group.name, "a group on the lazy root needs an explicit name"
            builders[group.name] = functools.partial(self._build, group.name, groups=[group])
            with contextlib.suppress(Exception):  # typer's own rules for a group's settings; else built to list it
                help_text = typer.main.solve_typer_info_help(group)
                short, hidden = _group_setting(group, "short_help"), _group_setting(group, "hidden")
                previews[group.name] = _preview(group.name, help_text, short, bool(hidden))
        root.commands = LazyCommands(builders, previews)
        return root

    def _build(self, name: str, *, commands: Sequence[Any] = (), groups: Sequence[Any] = ()) -> click.Command:
        one = typer.Typer(
            cls=LightGroup,
            rich_markup_mode=self.rich_markup_mode,
            pretty_exceptions_enable=self.pretty_exceptions_enable,
            pretty_exceptions_short=self.pretty_exceptions_short,
            add_completion=False,
        )
        one.callback()(_no_options)  # a group, so the entry is built as a subcommand, not as a program
        one.registered_commands, one.registered_groups = list(commands), list(groups)
        tree = typer.main.get_command(one)
        assert isinstance(tree, LightGroup)
        return tree.commands[name]


class LazyCommands(MutableMapping[str, "click.Command"]):
    """A group's commands by name, each built by its builder the first time it is looked up; names, order and
    membership (listing, "Did you mean", completion) need no building."""

    def __init__(
        self, builders: dict[str, Callable[[], click.Command]], previews: dict[str, click.Command] | None = None
    ) -> None:
        self._builders = builders
        self._previews = previews or {}
        self._built: dict[str, click.Command] = {}

    def preview(self, name: str) -> click.Command:
        """The command if it is built, else a stand-in with its help and nothing else (for listing)."""
        return self._built.get(name) or self._previews.get(name) or self[name]

    def __getitem__(self, name: str) -> click.Command:
        if name not in self._built:
            self._built[name] = self._builders[name]()  # KeyError for an unknown name, as a dict
        return self._built[name]

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._built[name] = command
        self._builders.setdefault(name, lambda: command)

    def __delitem__(self, name: str) -> None:
        del self._builders[name]
        self._built.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._builders)

    def __len__(self) -> int:
        return len(self._builders)


def _group_setting(group: Any, name: str) -> Any:
    """A group's setting as typer resolves it: add_typer(), then the sub-app's callback, then typer.Typer()."""
    instance = group.typer_instance
    for source in (group, instance.registered_callback, instance.info):
        value = getattr(source, name, None) if source is not None else None
        if value is not None and not isinstance(value, DefaultPlaceholder):
            return value
    return getattr(group, name).value


def _preview(name: str, doc: str | None, short_help: str | None, hidden: bool) -> click.Command:
    text = inspect.cleandoc(doc) if doc else None
    return TyperCommand(name, help=text, short_help=short_help, hidden=hidden)


def _no_options() -> None:
    """The one-entry app's callback: never invoked, only its subcommand is used."""
