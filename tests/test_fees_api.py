"""Fees through the service, on SQLite and PostgreSQL: shown before recording (a quote, and every
filing body), stored at examination and recorded with the instrument (never worked out again, not
even under a new schedule), and the daily fee report a clerk reconciles with the till. Expected
amounts are worked out by hand in the comments (the schedule: tests/data/fee_examples.toml's header)."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select

from hybrid_store import fee_book, fee_schedule
from hybrid_store.db.models import Instrument, InstrumentFee, Submission
from hybrid_store.filing import record_instruments
from hybrid_store.intake import validate
from tests.conftest import NOW, deed, filing, make_sqlite
from tests.test_api import make_service

#: a deed of 2 pages at $350,000: recording $30 + $10 = $40.00, abstract $10.00, surcharge $5.00, and
#: the realty transfer fee (total at most $350,000) 300 x $2.00 + 100 x $3.35 + 300 x $3.90 = $2,105.00
DEED_2_PAGES = {"recording": 4000, "assessor_abstract": 1000, "surcharge": 500, "realty_transfer_fee": 210500}
DEED_2_PAGES_TOTAL = 216000


@pytest.fixture
def svc(tmp_path, db, chain):
    service = make_service(tmp_path, db, chain)
    with service.client:
        yield service


def _lines(fees: dict) -> dict[str, int]:
    return {line["code"]: line["cents"] for line in fees["lines"]}


def _count(db, model) -> int:
    with db.read() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_a_quote_shows_the_fees_and_makes_no_submission(svc):
    r = svc.client.post("/api/v1/fees/quote", json=filing(page_count=2), headers=svc.as_("clerk"))
    assert r.status_code == 200, r.text
    fees = r.json()["fees"]
    assert _lines(fees) == DEED_2_PAGES and fees["totalCents"] == DEED_2_PAGES_TOTAL and fees["total"] == "$2,160.00"
    assert fees["schedule"]["id"] == "bergen-2025-07-10"
    assert _count(svc.db, Submission) == 0 and _count(svc.db, Instrument) == 0
    # what the fees lack is said; an exemption the schedule does not list is refused, naming the field
    r = svc.client.post("/api/v1/fees/quote", json=deed(), headers=svc.as_("clerk"))
    assert r.json()["fees"]["totalCents"] is None and [m["field"] for m in r.json()["fees"]["missing"]] == [
        "page_count"
    ]
    r = svc.client.post("/api/v1/fees/quote", json=deed(exemption_claimed="zz"), headers=svc.as_("clerk"))
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "exemption_claimed"
    r = svc.client.post("/api/v1/fees/quote", json=deed(property_class="9Z"), headers=svc.as_("clerk"))
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "property_class"
    assert svc.client.post("/api/v1/fees/quote", json=deed(), headers=svc.as_("auditor")).status_code == 403


def test_every_filing_body_carries_its_fees(svc):
    recorded = svc.file(filing(page_count=2))  # 201
    assert _lines(recorded["fees"]) == DEED_2_PAGES and recorded["submission"]["fees"] == recorded["fees"]
    r = svc.client.post("/api/v1/instruments", json=deed(page_count=2, parcels=[
        {"municipality_code": "0223", "block": "7", "lot": "7"}]), headers=svc.as_("clerk"))  # fmt: skip
    assert r.status_code == 202 and r.json()["fees"]["totalCents"] == DEED_2_PAGES_TOTAL  # waits: a new parcel
    # a deed stating neither a consideration nor an exemption is refused for it (N.J.S.A. 46:15-6)
    r = svc.client.post("/api/v1/instruments", json=filing(consideration=None, page_count=2), headers=svc.as_("clerk"))
    assert r.status_code == 422 and "no_consideration_or_exemption" in {g["code"] for g in r.json()["error"]["grounds"]}
    assert [m["field"] for m in r.json()["fees"]["missing"]] == ["consideration"]
    # ... and one claiming an exemption is recorded: (j) between husband and wife pays no transfer fee
    exempt = svc.file(filing(consideration=None, page_count=2, exemption_claimed="j", property_class="2"))
    assert _lines(exempt["fees"]) == {**DEED_2_PAGES, "realty_transfer_fee": 0} and exempt["fees"]["totalCents"] == 5500
    sub = svc.client.get(f"/api/v1/submissions/{exempt['submission']['id']}", headers=svc.as_("clerk")).json()
    assert sub["fees"] == exempt["fees"]
    listed = svc.client.get("/api/v1/submissions?state=recorded", headers=svc.as_("clerk")).json()["data"]
    assert {s["fees"]["totalCents"] for s in listed} == {DEED_2_PAGES_TOTAL, 5500}
    with svc.db.read() as s:  # the seam: the stored statement of a recorded instrument, as JSON
        assert fee_book.statement_of(s, exempt["receipt"]["instrumentNumber"]) == exempt["fees"]
        assert fee_book.statement_of(s, "2099-9999999") is None


def test_the_fees_stored_at_examination_survive_a_schedule_change(tmp_path, db, chain):
    path = tmp_path / "fees.toml"
    shipped = fee_schedule.shipped("bergen")
    assert shipped is not None
    path.write_text(shipped, encoding="utf-8")
    svc = make_service(tmp_path, db, chain, fee_schedule=path)
    with svc.client:
        recorded = svc.file(filing(page_count=2))
        r = svc.client.post("/api/v1/instruments", json=deed(page_count=2, parcels=[
            {"municipality_code": "0223", "block": "8", "lot": "8"}]), headers=svc.as_("clerk"))  # fmt: skip
        waiting = r.json()["submission"]["id"]
        # the county raises its first-page fee to $45.00 (the setting's file, read again when it changes)
        path.write_text(shipped.replace("first_page_cents = 30_00", "first_page_cents = 45_00  # raised"), "utf-8")
        quote = svc.client.post("/api/v1/fees/quote", json=deed(page_count=2), headers=svc.as_("clerk")).json()
        assert quote["fees"]["totalCents"] == DEED_2_PAGES_TOTAL + 1500  # a new filing pays the new fee
        confirmed = svc.client.post(f"/api/v1/submissions/{waiting}/confirm", headers=svc.as_("clerk"),
                                    json={"reason": "a parcel new to the book, checked against the tax map"})  # fmt: skip
        assert confirmed.status_code == 200, confirmed.text
        # recorded after the change, with the fees of its examination, not worked out again
        assert confirmed.json()["fees"]["totalCents"] == DEED_2_PAGES_TOTAL
        day = date.fromisoformat(recorded["fees"]["dayOfReceipt"])
        report = svc.client.get(f"/api/v1/fees/report?day={day}", headers=svc.as_("clerk")).json()
        assert [i["totalCents"] for i in report["instruments"]] == [DEED_2_PAGES_TOTAL, DEED_2_PAGES_TOTAL]
        with svc.db.read() as s:
            assert fee_book.statement_of(s, recorded["receipt"]["instrumentNumber"]) == recorded["fees"]


def test_the_day_report_totals_equal_the_sum_of_the_days_filings(svc):
    mortgage = svc.file(filing(doc_type="MORTGAGE", grantors=["MARÍA GARCÍA"], grantees=["FIRST BANK"], page_count=17))
    bodies = [
        svc.file(filing(page_count=2)),
        mortgage,
        svc.file(filing(doc_type="SATISFACTION", grantors=["FIRST BANK"], grantees=["MARÍA GARCÍA"], page_count=1,
                        consideration=None, references=[{"kind": "acts_on_mortgage",
                                                         "instrument_number": mortgage["receipt"]["instrumentNumber"]}])),
        svc.file(filing(consideration="1250000.00", page_count=1, property_class="2",
                        parcels=[{"municipality_code": "0223", "block": "9", "lot": "9"}])),
    ]  # fmt: skip
    # by hand: deed $2,160.00; mortgage of 17 pages $30 + 16 x $10 + $5 = $195.00; satisfaction of one
    # mortgage $30 + $10 notation + $5 = $45.00; deed of $1,250,000 (received after 2025-07-10, class 2):
    # $30 + $10 + $5 + RTF $12,600.00 + graduated 1 % $12,500.00 (the grantor's) = $25,145.00
    assert [b["fees"]["totalCents"] for b in bodies] == [216000, 19500, 4500, 2514500]
    day = bodies[0]["fees"]["dayOfReceipt"]
    r = svc.client.get(f"/api/v1/fees/report?day={day}", headers=svc.as_("clerk"))
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["count"] == 4 and report["incomplete"] == 0
    assert report["totalCents"] == sum(b["fees"]["totalCents"] for b in bodies) == 2754500
    assert [i["instrumentNumber"] for i in sorted(report["instruments"], key=lambda i: i["instrumentNumber"])] == sorted(
        b["receipt"]["instrumentNumber"] for b in bodies)  # fmt: skip
    assert report["byLine"] == {"recording": 29000, "assessor_abstract": 2000, "surcharge": 2000,
                                "marginal_notation": 1000, "realty_transfer_fee": 1470500, "graduated_fee": 1250000}  # fmt: skip
    assert report["byPayer"] == {"filer": 34000, "grantor": 2720500}
    empty = svc.client.get("/api/v1/fees/report?day=2001-01-01", headers=svc.as_("clerk")).json()
    assert empty["count"] == 0 and empty["totalCents"] == 0
    assert svc.client.get(f"/api/v1/fees/report?day={day}", headers=svc.as_("auditor")).status_code == 403
    assert svc.client.get("/api/v1/fees/report?day=1", headers=svc.as_("clerk")).status_code == 422


def test_fee_inputs_are_never_committed(tmp_path):
    """The same filing commits the same bytes with and without its fee inputs."""
    made = []
    for n, extra in enumerate(({}, {"property_class": "4A", "exemption_claimed": "d"})):
        (tmp_path / str(n)).mkdir()
        db = make_sqlite(tmp_path / str(n))
        with db.write() as s:
            body = deed(document_digest="ab" * 32, **extra)
            [rec] = record_instruments(s, [validate(body, now=NOW)], now=NOW, seed=lambda: b"\x07" * 32)
        made.append(rec.commitment)
        db.dispose()
    assert made[0] is not None and made[0] == made[1]


def test_a_filing_under_a_jurisdiction_without_a_schedule_has_no_fees(tmp_path, db, chain):
    svc = make_service(tmp_path, db, chain, jurisdiction="nyc")
    with svc.client:
        body = filing(parcels=[{"borough": "1", "block": "1500", "lot": "1001"}], page_count=2)
        assert svc.client.post("/api/v1/fees/quote", json=body, headers=svc.as_("clerk")).json()["fees"] is None
        assert svc.file(body)["fees"] is None
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(InstrumentFee)) == 0
