"""NJ SR1A deed/sales files (NJ Division of Taxation), fixed width.

Layout: docs/legacy-formats.md (from the official "SR1A File Layout Description"). Records are
663 characters (2013 and later) or 662 (2012 and earlier, where ``property_class`` is one column
narrower and every later field sits one column to the left; no field read here is affected).

An SR1A record is one deed that conveyed property: deed book and page, recording and deed dates,
grantor and grantee, the tax-map block, lot and qualifier (plus up to five more), the reported
price. The two 6-digit dates are ambiguous between YYMMDD and MMDDYY: the caller says which; an
impossible date is rejected with its line and columns, never guessed. SR1A carries no instrument
number and no document image: the number is made from book and page (``SR1A-<book>-<page>``) and
the document digest is the SHA-256 of the source record itself.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from hybrid_store.plain_numbers import is_digits, not_a_number
from migration_tools.legacy.cleaning import mailing_address
from migration_tools.legacy.importer import BoundedLines, RecordTooLong, SourceRecord

DateOrder = Literal["YYMMDD", "MMDDYY"]
WIDTHS = (663, 662)
MAX_LINE = 4_096  # a line longer than this is quarantined unread
EASTERN = ZoneInfo("America/New_York")

# (first column, last column), 1-based inclusive, as in the layout
FIELDS: dict[str, tuple[int, int]] = {
    "county_code": (1, 2),
    "district_code": (3, 4),
    "reported_sales_price": (38, 46),
    "serial_number": (99, 105),
    "grantor_name": (110, 144),
    "grantor_street": (145, 169),
    "grantee_name": (204, 238),
    "grantee_street": (239, 263),
    "grantee_city_state": (264, 288),
    "grantee_zip": (289, 297),
    "property_location": (298, 322),
    "deed_book": (329, 333),
    "deed_page": (334, 338),
    "deed_date": (339, 344),
    "date_recorded": (345, 350),
    "block_prefix": (351, 355),
    "block_suffix": (356, 359),
    "lot_prefix": (360, 364),
    "lot_suffix": (365, 368),
    "qualification_codes": (620, 624),
}
ADDITIONAL = [((370 + 50 * i, 378 + 50 * i), (379 + 50 * i, 387 + 50 * i), (388 + 50 * i, 392 + 50 * i))
              for i in range(5)]  # fmt: skip  # (block, lot, qualifier) of addl 1..5


def field(line: str, name: str) -> str:
    first, last = FIELDS[name]
    return line[first - 1 : last]


def parse_date(text: str, order: DateOrder, pivot: int) -> date:
    """A 6-digit date in ``order``; two-digit years up to ``pivot`` are 20xx, the rest 19xx."""
    if len(text) != 6 or not is_digits(text):
        raise ValueError(f"{text!r} is not 6 digits")
    a, b, c = int(text[0:2]), int(text[2:4]), int(text[4:6])
    yy, mm, dd = (a, b, c) if order == "YYMMDD" else (c, a, b)
    return date(2000 + yy if yy <= pivot else 1900 + yy, mm, dd)  # raises on an impossible date


def _number(prefix: str, suffix: str) -> str:
    whole = prefix.strip().lstrip("0") or "0"
    tail = suffix.strip()
    return f"{whole}.{tail}" if tail else whole


def _additional(text: str) -> str:
    """An additional block or lot field (9 characters), e.g. ``000100.01`` or ``100.01``."""
    text = text.strip()
    if "." in text:
        whole, _, tail = text.partition(".")
        return f"{whole.lstrip('0') or '0'}.{tail}"
    return text.lstrip("0") or ""


def read(path: Path, *, date_order: DateOrder, pivot: int | None = None) -> Iterator[SourceRecord]:
    """Every line of an SR1A file as a ``SourceRecord`` (blank lines are not records)."""
    pivot = datetime.now().year % 100 if pivot is None else pivot
    with open(path, encoding="latin-1", newline="") as f:  # SR1A is 8-bit text; latin-1 maps every byte
        lines = BoundedLines(f, MAX_LINE)
        for number in itertools.count(1):
            lines.new_record()
            try:
                raw = next(lines)
            except StopIteration:
                return
            except RecordTooLong as exc:
                yield SourceRecord(f"line {number}", exc.shown, problem=f"{exc}; SR1A records have 663 (2013 and "
                                   "later) or 662 (2012 and earlier)", column="1-")  # fmt: skip
                continue
            line = raw.rstrip("\r\n")
            if not line.strip():
                continue
            yield parse_line(line, number, date_order=date_order, pivot=pivot)


def parse_line(line: str, number: int, *, date_order: DateOrder, pivot: int) -> SourceRecord:
    where = f"line {number}"
    if len(line) not in WIDTHS:
        return SourceRecord(where, line, problem=f"{len(line)} characters; SR1A records have 663 (2013 and later) "
                                               "or 662 (2012 and earlier)", column="1-")  # fmt: skip
    dates = {}
    for name in ("date_recorded", "deed_date"):
        text = field(line, name)
        try:
            dates[name] = parse_date(text, date_order, pivot)
        except ValueError:
            first, last = FIELDS[name]
            return SourceRecord(where, line, column=f"{first}-{last}",
                                problem=f"{name} {text!r} is not a date in {date_order} form")  # fmt: skip
    price = field(line, "reported_sales_price").strip(" ") or "0"  # spaces pad it; a stray NBSP byte is not blank
    if not is_digits(price):  # str.isdigit() also says yes to latin-1's '²' and to '٣'
        first, last = FIELDS["reported_sales_price"]
        return SourceRecord(
            where, line, column=f"{first}-{last}", problem=f"reported_sales_price {not_a_number(price)}"
        )
    muni = field(line, "county_code") + field(line, "district_code")
    parcels = [{
        "municipality_code": muni,
        "block": _number(field(line, "block_prefix"), field(line, "block_suffix")),
        "lot": _number(field(line, "lot_prefix"), field(line, "lot_suffix")),
        "qualifier": field(line, "qualification_codes").strip(),
    }]  # fmt: skip
    for (b0, b1), (l0, l1), (q0, q1) in ADDITIONAL:
        block, lot = _additional(line[b0 - 1 : b1]), _additional(line[l0 - 1 : l1])
        if block and lot:
            parcels.append(
                {"municipality_code": muni, "block": block, "lot": lot, "qualifier": line[q0 - 1 : q1].strip()}
            )
    book, page = field(line, "deed_book").strip().lstrip("0"), field(line, "deed_page").strip().lstrip("0")
    recorded = datetime.combine(dates["date_recorded"], time(12, 0), EASTERN)  # SR1A gives the day only
    location = " ".join(field(line, "property_location").split())
    data = {
        "instrument_number": f"SR1A-{book or '0'}-{page or '0'}",
        "book": book,
        "page": page,
        "recorded_at": recorded,
        "doc_type": "DEED",
        "grantors": [field(line, "grantor_name")],
        "grantees": [field(line, "grantee_name")],
        "parcels": parcels,
        "consideration": Decimal(int(price)).quantize(Decimal("1.00")),
        "legal_description": (
            f"Block {parcels[0]['block']}, Lot {parcels[0]['lot']}"
            + (f", Qualifier {parcels[0]['qualifier']}" if parcels[0]["qualifier"] else "")
            + (f", known as {location}" if location else "")
            + f"; deed dated {dates['deed_date'].isoformat()} (from the SR1A file)."
        ),
        "document_digest": hashlib.sha256(line.encode("latin-1")).hexdigest(),
        # what SR1A holds of the index fields (the deed date stays in the legal description too, as
        # records loaded before the date had a field of its own said it)
        "document_date": dates["deed_date"],
        "grantee_mailing_address": mailing_address(
            field(line, "grantee_street"),
            f"{field(line, 'grantee_city_state').strip()} {field(line, 'grantee_zip').strip()}",
        ),
    }
    return SourceRecord(where, line, data=data)


def format_line(record: dict, *, width: int = 663, date_order: DateOrder = "MMDDYY") -> str:
    """Write one deed as an SR1A record (for tests, demos and exports of the synthetic book)."""
    if width not in WIDTHS:
        raise ValueError("SR1A records are 663 or 662 characters")
    buf = [" "] * width

    def put(first: int, last: int, text: object, *, right: bool = False, zero: bool = False) -> None:
        size = last - first + 1
        text = str(text)[:size]
        text = text.rjust(size, "0" if zero else " ") if right else text.ljust(size)
        buf[first - 1 : last] = list(text)

    def six(d: date) -> str:
        return d.strftime("%y%m%d" if date_order == "YYMMDD" else "%m%d%y")

    p0 = record["parcels"][0]
    recorded = record["recorded_at"].astimezone(EASTERN).date()
    put(*FIELDS["county_code"], p0["municipality_code"][:2])
    put(*FIELDS["district_code"], p0["municipality_code"][2:])
    put(*FIELDS["reported_sales_price"], int(record.get("consideration") or 0), right=True, zero=True)
    put(*FIELDS["grantor_name"], record["grantors"][0])
    put(*FIELDS["grantee_name"], record["grantees"][0])
    for name in ("grantee_street", "grantee_city_state", "grantee_zip"):
        put(*FIELDS[name], record.get(name, ""))
    put(*FIELDS["property_location"], record.get("location", ""))
    put(*FIELDS["deed_book"], record["book"], right=True, zero=True)
    put(*FIELDS["deed_page"], record["page"], right=True, zero=True)
    put(*FIELDS["deed_date"], six(record.get("deed_date", recorded)))
    put(*FIELDS["date_recorded"], six(recorded))
    block, _, block_tail = p0["block"].partition(".")
    lot, _, lot_tail = p0["lot"].partition(".")
    put(*FIELDS["block_prefix"], block, right=True, zero=True)
    put(*FIELDS["block_suffix"], block_tail)
    put(*FIELDS["lot_prefix"], lot, right=True, zero=True)
    put(*FIELDS["lot_suffix"], lot_tail)
    put(*FIELDS["qualification_codes"], p0.get("qualifier", ""))
    for (b, l_, q), extra in zip(ADDITIONAL, record["parcels"][1:6], strict=False):
        put(*b, extra["block"])
        put(*l_, extra["lot"])
        put(*q, extra.get("qualifier", ""))
    return "".join(buf)
