"""One legacy document's rows, as a layout reads them, into landreg's instrument model.

``map_document`` takes the rows of one document (its master row, its parties, parcels and
references) and gives the ``SourceRecord`` the importer validates: the instrument, or the reason it
could not be read, naming the table, the document and the column. It is pure: the rows come in,
the instrument goes out, and the same rows always give the same instrument (its document digest,
where the recorder keeps no image digest, binds the rows themselves).

The rows' *fingerprint* (SHA-256 of the values the layout reads, in a canonical form) tells a
changed document from an unchanged one; values the layout does not read (publication dates,
addresses) never change it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from hybrid_store.core.canonical import canonical_json
from hybrid_store.plain_numbers import is_amount, not_an_amount
from migration_tools.legacy.cleaning import clean, person_name
from migration_tools.legacy.importer import SourceRecord
from migration_tools.legacy.layout import TEMPLATE_FIELD, Column, Layout

Row = Mapping[str, Any]
OPTIONAL_SEGMENT = re.compile(r"\[([^\[\]]*)\]")


@dataclass(frozen=True)
class LegacyRows:
    """One document's rows as read: ``document`` is None for rows whose document is missing."""

    key: str
    document: Row | None
    parties: Sequence[Row] = ()
    parcels: Sequence[Row] = ()
    references: Sequence[Row] = ()
    duplicates: int = 0  # further master rows with the same key
    fingerprint: bytes = field(default=b"", compare=False)
    #: the key as stored where it is not already the normalised key (" 123", "abc"): reading the
    #: document again by key looks these up too, so the lookup can use the tables' key indexes
    raw_keys: tuple[str, ...] = ()


KEY_COLUMNS = ("lr_key", "lr_raw")  # what the reader adds to each row (not the recorder's columns)


class Unreadable(ValueError):
    def __init__(self, column: str, message: str):
        super().__init__(message)
        self.column = column


def text(value: Any) -> str:
    """A database value as text, the same whichever database or driver returned it."""
    if value is None:
        return ""
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):  # digits: nothing to clean
        return str(value)
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value == value.to_integral() else format(value, "f").rstrip("0")
    if isinstance(value, float):
        return text(Decimal(repr(value)))
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return clean(bytes(value).decode("utf-8", errors="replace"))
    return clean(str(value))


