"""A recorder system's multi-table CSV export (layout in docs/legacy-formats.md).

Four files in one folder, joined by ``doc_id``:

* ``documents.csv``  doc_id, instrument_number, doc_type, book, page, recorded_at, consideration,
  legal_description, document_sha256
* ``parties.csv``    doc_id, role (GRANTOR/GRANTEE, or 1/2), seq, name, address
* ``parcels.csv``    doc_id, seq, municipality_code, block, lot, qualifier
* ``xrefs.csv``      doc_id, ref_doc_id, kind (CORRECTS is used; other kinds are kept in the legal
  description's note only)

Real exports are messy, and this reader says what it did about it: byte-order marks, mixed and
non-breaking whitespace, names written ``LAST, FIRST MIDDLE, SUFFIX`` (turned around; firm names
such as ``WELLS FARGO BANK, N.A.`` left alone), blank addresses, several parcels per document,
document types by their usual names (``DEED``, ``D``, ``MTG``, ``SAT`` ...), and look-alike
letters from other scripts inside Latin names (Cyrillic ``А`` for ``A``), which are folded to
Latin. A document whose rows cannot be read (a party of a document that does not exist, a date
that is not a date) is quarantined with the file, row and column.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

from migration_tools.legacy.importer import SourceRecord

EASTERN = ZoneInfo("America/New_York")
FILES = ("documents.csv", "parties.csv", "parcels.csv", "xrefs.csv")

DOC_TYPES = {
    "DEED": "DEED", "D": "DEED", "BARGAIN AND SALE DEED": "DEED", "QUITCLAIM DEED": "DEED", "SHERIFF DEED": "DEED",
    "MASTER DEED": "MASTER_DEED", "MORTGAGE": "MORTGAGE", "MTG": "MORTGAGE", "M": "MORTGAGE",
    "ASSIGNMENT": "ASSIGNMENT", "ASSIGNMENT OF MORTGAGE": "ASSIGNMENT", "AM": "ASSIGNMENT",
    "SATISFACTION": "SATISFACTION", "SAT": "SATISFACTION", "DISCHARGE OF MORTGAGE": "SATISFACTION",
    "RELEASE": "RELEASE", "SUBORDINATION": "SUBORDINATION", "LIEN": "LIEN", "CONSTRUCTION LIEN": "LIEN",
    "DISCHARGE OF LIEN": "DISCHARGE_OF_LIEN", "LIS PENDENS": "LIS_PENDENS", "LP": "LIS_PENDENS",
    "EASEMENT": "EASEMENT", "CORRECTIVE DEED": "CORRECTION", "CORRECTION": "CORRECTION",
    "POWER OF ATTORNEY": "POWER_OF_ATTORNEY", "POA": "POWER_OF_ATTORNEY",
}  # fmt: skip
ROLES = {"GRANTOR": "grantor", "1": "grantor", "MORTGAGOR": "grantor", "GRANTEE": "grantee", "2": "grantee",
         "MORTGAGEE": "grantee"}  # fmt: skip
FIRM_WORDS = re.compile(
    r"\b(N\.?A\.?|INC\.?|LLC|L\.L\.C\.|CORP\.?|CORPORATION|CO\.?|COMPANY|LTD\.?|L\.?P\.?|LLP|BANK|TRUST|ASSOCIATION|"
    r"FEDERAL|SAVINGS|TRUSTEE|ESTATE|SYSTEMS|AUTHORITY|COUNTY|STATE|CITY|BOROUGH|TOWNSHIP|UNITED STATES)\b"
)
# ASCII only: isdigit(), int(), Decimal() and strptime() also take '²', '٣', '1_000' or ' 5'
DIGITS = re.compile(r"[0-9]+")
AMOUNT = re.compile(r"[0-9]+(?:\.[0-9]+)?")  # after "$" and "," are dropped
SUFFIXES = {"JR", "JR.", "SR", "SR.", "II", "III", "IV", "ESQ", "ESQ."}
# Letters of other scripts that look like Latin capitals (the usual culprits in keyed names)
CONFUSABLES = str.maketrans({
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C", "Т": "T", "Х": "X",
    "а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "у": "y", "х": "x", "Ι": "I", "Α": "A", "Β": "B", "Ε": "E",
    "Ζ": "Z", "Η": "H", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
})  # fmt: skip


def clean(text: str | None) -> str:
    """Collapse every kind of whitespace (tabs, NBSP, ...) to one space; strip."""
    if not text:
        return ""
    return " ".join(unicodedata.normalize("NFC", text).replace("\u00a0", " ").split())


def fold_lookalikes(name: str) -> str:
    """Fold other-script look-alikes to Latin in a name that is otherwise Latin script."""
    letters = [ch for ch in name if ch.isalpha()]
    latin = sum(1 for ch in letters if "LATIN" in unicodedata.name(ch, ""))
    if letters and latin >= len(letters) / 2:
        return name.translate(CONFUSABLES)
    return name


def person_name(raw: str) -> str:
    """``SMITH, JOHN Q., JR.`` -> ``JOHN Q. SMITH JR.``; firm names and plain names are kept."""
    name = fold_lookalikes(clean(raw))
    if "," not in name or FIRM_WORDS.search(name.upper()):
        return name
    parts = [p.strip() for p in name.split(",") if p.strip()]
    if len(parts) < 2:
        return name
    last, rest = parts[0], parts[1:]
    suffix = [p for p in rest if p.upper() in SUFFIXES]
    given = [p for p in rest if p.upper() not in SUFFIXES]
    return " ".join([*given, last, *suffix])


def _whole_number(text: str | None, default: int) -> int:
    text = clean(text)
    return int(text) if DIGITS.fullmatch(text) else default


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


def _rows(folder: Path, name: str) -> Iterator[tuple[int, dict[str, str]]]:
    path = folder / name
    if not path.exists():
        return
    # utf-8-sig drops a byte-order mark. A byte that is not UTF-8 becomes U+FFFD instead of aborting the load:
    # validation rejects it in names and descriptions, and it matches no code, number, type or role
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as f:
        reader = csv.DictReader(f)
        reader.fieldnames = [clean(h).lower() for h in reader.fieldnames or []]
        for number, row in enumerate(reader, start=2):
            yield number, {k: (v if v is not None else "") for k, v in row.items() if k}


def read(folder: Path) -> Iterator[SourceRecord]:
    """Every document of the export as a ``SourceRecord``, parties and parcels joined in."""
    parties: dict[str, list[tuple[str, int, str]]] = defaultdict(list)
    parcels: dict[str, list[tuple[int, dict[str, str]]]] = defaultdict(list)
    corrects: dict[str, str] = {}
    orphans: list[SourceRecord] = []
    documents = list(_rows(folder, "documents.csv"))
    known = {clean(row.get("doc_id")) for _, row in documents}
    for number, row in _rows(folder, "parties.csv"):
        doc = clean(row.get("doc_id"))
        role = ROLES.get(clean(row.get("role")).upper())
        if doc not in known:
            orphans.append(SourceRecord(f"parties.csv row {number}", str(row), column="doc_id",
                                        problem=f"party of unknown document {doc!r}"))  # fmt: skip
        elif role is None:
            orphans.append(SourceRecord(f"parties.csv row {number}", str(row), column="role",
                                        problem=f"unknown party role {row.get('role')!r} (GRANTOR or GRANTEE)"))  # fmt: skip
        else:
            seq = _whole_number(row.get("seq"), 0)
            parties[doc].append((role, seq, person_name(row.get("name", ""))))
    for number, row in _rows(folder, "parcels.csv"):
        doc = clean(row.get("doc_id"))
        if doc not in known:
            orphans.append(SourceRecord(f"parcels.csv row {number}", str(row), column="doc_id",
                                        problem=f"parcel of unknown document {doc!r}"))  # fmt: skip
            continue
        seq = _whole_number(row.get("seq"), number)
        parcels[doc].append((seq, row))
    for _, row in _rows(folder, "xrefs.csv"):
        if clean(row.get("kind")).upper() in ("CORRECTS", "CORRECTION"):
            corrects[clean(row.get("doc_id"))] = clean(row.get("ref_doc_id"))
    numbers = {clean(row.get("doc_id")): clean(row.get("instrument_number")).upper() for _, row in documents}
    yield from orphans
    records = [_document(number, row, parties, parcels, corrects, numbers) for number, row in documents]
    # in recording order, so a correction is loaded after what it corrects
    records.sort(key=lambda r: (r.data is not None, r.data["recorded_at"] if r.data else None))
    yield from records


def _document(number, row, parties, parcels, corrects, numbers) -> SourceRecord:
    doc = clean(row.get("doc_id"))
    where = f"documents.csv row {number} (doc_id {doc})"
    raw = str(row)
    doc_type = DOC_TYPES.get(clean(row.get("doc_type")).upper())
    if doc_type is None:
        return SourceRecord(where, raw, column="doc_type", problem=f"unknown document type {row.get('doc_type')!r}")
    try:
        recorded_at = _parse_time(row.get("recorded_at", ""))
    except ValueError as exc:
        return SourceRecord(where, raw, column="recorded_at", problem=str(exc))
    consideration = clean(row.get("consideration")).replace("$", "").replace(",", "") or None
    if consideration is not None and not AMOUNT.fullmatch(consideration):
        problem = f"consideration {row.get('consideration')!r} is not an amount in dollars (e.g. $1,250,000.00)"
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
    }  # fmt: skip
    return SourceRecord(where, raw, data=data)
