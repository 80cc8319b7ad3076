"""The synthetic Bergen County book: reproducible, valid, realistic."""

from __future__ import annotations

import collections
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from hybrid_store.intake import validate
from hybrid_store.jurisdictions import get_profile
from migration_tools.synthetic import BergenBook

FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC)


def test_same_seed_same_book_other_seed_other_book():
    assert list(BergenBook(500, seed=3)) == list(BergenBook(500, seed=3))
    assert list(BergenBook(500, seed=3)) != list(BergenBook(500, seed=4))


def test_exact_size_valid_and_in_recording_order():
    book = list(BergenBook(3000, seed=5))
    assert len(book) == 3000
    parsed = [validate(i, now=FAR_FUTURE) for i in book]
    times = [p.recorded_at for p in parsed]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert len({i["instrument_number"] for i in book}) == 3000
    assert len({(i["book"], i["page"]) for i in book}) == 3000
    assert times[0].year == 1990 and times[-1].year >= 2020  # decades of history


@settings(max_examples=30, deadline=None)
@given(size=st.integers(1, 1500), seed=st.integers(0, 10_000))
def test_any_size_gives_exactly_that_many_recorded_in_the_past(size, seed):
    """Small books can outlive their first holdings; the generator tops them up, never short."""
    book = list(BergenBook(size, seed=seed))
    assert len(book) == size == len({i["instrument_number"] for i in book})
    times = [validate(i, now=datetime(2026, 11, 1, tzinfo=UTC)).recorded_at for i in book]
    assert times == sorted(times)


def test_realistic_content():
    book = list(BergenBook(6000, seed=9))
    types = collections.Counter(i["doc_type"] for i in book)
    for doc_type in ("DEED", "MORTGAGE", "SATISFACTION", "ASSIGNMENT", "LIEN", "LIS_PENDENS", "EASEMENT"):
        assert types[doc_type] > 0, doc_type
    assert types["DEED"] > types["LIEN"] and types["MORTGAGE"] > types["ASSIGNMENT"]
    parcels = [p for i in book for p in i["parcels"]]
    munis = {p["municipality_code"] for p in parcels}
    assert (
        munis <= get_profile("bergen").place_codes() and len(munis) > 25
    )  # blocks of ~14 lots each; 20,000 instruments reach ~60
    assert any(p["qualifier"].startswith("C") for p in parcels)  # condominium units
    assert any("." in p["block"] for p in parcels)  # split blocks
    assert sum(len(i["parcels"]) > 1 for i in book) > 10  # multi-parcel instruments
    assert sum(len(i["grantors"]) > 1 for i in book) > len(book) / 10  # couples, estates
    assert any(any(ord(c) > 127 for c in n) for i in book for n in i["grantees"])  # accented names
    numbers = {i["instrument_number"]: i for i in book}
    corrections = [i for i in book if i["doc_type"] == "CORRECTION"]
    assert corrections and all(numbers[c["corrects"]]["doc_type"] == "DEED" for c in corrections)
    # chain of title: a later deed of a parcel is granted by the grantees of its previous deed
    last_owner: dict[tuple, list[str]] = {}
    matches = checks = 0
    for i in book:
        if i["doc_type"] != "DEED":
            continue
        key = tuple(sorted(p["municipality_code"] + p["block"] + p["lot"] + p["qualifier"] for p in i["parcels"]))
        if key in last_owner:
            checks += 1
            matches += i["grantors"] == last_owner[key] or i["grantors"][0] == "SHERIFF OF BERGEN COUNTY" or \
                i["grantors"][0].startswith("ESTATE OF")  # fmt: skip
        last_owner[key] = i["grantees"]
    assert checks > 100 and matches / checks > 0.99
