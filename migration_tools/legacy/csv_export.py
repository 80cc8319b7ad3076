"""A recorder system's multi-table CSV export (layout in docs/legacy-formats.md).

Four files in one folder, joined by ``doc_id``:

* ``documents.csv``  doc_id, instrument_number, doc_type, book, page, recorded_at, consideration,
  legal_description, document_sha256
* ``parties.csv``    doc_id, role (GRANTOR/GRANTEE, or 1/2), seq, name, address
* ``parcels.csv``    doc_id, seq, municipality_code, block, lot, qualifier
* ``xrefs.csv``      doc_id, ref_doc_id, kind (CORRECTS makes a correction; ASSIGNS, SATISFIES,
  RELEASES, SUBORDINATES and DISCHARGES become the instrument's cross-references; other kinds are
  not read)

Real exports are messy, and this reader says what it did about it: byte-order marks, mixed and
non-breaking whitespace, names written ``LAST, FIRST MIDDLE, SUFFIX`` (turned around; firm names
such as ``WELLS FARGO BANK, N.A.`` left alone), blank addresses, several parcels per document,
document types by their usual names (``DEED``, ``D``, ``MTG``, ``SAT`` ...), and look-alike
letters from other scripts inside Latin names (Cyrillic ``А`` for ``A``), which are folded to
Latin. A document whose rows cannot be read (a party of a document that does not exist, a date
that is not a date) is quarantined with the file, row and column.

The tables are joined by sorting them on disk (``migration_tools.external_sort``), not in memory:
reading a book of any size takes about the same memory (issue 25).
"""

from __future__ import annotations

import csv
import heapq
import itertools
import tempfile
from collections.abc import Callable, Iterator
from datetime import datetime, time
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from hybrid_store.plain_numbers import is_amount, is_digits, not_an_amount
from migration_tools.external_sort import LIMITS, ExternalSort, Limits
from migration_tools.legacy.cleaning import clean, mailing_address, person_name
from migration_tools.legacy.importer import BoundedLines, RecordTooLong, SourceRecord

EASTERN = ZoneInfo("America/New_York")
Row = dict[str, str]  # a CSV row by its (cleaned, lower-case) column names


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


def _rows(folder: Path, name: str, too_long: Callable[[int, SourceRecord], None]) -> Iterator[tuple[int, Row, int]]:
    """The rows of ``name``: row number, row and its length in characters; a record over
    ``MAX_RECORD_CHARS`` goes to ``too_long`` instead (with its row number: the header's is 1)."""
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
            too_long(1, SourceRecord(f"{name} header", exc.shown, problem=f"its header is {exc}", column="(file)"))
            return
        for number in itertools.count(2):
            lines.new_record()
            try:
                row = next(reader)
            except StopIteration:
                return
            except RecordTooLong as exc:
                too_long(number, SourceRecord(f"{name} row {number}", exc.shown, problem=f"a record {exc}",
                                              column="(record)"))  # fmt: skip
                continue
            yield number, {k: (v if v is not None else "") for k, v in row.items() if k}, lines.used


def read(folder: Path, *, scratch: Path | None = None, limits: Limits = LIMITS) -> Iterator[SourceRecord]:
    """Every document of the export as a ``SourceRecord``, parties, parcels and cross-references
    joined in: first the rows that cannot be joined (too long to read, orphans), in file and row
    order; then the documents that cannot be read, in file order; then the rest in recording order,
    so a correction is loaded after what it corrects (file order among equal times).

    The tables are joined by sorting them by document on disk (under ``scratch``, or the system's
    temporary folder; removed when the reading ends): memory depends on ``limits`` and on the
    largest single document, not on the size of the book (issue 25)."""
    with tempfile.TemporaryDirectory(prefix="landreg-csv-import-", dir=scratch) as tmp:
        sorts = _Sorts(Path(tmp), limits)
        _spread(folder, sorts)
        _resolve_references(sorts)
        _join(sorts)
        for _, rec in sorts.unjoined.sorted():
            yield rec
        for _, rec in sorts.records.sorted():
            yield rec


