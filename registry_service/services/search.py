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

import math
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Select, and_, func, literal, literal_column, select, tuple_, union_all
from sqlalchemy.orm import Session

from hybrid_store.core.records import DocType
from hybrid_store.db.models import Instrument, InstrumentParcel, InstrumentTerm, Parcel, PartyNameKey, UTCDateTime
from hybrid_store.errors import FieldError, InvalidInstrument
from hybrid_store.jurisdictions import Profile
from hybrid_store.jurisdictions.names import Term
from hybrid_store.search_terms import place_term, prefix_range


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
#: a few hundred instruments: what a search this few answer is read whole, by id, and sorted; a term
#: of no more is walked to its end; a walk that needs more to fill its page asks the full-text index
#: first (reading a few hundred costs about what intersecting a name's postings does)
FEW = 500
#: how far each term's instruments are counted to choose the one to walk: far enough to tell a small
#: municipality from a common first name
COUNTED = 16 * FEW
#: the most words a typed prefix may stand for and still lead the walk (a merge of as many index scans)
MAX_PREFIX_WORDS = 16
#: the walk's first window holds this many pages' worth of a term's instruments; each next one twice
#: as many, up to the last size
FIRST_WINDOW_PAGES, MAX_WINDOW = 4, 4_096
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
    stmt = stmt.where(*_recorded(c, Instrument.recorded_at))
    if c.document_from:
        stmt = stmt.where(Instrument.document_date >= c.document_from)
    if c.document_to:
        stmt = stmt.where(Instrument.document_date <= c.document_to)
    return stmt


def find(
    s: Session, profile: Profile, c: Criteria, *, sort: Sort, cursor: str | None, limit: int, require_criteria: bool,
    dialect: str,
) -> tuple[list[int], bool]:  # fmt: skip
    """One page of the ids of the instruments matching ``c`` in ``sort`` order after the instrument
    ``cursor`` names, and whether more follow; refused with the clerk's words when the criteria
    cannot find anything useful.

    A name in recording order is read from ``instrument_terms`` (revision 0022): the instruments of
    one of its terms, newest (or oldest) first, a window at a time, each checked against everything
    asked, until the page is full. The term walked is the one with the fewest instruments (a word
    of the name, or the municipality). When a window leaves the page far short although each term
    is common, the name may be one few parties bear (JOHN SMITH): the full-text index intersects
    its words' postings, and if a few hundred parties at most come out, their instruments are read
    whole, by id, and sorted. The planner is not left to choose between those
    two from its estimates: it reckons a name's words independent, so a bank's name (QUICKEN LOANS
    INC, on thousands of mortgages) looks a few rows to it, and it collected and sorted them all
    for a page of 25. A rare type or document date beside a common name (a bank's court orders)
    is still the planner's."""
    stmt = statement(profile, c, require_criteria=require_criteria, dialect=dialect)
    terms = profile.name_rules.terms(c.party) if c.party else []
    plan = _plan(s, profile, c, terms) if terms and sort in (Sort.NEWEST, Sort.OLDEST) and not _narrow(c) else None
    if plan is not None:
        lead, may_be_rare = plan
        after = (_cursor_row(s, Instrument.recorded_at, cursor), int(cursor)) if cursor else None
        if not lead:  # a word of the name begins no word of the book
            return [], False
        walk = _Walk(s, lead, _checks(profile, c, terms, lead), c, sort, after, limit)
        # the full-text index is asked once, as soon as a window projects the page far ahead: a name
        # whose first window passed a few may thin out further back (its bearers' records newest)
        while not walk.step():
            if not may_be_rare or walk.rows_to_go() <= FEW:
                continue
            if c.doc_type or c.document_from or c.document_to:  # the type or date is the rare part: the planner's
                return page(s, stmt, sort, cursor, limit)
            few = _few(s, c, terms, walk.checks, dialect)
            if few is not None:
                return _sorted_page(few, sort, after, limit)
            may_be_rare = False  # many parties bear the name: walking on is the way
        return walk.finish()
    return page(s, stmt, sort, cursor, limit)


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


def _narrow(c: Criteria) -> bool:
    """Whether ``c`` names a parcel, a block, an instrument or a book: a few instruments that their
    own indexes find, which the name then filters."""
    return any((c.parcel, c.block, c.lot, c.qualifier, c.number, c.book, c.page))


@dataclass(frozen=True)
class _Lead:
    """A term the walk may follow: one term of ``instrument_terms`` (a whole word, a place), or
    the words a prefix begins, the range [low, high)."""

    low: str
    high: str | None = None

    def holds(self) -> Any:
        t = InstrumentTerm.term
        return t == self.low if self.high is None else and_(t >= self.low, t < self.high)


