"""The search a clerk expects: by name (the profile's name rules), parcel (any spelling the profile
reads, or a municipality, block or lot alone), instrument number, book and page, recording and
document dates, type; every criterion combined; sorted; a page at a time.

Pages are keyset pages: a cursor is the last instrument shown, and the next page is what sorts after
it. Instruments are append-only, so a row's place in the order never changes: a filing recorded
while a clerk pages appears before the first page (newest first) or after the last (oldest first),
never between two pages, and no row is shown twice or skipped.

A search that cannot find anything useful (an empty one, block and lot without a municipality, a
page without its book, dates the wrong way round) is refused with what to do instead: the clerk
learns why the page is empty rather than reading "nothing found".
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Select, and_, func, literal_column, select, tuple_
from sqlalchemy.orm import Session

from hybrid_store.core.records import DocType
from hybrid_store.db.models import Instrument, InstrumentParcel, Parcel, PartyNameKey
from hybrid_store.errors import FieldError, InvalidInstrument
from hybrid_store.jurisdictions import Profile
from hybrid_store.jurisdictions.names import Term


class Sort(StrEnum):
    """The orders a result list can take; a leading ``-`` is descending."""

    NEWEST = "-recorded"
    OLDEST = "recorded"
    NUMBER_DESC = "-number"
    NUMBER = "number"


@dataclass(frozen=True)
class Criteria:
    """What a clerk asked for; every field given narrows the search. ``parcel`` is a whole parcel in
    any spelling the profile reads; ``place``, ``block``, ``lot`` and ``qualifier`` may name part
    of one (a municipality's instruments, a block's)."""

    party: str | None = None
    parcel: str | None = None
    place: str | None = None
    block: str | None = None
    lot: str | None = None
    qualifier: str | None = None
    number: str | None = None
    book: str | None = None
    page: str | None = None
    doc_type: DocType | None = None
    recorded_from: date | None = None
    recorded_to: date | None = None
    document_from: date | None = None
    document_to: date | None = None

    def given(self) -> bool:
        return any(getattr(self, f.name) not in (None, "") for f in fields(self))


#: the shortest word of a search the full-text index answers as a prefix (shorter ones filter)
MIN_INDEXED_PREFIX = 3
#: the words of a refused search, for the clerk (the desk shows them above the empty list)
EMPTY_SEARCH = ("enter something to search for: a name, a parcel, an instrument number, a book and page, "
                "a type or dates")  # fmt: skip


def refuse(field: str, rule: str, message: str) -> InvalidInstrument:
    return InvalidInstrument([FieldError(field, rule, message)])


def statement(profile: Profile, c: Criteria, *, require_criteria: bool, dialect: str = "sqlite") -> Select[Any]:
    """The ids of the instruments matching ``c`` (unordered); refused with the clerk's words when
    the criteria cannot find anything useful."""
    problems = _problems(profile, c, require_criteria=require_criteria)
    if problems:
        raise InvalidInstrument(problems)
    stmt = select(Instrument.id)
    for ids in _id_sets(profile, c, dialect):
        stmt = stmt.where(Instrument.id.in_(ids))
    if c.number:
        stmt = stmt.where(Instrument.instrument_number == c.number.strip().upper())
    if c.book:
        stmt = stmt.where(Instrument.book == _book_page(c.book))
    if c.page:
        stmt = stmt.where(Instrument.page == _book_page(c.page))
    if c.doc_type:
        stmt = stmt.where(Instrument.doc_type == str(c.doc_type))
    if c.recorded_from:
        stmt = stmt.where(Instrument.recorded_at >= _midnight(c.recorded_from))
    if c.recorded_to:
        stmt = stmt.where(Instrument.recorded_at < _midnight(c.recorded_to) + timedelta(days=1))
    if c.document_from:
        stmt = stmt.where(Instrument.document_date >= c.document_from)
    if c.document_to:
        stmt = stmt.where(Instrument.document_date <= c.document_to)
    return stmt


def page(s: Session, stmt: Select[Any], sort: Sort, cursor: str | None, limit: int) -> tuple[list[int], bool]:
    """One keyset page of ``stmt``'s ids in ``sort`` order after the instrument ``cursor`` names,
    and whether more follow."""
    column = Instrument.recorded_at if sort in (Sort.NEWEST, Sort.OLDEST) else Instrument.instrument_number
    descending = sort.startswith("-")
    if cursor:
        after = _cursor_row(s, column, cursor)
        key, last = tuple_(column, Instrument.id), tuple_(after, int(cursor))
        stmt = stmt.where(key < last if descending else key > last)
    order = (column.desc(), Instrument.id.desc()) if descending else (column.asc(), Instrument.id.asc())
    ids = list(s.scalars(stmt.order_by(*order).limit(limit + 1)))
    return ids[:limit], len(ids) > limit


def _cursor_row(s: Session, column: Any, cursor: str) -> Any:
    bad = refuse("cursor", "cursor_format", "this is not a cursor from a previous page: start the search again")
    if not cursor.isascii() or not cursor.isdigit() or len(cursor) > 18:
        raise bad
    found = s.execute(select(column).where(Instrument.id == int(cursor))).first()
    if found is None:
        raise bad
    return found[0]


def _problems(profile: Profile, c: Criteria, *, require_criteria: bool) -> list[FieldError]:
    out = []
    if require_criteria and not c.given():
        out.append(FieldError("search", "empty_search", EMPTY_SEARCH))
    if c.party is not None and c.party.strip() and not profile.name_rules.terms(c.party):
        out.append(FieldError("party", "name_without_letters",
                              "a name is searched by its letters and digits: type at least one"))  # fmt: skip
    if (c.block or c.lot or c.qualifier) and not c.place:
        out.append(FieldError("municipality", "place_missing",
                              f"block and lot numbers repeat from one {profile.place_label} to the next: choose the "
                              f"{profile.place_label} as well"))  # fmt: skip
    if (c.lot or c.qualifier) and not c.block:
        out.append(FieldError("block", "block_missing", "a lot is numbered within its block: enter the block too"))
    if c.page and not c.book:
        out.append(FieldError("book", "book_missing", "a page is numbered within its book: enter the book too"))
    for low, high, name in ((c.recorded_from, c.recorded_to, "recorded"), (c.document_from, c.document_to, "dated")):
        if low and high and low > high:
            out.append(FieldError(f"{name}_from", "date_range",
                                  f"the {name} dates run backwards ({low} is after {high}): swap them"))  # fmt: skip
    return out


def _id_sets(profile: Profile, c: Criteria, dialect: str) -> list[Select[Any]]:
    """The sets of instrument ids the name and the parcel criteria select (none, one, or the two
    already intersected)."""
    named = _named(profile.name_rules.terms(c.party), dialect) if c.party else None
    parcel_filter = _parcel_filter(profile, c)
    placed = None
    if parcel_filter is not None:
        placed = (select(InstrumentParcel.instrument_id).join(Parcel, Parcel.id == InstrumentParcel.parcel_id)
                  .where(parcel_filter))  # fmt: skip
    if named is not None and placed is not None:
        # the two sets meet before any instrument row is read: a common surname within a
        # municipality is thousands of parties and thousands of parcel links, but a few hundred both
        return [named.where(named.selected_columns[0].in_(placed))]
    return [ids for ids in (named, placed) if ids is not None]


def _named(terms: list[Term], dialect: str) -> Select[Any]:
    """The instruments a party of which has every term: on PostgreSQL through the words' full-text
    index (revision 0021), elsewhere by LIKE over the folded keys (the same rule: ``Term``)."""
    if dialect == "postgresql":
        # an initial (A, or JO) as a prefix would OR together every word that begins with it: the
        # index answers the longer words, and the short ones filter the few parties that have them
        indexed = [t for t in terms if t.whole or len(t.word) >= MIN_INDEXED_PREFIX] or terms
        filtered = [t for t in terms if t not in indexed]
        words = func.to_tsvector(literal_column("'simple'::regconfig"), PartyNameKey.name_key)
        query = func.to_tsquery(literal_column("'simple'::regconfig"), " & ".join(t.tsquery() for t in indexed))
        # the planner estimates a name's share from the expression index's statistics (ANALYZE
        # keeps its common words): a rare name goes index first, a common surname walks the
        # instruments newest first and stops at the page
        return select(PartyNameKey.instrument_id).where(
            words.bool_op("@@")(query), *(PartyNameKey.name_key.like(t.like()) for t in filtered)
        )
    return select(PartyNameKey.instrument_id).where(*(PartyNameKey.name_key.like(t.like()) for t in terms))


def _parcel_filter(profile: Profile, c: Criteria) -> Any:
    if c.parcel:
        try:
            key = profile.parcel_from_text(c.parcel).key
        except ValueError:
            raise refuse("parcel", "parcel_format", f"{c.parcel!r} is not a parcel of {profile.title}: write it as "
                         f"{profile.parcel_key_format}") from None  # fmt: skip
        return Parcel.parcel_key == key
    if not c.place:
        return None
    if c.place not in profile.place_codes():
        raise refuse("municipality", "unknown_place", f"{c.place} is not a {profile.place_label} of {profile.title}: "
                     "choose one from the list")  # fmt: skip
    try:  # the profile spells block and lot as its parcel table does (leading zeros, padding)
        columns = profile.parcel_from_form(c.place, c.block or "1", c.lot or "1", c.qualifier or "").columns()
    except ValueError:
        raise refuse("block", "block_lot_format", "block, lot and qualifier look like 100.01, 5, C0001") from None
    wanted = [Parcel.municipality_code == columns["municipality_code"]]
    if c.block:
        wanted.append(Parcel.block == columns["block"])
    if c.lot:
        wanted.append(Parcel.lot == columns["lot"])
    if c.qualifier:
        wanted.append(Parcel.qualifier == columns["qualifier"])
    return and_(*wanted)


def _book_page(value: str) -> str:
    value = value.strip()
    return str(int(value)) if value.isascii() and value.isdigit() else value.upper()


def _midnight(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), UTC)


__all__ = ["EMPTY_SEARCH", "Criteria", "Sort", "page", "statement"]