# The tables' rows are spread over sorters keyed (doc_id, what, row number) and merged by doc_id:
# what the join meets of one doc_id comes in this order: whether it exists (and its instrument
# number), its children, then its own rows; each kind in its file's order. The quarantined rows,
# keyed by (file, row number), come out in the order the files hold them.
_KNOWN, _PARTY, _PARCEL, _REFERENCE, _DOCUMENT = range(5)
_CITED = 1  # a cross-reference, by the doc_id it names: after that document's number
DOCUMENTS, PARTIES, PARCELS, XREFS = range(4)  # the files, in the order they are read
_GROUP = 64


class _Sorts:
    def __init__(self, folder: Path, limits: Limits):
        def sort(name: str) -> ExternalSort:
            return ExternalSort(folder, name, limits)

        self.documents = sort("documents")  # documents.csv's rows
        self.numbers = sort("numbers")  # and their instrument numbers
        self.parties = sort("parties")
        self.parcels = sort("parcels")
        self.cited = sort("cited")  # cross-references, by the doc_id they name
        self.references = sort("references")  # cross-references, by the doc_id citing, with what they name
        self.unjoined = sort("unjoined")  # by (file, row number)
        self.records = sort("records")  # by (readable, recording time, row number)

    def too_long(self, file: int) -> Callable[[int, SourceRecord], None]:
        return lambda number, rec: self.unjoined.add((file, number), rec, len(rec.raw))


def _spread(folder: Path, s: _Sorts) -> None:
    for number, row, size in _rows(folder, "documents.csv", s.too_long(DOCUMENTS)):
        doc = clean(row.get("doc_id"))
        s.documents.add((doc, _DOCUMENT, number), row, size)
        s.numbers.add((doc, _KNOWN, number), clean(row.get("instrument_number")).upper())
    _spread_children(_rows(folder, "parties.csv", s.too_long(PARTIES)), s.parties, _PARTY)
    _spread_children(_rows(folder, "parcels.csv", s.too_long(PARCELS)), s.parcels, _PARCEL)
    for number, row, _ in _rows(folder, "xrefs.csv", s.too_long(XREFS)):
        kind = REFERENCE_KINDS.get(clean(row.get("kind")).upper())
        if kind is not None:
            s.cited.add((clean(row.get("ref_doc_id")), _CITED, number), (clean(row.get("doc_id")), kind))
    for sorter in (s.documents, s.numbers, s.parties, s.parcels, s.cited):
        sorter.finish()


def _spread_children(rows: Iterator[tuple[int, Row, int]], sorter: ExternalSort, tag: int) -> None:
    """Consecutive rows of one doc_id go as one item, up to ``_GROUP`` of them (exports mostly list
    a document's parties together: a third of the items to sort). Keyed by the first row's number,
    the groups of one doc_id still come out in row order: their rows never interleave."""
    group: list[tuple[int, Row]] = []
    doc, chars = "", 0
    for number, row, size in rows:
        this = clean(row.get("doc_id"))
        if group and (this != doc or len(group) == _GROUP):
            sorter.add((doc, tag, group[0][0]), group, chars)
            group, chars = [], 0
        doc = this
        group.append((number, row))
        chars += size
    if group:
        sorter.add((doc, tag, group[0][0]), group, chars)


def _resolve_references(s: _Sorts) -> None:
    """Each cross-reference with the instrument number of the document it names: None when the
    export does not hold it; a doc_id listed twice, its last row's (as a dict filled in row order
    kept it)."""
    if not s.cited.added:
        return
    current, target = None, None
    for (doc, tag, number), payload in heapq.merge(s.numbers.sorted(again=True), s.cited.sorted()):
        if doc != current:
            current, target = doc, None
        if tag == _KNOWN:
            target = payload
        else:
            citing, kind = payload
            s.references.add((citing, _REFERENCE, number), (kind, target))
    s.references.finish()


