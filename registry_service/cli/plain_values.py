"""Command-line values converted as typer converts them, without loading pydantic for the plain ones.

typer (0.2x) converts every parameter's value through a pydantic ``TypeAdapter`` that it builds when
the command runs, even for an option that was not given; importing pydantic for that was about a
third of an auditor's offline `landreg verify` (issue 24: a command starts within 10x a bare
Python). Most values need none of it: an absent option, a flag, a string, a path that names no
unreadable file, a whole number within its bounds. ``PlainValues`` converts those exactly as
typer's adapters do and hands every other value (and every type it does not know: choices, dates,
files, parsers, tuples) to typer's own conversion, so what is accepted, what is refused and the
words of a refusal stay typer's. ``tests/test_cli_parsing.py`` holds the two to the same results
for every parameter of every command.

A typer without this conversion (before 0.2x: click's types, no pydantic) has no ``type_descriptor``
on its parameters, and ``use_plain_values`` leaves them as they are.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, get_args, get_origin

#: a whole number typer's adapter reads the same way as ``int()``: no sign, space, underscore,
#: leading zero or non-ASCII digit (those are typer's to read or refuse)
_WHOLE = re.compile(r"0|[1-9][0-9]{0,17}")


class _Typers:
    """The answer "typer's own conversion must say": the value is not a plain one."""


TYPERS = _Typers()


def use_plain_values(params: Iterable[Any]) -> None:
    """Convert the plain values of ``params`` here (typer's parameters whose conversion is not built yet)."""
    for param in params:
        if hasattr(param, "type_descriptor") and param._runtime_param is None:  # noqa: SLF001 - typer's slot for it
            param._runtime_param = PlainValues()  # noqa: SLF001 - typer builds its own there when empty


class PlainValues:
    """A parameter's conversion: a plain value here, any other by typer's own, built when first needed."""

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        converted = plain_value(param, value)
        if converted is not TYPERS:
            return converted
        param._runtime_param = None  # noqa: SLF001 - typer builds and keeps its own conversion from here on
        return param.get_runtime_param().coerce(value, param=param, ctx=ctx)


def plain_value(param: Any, value: Any) -> Any:
    """``value`` converted for ``param`` as typer would, or ``TYPERS`` when only typer can say."""
    descriptor = param.type_descriptor
    info = descriptor.parameter_info
    many = param.multiple or param.nargs == -1
    if value is None:
        return () if many else None
    if info.parser is not None or descriptor.file_annotation is not None:
        return TYPERS
    if not many:
        return _one(descriptor.annotation, info, value)
    if get_origin(descriptor.annotation) is not list or not isinstance(value, list | tuple):
        return TYPERS
    [kind] = get_args(descriptor.annotation)
    items = [_one(kind, info, item) for item in value]
    return TYPERS if any(item is TYPERS for item in items) else items


def _one(kind: Any, info: Any, value: Any) -> Any:
    if kind is bool:
        return value if type(value) is bool else TYPERS
    if kind is str:
        return value if type(value) is str and _unicode(value) else TYPERS
    if kind is int:
        return _whole(info, value)
    if kind is Path and _plain_path(info) and type(value) is str and _unicode(value):
        return Path(value) if _absent_or_readable(value) else TYPERS
    return TYPERS


def _whole(info: Any, value: Any) -> Any:
    if info.clamp:
        return TYPERS
    if type(value) is int:
        number = value
    elif type(value) is str and _WHOLE.fullmatch(value):
        number = int(value)
    else:
        return TYPERS
    if (info.min is not None and number < info.min) or (info.max is not None and number > info.max):
        return TYPERS  # typer words the refusal
    return number


def _unicode(text: str) -> bool:
    """Whether ``text`` is valid Unicode (an argument of undecodable bytes holds lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _plain_path(info: Any) -> bool:
    """A path option with none of typer's checks but its default one (an existing path must be readable)."""
    return (not info.exists and info.file_okay and info.dir_okay and info.readable and not info.writable
            and not info.resolve_path and not info.allow_dash and info.path_type is None)  # fmt: skip


def _absent_or_readable(path: str) -> bool:
    try:
        os.stat(path)
    except OSError:
        return True  # typer lets a path that does not exist through; the command says what is wrong
    except ValueError:
        return False  # not a path the system takes: typer's to refuse
    return os.access(path, os.R_OK)
