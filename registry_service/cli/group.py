"""The ``landreg`` command group: the commands of other modules built when named, plain values read without pydantic.

typer builds every command of an application before it runs one, and so imports every module that
defines one. ``LazyGroup`` lists the commands of other modules by name only (``elsewhere``) and
imports a module when one of its commands is named, or when all are listed (--help, shell
completion); it builds them exactly as ``add_typer`` and ``command`` would have. An auditor's
`landreg verify` then compiles and builds none of the operators' commands (issue 24: it starts within
10x a bare Python). The group also gives the parameters of the command that runs ``PlainValues``
(``registry_service.cli.plain_values``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any, ClassVar

import typer
from typer.core import TyperGroup

from registry_service.cli.plain_values import use_plain_values


class LazyGroup(TyperGroup):
    #: a command defined in another module: its name -> ("module:attribute", the command --help lists it
    #: after, or None to list it first); the attribute is a ``typer.Typer`` (a group, as ``add_typer``
    #: mounts it) or a function (a command, as ``command(name)`` registers it)
    elsewhere: ClassVar[dict[str, tuple[str, str | None]]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands = LazyCommands(dict(self.commands), self.elsewhere, _build)

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        use_plain_values(self.get_params(ctx))  # with the help option, made on first use
        return super().parse_args(ctx, args)

    def resolve_command(self, ctx: Any, args: list[str]) -> tuple[str | None, Any, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        if command is not None:
            _use_plain_values_in(command, name, ctx)
        return name, command, rest


class LazyCommands(MutableMapping[str, Any]):
    """A group's commands by name, in the order --help lists them; one defined elsewhere is built on
    the first lookup of its name (iterating names or testing one builds nothing)."""

    def __init__(
        self, built: dict[str, Any], elsewhere: dict[str, tuple[str, str | None]], build: Callable[[str, str], Any]
    ) -> None:
        self._order = list(built)
        for name, (_, after) in elsewhere.items():
            if name in self._order:
                raise ValueError(f"the command {name!r} is registered twice, here and elsewhere")
            self._order.insert(self._order.index(after) + 1 if after else 0, name)
        self._built = built
        self._where = {name: where for name, (where, _) in elsewhere.items()}
        self._build = build

    def __getitem__(self, name: str) -> Any:
        if name not in self._built:
            self._built[name] = self._build(name, self._where[name])  # KeyError: no such command
            del self._where[name]
        return self._built[name]

    def __setitem__(self, name: str, command: Any) -> None:
        if name not in self:
            self._order.append(name)
        self._where.pop(name, None)
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        if name not in self:
            raise KeyError(name)
        self._order.remove(name)
        self._where.pop(name, None)
        self._built.pop(name, None)

    def __contains__(self, name: object) -> bool:
        return name in self._built or name in self._where

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._order))

    def __len__(self) -> int:
        return len(self._order)


def _build(name: str, where: str) -> Any:
    module, _, attribute = where.partition(":")
    found = getattr(importlib.import_module(module), attribute)
    if isinstance(found, typer.Typer):
        group = typer.main.get_group(found)
        group.name = name
        return group
    single = typer.Typer(add_completion=False)
    single.command(name)(found)
    return typer.main.get_command(single)


def _use_plain_values_in(command: Any, name: str | None, parent: Any) -> None:
    """Plain values for ``command``'s parameters and its subcommands', help options included: each
    is made with a context like the one the command will parse in (its help option's names are the
    context's)."""
    ctx = command.context_class(command, info_name=name, parent=parent, **command.context_settings)
    use_plain_values(command.get_params(ctx))
    for sub_name, sub in getattr(command, "commands", {}).items():
        _use_plain_values_in(sub, sub_name, ctx)
