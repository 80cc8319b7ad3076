"""The search a clerk expects (issue 24, item 1) and the queues (item 2): name rules, every search
form, keyset pages under concurrent filings, refusals in plain words, and the queues' listings."""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from hybrid_store.db.models import PartyNameKey
from hybrid_store.jurisdictions import get_profile
from hybrid_store.jurisdictions.names import LETTERS, NameRules
from tests.conftest import deed, filing
from tests.test_api import make_service

BERGEN = get_profile("bergen")
RULES = BERGEN.name_rules
PARCEL = {"municipality_code": "0223", "block": "100.01", "lot": "5"}


# --- the name rules (pure) --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("query", "name", "found"),
    [
        ("SOREN", "SØREN KIERKEGAARD", True),
        ("soren kierkegaard", "Søren Kierkegaard", True),
        ("AERO", "ÆRØ HOLDINGS", True),
        ("LUKASZ", "ŁUKASZ NOWAK", True),
        ("STRASSE", "Straße Realty", True),
        ("DORDE", "ĐORĐE PETROVIĆ", True),
        ("PETROVIC", "ĐORĐE PETROVIĆ", True),
        ("THORSSON", "ÞÓRSSON", True),
        ("OEUVRE", "ŒUVRE LLC", True),
        ("GARCIA MARIA", "MARÍA GARCÍA", True),
        ("SMITH JOHN", "John Smith", True),
        ("smith, john", "JOHN SMITH", True),
        ("OBRIEN", "Patrick O'Brien", True),
        ("JOHN SMITH", "JOHN SMITH JR", True),  # a suffix widens: the search says nothing of one
        ("JOHN SMITH JR", "JOHN SMITH", False),  # ... but asked for, it must be there
        ("JOHN SMITH JR", "JOHN SMITH SR", False),
        ("JOHN SMITH JR", "John Smith, Jr.", True),
        ("JOHN SMITH JR", "JOHN SMITH JUNIOR", True),  # the profile's spellings of one suffix
        ("JOHN SMITH III", "JOHN SMITH 3RD", True),
        ("JR", "JRX HOLDINGS", False),  # a suffix is a whole word
        ("SMI", "JOHN SMITH", True),  # each word begins a word of the name
        ("MITH", "JOHN SMITH", False),
        ("JOHN SMITH", "JANE SMITH", False),
    ],
)
def test_name_rules(query, name, found):
    assert RULES.matches(query, name) is found


def test_every_listed_letter_folds_to_plain_ascii_letters():
    for letter in LETTERS:
        assert re.fullmatch(r" [A-Z]+ ", RULES.key(letter)), letter


def test_a_profile_without_suffixes_keeps_jr_as_an_ordinary_word():
    plain = NameRules()
    assert RULES.matches("JOHN SMITH JUNIOR", "JOHN SMITH JR") and not plain.matches(
        "JOHN SMITH JUNIOR", "JOHN SMITH JR"
    )
    assert plain.matches("JOHN SMITH JR", "JOHN SMITH JRX")  # an ordinary word: a prefix is enough
    assert plain.key("John Smith Junior") == " JOHN SMITH JUNIOR " and RULES.key("John Smith Junior").endswith(" JR ")


@pytest.mark.parametrize(
    ("profile", "typed", "key"),
    [
        ("bergen", "0223_100.01_5", "0223_100.01_5"),
        ("bergen", "0223-100.01-5", "0223_100.01_5"),
        ("bergen", "0223 block 0100.01 lot 5", "0223_100.01_5"),
        ("bergen", "0223/100.01/5/C0001", "0223_100.01_5_C0001"),
        ("nyc", "1-00123-0045", "1-00123-0045"),
        ("nyc", "1001230045", "1-00123-0045"),
        ("nyc", "1 123 45", "1-00123-0045"),
    ],
)
def test_a_parcel_in_any_spelling_the_profile_reads(profile, typed, key):
    assert get_profile(profile).parcel_from_text(typed).key == key


# --- the API ----------------------------------------------------------------------------------------
@pytest.fixture
def svc(tmp_path, db, chain):
    service = make_service(tmp_path, db, chain)
    with service.client:
        yield service


def search(svc, role: str = "clerk", **params) -> dict:
    r = svc.client.get("/api/v1/instruments", params=params, headers=svc.as_(role))
    assert r.status_code == 200, r.text
    return r.json()


def numbers(page: dict) -> list[str]:
    return [i["instrument_number"] for i in page["data"]]