def _plan(s: Session, profile: Profile, c: Criteria, terms: list[Term]) -> tuple[tuple[str, ...], bool] | None:
    """The terms of ``instrument_terms`` to walk (a word, a prefix's words, or the place) and
    whether few instruments may answer although each term is common; or None: nothing can lead the
    walk (a name of initials alone, or a prefix of too many words), and the planner plans."""
    indexed = [t for t in terms if t.whole or len(t.word) >= MIN_INDEXED_PREFIX]
    leads = [_Lead(t.word) if t.whole else _Lead(*prefix_range(t.word)) for t in indexed]
    if c.place:
        leads.append(_Lead(place_term(_place_code(profile, c.place))))
    if not leads:
        return None
    # what may be rare although each part is common: two words (JOHN SMITH; M&T ESPOSITO), or a word
    # and the instrument's type or date (a bank's court orders)
    several = len(terms) > 1 or any((c.doc_type, c.document_from, c.document_to))
    lead, size = (leads[0], COUNTED) if len(leads) == 1 and not several else _smallest(s, leads)
    words = _words(s, lead) if size else ()
    return None if words is None else (words, several and size >= FEW)


def _smallest(s: Session, leads: list[_Lead]) -> tuple[_Lead, int]:
    """The lead listing the fewest instruments, and how many (counted up to ``COUNTED``, each by a
    range of the index, all in one statement)."""
    listed = [select(InstrumentTerm.term).where(lead.holds()).limit(COUNTED).subquery() for lead in leads]
    sizes = list(s.execute(select(*(select(func.count()).select_from(x).scalar_subquery() for x in listed))).one())
    return leads[sizes.index(min(sizes))], min(sizes)


def _words(s: Session, lead: _Lead) -> tuple[str, ...] | None:
    """The terms ``lead`` stands for (a prefix's words, found by skipping through the index, a
    step per word, in one statement), or None for more than ``MAX_PREFIX_WORDS``."""
    if lead.high is None:
        return (lead.low,)
    t = InstrumentTerm.term
    first = select(func.min(t).label("word")).where(lead.holds()).cte("words", recursive=True)
    after = select(select(func.min(t)).where(t > first.c.word, t < lead.high).scalar_subquery()).where(
        first.c.word.is_not(None)
    )
    words = first.union_all(after)
    found = list(s.scalars(select(words.c.word).where(words.c.word.is_not(None)).limit(MAX_PREFIX_WORDS + 1)))
    return tuple(found) if len(found) <= MAX_PREFIX_WORDS else None


def _few(s: Session, c: Criteria, terms: list[Term], checks: Any, dialect: str) -> list[tuple[datetime, int]] | None:
    """The instruments ``c`` finds, as (recorded, id), if ``FEW`` parties at most bear the name
    (else None). Through the full-text index whatever the planner would estimate: the parties are
    a query of their own (a materialized CTE), planned for all its rows, and a bitmap over the
    index is the cheapest way to all of them, where for a few of many it could test every row."""
    named = _named(terms, dialect).cte("named")
    if dialect == "postgresql":
        named = named.prefix_with("MATERIALIZED")
    capped = select(named.c.instrument_id).limit(FEW + 1).subquery()
    found = (select(Instrument.recorded_at, Instrument.id.label("instrument_id"))
             .join(capped, capped.c.instrument_id == Instrument.id).subquery())  # fmt: skip
    passes = and_(checks(found), *_recorded(c, found.c.recorded_at))
    rows = s.execute(select(found.c.recorded_at, found.c.instrument_id, passes)).all()
    return None if len(rows) > FEW else sorted({(recorded_at, iid) for recorded_at, iid, ok in rows if ok})


def _checks(profile: Profile, c: Criteria, terms: list[Term], lead: tuple[str, ...]) -> Any:
    """What an instrument the walk meets must also have, as a function of the window: a party
    bearing every word of the name (the rule itself, ``Term.like``), the place unless the walk is
    the place's, and what else was asked of the instrument."""

    def checks(window: Any) -> Any:
        found = [select(PartyNameKey.instrument_id).where(
            PartyNameKey.instrument_id == window.c.instrument_id, *(PartyNameKey.name_key.like(t.like()) for t in terms)
        ).exists()]  # fmt: skip
        if c.place and lead != (place := (place_term(_place_code(profile, c.place)),)):
            found.append(select(InstrumentTerm.term).where(
                InstrumentTerm.term == place[0], InstrumentTerm.recorded_at == window.c.recorded_at,
                InstrumentTerm.instrument_id == window.c.instrument_id).exists())  # fmt: skip
        asked = [Instrument.doc_type == str(c.doc_type)] if c.doc_type else []
        asked += [Instrument.document_date >= c.document_from] if c.document_from else []
        asked += [Instrument.document_date <= c.document_to] if c.document_to else []
        if asked:
            found.append(select(Instrument.id).where(Instrument.id == window.c.instrument_id, *asked).exists())
        return and_(*found)

    return checks


