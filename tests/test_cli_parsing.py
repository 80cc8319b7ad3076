"""The command line's own parsing: plain values converted without pydantic, exactly as typer converts
them, and the operators' commands built only when named, exactly as typer builds them (issue 24: an
offline `landreg verify` starts within 10x a bare Python; docs/benchmarks.md has the figures)."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from registry_service.cli.group import LazyCommands
from registry_service.cli.main import Landreg, app
from registry_service.cli.plain_values import TYPERS, plain_value

REPO = Path(__file__).resolve().parents[1]


def commands(command: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """Every command of the tree under ``command`` (the lazily built ones included), with its path."""
    found = [(path, command)]
    for name, sub in getattr(command, "commands", {}).items():
        found += commands(sub, (*path, name))
    return found


def values(tmp_path: Path) -> tuple[list[Any], list[Any]]:
    """What a parameter may be handed: by the command line, an environment variable or a default."""
    readable = tmp_path / "bundle.json"
    readable.write_text("{}")
    paths = [str(readable), str(tmp_path), str(tmp_path / "missing.json")]
    single = [None, True, False, 0, 1, 7, 2**70, "", "x", "B.json", "MARÍA GARCÍA", "\udcff", "a\x00b", "0", "1",
              "3", "16", "17", "012", "-1", "+1", " 1", "1 ", "1_0", "1.0", "\u0663", "9" * 25, "-", *paths]  # fmt: skip
    many = [None, (), [], ["a", "b"], ("3", "x"), paths, "x", [1, "2"], ["\udcff"]]
    return single, many


def same(ours: Any, theirs: Any) -> bool:
    if isinstance(ours, list | tuple):
        return type(ours) is type(theirs) and len(ours) == len(theirs) and all(map(same, ours, theirs))
    return type(ours) is type(theirs) and ours == theirs


def test_plain_values_are_converted_as_typer_converts_them(tmp_path):
    """For every parameter of every command, a value taken without pydantic is the value typer's own
    conversion gives; anything else is left to typer (which then accepts or refuses it in its words)."""
    single, many = values(tmp_path)
    plain = 0
    for path, command in commands(typer.main.get_command(app)):
        ctx = command.context_class(command, info_name=(path or ("landreg",))[-1])
        for param in command.params:
            if not hasattr(param, "type_descriptor"):
                continue
            for value in many if param.multiple or param.nargs == -1 else single:
                ours = plain_value(param, value)
                if ours is TYPERS:
                    continue
                plain += 1
                theirs = param.get_runtime_param().coerce(value, param=param, ctx=ctx)  # typer's own, pydantic's
                assert same(ours, theirs), (path, param.name, value, ours, theirs)
    assert plain > 1000  # most of them: the check compared something


def test_an_offline_verify_s_values_are_plain_ones():
    verify = typer.main.get_command(app).commands["verify"]
    given = {"paths": ["B.json"], "trust": "T.json", "rpc": None, "as_json": False, "successor": None,
             "corrected_by": ["C.json", "D.json"], "confirmations": "12", "head": None, "report": None}  # fmt: skip
    converted = {p.name: plain_value(p, given[p.name]) for p in verify.params}
    assert converted == {"paths": [Path("B.json")], "trust": "T.json", "rpc": None, "as_json": False,
                         "successor": None, "corrected_by": [Path("C.json"), Path("D.json")], "confirmations": 12,
                         "head": None, "report": None}  # fmt: skip


@pytest.mark.parametrize(
    ("given", "said"),
    [("0", "Input should be greater than or equal to 1"), ("abc", "Input should be a valid integer")],
)
def test_a_value_refused_is_refused_by_typer_in_its_words(given, said):
    done = CliRunner().invoke(app, ["verify", "B.json", "--confirmations", given])
    assert done.exit_code == 2
    assert said in " ".join(done.output.replace("│", " ").split())


def test_a_value_typer_reads_its_own_way_is_still_read(tmp_path):
    """' 7' is not a plain whole number: typer's own conversion takes it, as it always did."""
    bundle = tmp_path / "b.json"
    bundle.write_text(json.dumps(json.loads((REPO / "tests/vectors/bundle-v2/valid-deed.json").read_text())["bundle"]))
    done = CliRunner().invoke(app, ["verify", str(bundle), "--confirmations", " 7", "--json"])
    assert done.exit_code == 3, done.output  # UNCHECKED: no trust root here, nothing refused
    assert json.loads(done.output)["status"] == "unchecked"


def eager_twin() -> typer.Typer:
    """The commands ``Landreg.elsewhere`` names, registered on a Typer the usual way (built at once)."""
    twin = typer.Typer(name="landreg", pretty_exceptions_enable=False)
    for name, (where, _) in Landreg.elsewhere.items():
        module, _, attribute = where.partition(":")
        found = getattr(importlib.import_module(module), attribute)
        if isinstance(found, typer.Typer):
            twin.add_typer(found, name=name)
        else:
            twin.command(name)(found)
    return twin


def test_a_command_built_when_named_is_the_one_typer_would_have_built():
    """Every command under ``Landreg.elsewhere`` helps (options, arguments, texts, subcommands) exactly
    as when its module's Typer is mounted with ``add_typer`` (or its function with ``command``)."""
    twin = typer.main.get_command(eager_twin())
    runner = CliRunner()
    checked = 0
    for path, _ in commands(twin):
        if not path:
            continue
        lazily, eagerly = runner.invoke(app, [*path, "--help"]), runner.invoke(eager_twin(), [*path, "--help"])
        assert (lazily.exit_code, lazily.output) == (eagerly.exit_code, eagerly.output), path
        checked += 1
    assert checked > 30


def test_help_lists_every_command_where_it_was_listed_before():
    group = typer.main.get_command(app)
    assert list(group.commands) == [
        "reconcile", "proof", "title", "verify", "worker", "serve", "demo", "chain", "db", "contracts", "keys",
        "receipt", "trust", "signing-keys", "legacy", "migrate", "fees",
    ]  # fmt: skip


def test_lazy_commands_build_a_command_once_and_only_when_named():
    built: list[str] = []

    def build(name: str, where: str) -> str:
        built.append(name)
        return f"{name} from {where}"

    table = LazyCommands(
        {"a": "A", "b": "B"}, {"first": ("m:first", None), "c": ("m:c", "a"), "d": ("m:d", "c")}, build
    )
    assert list(table) == ["first", "a", "c", "d", "b"] and len(table) == 5
    assert "c" in table and "zz" not in table and built == []
    assert table["c"] == "c from m:c" and table.get("c") == "c from m:c" and built == ["c"]
    assert table.get("zz") is None and built == ["c"]
    table["e"] = "E"
    del table["first"]
    assert list(table) == ["a", "c", "d", "b", "e"] and "first" not in table
    with pytest.raises(KeyError):
        del table["first"]
    assert dict(table.items()) == {"a": "A", "c": "c from m:c", "d": "d from m:d", "b": "B", "e": "E"}
    assert built == ["c", "d"]


def test_a_command_registered_twice_is_refused():
    with pytest.raises(ValueError, match="'a' is registered twice"):
        LazyCommands({"a": "A"}, {"a": ("m:a", None)}, lambda name, where: name)


def test_a_command_whose_module_fails_to_load_says_so_each_time():
    def build(name: str, where: str) -> str:
        raise ImportError(f"no module {where}")

    table = LazyCommands({}, {"x": ("gone:x", None)}, build)
    for _ in range(2):
        with pytest.raises(ImportError):
            table["x"]
    assert "x" in table
