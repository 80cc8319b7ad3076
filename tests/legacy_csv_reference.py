"""The CSV export's reader as it was before issue 25 (commit bc72f2f, main), kept verbatim below
this docstring as the reference the bounded-memory reader is checked against: it holds every
table in memory and joins them there, which is easy to read and hard to get wrong.
``tests/test_csv_bounded.py`` asserts that ``migration_tools.legacy.csv_export.read`` yields
exactly what this yields, record for record. Do not "fix" it: it is the behaviour being kept.
"""

from __future__ import annotations

import csv
import itertools
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime, time
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

from hybrid_store.plain_numbers import is_amount, is_digits, not_an_amount
from migration_tools.legacy.cleaning import clean, mailing_address, person_name
from migration_tools.legacy.importer import BoundedLines, RecordTooLong, SourceRecord

EASTERN = ZoneInfo("America/New_York")


@cache
def _vocabulary() -> tuple[dict[str, str], dict[str, str]]:
    """Document types and party roles by their usual names: the ``landreg-export`` layout's, so a
    file export and the same tables in a database read alike."""
    from migration_tools.legacy.layout import load_layout

    layout, _ = load_layout("landreg-export")
    return {k: v.value for k, v in layout.doc_types.by_code.items()}, dict(layout.parties.role.map)


FILES = ("documents.csv", "parties.csv", "parcels.csv", "xrefs.csv")
#: xrefs.csv kinds that are cross-references of the citing document (CORRECTS: its correction link)
REFERENCE_KINDS = {
    "CORRECTS": "corrects", "CORRECTION": "corrects", "ASSIGNS": "acts_on_mortgage", "SATISFIES": "acts_on_mortgage",
    "RELEASES": "acts_on_mortgage", "SUBORDINATES": "acts_on_mortgage", "DISCHARGES": "discharges_lien",
}  # fmt: skip


def _whole_number(text: str | None, default: int) -> int:
    text = clean(text)
    return int(text) if is_digits(text) else default


def _parse_time(text: str) -> datetime:
    text = clean(text)
    formats: tuple[str, ...] = (
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%m/%d/%Y %H:%M",
        "%Y-%m-%d",
        "%m/%d/%Y",
    )
    if not text.isascii():  # strptime's \d also reads '٢٠٢٤' as 2024
        formats = ()
    for fmt in formats:
        try:
            moment = datetime.strptime(text, fmt)
        except ValueError:
            continue
        if fmt in ("%Y-%m-%d", "%m/%d/%Y"):
            moment = datetime.combine(moment.date(), time(12, 0))
        return moment.replace(tzinfo=EASTERN)
    raise ValueError(f"{text!r} is not a date and time (YYYY-MM-DD[ HH:MM[:SS]] or MM/DD/YYYY)")


def _rows(folder: Path, name: str, too_long: list[SourceRecord]) -> Iterator[tuple[int, dict[str, str]]]:
    """The rows of ``name``; a record over ``MAX_RECORD_CHARS`` goes to ``too_long`` instead."""
    path = folder / name
    if not path.exists():
        return
    # utf-8-sig drops a byte-order mark. A byte that is not UTF-8 becomes U+FFFD instead of aborting the load:
    # validation rejects it in names and descriptions, and it matches no code, number, type or role
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as f:
        lines = BoundedLines(f, quoted=True)
        reader = csv.DictReader(lines)
        try:
            reader.fieldnames = [clean(h).lower() for h in reader.fieldnames or []]
        except RecordTooLong as exc:
            too_long.append(SourceRecord(f"{name} header", exc.shown, problem=f"its header is {exc}", column="(file)"))
            return
        for number in itertools.count(2):
            lines.new_record()
            try:
                row = next(reader)
            except StopIteration:
                return
            except RecordTooLong as exc:
                too_long.append(SourceRecord(f"{name} row {number}", exc.shown, problem=f"a record {exc}",
                                             column="(record)"))  # fmt: skip
                continue
            yield number, {k: (v if v is not None else "") for k, v in row.items() if k}


