"""Legacy database layouts: which tables and columns of a county's recorder database hold each
field of landreg's instrument model, and how their values are converted. Layouts are data (TOML
files, format ``landreg-legacy-layout/v1``, documented in docs/legacy-formats.md), not code: a
county whose tables are named differently writes a layout file and attaches with it.

Shipped layouts: ``landreg-export`` (the multi-table export of docs/legacy-formats.md, as database
tables) and ``acris`` (New York City's ACRIS real-property tables as the city publishes them).
A layout is loaded once, checked completely (every problem named with its place in the file),
and its code tables read, so what is stored at attach time is self-contained.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import tomllib
from collections.abc import Mapping
from functools import cached_property
from importlib.resources import files
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hybrid_store import strict_json
from hybrid_store.core.records import DocType
from hybrid_store.errors import LandregError
from hybrid_store.plain_errors import plain_message

FORMAT = "landreg-legacy-layout/v1"
MAX_LAYOUT_BYTES = 256_000  # a layout is a few KB (the shipped ones under 4)
MAX_CODE_TABLE_BYTES = 1_000_000  # ACRIS's document control codes are 7 KB
SHIPPED = ("landreg-export", "acris")
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,62}(\.[A-Za-z_][A-Za-z0-9_$]{0,62})?")  # [schema.]name
TEMPLATE_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_$]*)\}")
ROLES = ("grantor", "grantee", "ignore")


class LayoutError(LandregError, ValueError):
    """A layout file that cannot be used, with every problem and where it is."""

    hint = "see docs/legacy-formats.md, 'Database layouts', for the layout format"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _identifier(value: str) -> str:
    if not IDENTIFIER.fullmatch(value):
        raise ValueError(f"{value!r} is not a table or column name (letters, digits, _; schema.table allowed)")
    return value


class Column(_Strict):
    """Where a value comes from and how it is read."""

    column: str | None = None
    fallback: str | None = None  # another column, used when this one is blank
    blank: tuple[str, ...] = ("",)  # values that count as blank (after whitespace is cleaned)
    default: str | None = None  # the value when blank
    formats: tuple[str, ...] = ()  # dates: strptime formats, tried in order
    timezone: str = "America/New_York"  # dates without a zone are local time here
    date_only_at: str = "12:00"  # the time of day of a date without one
    zero_is_none: bool = False  # amounts: 0 means "no amount"
    pad: int | None = Field(default=None, ge=1, le=12)  # digits zero-padded to this width
    upper: bool = False
    source_rows: bool = False  # document_digest: SHA-256 of the document's rows as read
    template: str | None = None  # a value written from other columns of the same row

    _check_column = field_validator("column", "fallback")(lambda v: v if v is None else _identifier(v))

    def columns(self) -> list[str]:
        out = [c for c in (self.column, self.fallback) if c]
        if self.template:
            out += TEMPLATE_FIELD.findall(self.template)
        return out


def _column(value: Any) -> Any:
    return {"column": value} if isinstance(value, str) else value


class Table(_Strict):
    table: str
    key: str  # the column naming the document every row belongs to
    filter: dict[str, str] = {}  # equality filters (``record_type = 'A'``), values as text

    _check_names = field_validator("table", "key")(lambda v: _identifier(v))

    @field_validator("filter")
    @classmethod
    def _filter_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            _identifier(name)
        return value


class Documents(Table):
    fields: dict[str, Column]
    modified: str | None = None  # the row's last-modified column, where the recorder keeps one

    REQUIRED: ClassVar[tuple[str, ...]] = ("instrument_number", "doc_type", "recorded_at", "book", "page",
                                           "document_digest")  # fmt: skip
    OPTIONAL: ClassVar[tuple[str, ...]] = ("consideration",)

    _as_column = field_validator("fields", mode="before")(
        lambda v: {k: _column(c) for k, c in v.items()} if isinstance(v, dict) else v
    )

    @field_validator("fields")
    @classmethod
    def _known_fields(cls, value: dict[str, Column]) -> dict[str, Column]:
        unknown = sorted(set(value) - set(cls.REQUIRED) - set(cls.OPTIONAL))
        missing = sorted(set(cls.REQUIRED) - set(value))
        if unknown:
            raise ValueError(f"not a document field: {', '.join(unknown)}")
        if missing:
            raise ValueError(f"missing: {', '.join(missing)}")
        return value


class Role(_Strict):
    column: str
    map: dict[str, Literal["grantor", "grantee", "ignore"]]  # the recorder's code -> its side

    @field_validator("map")
    @classmethod
    def _upper(cls, value: dict[str, str]) -> dict[str, str]:
        return {k.strip().upper(): v for k, v in value.items()}


class Name(_Strict):
    column: str
    #: ``last-comma-first``: ``TAYLOR, EMILY`` becomes ``EMILY TAYLOR`` (firm names and names
    #: without a comma are kept); ``as-written`` keeps every name as the recorder keyed it
    order: Literal["last-comma-first", "as-written"] = "last-comma-first"


class Parties(Table):
    role: Role
    name: Name
    order_by: tuple[str, ...] = ()  # the order of each side's names (e.g. a sequence column); else by name


class Parcels(Table):
    fields: dict[str, Column]  # the jurisdiction profile's parcel fields
    describe: str | None = None  # each parcel's line in a composed legal description
    order_by: tuple[str, ...] = ()

    _as_column = field_validator("fields", mode="before")(
        lambda v: {k: _column(c) for k, c in v.items()} if isinstance(v, dict) else v
    )


class Corrects(_Strict):
    """References of these kinds make the document a correction of the one referenced."""

    kind: str  # the column holding the reference's kind
    values: tuple[str, ...]  # kinds that mean "corrects"
    target: str  # the column holding the referenced document's key


class References(Table):
    #: how a reference is written into the legal description: the first template whose columns are
    #: not all blank (``CRFN {reference_by_crfn}``); none: references are not written there
    cites: tuple[str, ...] = ()
    corrects: Corrects | None = None


class Legal(_Strict):
    """The committed legal description: a column of the document, and/or composed lines."""

    column: str | None = None
    compose: tuple[Literal["column", "parcels", "references"], ...] = ("column",)
    references_label: str = "References"


class CodeTable(_Strict):
    """The recorder's own code table: each document type code with its class."""

    file: str | None = None  # CSV beside the layout file (shipped layouts) ...
    table: str | None = None  # ... or a table of the legacy database
    code: str
    classes: str = Field(alias="class")
    rows: dict[str, str] = {}  # code -> class, filled in when the layout is loaded

    @model_validator(mode="after")
    def _one_source(self) -> CodeTable:
        if (self.file is None) == (self.table is None) and not self.rows:
            raise ValueError("give either file or table")
        return self