@dataclass
class _Walk:
    """A page read by walking ``lead``'s instruments in ``sort`` order, a window at a time, each
    window twice the last (a name most of whose instruments pass fills the page in the first)."""

    s: Session
    lead: tuple[str, ...]
    checks: Any
    c: Criteria
    sort: Sort
    after: tuple[datetime, int] | None
    limit: int
    found: dict[int, None] = field(default_factory=dict)  # an instrument bearing two words of a prefix comes twice
    read: int = 0
    size: int = field(init=False)
    done: bool = False

    def __post_init__(self) -> None:
        self.size = FIRST_WINDOW_PAGES * (self.limit + 1)

    def step(self) -> bool:
        """Read the next window; whether the page is now known."""
        rows = self.s.execute(_window(self.lead, self.checks, self.c, self.sort, self.after, self.size)).all()
        self.read += len(rows)
        self.found.update((iid, None) for _, iid, ok in rows if ok)
        self.done = len(self.found) > self.limit or len(rows) < self.size
        if rows:
            self.after = (rows[-1][0], rows[-1][1])
        self.size = min(2 * self.size, MAX_WINDOW)
        return self.done

    def rows_to_go(self) -> float:
        """How many more of the lead's instruments the page needs, at the rate they have passed so far."""
        return (self.limit + 1 - len(self.found)) * self.read / len(self.found) if self.found else math.inf

    def finish(self) -> tuple[list[int], bool]:
        """The page's ids and whether more follow."""
        while not self.done:
            self.step()
        ids = list(self.found)
        return ids[: self.limit], len(ids) > self.limit


def _sorted_page(keys: list[tuple[datetime, int]], sort: Sort, after: tuple[datetime, int] | None,
                 limit: int) -> tuple[list[int], bool]:  # fmt: skip
    """The page of a few instruments (their recording times and ids) in ``sort`` order after ``after``."""
    descending = sort is Sort.NEWEST
    ordered = sorted(keys, reverse=descending)
    if after is not None:
        ordered = [k for k in ordered if (k < after if descending else k > after)]
    return [iid for _, iid in ordered[:limit]], len(ordered) > limit


def _window(lead: tuple[str, ...], checks: Any, c: Criteria, sort: Sort, after: tuple[datetime, int] | None,
            size: int) -> Select[Any]:  # fmt: skip
    """The next ``size`` instruments of ``lead``'s terms after ``after``, in ``sort`` order (one
    ordered index range per term, merged), each with whether it passes ``checks``."""
    descending = sort is Sort.NEWEST

    def ordered(recorded: Any, iid: Any) -> tuple[Any, Any]:
        return (recorded.desc(), iid.desc()) if descending else (recorded.asc(), iid.asc())

    t = InstrumentTerm
    parts = []
    for term in lead:
        part = select(t.recorded_at, t.instrument_id).where(t.term == term)
        if after is not None:
            key, last = tuple_(t.recorded_at, t.instrument_id), tuple_(literal(after[0], UTCDateTime()), after[1])
            part = part.where(key < last if descending else key > last)
        part = part.where(*_recorded(c, t.recorded_at))
        parts.append(part.order_by(*ordered(t.recorded_at, t.instrument_id)).limit(size).subquery())
    window = parts[0]
    if len(parts) > 1:
        merged = union_all(*(select(p.c.recorded_at, p.c.instrument_id) for p in parts)).subquery()
        window = (select(merged.c.recorded_at, merged.c.instrument_id)
                  .order_by(*ordered(merged.c.recorded_at, merged.c.instrument_id)).limit(size).subquery())  # fmt: skip
    return select(window.c.recorded_at, window.c.instrument_id, checks(window).label("ok")).order_by(
        *ordered(window.c.recorded_at, window.c.instrument_id)
    )


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
        # where the planner plans (a name by number order, beside a parcel or a book, of initials
        # alone) it estimates a name's share from the expression index's statistics, each word as
        # if independent of the others; a name in recording order is ``find``'s, not the planner's
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


def _place_code(profile: Profile, place: str) -> str:
    """The municipality code of a place the criteria name (already checked by ``_parcel_filter``)."""
    return profile.parcel_from_form(place, "1", "1", "").columns()["municipality_code"]


def _book_page(value: str) -> str:
    value = value.strip()
    return str(int(value)) if value.isascii() and value.isdigit() else value.upper()


def _recorded(c: Criteria, column: Any) -> list[Any]:
    """The recording dates asked, as conditions on ``column`` (a recording time): whole days, UTC."""
    out = [column >= _midnight(c.recorded_from)] if c.recorded_from else []
    return out + ([column < _midnight(c.recorded_to) + timedelta(days=1)] if c.recorded_to else [])


def _midnight(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), UTC)


__all__ = ["EMPTY_SEARCH", "Criteria", "Sort", "find", "page", "statement"]