def test_name_search_follows_the_profiles_rules_through_the_index(svc):
    names = ["SØREN KIERKEGAARD", "John Smith", "JOHN SMITH JR.", "JANE SMITH", "Patrick O'Brien"]
    filed = {n: svc.file(filing(grantors=["PRIOR OWNER"], grantees=[n]))["receipt"]["instrumentNumber"]
             for n in names}  # fmt: skip
    assert numbers(search(svc, party="SOREN")) == [filed["SØREN KIERKEGAARD"]]
    assert set(numbers(search(svc, party="smith john"))) == {filed["John Smith"], filed["JOHN SMITH JR."]}
    assert numbers(search(svc, party="JOHN SMITH JR")) == [filed["JOHN SMITH JR."]]
    assert numbers(search(svc, party="obrien")) == [filed["Patrick O'Brien"]]
    # an initial: on PostgreSQL a filter beside the index, never a prefix query over every J word
    assert set(numbers(search(svc, party="j smith"))) == {filed["John Smith"], filed["JOHN SMITH JR."],
                                                          filed["JANE SMITH"]}  # fmt: skip
    assert numbers(search(svc, party="K SØREN")) == [filed["SØREN KIERKEGAARD"]]
    assert len(search(svc, party="SMITH")["data"]) == 3
    with svc.db.read() as s:  # what the index holds: the folded words, suffix included
        keys = set(s.scalars(select(PartyNameKey.name_key)))
    assert " SOREN KIERKEGAARD " in keys and " JOHN SMITH JR " in keys


def test_search_by_number_book_and_page_parcel_type_and_dates(svc):
    first = svc.file(filing(document_date="2026-01-15"))["receipt"]
    svc.file(filing(doc_type="MORTGAGE", parcels=[{"municipality_code": "0223", "block": "7", "lot": "2"}],
                    document_date="2025-06-01"))  # fmt: skip
    number = first["instrumentNumber"]
    found = search(svc, number=number.lower())
    assert numbers(found) == [number]
    row = found["data"][0]
    assert numbers(search(svc, book=row["book"], page=row["page"])) == [number]
    for spelling in ("0223_100.01_5", "0223-100.01-5", "0223 BLOCK 100.01 LOT 5"):
        assert numbers(search(svc, parcel=spelling)) == [number]
    assert len(search(svc, municipality="0223")["data"]) == 2  # a municipality alone: all of its parcels
    assert len(search(svc, municipality="0223", block="7")["data"]) == 1
    assert numbers(search(svc, dated_from="2026-01-01")) == [number]
    assert len(search(svc, dated_to="2025-12-31", type="MORTGAGE")["data"]) == 1
    assert search(svc, dated_to="2025-12-31", type="DEED")["data"] == []  # combined: every criterion holds
    today = datetime.now(UTC).date().isoformat()
    assert len(search(svc, **{"from": today, "to": today})["data"]) == 2
    assert search(svc, party="SMITH", municipality="0223", block="7", type="MORTGAGE")["count"] == 1


@pytest.mark.parametrize(
    ("params", "field", "words"),
    [
        ({"block": "5", "lot": "1"}, "municipality", "choose the municipality as well"),
        ({"municipality": "0223", "lot": "1"}, "block", "enter the block too"),
        ({"page": "12"}, "book", "enter the book too"),
        ({"dated_from": "2026-02-01", "dated_to": "2026-01-01"}, "dated_from", "swap them"),
        ({"party": "--"}, "party", "type at least one"),
        ({"parcel": "hackensack"}, "parcel", "write it as CCDD_BLOCK_LOT"),
        ({"municipality": "9999"}, "municipality", "not a municipality of Bergen County"),
        ({"cursor": "999999"}, "cursor", "start the search again"),
    ],
)
def test_an_impossible_search_says_why(svc, params, field, words):
    svc.file(filing())
    r = svc.client.get("/api/v1/instruments", params=params, headers=svc.as_("clerk"))
    assert r.status_code == 422, r.text
    problem = r.json()["error"]["fields"][0]
    assert problem["field"] == field and words in problem["message"], problem


@pytest.mark.timeout(300)
def test_pages_follow_each_other_with_no_gap_or_repeat_while_clerks_file(svc):
    before = [svc.file(filing(grantees=[f"BUYER {i}"]))["receipt"]["instrumentNumber"] for i in range(57)]
    for sort, expected in (("-recorded", before[::-1]), ("recorded", before), ("number", sorted(before))):
        seen: list[str] = []
        url = f"/api/v1/instruments?party=buyer&limit=25&sort={sort}"
        while url:
            r = svc.client.get(url, headers=svc.as_("auditor"))
            assert r.status_code == 200, r.text
            seen += numbers(r.json())
            url = r.json()["next"]
            if url:  # filed while the clerk looks at this page: never shifts the next one
                svc.file(filing(grantees=[f"BUYER LATE {len(seen)}"]))
        late = [n for n in seen if n not in before]
        assert len(seen) == len(set(seen))
        assert [n for n in seen if n in before] == expected
        assert sort == "-recorded" and late == [] or sort != "-recorded"  # newest first: they come before page 1