def exact(value: Any) -> str | None:
    """A database value as text, exactly (whitespace and case kept): what the fingerprint sees."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if type(value) is int:  # the common non-text column (sequence numbers): text() would test five types first
        return str(value)
    return text(value)


def fingerprint(layout: Layout, rows: LegacyRows) -> bytes:
    """SHA-256 of what the layout reads of ``rows``, exactly as stored, in a fixed order: any edit to
    a column the layout reads changes it (whether it changes the record is the mapping's call)."""

    columns = layout.read_columns  # per part, computed once per layout

    def read(part: str, row: Row) -> list[str | None]:
        get = row.get  # (a sync and a three-way check read every column of every row through here)
        return [v if (v := get(c)) is None or type(v) is str else exact(v) for c in columns[part]]

    body = {
        "document": read("documents", rows.document) if rows.document is not None else None,
        "parties": _ordered([read("parties", r) for r in rows.parties]),
        "parcels": _ordered([read("parcels", r) for r in rows.parcels]),
        "references": _ordered([read("references", r) for r in rows.references]) if layout.references else [],
    }
    return hashlib.sha256(canonical_json(body)).digest()


def _ordered(rows: list[list[str | None]]) -> list[list[str | None]]:
    return rows if len(rows) < 2 else sorted(rows, key=_sort_key)


def _sort_key(values: list[str | None]) -> list[tuple[bool, str]]:
    return [(v is None, v or "") for v in values]


def value(spec: Column, row: Row) -> str:
    """The column's text (or its fallback's, or the default) after blank values are set aside."""
    if spec.template is not None:
        return render(spec.template, row)
    for column in (spec.column, spec.fallback):
        if column is None:
            continue
        found = text(row.get(column))
        if found.upper() not in {b.upper() for b in spec.blank}:
            return found.upper() if spec.upper else found
    return spec.default or ""


def render(template: str, row: Row) -> str:
    """``Block {block}, Lot {lot}[, Unit {unit}]``: a ``[...]`` part is left out when every column
    it names is blank; whitespace is collapsed."""

    def optional(m: re.Match[str]) -> str:
        names = TEMPLATE_FIELD.findall(m.group(1))
        return m.group(1) if any(text(row.get(n)) for n in names) else ""

    filled = TEMPLATE_FIELD.sub(lambda m: text(row.get(m.group(1))), OPTIONAL_SEGMENT.sub(optional, template))
    return " ".join(filled.split())


def recording_time(spec: Column, row: Row) -> datetime:
    zone = ZoneInfo(spec.timezone)
    raw = row.get(spec.column or "")
    hour, minute = (int(p) for p in spec.date_only_at.split(":"))
    if isinstance(raw, datetime):
        return raw if raw.tzinfo else raw.replace(tzinfo=zone)
    if isinstance(raw, date):
        return datetime.combine(raw, time(hour, minute), zone)
    shown = text(raw)
    if not shown:
        raise Unreadable(spec.column or "", "the recording date is empty")
    if shown.isascii():  # strptime's \d also reads other scripts' digits
        for fmt in spec.formats:
            try:
                moment = datetime.strptime(shown, fmt)
            except ValueError:
                continue
            if not any(d in fmt for d in ("%H", "%I")):
                moment = datetime.combine(moment.date(), time(hour, minute))
            return moment.replace(tzinfo=zone)
    raise Unreadable(
        spec.column or "", f"{shown!r} is not a date in a form the layout names ({', '.join(spec.formats)})"
    )


def amount(spec: Column, row: Row) -> str | None:
    shown = value(spec, row).replace("$", "").replace(",", "")
    if not shown:
        return None
    if not is_amount(shown):
        raise Unreadable(spec.column or "", not_an_amount(shown))
    if spec.zero_is_none and Decimal(shown) == 0:
        return None
    return shown


def doc_type(layout: Layout, row: Row) -> str:
    spec = layout.documents.fields["doc_type"]
    code = " ".join(value(spec, row).upper().split())
    types = layout.doc_types
    if code in types.by_code:
        return types.by_code[code].value
    if types.code_table is not None and code in types.code_table.rows:
        klass = types.code_table.rows[code]
        if klass in types.by_class:
            return types.by_class[klass].value
        raise Unreadable(
            spec.column or "", f"document type {code!r} (class {klass!r}) has no landreg type in the layout"
        )
    raise Unreadable(spec.column or "", f"unknown document type {code!r}")


def parties(layout: Layout, rows: LegacyRows) -> tuple[list[str], list[str]]:
    spec = layout.parties
    sides: dict[str, list[tuple[list[tuple[int, Any]], str]]] = {"grantor": [], "grantee": []}
    for row in rows.parties:
        code = text(row.get(spec.role.column)).upper()
        side = spec.role.map.get(code)
        if side is None:
            raise Unreadable(spec.role.column, f"unknown party role {code!r} in {spec.table}")
        if side == "ignore":
            continue
        raw_name = text(row.get(spec.name.column))
        if not raw_name:
            raise Unreadable(spec.name.column, f"a {side}'s name is blank in {spec.table}")
        name = person_name(raw_name) if spec.name.order == "last-comma-first" else raw_name
        order = [_sortable(row.get(c)) for c in spec.order_by]
        sides[side].append((order, name))
    grantors = [n for _, n in sorted(sides["grantor"], key=lambda p: (p[0], p[1]))]
    grantees = [n for _, n in sorted(sides["grantee"], key=lambda p: (p[0], p[1]))]
    return grantors, grantees


def _sortable(raw: Any) -> tuple[int, Any]:
    shown = text(raw)
    return (0, int(shown)) if shown.isascii() and shown.isdigit() else (1, shown)


def parcels(layout: Layout, rows: LegacyRows) -> tuple[list[dict[str, str]], list[str]]:
    """The document's parcels (each once, in the layout's order) and their description lines."""
    spec = layout.parcels
    seen: dict[tuple[str, ...], tuple[dict[str, str], str]] = {}
    ordered = sorted(rows.parcels, key=lambda r: ([_sortable(r.get(c)) for c in spec.order_by], render(
        spec.describe or "", r)))  # fmt: skip
    for row in ordered:
        fields = {}
        for name, column in spec.fields.items():
            shown = value(column, row)
            if column.pad and shown.isascii() and shown.isdigit():
                shown = shown.zfill(column.pad)
            fields[name] = shown
        identity = tuple(fields.values())
        line = render(spec.describe, row) if spec.describe else ""
        if identity not in seen:  # a lot listed twice (entire and partial) is one parcel
            seen[identity] = (fields, line)
    return [f for f, _ in seen.values()], [line for _, line in seen.values() if line]


def citations(layout: Layout, rows: LegacyRows) -> list[str]:
    spec = layout.references
    if spec is None or not spec.cites:
        return []
    out = []
    for row in rows.references:
        for cite in spec.cites:
            if any(text(row.get(n)) for n in TEMPLATE_FIELD.findall(cite)):
                out.append(render(cite, row))
                break
    return sorted(set(out))


def correction_target(layout: Layout, rows: LegacyRows) -> str | None:
    """The key of the document this one corrects, if a reference says so."""
    spec = layout.references.corrects if layout.references else None
    if spec is None:
        return None
    kinds = {v.upper() for v in spec.values}
    targets = sorted({text(r.get(spec.target)).upper() for r in rows.references
                      if text(r.get(spec.kind)).upper() in kinds and text(r.get(spec.target))})  # fmt: skip
    if len(targets) > 1:
        raise Unreadable(spec.target, f"corrects {len(targets)} documents ({', '.join(targets)}); one is allowed")
    return targets[0] if targets else None


def instrument_number(layout: Layout, row: Row) -> str:
    return value(layout.documents.fields["instrument_number"], row)


def map_document(layout: Layout, rows: LegacyRows, numbers: Mapping[str, str] | None = None) -> SourceRecord:
    """The ``SourceRecord`` of one legacy document (``numbers``: the instrument numbers of the
    documents corrections refer to, by key)."""
    docs = layout.documents
    where = f"{docs.table} {rows.key}"
    raw = ""

    def raw_of() -> str:  # made only for a document the load quarantines
        return canonical_json({"key": rows.key, "document": {k: text(v) for k, v in (rows.document or {}).items()
                                                             if k not in KEY_COLUMNS},
                               "parties": len(rows.parties), "parcels": len(rows.parcels)}).decode()  # fmt: skip

    problem = _missing(layout, rows)
    if problem is not None:
        return SourceRecord(
            where,
            raw,
            raw_of=raw_of,
            column=problem[0],
            problem=problem[1],
            key=rows.key,
            fingerprint=rows.fingerprint,
            raw_keys=rows.raw_keys,
        )
    assert rows.document is not None
    try:
        data = _instrument(layout, rows, rows.document, numbers or {})
    except Unreadable as exc:
        return SourceRecord(
            where,
            raw,
            raw_of=raw_of,
            column=exc.column,
            problem=str(exc),
            key=rows.key,
            fingerprint=rows.fingerprint,
            raw_keys=rows.raw_keys,
        )
    return SourceRecord(
        where, raw, data=data, key=rows.key, fingerprint=rows.fingerprint, raw_of=raw_of, raw_keys=rows.raw_keys
    )


def _missing(layout: Layout, rows: LegacyRows) -> tuple[str, str] | None:
    docs = layout.documents
    if rows.document is None:
        parts = [(layout.parties.table, rows.parties), (layout.parcels.table, rows.parcels)]
        if layout.references is not None:
            parts.append((layout.references.table, rows.references))
        found = ", ".join(f"{len(r)} in {t}" for t, r in parts if r)
        return docs.key, f"rows of document {rows.key!r} ({found}) but no such document in {docs.table}"
    if rows.duplicates:
        return docs.key, f"document {rows.key!r} appears {rows.duplicates + 1} times in {docs.table}"
    return None


def _instrument(layout: Layout, rows: LegacyRows, doc: Row, numbers: Mapping[str, str]) -> dict[str, Any]:
    f = layout.documents.fields
    grantors, grantees = parties(layout, rows)
    parcel_fields, parcel_lines = parcels(layout, rows)
    target = correction_target(layout, rows)
    corrects = None
    if target is not None:
        corrects = numbers.get(target)
        if corrects is None:
            column = layout.references.corrects.target if layout.references and layout.references.corrects else ""
            raise Unreadable(column, f"corrects document {target!r}, which is not in {layout.documents.table}")
    legal = []
    for part in layout.legal_description.compose:
        if part == "column" and layout.legal_description.column:
            legal.append(str(doc.get(layout.legal_description.column) or ""))  # multi-line: kept as written
        elif part == "parcels":
            legal += parcel_lines
        elif part == "references" and (cites := citations(layout, rows)):
            legal.append(f"{layout.legal_description.references_label}: {'; '.join(cites)}")
    digest_spec = f["document_digest"]
    digest = rows.fingerprint.hex() if digest_spec.source_rows else value(digest_spec, doc).lower()
    consideration = amount(f["consideration"], doc) if "consideration" in f else None
    return {
        "instrument_number": instrument_number(layout, doc),
        "book": value(f["book"], doc).lstrip("0") or "0",
        "page": value(f["page"], doc).lstrip("0") or "0",
        "recorded_at": recording_time(f["recorded_at"], doc),
        "doc_type": doc_type(layout, doc),
        "grantors": grantors,
        "grantees": grantees,
        "parcels": parcel_fields,
        "consideration": consideration,
        "legal_description": "\n".join(line for line in legal if line),
        "document_digest": digest,
        "corrects": corrects,
    }