class DocTypes(_Strict):
    by_code: dict[str, DocType] = {}  # the recorder's code -> landreg type
    by_class: dict[str, DocType] = {}  # through the code table: the code's class -> landreg type
    code_table: CodeTable | None = None

    @field_validator("by_code", "by_class", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return {" ".join(str(k).upper().split()): v for k, v in value.items()} if isinstance(value, dict) else value


class Layout(_Strict):
    format: Literal["landreg-legacy-layout/v1"]
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")
    title: str
    jurisdiction: str
    documents: Documents
    parties: Parties
    parcels: Parcels
    references: References | None = None
    legal_description: Legal = Legal()
    doc_types: DocTypes

    def tables(self) -> dict[str, Table]:
        out: dict[str, Table] = {"documents": self.documents, "parties": self.parties, "parcels": self.parcels}
        if self.references is not None:
            out["references"] = self.references
        return out

    @cached_property
    def read_columns(self) -> dict[str, list[str]]:
        """``columns`` of every part (a mapping of a whole book asks for them per row)."""
        return {part: self.columns(part) for part in self.tables()}

    def columns(self, part: str) -> list[str]:
        """Every column the layout reads of ``part``'s table (its key first), without repeats."""
        spec = self.tables()[part]
        cols: list[str] = [spec.key]
        if isinstance(spec, Documents):
            for c in spec.fields.values():
                cols += c.columns()
            if self.legal_description.column:
                cols.append(self.legal_description.column)
        elif isinstance(spec, Parties):
            cols += [spec.role.column, spec.name.column, *spec.order_by]
        elif isinstance(spec, Parcels):
            for c in spec.fields.values():
                cols += c.columns()
            cols += TEMPLATE_FIELD.findall(spec.describe or "") + list(spec.order_by)
        elif isinstance(spec, References):
            for cite in spec.cites:
                cols += TEMPLATE_FIELD.findall(cite)
            if spec.corrects:
                cols += [spec.corrects.kind, spec.corrects.target]
        return list(dict.fromkeys(cols))

    def digest(self) -> str:
        return hashlib.sha256(self.model_dump_json(by_alias=True).encode()).hexdigest()


def load_layout(ref: str | Path) -> tuple[Layout, str]:
    """A layout by shipped name or by file path, checked, its code table read: ``(layout, text)``
    where ``text`` is the JSON that attach stores (self-contained: code tables included)."""
    if isinstance(ref, str) and ref in SHIPPED:
        base = files("migration_tools.legacy").joinpath("layouts")
        text = base.joinpath(f"{ref}.toml").read_text(encoding="utf-8")
        where = f"the shipped layout {ref!r}"

        def read_beside(name: str) -> str:
            return base.joinpath(name).read_text(encoding="utf-8")
    else:
        path = Path(ref)
        if not path.is_file():
            raise LayoutError(f"no layout {str(ref)!r}: name one of {', '.join(SHIPPED)} or give a layout file")
        where = str(path)
        text = _read_text(path, where, MAX_LAYOUT_BYTES)

        def read_beside(name: str) -> str:
            return _read_text(beside(path, name), f"{where}: the code table {name!r}", MAX_CODE_TABLE_BYTES)

    try:  # bounded before tomllib, which recurses once per level and slows with long dotted keys
        strict_json.check_toml_bounds(text)
        raw = tomllib.loads(text)
    except strict_json.InvalidJSON as exc:
        raise LayoutError(f"{where} is not a layout: it {exc} (a layout is a few levels deep)") from None
    except (tomllib.TOMLDecodeError, RecursionError) as exc:
        raise LayoutError(f"{where} is not valid TOML: {exc}") from None
    layout = parse_layout(raw, where)
    table = layout.doc_types.code_table
    if table is not None and table.file is not None:
        try:
            rows = read_code_file(read_beside(table.file), table.code, table.classes)
        except (OSError, KeyError) as exc:
            raise LayoutError(f"{where}: cannot read the code table {table.file!r}: {exc}") from None
        layout = layout.model_copy(update={"doc_types": layout.doc_types.model_copy(
            update={"code_table": table.model_copy(update={"rows": rows, "file": None})})})  # fmt: skip
    return layout, layout.model_dump_json(by_alias=True)


def rename_tables(layout: Layout, names: Mapping[str, str]) -> Layout:
    """The layout reading its tables under other names (``{layout's name: the database's}``), as
    ``legacy attach --table`` gives them: a database loaded by another tool names the same tables
    its own way (ACRIS' open-source loaders: ``real_property_master``, ...), and copying a whole
    layout to change four names would be a fork to maintain."""
    known = {spec.table for spec in layout.tables().values()}
    code_table = layout.doc_types.code_table
    if code_table is not None and code_table.table is not None:
        known.add(code_table.table)
    unknown = sorted(set(names) - known)
    if unknown:
        raise LayoutError(f"the layout {layout.name!r} reads no table {', '.join(unknown)}: it reads "
                          f"{', '.join(sorted(known))}")  # fmt: skip
    for new in names.values():
        try:
            _identifier(new)
        except ValueError as exc:
            raise LayoutError(str(exc)) from None
    update: dict[str, Any] = {
        part: spec.model_copy(update={"table": names[spec.table]})
        for part, spec in layout.tables().items()
        if spec.table in names
    }
    if code_table is not None and code_table.table is not None and code_table.table in names:
        update["doc_types"] = layout.doc_types.model_copy(
            update={"code_table": code_table.model_copy(update={"table": names[code_table.table]})}
        )
    return layout.model_copy(update=update)


def _read_text(path: Path, where: str, max_bytes: int) -> str:
    try:
        return strict_json.read_file(path, max_bytes=max_bytes).decode("utf-8")
    except strict_json.InvalidJSON as exc:
        raise LayoutError(f"{where} is {exc}: a layout and its code table are a few KB") from None
    except UnicodeDecodeError as exc:
        raise LayoutError(f"{where} is not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise LayoutError(f"cannot read {where}: {exc.strerror}") from None


def beside(layout_file: Path, name: str) -> Path:
    """The file ``name`` a layout names, which must be in the layout's own folder (or below it):
    a layout is data someone hands over, and what it names is copied into landreg's database."""
    folder = layout_file.parent.resolve()
    target = (folder / name).resolve()  # symlinks followed: one pointing out of the folder is out
    if Path(name).is_absolute() or ".." in Path(name).parts or not target.is_relative_to(folder):
        raise LayoutError(f"{layout_file}: the code table file {name!r} is outside the layout's folder: "
                          "put the file beside the layout and name it by its file name")  # fmt: skip
    return target


def parse_layout(raw: Any, where: str = "the layout") -> Layout:
    try:
        layout = Layout.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {plain_message(e)}"
                             for e in exc.errors(include_url=False))  # fmt: skip
        raise LayoutError(f"{where} is not a usable layout: {problems}") from None
    return layout


def stored_layout(text: str) -> Layout:
    """The layout as attach stored it (JSON, code tables included)."""
    return Layout.model_validate_json(text)


def read_code_file(text: str, code: str, klass: str) -> dict[str, str]:
    """code -> class from a code table in CSV (the city's own file, headers as published)."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    return {" ".join(row[code].upper().split()): " ".join(row[klass].upper().split()) for row in reader if row[code]}