def test_pages_stay_whole_under_concurrent_filings(svc):
    for i in range(30):
        svc.file(filing(grantees=[f"HOLDER {i}"]))
    stop = threading.Event()
    errors: list[BaseException] = []

    def file_meanwhile():
        try:
            while not stop.is_set():
                svc.file(filing(grantees=["HOLDER LATE"]))
                time.sleep(0.01)
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=file_meanwhile)
    worker.start()
    try:
        seen: list[str] = []
        page = search(svc, party="HOLDER", limit=7, sort="recorded")
        first_ids = numbers(page)
        seen += first_ids
        while page["next_cursor"] and len(seen) < 30:
            page = search(svc, party="HOLDER", limit=7, sort="recorded", cursor=page["next_cursor"])
            seen += numbers(page)
    finally:
        stop.set()
        worker.join()
    assert errors == []
    assert len(seen) == len(set(seen)) and len(seen) >= 30
    assert seen == sorted(seen)  # recorded in number order, oldest first: no gap, no repeat


# --- the queues -------------------------------------------------------------------------------------
def test_queues_today_mine_and_review(svc):
    svc.file(filing(grantors=["PRIOR OWNER"], grantees=["ANNA ADAMS"]))
    flagged = svc.file(filing(grantors=["NOT THE OWNER"], grantees=["BEN BAKER"]))  # confirmed, flagged
    waiting = svc.client.post("/api/v1/instruments", headers=svc.as_("clerk"),
                              json=deed(parcels=[{"municipality_code": "0223", "block": "88", "lot": "8"}]))  # fmt: skip
    assert waiting.status_code == 202, waiting.text
    counts = svc.client.get("/api/v1/queues", headers=svc.as_("clerk")).json()
    assert counts == {"today": 3, "mine": 3, "waiting": 1, "open_flags": 1, "review": 2}
    assert svc.client.get("/api/v1/queues", headers=svc.as_("auditor")).json()["mine"] == 0
    today = svc.client.get("/api/v1/queues/today", headers=svc.as_("auditor")).json()
    assert [s["state"] for s in today["data"]] == ["waiting", "recorded", "recorded"]  # newest first
    mine = svc.client.get("/api/v1/queues/mine", headers=svc.as_("clerk")).json()
    assert mine["count"] == 3
    review = svc.client.get("/api/v1/queues/review", headers=svc.as_("clerk")).json()
    assert [s["id"] for s in review["submissions"]] == [waiting.json()["submission"]["id"]]
    assert [(f["instrument_number"], f["kind"]) for f in review["flags"]] == [
        (flagged["receipt"]["instrumentNumber"], "grantor_not_owner")
    ]


# --- the desk ---------------------------------------------------------------------------------------
def desk_sign_in(svc, role: str = "clerk") -> None:
    token = re.search(r'name="csrf" value="([^"]+)"', svc.client.get("/desk/login").text).group(1)
    r = svc.client.post("/desk/login", data={"api_key": svc.keys[role], "csrf": token}, follow_redirects=False)
    assert r.status_code == 303, r.text


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("search=1", "Enter something to search for"),
        ("search=1&municipality=&block=100.01&lot=5", "choose the municipality as well"),
        ("search=1&book=&page=4", "enter the book too"),
        ("search=1&recorded_from=2026-13-01", "is not a date: write it as YYYY-MM-DD"),
    ],
)
def test_the_desk_says_why_a_search_finds_nothing(svc, query, words):
    desk_sign_in(svc)
    r = svc.client.get(f"/desk/?{query}")
    assert r.status_code == 422 and words in r.text, r.text
    assert 'role="alert"' in r.text


def test_the_desk_pages_past_25_with_book_and_page_and_shows_the_queue_counts(svc):
    for i in range(27):
        svc.file(filing(grantees=[f"SØREN BUYER {i}"]))
    desk_sign_in(svc)
    home = svc.client.get("/desk/")
    assert home.status_code == 200 and 'id="queue-today"' in home.text and "Enter something" not in home.text
    first = svc.client.get("/desk/?search=1&party=SOREN&municipality=0223")  # a name and a municipality alone
    assert "Instruments 1–25" in first.text and "<th>Book</th><th>Page</th>" in first.text
    more = re.search(r'href="([^"]+)" id="next-page"', first.text).group(1).replace("&amp;", "&")
    second = svc.client.get(more)
    assert "Instruments 26–27, the last that match" in second.text and 'id="next-page"' not in second.text
    rows = re.findall(r'href="/desk/instruments/([^"]+)"', first.text + second.text)
    assert len(rows) == 27 == len(set(rows))
    for path, marker in (("/desk/queues/today", "SØREN" and "recorded"), ("/desk/queues/mine", "recorded"),
                         ("/desk/queues/review", "No submission is waiting")):  # fmt: skip
        page = svc.client.get(path)
        assert page.status_code == 200 and marker in page.text, path