def read(folder: Path) -> Iterator[SourceRecord]:
    """Every document of the export as a ``SourceRecord``, parties and parcels joined in."""
    parties: dict[str, list[tuple[str, int, str]]] = defaultdict(list)
    addresses: dict[str, list[tuple[int, str]]] = defaultdict(list)  # grantees' addresses, by seq
    parcels: dict[str, list[tuple[int, dict[str, str]]]] = defaultdict(list)
    corrects: dict[str, str] = {}
    cites: dict[str, list[tuple[str, str]]] = defaultdict(list)
    orphans: list[SourceRecord] = []  # and records too long to read
    documents = list(_rows(folder, "documents.csv", orphans))
    known = {clean(row.get("doc_id")) for _, row in documents}
    for number, row in _rows(folder, "parties.csv", orphans):
        doc = clean(row.get("doc_id"))
        role = _vocabulary()[1].get(clean(row.get("role")).upper())
        if doc not in known:
            orphans.append(SourceRecord(f"parties.csv row {number}", str(row), column="doc_id",
                                        problem=f"party of unknown document {doc!r}"))  # fmt: skip
        elif role is None:
            orphans.append(SourceRecord(f"parties.csv row {number}", str(row), column="role",
                                        problem=f"unknown party role {row.get('role')!r} (GRANTOR or GRANTEE)"))  # fmt: skip
        else:
            seq = _whole_number(row.get("seq"), 0)
            parties[doc].append((role, seq, person_name(row.get("name", ""))))
            if role == "grantee" and (address := mailing_address(row.get("address"))):
                addresses[doc].append((seq, address))
    for number, row in _rows(folder, "parcels.csv", orphans):
        doc = clean(row.get("doc_id"))
        if doc not in known:
            orphans.append(SourceRecord(f"parcels.csv row {number}", str(row), column="doc_id",
                                        problem=f"parcel of unknown document {doc!r}"))  # fmt: skip
            continue
        seq = _whole_number(row.get("seq"), number)
        parcels[doc].append((seq, row))
    for _, row in _rows(folder, "xrefs.csv", orphans):
        kind = REFERENCE_KINDS.get(clean(row.get("kind")).upper())
        if kind == "corrects":
            corrects[clean(row.get("doc_id"))] = clean(row.get("ref_doc_id"))
        elif kind is not None:
            cites[clean(row.get("doc_id"))].append((kind, clean(row.get("ref_doc_id"))))
    numbers = {clean(row.get("doc_id")): clean(row.get("instrument_number")).upper() for _, row in documents}
    yield from orphans
    # the first grantee's address is the deed's mailing address
    first_address = {doc: min(seq_addresses)[1] for doc, seq_addresses in addresses.items()}
    joined = (corrects, cites, first_address)
    records = [_document(number, row, parties, parcels, joined, numbers) for number, row in documents]
    # in recording order, so a correction is loaded after what it corrects
    records.sort(key=lambda r: (r.data is not None, r.data["recorded_at"] if r.data else None))
    yield from records


def _document(number, row, parties, parcels, joined, numbers) -> SourceRecord:
    corrects, cites, first_address = joined
    doc = clean(row.get("doc_id"))
    where = f"documents.csv row {number} (doc_id {doc})"
    raw = str(row)
    doc_type = _vocabulary()[0].get(" ".join(clean(row.get("doc_type")).upper().split()))
    if doc_type is None:
        return SourceRecord(where, raw, column="doc_type", problem=f"unknown document type {row.get('doc_type')!r}")
    try:
        recorded_at = _parse_time(row.get("recorded_at", ""))
    except ValueError as exc:
        return SourceRecord(where, raw, column="recorded_at", problem=str(exc))
    consideration = clean(row.get("consideration")).replace("$", "").replace(",", "") or None
    if consideration is not None and not is_amount(consideration):
        problem = f"consideration {not_an_amount(row.get('consideration') or '')} (e.g. $1,250,000.00)"
        return SourceRecord(where, raw, column="consideration", problem=problem)
    names = sorted(parties.get(doc, []), key=lambda p: (p[0], p[1]))
    data = {
        "instrument_number": numbers[doc],
        "book": clean(row.get("book")).lstrip("0") or "0",
        "page": clean(row.get("page")).lstrip("0") or "0",
        "recorded_at": recorded_at,
        "doc_type": doc_type,
        "grantors": [n for role, _, n in names if role == "grantor"],
        "grantees": [n for role, _, n in names if role == "grantee"],
        "parcels": [
            {"municipality_code": clean(p.get("municipality_code")).zfill(4), "block": clean(p.get("block")),
             "lot": clean(p.get("lot")), "qualifier": clean(p.get("qualifier"))}
            for _, p in sorted(parcels.get(doc, []), key=lambda x: x[0])
        ],
        "consideration": consideration,
        "legal_description": row.get("legal_description", "") or "",
        "document_digest": clean(row.get("document_sha256")).lower(),
        "corrects": numbers.get(corrects[doc]) if doc in corrects else None,
        "grantee_mailing_address": first_address.get(doc),
        # a reference to a document the export does not hold cannot be named: left out
        "references": [{"kind": kind, "instrument_number": numbers[ref]} for kind, ref in cites.get(doc, ())
                       if numbers.get(ref)],
    }  # fmt: skip
    return SourceRecord(where, raw, data=data)
