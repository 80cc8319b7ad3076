"""docs/settings.md's table of every setting, made from the settings object itself: each field's
environment variable, default and the ``#:`` comment above it in ``hybrid_store/settings.py``.

    python -m registry_service.cli.settings_table --write    # rewrite the table in docs/settings.md
    python -m registry_service.cli.settings_table --check    # exit 1 when it is stale (tests do this)
"""

from __future__ import annotations

import ast
import inspect
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr

from hybrid_store import settings as settings_module
from hybrid_store.settings import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "settings.md"
BEGIN, END = "<!-- settings_table:begin -->", "<!-- settings_table:end -->"
#: set by landreg for its own processes, or for a benchmark's baseline: never a user's to change
NOT_USERS = {"service.supervisor_status", "service.run_worker", "anchoring.title_state"}
#: defaults a validator or the code derives when the setting is left unset (the field's own default
#: is only "unset"); a test checks each still names a field
DERIVED = {
    "database_url": "SQLite file in `LANDREG_HOME`",
    "manifest_dir": "`LANDREG_HOME/manifests`",
    "chain.confirmations": "`1` local, `12` on `rpc`",
    "chain.poll_interval_s": "`0.05` local, `2.0` on `rpc`",
    "chain.registrar_key": "anvil's public dev key 0 for `anvil`",
    "chain.admin_address": "anvil's dev account 1 for `anvil`",
    "chain.pauser_address": "anvil's dev account 2 for `anvil`",
    "service.receipt_key_dir": "`LANDREG_HOME/keys/receipt`",
    "service.session_secret": "`LANDREG_HOME/keys/session.secret`",
    "service.public_base_url": "`http://{host}:{port}`",
}


def _comments() -> dict[tuple[str, str], str]:
    """(class name, field name) -> the ``#:`` comment block right above the field; or, for a field
    on the line right after a commented one (a keystore's password after the keystore), the name of
    the field whose comment covers it, as ``"=name"``."""
    source = inspect.getsource(settings_module)
    lines = source.splitlines()
    out: dict[tuple[str, str], str] = {}
    for node in ast.parse(source).body:
        if not isinstance(node, ast.ClassDef):
            continue
        lead: str | None = None
        end = 0
        for stmt in node.body:
            if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
                continue
            block: list[str] = []
            i = stmt.lineno - 2
            while i >= 0 and lines[i].strip().startswith("#:"):
                block.insert(0, lines[i].strip()[2:].strip())
                i -= 1
            if block:
                lead = stmt.target.id
                out[(node.name, lead)] = " ".join(block).replace("``", "`")
            elif lead is not None and stmt.lineno == end + 1:
                out[(node.name, stmt.target.id)] = "=" + lead
            else:
                lead = None
            end = stmt.end_lineno or stmt.lineno
    return out


def _default(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, SecretStr):
        return "(secret)"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, frozenset | set | list | tuple):
        return "`[" + ", ".join(f'"{v}"' for v in sorted(value)) + "]`"
    return f"`{value}`"


def dotted_names() -> list[str]:
    """Every setting's path (``chain.anvil_port``), users' or not."""

    def walk(model: type[BaseModel], path: list[str]) -> list[str]:
        out = []
        for name, info in model.model_fields.items():
            kind = info.annotation
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                out += walk(kind, [*path, name])
            else:
                out.append(".".join([*path, name]))
        return out

    return walk(Settings, [])


def rows() -> list[tuple[str, str, str]]:
    """(variable, default, meaning) of every setting a user may change, in the object's order."""
    notes = _comments()
    out = []

    def walk(model: type[BaseModel], instance: BaseModel, path: list[str]) -> None:
        for name, info in model.model_fields.items():
            value = getattr(instance, name)
            if isinstance(value, BaseModel):
                walk(type(value), value, [*path, name])
                continue
            dotted = ".".join([*path, name])
            if dotted in NOT_USERS:
                continue
            alias = info.validation_alias
            names = [a for a in getattr(alias, "choices", []) if isinstance(a, str) and a.isupper()]
            variable = " or ".join(f"`{a}`" for a in names) or "`LANDREG_" + "__".join([*path, name]).upper() + "`"
            default = info.default if not isinstance(info.default, BaseModel) else None
            meaning = notes.get((model.__name__, name), "").replace("|", "\\|")
            if meaning.startswith("="):
                meaning = "with `LANDREG_" + "__".join([*path, meaning[1:]]).upper() + "` above"
            out.append((variable, DERIVED.get(dotted) or _default(default), meaning))

    walk(Settings, Settings.model_construct(), [])
    return out


def table() -> str:
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    lines += [f"| {v} | {d} | {m} |" for v, d, m in rows()]
    return "\n".join(lines)


def render(doc: str) -> str:
    head, _, rest = doc.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{table()}\n{END}{tail}"


def main(argv: list[str]) -> int:
    current = DOC.read_text(encoding="utf-8")
    wanted = render(current)
    if "--write" in argv:
        DOC.write_text(wanted, encoding="utf-8")
        return 0
    if current != wanted:
        print(f"{DOC} is stale: run python -m registry_service.cli.settings_table --write", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(sys.argv[1:]))
