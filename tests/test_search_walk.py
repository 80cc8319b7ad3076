"""A name in recording order through ``instrument_terms`` (revision 0022), cross-checked against the
naive search: every instrument read, the name rule itself (``NameRules.matches``) applied to each
party, sorted in Python. Once with the thresholds as shipped (a small book: each term is walked to
its end), once scaled to the book, so the walk that stops at the page, the few instruments read by
id and the planner's plan each answer some of the searches."""

from __future__ import annotations

import random
from datetime import date, datetime

import pytest
from sqlalchemy import event, select

from hybrid_store.core.records import DocType
from hybrid_store.db.models import Instrument, InstrumentParcel, InstrumentParty, InstrumentTerm, Parcel
from hybrid_store.filing import record_instruments
from hybrid_store.intake import validate
from hybrid_store.jurisdictions import get_profile
from migration_tools.synthetic import BergenBook
from registry_service.services import search
from registry_service.services.search import Criteria, Sort
from tests.conftest import NOW

BERGEN = get_profile("bergen")


@pytest.fixture
def book(db):
    """A synthetic book of 700 instruments (banks on hundreds of mortgages, 60 first names, 50
    surnames), and what the naive search reads: each instrument's time, type, places and names."""
    with db.write() as s:
        record_instruments(s, [validate(i, now=NOW) for i in BergenBook(700, seed=24)], source="legacy",
                           with_commitments=False)  # fmt: skip
    with db.read() as s:
        rows = {i: {"at": at, "type": t, "names": [], "places": set()}
                for i, at, t in s.execute(select(Instrument.id, Instrument.recorded_at, Instrument.doc_type))}  # fmt: skip
        for i, name in s.execute(select(InstrumentParty.instrument_id, InstrumentParty.name)):
            rows[i]["names"].append(name)
        for i, place in s.execute(select(InstrumentParcel.instrument_id, Parcel.municipality_code)
                                  .join(Parcel, Parcel.id == InstrumentParcel.parcel_id)):  # fmt: skip
            rows[i]["places"].add(place)
    return db, rows


def naive(rows: dict, c: Criteria, sort: Sort) -> list[tuple[datetime, int]]:
    """Every instrument ``c`` finds, as (recorded, id) in ``sort`` order."""

    def wanted(r: dict) -> bool:
        return (
            any(BERGEN.name_rules.matches(c.party or "", n) for n in r["names"])
            and (not c.place or c.place in r["places"])
            and (not c.doc_type or r["type"] == c.doc_type)
            and (not c.recorded_from or r["at"].date() >= c.recorded_from)
            and (not c.recorded_to or r["at"].date() <= c.recorded_to)
        )

    return sorted(((r["at"], i) for i, r in rows.items() if wanted(r)), reverse=sort is Sort.NEWEST)


def criteria(rows: dict) -> list[Criteria]:
    rng = random.Random(24)
    names = sorted({n for r in rows.values() for n in r["names"]})
    people = [n for n in names if "," not in n and len(n.split()) >= 2]
    places = sorted({p for r in rows.values() for p in r["places"]})
    out = [Criteria(party="JOHN QUICKEN"), Criteria(party="VALLEY NATIONAL BANK"), Criteria(party="bank valley"),
           Criteria(party="M&T", place=places[0]), Criteria(party="J S"), Criteria(party="SMITH JR"),
           Criteria(party="QUICKEN LOANS", doc_type=DocType.SATISFACTION), Criteria(party="ZZZ")]  # fmt: skip
    for _ in range(12):
        name = rng.choice(people).replace(",", "")
        words = name.split()
        out += [
            Criteria(party=name),
            Criteria(party=" ".join([words[-1], *words[:-1]])),
            Criteria(party=words[0]),
            Criteria(party=words[-1][:3]),
            Criteria(party=words[0], place=rng.choice(places)),
            Criteria(party=words[-1], recorded_from=date(2000, 1, 1), recorded_to=date(2012, 12, 31)),
            Criteria(party=f"{words[0]} {rng.choice(people).split()[-1]}"),
        ]
    return out


@pytest.mark.parametrize("scale", ["as shipped", "scaled to the book"])
def test_a_name_in_recording_order_finds_what_the_naive_search_finds(book, scale, monkeypatch):
    db, rows = book
    page = 7  # as shipped; scaled, pages of 3 (a cursor lands amid the few instruments of a rare name)
    if scale == "scaled to the book":
        page = 3
        for name, value in (("FEW", 20), ("COUNTED", 80), ("FIRST_WINDOW_PAGES", 1), ("MAX_WINDOW", 32)):
            monkeypatch.setattr(search, name, value)
    statements: list[str] = []
    event.listen(db.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    late = 0  # searches that asked the full-text index after more than one window
    for c in criteria(rows):
        for sort in (Sort.NEWEST, Sort.OLDEST):
            expected = [i for _, i in naive(rows, c, sort)]
            cursor, seen = None, []
            while True:  # the first pages, each after the last one's cursor
                start = len(statements)
                with db.read() as s:
                    ids, more = search.find(s, BERGEN, c, sort=sort, cursor=cursor, limit=page, require_criteria=True,
                                            dialect=db.dialect)  # fmt: skip
                seen += ids
                this = statements[start:]
                asked = [n for n, q in enumerate(this) if "WITH named AS" in q]
                late += bool(asked) and sum("instrument_terms" in q and " AS ok" in q for q in this[: asked[0]]) > 1
                assert seen == expected[: len(seen)] and more == (len(expected) > len(seen)), (c, sort, cursor)
                if not more or len(seen) >= 4 * page:
                    break
                cursor = str(ids[-1])
    walked = [q for q in statements if "instrument_terms" in q and " AS ok" in q]
    read_by_id = [q for q in statements if "WITH named AS" in q]
    planned = [q for q in statements if q.lstrip().startswith("SELECT instruments.id") and "ORDER BY" in q]
    assert walked and planned  # the initials (J S) and the bank's satisfactions: the planner's plan
    assert read_by_id or scale == "as shipped"  # a book this small has no common word at the shipped scale
    # a name whose first window passed enough but whose later ones thin out asks the index then too
    assert late or scale == "as shipped"


def test_filing_writes_the_terms_an_instrument_is_found_by(book):
    db, rows = book
    with db.read() as s:
        iid = next(i for i, r in rows.items() if len(r["places"]) == 1 and r["names"])
        terms = set(s.scalars(select(InstrumentTerm.term).where(InstrumentTerm.instrument_id == iid)))
        stamps = set(s.scalars(select(InstrumentTerm.recorded_at).where(InstrumentTerm.instrument_id == iid)))
    words = {w for n in rows[iid]["names"] for w in BERGEN.name_rules.words(n)}
    assert terms == words | {f"@{p}" for p in rows[iid]["places"]}
    assert stamps == {rows[iid]["at"]}  # in the instrument's place in the order
