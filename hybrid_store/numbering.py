"""Numbering: instrument numbers, books and pages.

Numbers are ``YYYY-NNNNNNN``: the recording year and a registry-wide serial that never repeats (it
starts above every serial already in the database, so loaded records keep theirs). Pages run
through books of ``PAGES_PER_BOOK``, the first new book after every book already recorded.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from hybrid_store.db.engine import upsert_insert
from hybrid_store.db.models import Counter, Instrument, table
from hybrid_store.errors import FieldError, InvalidInstrument
from hybrid_store.intake import InstrumentInput

PAGES_PER_BOOK = 1000  # a new book starts when the current one reaches this many pages


def assign(
    session: Session, instruments: Sequence[InstrumentInput], now: datetime
) -> list[tuple[str, str, str, datetime]]:
    """Instrument number, book, page and recording time for each instrument, assigning the missing
    (call it last in a filing's transaction: on SQLite the counter rows stay locked until commit)."""
    for inst in instruments:
        if bool(inst.book) != bool(inst.page):
            field_name = "page" if inst.book else "book"
            raise InvalidInstrument(
                [FieldError(field_name, "book_page_pair", "book and page are given together or not at all")]
            )
    taken = _take(
        session, instruments=sum(1 for i in instruments if not i.instrument_number),
        pages=sum(1 for i in instruments if not i.book),
    )  # fmt: skip
    serials, pages = iter(taken["instrument"]), iter(taken["page"])
    out = []
    for inst in instruments:
        recorded_at = inst.recorded_at or now
        number = inst.instrument_number or f"{recorded_at.year}-{next(serials):07d}"
        if inst.book and inst.page:
            book, page = inst.book, inst.page
        else:
            index = next(pages)
            book, page = str(_first_book(session) + index // PAGES_PER_BOOK), str(index % PAGES_PER_BOOK + 1)
        out.append((number, book, page, recorded_at))
    return out


_numbering_ready: weakref.WeakKeyDictionary[Any, dict[str, int]] = weakref.WeakKeyDictionary()  # per engine
_NEXTVALS = text(
    "SELECT ARRAY(SELECT nextval('landreg_instrument_seq') FROM generate_series(1, :instruments)),"
    " ARRAY(SELECT nextval('landreg_page_seq') FROM generate_series(1, :pages))"
)
_BUMP = text(
    "UPDATE counters SET value = value + CASE name WHEN 'instrument' THEN :instruments ELSE :pages END"
    " WHERE name IN ('instrument', 'page') RETURNING name, value"
)


def _take(session: Session, *, instruments: int, pages: int) -> dict[str, list[int]]:
    """Fresh instrument serials and page indexes, in one statement. PostgreSQL: sequences (no lock
    held until commit, so concurrent filings do not queue behind one row); SQLite, which serialises
    writers anyway: rows of ``counters``."""
    if instruments == 0 and pages == 0:
        return {"instrument": [], "page": []}
    _prepare_numbering(session)
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        serials, indexes = conn.execute(_NEXTVALS, {"instruments": instruments, "pages": pages}).one()
        return {"instrument": list(serials), "page": list(indexes)}
    last: dict[str, int] = dict(conn.execute(_BUMP, {"instruments": instruments, "pages": pages}).all())
    return {
        "instrument": list(range(last["instrument"] - instruments + 1, last["instrument"] + 1)),
        "page": list(range(last["page"] - pages + 1, last["page"] + 1)),
    }


def _prepare_numbering(session: Session) -> None:
    """Once per engine: make both series start above everything already recorded."""
    engine = session.get_bind()
    if engine in _numbering_ready:
        return
    raise_numbering_floor(session)
    if engine.dialect.name != "postgresql":
        create = _dialect_insert(session)(Counter).on_conflict_do_nothing(index_elements=["name"])
        session.execute(create, [{"name": "page", "value": -1}])
    _numbering_ready[engine] = {"first_book": _read_first_book(session)}


def raise_numbering_floor(session: Session) -> None:
    """Make new instrument serials start above every serial in the database (after loading
    records that came with their own numbers). Never moves the series back."""
    # streamed a few thousand at a time: after a load of millions, held whole they were most of the
    # load's peak memory
    numbers = session.scalars(select(Instrument.instrument_number).where(Instrument.instrument_number.like("____-%")),
                              execution_options={"yield_per": 10_000})  # fmt: skip
    top = max((int(n.split("-", 1)[1]) for n in numbers if n.split("-", 1)[1].isdigit()), default=0)
    if session.get_bind().dialect.name == "postgresql":
        # several server processes do this at their first filing: GREATEST with what was already
        # handed out never rewinds; the unique index (and a retry) covers the instant between
        session.execute(
            text(
                "SELECT setval('landreg_instrument_seq', GREATEST(:top,"
                " CASE WHEN is_called THEN last_value ELSE last_value - 1 END), true) FROM landreg_instrument_seq"
            ),
            {"top": top},
        )
        return
    stmt = _dialect_insert(session)(Counter).values(name="instrument", value=top)
    session.execute(stmt.on_conflict_do_update(index_elements=["name"], set_={
        "value": func.max(table(Counter).c.value, stmt.excluded.value)}))  # fmt: skip


def _first_book(session: Session) -> int:
    return _numbering_ready[session.get_bind()]["first_book"]


def _read_first_book(session: Session) -> int:
    """The book new filings start in, fixed on first use: after every book in the database then."""
    stored = session.scalar(select(Counter.value).where(Counter.name == "first_book"))
    if stored is None:
        books = session.scalars(select(Instrument.book).distinct())
        first = max((int(b) for b in books if b.isdigit()), default=0) + 1
        create = _dialect_insert(session)(Counter).values(name="first_book", value=first)
        session.execute(create.on_conflict_do_nothing(index_elements=["name"]))
        stored = session.scalar(select(Counter.value).where(Counter.name == "first_book"))
    if stored is None:  # pragma: no cover - the insert above or a concurrent one wrote it
        raise RuntimeError("first_book counter missing after insert")
    return stored


def _dialect_insert(session: Session) -> Any:
    return upsert_insert(session.get_bind().dialect.name)