class _Joined:
    """What the export says of one doc_id besides its own rows, gathered as the merge meets it."""

    def __init__(self, s: _Sorts, doc: str):
        self.s, self.doc = s, doc
        self.instrument_number: str | None = None  # None: no such document
        self.names: list[tuple[str, int, str]] = []  # (role, seq, name), in row order
        self.addresses: list[tuple[int, str]] = []  # grantees' addresses, by seq
        self.parcels: list[tuple[int, Row]] = []
        self.corrects: str | None = None
        self.cites: list[tuple[str, str]] = []  # (kind, instrument number) of the documents it cites

    def take(self, tag: int, number: int, payload: Any) -> None:
        if tag == _KNOWN:
            self.instrument_number = payload  # a doc_id listed twice: its last row's
        elif tag == _PARTY:
            for row_number, row in payload:
                self.party(row_number, row)
        elif tag == _PARCEL:
            for row_number, row in payload:
                self.parcel(row_number, row)
        elif tag == _REFERENCE:
            kind, target = payload
            if kind == "corrects":
                self.corrects = target  # the last CORRECTS row wins
            elif target:  # a reference to a document the export does not hold cannot be named: left out
                self.cites.append((kind, target))
        else:
            rec = _document(number, payload, self)
            self.s.records.add(_recording_order(number, rec), rec, 2 * len(rec.raw))

    def party(self, number: int, row: Row) -> None:
        role = _vocabulary()[1].get(clean(row.get("role")).upper())
        if self.instrument_number is None:
            self.unjoined(PARTIES, number, row, "doc_id", f"party of unknown document {self.doc!r}")
        elif role is None:
            self.unjoined(PARTIES, number, row, "role", f"unknown party role {row.get('role')!r} (GRANTOR or GRANTEE)")
        else:
            seq = _whole_number(row.get("seq"), 0)
            self.names.append((role, seq, person_name(row.get("name", ""))))
            if role == "grantee" and (address := mailing_address(row.get("address"))):
                self.addresses.append((seq, address))

    def parcel(self, number: int, row: Row) -> None:
        if self.instrument_number is None:
            self.unjoined(PARCELS, number, row, "doc_id", f"parcel of unknown document {self.doc!r}")
        else:
            self.parcels.append((_whole_number(row.get("seq"), number), row))

    def unjoined(self, file: int, number: int, row: Row, column: str, problem: str) -> None:
        raw = str(row)
        self.s.unjoined.add((file, number), SourceRecord(f"{FILES[file]} row {number}", raw, column=column,
                                                         problem=problem), len(raw))  # fmt: skip


def _join(s: _Sorts) -> None:
    """Each document with its parties, parcels and cross-references; orphans to ``unjoined``."""
    joined = _Joined(s, "")  # (fresh: as good as a new one if the first doc_id is blank)
    streams = (s.numbers, s.parties, s.parcels, s.references, s.documents)
    for (doc, tag, number), payload in heapq.merge(*(sorter.sorted() for sorter in streams)):
        if joined.doc != doc:
            joined = _Joined(s, doc)
        joined.take(tag, number, payload)
    s.unjoined.finish()
    s.records.finish()


_UNREAD = datetime.min


def _recording_order(number: int, rec: SourceRecord) -> tuple[int, datetime, int]:
    """Documents that cannot be read first, then by recording time; file order among equals. Every
    time is local to one zone object, and Python orders two such by their wall-clock time: so does
    this key, with no zone to carry through the spilled runs."""
    if rec.data is None:
        return 0, _UNREAD, number
    return 1, rec.data["recorded_at"].replace(tzinfo=None), number


def _document(number: int, row: Row, joined: _Joined) -> SourceRecord:
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
    names = sorted(joined.names, key=lambda p: (p[0], p[1]))
    data = {
        "instrument_number": joined.instrument_number,
        "book": clean(row.get("book")).lstrip("0") or "0",
        "page": clean(row.get("page")).lstrip("0") or "0",
        "recorded_at": recorded_at,
        "doc_type": doc_type,
        "grantors": [n for role, _, n in names if role == "grantor"],
        "grantees": [n for role, _, n in names if role == "grantee"],
        "parcels": [
            {"municipality_code": clean(p.get("municipality_code")).zfill(4), "block": clean(p.get("block")),
             "lot": clean(p.get("lot")), "qualifier": clean(p.get("qualifier"))}
            for _, p in sorted(joined.parcels, key=lambda x: x[0])
        ],
        "consideration": consideration,
        "legal_description": row.get("legal_description", "") or "",
        "document_digest": clean(row.get("document_sha256")).lower(),
        "corrects": joined.corrects,
        # the first grantee's address is the deed's mailing address
        "grantee_mailing_address": min(joined.addresses)[1] if joined.addresses else None,
        "references": [{"kind": kind, "instrument_number": target} for kind, target in joined.cites],
    }  # fmt: skip
    return SourceRecord(where, raw, data=data)
