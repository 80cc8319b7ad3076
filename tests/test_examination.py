"""Examine, then record (issue 21, items 1 and 4): grounds for refusal as the jurisdiction's data,
landreg's own checks that wait for a confirmation, priority by order of receipt, the statutory
clocks, and no accidental twins, through the API on SQLite and PostgreSQL with an in-process chain."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select

from hybrid_store.db.models import AuditEntry, Parcel, Submission
from hybrid_store.examination import CONFIRMABLE, Finding, Kind, clocks, grounds, unconfirmed
from hybrid_store.intake import validate
from hybrid_store.jurisdictions import get_profile
from hybrid_store.jurisdictions.calendar import easter, nj_legal_holidays
from tests.conftest import deed, scan_digest
from tests.test_api import instruments, make_service

BERGEN = get_profile("bergen")
EVERY = [a.code for a in BERGEN.attestations]
HAWORTH = "0226"


def parcel(block: str, lot: str, place: str = HAWORTH) -> list[dict]:
    return [{"municipality_code": place, "block": block, "lot": lot}]


# --- grounds for refusal: the table -----------------------------------------------------------------------
MORTGAGE_CITED = [{"kind": "acts_on_mortgage", "instrument_number": "2026-0000001"}]
#: (what the filing is, what the clerk attests, the grounds in the profile's order)
TABLE = [
    ("a clean deed", deed(), EVERY, []),
    ("a deed without its preparer", deed(preparer=None), EVERY, ["no_preparer"]),
    ("a deed without the grantee's address", deed(grantee_mailing_address=None), EVERY, ["no_grantee_address"]),
    ("a blank preparer is none", deed(preparer="  "), EVERY, ["no_preparer"]),
    ("a sheriff's deed is a deed", deed(doc_type="SHERIFFS_DEED", preparer=None), EVERY, ["no_preparer"]),
    ("a mortgage needs neither", deed(doc_type="MORTGAGE", preparer=None, grantee_mailing_address=None), EVERY, []),
    *((f"not attested: {code}", deed(), [c for c in EVERY if c != code], [f"not_{code}"]) for code in EVERY),
    ("a satisfaction citing nothing", deed(doc_type="SATISFACTION"), EVERY, ["no_mortgage_cited"]),
    ("a satisfaction citing its mortgage", deed(doc_type="SATISFACTION", references=MORTGAGE_CITED), EVERY, []),
    ("an assignment citing by book and page",
     deed(doc_type="ASSIGNMENT", references=[{"kind": "acts_on_mortgage", "book": "1203", "page": "44"}]), EVERY, []),
    ("an assignment citing the wrong kind",
     deed(doc_type="ASSIGNMENT", references=[{"kind": "discharges_lien", "instrument_number": "2026-0000001"}]),
     EVERY, ["no_mortgage_cited"]),
    ("a discharge citing nothing", deed(doc_type="DISCHARGE_OF_LIEN"), EVERY, ["no_lien_cited"]),
    ("a correction citing nothing", deed(doc_type="CORRECTION"), EVERY, ["no_corrected_cited"]),
    ("a correction linked to what it corrects", deed(doc_type="CORRECTION", corrects="2026-0000001"), EVERY, []),
    ("everything at once", deed(preparer=None, grantee_mailing_address=None), [],
     [f"not_{c}" for c in EVERY] + ["no_preparer", "no_grantee_address"]),
    ("a release: unsigned, citing nothing", deed(doc_type="RELEASE"), [c for c in EVERY if c != "signed"],
     ["not_signed", "no_mortgage_cited"]),
]  # fmt: skip


@pytest.mark.parametrize(("filed", "attested", "expected"), [t[1:] for t in TABLE], ids=[t[0] for t in TABLE])
def test_grounds_are_the_profiles_rules(filed, attested, expected):
    found = grounds(BERGEN, validate(filed, profile=BERGEN), attested)
    assert [f.code for f in found] == expected
    for f in found:  # each in plain words, with its statute, and a ground (never a confirmation)
        assert f.kind == Kind.GROUND and f.statute.startswith("N.J.S.A. 46:26A-") and len(f.words) > 30
        assert unconfirmed([f], CONFIRMABLE) == [f]  # no confirmation ever clears a ground


def test_the_words_say_what_to_do():
    [f] = grounds(BERGEN, validate(deed(preparer=None), profile=BERGEN), EVERY)
    assert f.words == "a deed must name the person who prepared it: enter the preparer"
    assert f.statute == "N.J.S.A. 46:26A-3"
    [f] = grounds(BERGEN, validate(deed(), profile=BERGEN), [c for c in EVERY if c != "fees_tendered"])
    assert (f.code, f.statute) == ("not_fees_tendered", "N.J.S.A. 46:26A-6")


def test_nyc_refuses_for_nothing_it_has_no_statute_for():
    nyc = get_profile("nyc")
    filed = validate(deed(preparer=None, parcels=[{"borough": "1", "block": "1", "lot": "1"}]), profile=nyc)
    assert grounds(nyc, filed, []) == []


def test_confirmations_wait_until_confirmed_and_holds_always_wait():
    new = Finding("new_parcel", Kind.CONFIRMATION, "parcel 0226_99999_77 is not in the registry's book")
    twin = Finding("possible_duplicate", Kind.CONFIRMATION, "already recorded")
    hold = Finding("held_behind", Kind.HELD, "held behind submission 1")
    assert unconfirmed([new, twin], {"new_parcel"}) == [twin]
    assert unconfirmed([new, twin], {"new_parcel", "possible_duplicate"}) == []
    assert unconfirmed([new, hold], CONFIRMABLE | {"held_behind"}) == [hold]
    assert Finding.from_json(new.to_json()) == new


# --- the statutory clocks -----------------------------------------------------------------------------------
def test_nj_legal_holidays():
    assert easter(2026) == date(2026, 4, 5) and easter(2027) == date(2027, 3, 28)
    days = nj_legal_holidays(2026)
    assert {date(2026, 1, 19), date(2026, 4, 3), date(2026, 11, 3), date(2026, 11, 26), date(2026, 6, 19)} <= days
    assert date(2026, 7, 3) in days and date(2026, 7, 4) not in days  # the 4th is a Saturday: kept on Friday
    assert date(2027, 12, 24) not in nj_legal_holidays(2027) or date(2027, 12, 25).weekday() == 5
    assert len(days) == 14


@pytest.mark.parametrize(
    ("received", "record_by", "reject_by"),
    [
        (datetime(2026, 11, 16, 15, 0, tzinfo=UTC), date(2026, 11, 18), date(2026, 11, 19)),  # Monday
        (datetime(2026, 11, 20, 15, 0, tzinfo=UTC), date(2026, 11, 24), date(2026, 11, 25)),  # Friday: weekend
        (datetime(2026, 11, 24, 15, 0, tzinfo=UTC), date(2026, 11, 27), date(2026, 11, 30)),  # Thanksgiving
        (datetime(2026, 11, 2, 15, 0, tzinfo=UTC), date(2026, 11, 5), date(2026, 11, 6)),  # election day, the 3rd
        # 02:00 UTC on a Saturday is still Friday evening in Hackensack
        (datetime(2026, 11, 21, 2, 0, tzinfo=UTC), date(2026, 11, 24), date(2026, 11, 25)),
    ],
)
def test_clocks_count_nj_business_days(received, record_by, reject_by):
    c = clocks(BERGEN, received)
    assert (c.record_by, c.reject_by) == (record_by, reject_by)


# --- through the API ------------------------------------------------------------------------------------------
@pytest.fixture
def svc(tmp_path, db, chain):
    service = make_service(tmp_path, db, chain)
    with service.client:
        # Haworth's book: the registry knows its parcels once one is recorded there
        service.file(deed(parcels=parcel("12", "3"), grantors=["ALAN OWNER"], grantees=["BETTY BUYER"]))
        yield service


def mortgage(**overrides) -> dict:
    """A mortgage of Haworth block 12 lot 3 by its owner of record (no chain-of-title question)."""
    return deed(doc_type="MORTGAGE", parcels=parcel("12", "3"), grantors=["BETTY BUYER"], grantees=["FIRST BANK"],
                consideration="200000.00", **overrides)  # fmt: skip


def post(svc, body: dict, role: str = "clerk", **headers):
    return svc.client.post("/api/v1/instruments", json=body, headers={**svc.as_(role), **headers})


def parcel_rows(svc, key: str) -> int:
    with svc.db.read() as s:
        return s.scalar(select(func.count()).select_from(Parcel).where(Parcel.parcel_key == key))


def test_a_typo_in_the_block_waits_with_no_parcel_or_token_until_confirmed(svc):
    """Issue 21: Haworth block 99999 lot 77 silently created a parcel, an owner of record and a token."""
    before = instruments(svc.db)
    r = post(svc, deed(parcels=parcel("99999", "77")))
    assert r.status_code == 202, r.text
    sub = r.json()["submission"]
    assert sub["state"] == "waiting" and [f["code"] for f in sub["findings"]] == ["new_parcel"]
    assert "0226_99999_77 is not in the registry's book" in sub["findings"][0]["words"]
    assert sub["clocks"]["recordBy"] and sub["clocks"]["rejectBy"] > sub["clocks"]["recordBy"]
    assert r.headers["Location"] == f"/api/v1/submissions/{sub['id']}"
    svc.anchor()  # nothing of it is anchored: no record, no parcel, no token
    assert instruments(svc.db) == before and parcel_rows(svc, "0226_99999_77") == 0
    assert svc.client.get("/api/v1/parcels/0226_99999_77", headers=svc.as_("auditor")).status_code == 404
    queue = svc.client.get("/api/v1/submissions?state=waiting", headers=svc.as_("auditor")).json()
    assert [s["id"] for s in queue["data"]] == [sub["id"]] and queue["data"][0]["clocks"]["recordBy"]

    # confirming takes a clerk and a reason, and is audit-logged
    url = f"/api/v1/submissions/{sub['id']}/confirm"
    assert svc.client.post(url, json={"reason": "ok"}, headers=svc.as_("clerk")).status_code == 422
    assert svc.client.post(url, json={"reason": "new lot per the 2026 tax map"},
                           headers=svc.as_("auditor")).status_code == 403  # fmt: skip
    done = svc.client.post(url, json={"reason": "new lot per the 2026 tax map revision"}, headers=svc.as_("clerk"))
    assert done.status_code == 200, done.text
    assert done.json()["submission"]["state"] == "recorded" and done.json()["receipt"]["parcels"] == ["0226_99999_77"]
    assert instruments(svc.db) == before + 1 and parcel_rows(svc, "0226_99999_77") == 1
    svc.anchor()  # recorded, it is anchored and its parcel gets its token like any other
    view = svc.client.get("/api/v1/parcels/0226_99999_77", headers=svc.as_("auditor")).json()
    assert view["token"]["status"] == "anchored" and view["owner_of_record"]["names"] == ["MARÍA GARCÍA"]
    with svc.db.read() as s:
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "submission.confirm")).one()
    assert entry.details == {"confirmed": ["new_parcel"], "reason": "new lot per the 2026 tax map revision"}
    assert "clerk one" in entry.actor
    again = svc.client.post(url, json={"reason": "new lot per the 2026 tax map"}, headers=svc.as_("clerk"))
    assert again.status_code == 409  # recorded once; nothing left to confirm


def test_the_same_document_with_a_new_idempotency_key_waits_and_records_nothing(svc):
    """Issue 21: over the API, the same document with a new Idempotency-Key was recorded again."""
    body = mortgage()
    assert post(svc, body, **{"Idempotency-Key": "first"}).status_code == 201
    count = instruments(svc.db)
    again = post(svc, body, **{"Idempotency-Key": "second"})
    assert again.status_code == 202, again.text
    [finding] = again.json()["submission"]["findings"]
    assert finding["code"] == "possible_duplicate" and "already recorded as instrument" in finding["words"]
    assert instruments(svc.db) == count
    # the same request with the first key is a replay, not a third submission
    replay = post(svc, body, **{"Idempotency-Key": "second"})
    assert replay.status_code == 202 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["submission"]["id"] == again.json()["submission"]["id"]


def test_the_same_document_while_its_first_submission_waits_is_a_twin_of_that_submission(svc):
    """The digest is looked for among live submissions too, not only recorded instruments: a second
    copy filed while the first still waits is a possible duplicate of that submission (and waits
    behind it on its parcel); a rejected one is no longer anyone's twin: a third copy is the second's."""
    body = deed(parcels=parcel("99998", "3"))
    first = post(svc, body).json()["submission"]
    assert first["state"] == "waiting" and [f["code"] for f in first["findings"]] == ["new_parcel"]
    again = post(svc, body)
    assert again.status_code == 202, again.text
    findings = {f["code"]: f["words"] for f in again.json()["submission"]["findings"]}
    assert f"was already submitted as submission {first['id']}" in findings["possible_duplicate"]
    assert set(findings) == {"new_parcel", "possible_duplicate", "held_behind"}
    url = f"/api/v1/submissions/{first['id']}/reject"
    assert svc.client.post(url, json={"reason": "block 99998 is a typo"}, headers=svc.as_("clerk")).status_code == 200
    third = {f["code"]: f["words"] for f in post(svc, body).json()["submission"]["findings"]}
    second = again.json()["submission"]["id"]
    assert f"was already submitted as submission {second}" in third["possible_duplicate"]


def test_a_twin_by_its_content_waits_too(svc):
    """Another scan of the same deed (type, parties, parcels and consideration) within 30 days."""
    body = mortgage()
    assert post(svc, body).status_code == 201
    twin = post(svc, {**body, "document_digest": scan_digest()})
    assert twin.status_code == 202
    [finding] = twin.json()["submission"]["findings"]
    assert (
        finding["code"] == "possible_duplicate" and "same type, parties, parcels and consideration" in finding["words"]
    )
    other = post(svc, {**body, "document_digest": scan_digest(), "consideration": "20000.00"})
    # a second mortgage of another amount is no twin, but it waits behind the twin on its parcel
    assert [f["code"] for f in other.json()["submission"]["findings"]] == ["held_behind"]
    twin_id = twin.json()["submission"]["id"]
    r = svc.client.post(f"/api/v1/submissions/{twin_id}/reject", json={"reason": "a second copy of 2026-0000002"},
                        headers=svc.as_("clerk"))  # fmt: skip
    assert r.status_code == 200
    released = svc.client.get(f"/api/v1/submissions/{other.json()['submission']['id']}", headers=svc.as_("clerk"))
    assert released.json()["submission"]["state"] == "recorded" and released.json()["receipt"]["instrumentNumber"]


def test_a_mortgage_after_a_waiting_deed_on_its_parcel_is_recorded_after_it(svc):
    """Order is priority: a mortgage received after a deed on the same parcel is never recorded first."""
    deed_sub = post(svc, deed(parcels=parcel("99999", "78"), grantees=["NINA NEWOWNER"])).json()["submission"]
    mortgage = post(svc, deed(doc_type="MORTGAGE", parcels=parcel("99999", "78"), grantors=["NINA NEWOWNER"],
                              grantees=["FIRST BANK"]))  # fmt: skip
    assert mortgage.status_code == 202
    held = mortgage.json()["submission"]
    codes = [f["code"] for f in held["findings"]]
    assert "held_behind" in codes
    hold = next(f for f in held["findings"] if f["code"] == "held_behind")
    assert hold["kind"] == "held" and f"held behind submission {deed_sub['id']} (received" in hold["words"]
    # an unrelated filing elsewhere is not held
    assert post(svc, deed(parcels=parcel("12", "3"), grantors=["BETTY BUYER"], grantees=["C"])).status_code == 201
    # nobody confirms a hold away: the mortgage waits for the deed
    early = svc.client.post(f"/api/v1/submissions/{held['id']}/confirm", json={"reason": "the bank is in a hurry"},
                            headers=svc.as_("clerk"))  # fmt: skip
    assert early.status_code == 409 and f"submission {deed_sub['id']}" in early.json()["error"]["message"]
    before = instruments(svc.db)

    recorded = svc.client.post(f"/api/v1/submissions/{deed_sub['id']}/confirm",
                               json={"reason": "lot created by the 2026 subdivision"}, headers=svc.as_("clerk"))  # fmt: skip
    assert recorded.status_code == 200, recorded.text
    assert instruments(svc.db) == before + 2  # the deed, then the mortgage held behind it
    after = svc.client.get(f"/api/v1/submissions/{held['id']}", headers=svc.as_("auditor")).json()
    assert after["submission"]["state"] == "recorded"
    deed_number = recorded.json()["receipt"]["instrumentNumber"]
    assert after["receipt"]["instrumentNumber"] > deed_number  # numbered in order of receipt
    history = svc.client.get("/api/v1/parcels/0226_99999_78/history", headers=svc.as_("auditor")).json()["entries"]
    assert [e["instrument_number"] for e in history] == [deed_number, after["receipt"]["instrumentNumber"]]


def test_rejecting_the_waiting_deed_releases_the_hold_but_not_the_findings(svc):
    deed_sub = post(svc, deed(parcels=parcel("99999", "79"))).json()["submission"]
    mortgage = post(svc, deed(doc_type="MORTGAGE", parcels=parcel("99999", "79"))).json()["submission"]
    r = svc.client.post(f"/api/v1/submissions/{deed_sub['id']}/reject", json={"reason": "block 99999 is a typo"},
                        headers=svc.as_("clerk"))  # fmt: skip
    assert r.status_code == 200 and r.json()["submission"]["state"] == "rejected"
    after = svc.client.get(f"/api/v1/submissions/{mortgage['id']}", headers=svc.as_("clerk")).json()["submission"]
    assert after["state"] == "waiting" and [f["code"] for f in after["findings"]] == ["new_parcel"]
    assert parcel_rows(svc, "0226_99999_79") == 0


def test_a_rejection_names_every_ground_and_is_kept(svc):
    before = instruments(svc.db)
    body = {**deed(parcels=parcel("99999", "80"), preparer=None, grantee_mailing_address=None),
            "attestations": ["in_english", "signed", "names_printed", "fees_tendered"]}  # fmt: skip
    r = post(svc, body)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "rejected"
    assert [g["code"] for g in error["grounds"]] == ["not_acknowledged", "no_preparer", "no_grantee_address"]
    assert all(g["kind"] == "ground" and g["words"] and g["statute"] for g in error["grounds"])
    kept = svc.client.get(f"/api/v1/submissions/{error['submission']}", headers=svc.as_("clerk")).json()
    assert kept["submission"]["state"] == "rejected" and len(kept["submission"]["grounds"]) == 3
    assert [a["code"] for a in kept["submission"]["attestations"]] == body["attestations"]
    svc.anchor()
    assert instruments(svc.db) == before and parcel_rows(svc, "0226_99999_80") == 0  # never recorded or anchored
    rejected = svc.client.get("/api/v1/submissions?state=rejected", headers=svc.as_("clerk")).json()
    assert [s["id"] for s in rejected["data"]] == [error["submission"]]


def test_findings_confirmed_up_front_record_at_once(svc):
    body = deed(parcels=parcel("99999", "81"))
    missing = post(svc, {**body, "confirm": ["new_parcel"]})
    assert missing.status_code == 422 and missing.json()["error"]["fields"][0]["field"] == "confirm_reason"
    unknown = post(svc, {**body, "confirm": ["everything"], "confirm_reason": "trust me, it is fine"})
    assert unknown.status_code == 422 and unknown.json()["error"]["fields"][0]["rule"] == "unknown_confirmation"
    r = post(svc, {**body, "confirm": ["new_parcel"], "confirm_reason": "new lot on the 2026 tax map"})
    assert r.status_code == 201, r.text
    [given] = r.json()["submission"]["confirmations"]
    assert given["codes"] == ["new_parcel"] and given["up_front"] is True
    with svc.db.read() as s:
        sub = s.get(Submission, r.json()["submission"]["id"])
        assert sub.state == "recorded" and sub.instrument_id is not None


def test_grantors_who_are_not_the_owners_wait(svc):
    r = post(svc, deed(parcels=parcel("12", "3"), grantors=["NOT THE OWNER"], grantees=["X"]))
    assert r.status_code == 202
    [finding] = r.json()["submission"]["findings"]
    assert finding["code"] == "grantor_not_owner" and "BETTY BUYER" in finding["words"]


def test_one_form_token_makes_one_submission_however_often_it_is_posted(svc):
    """The desk's double click, at the service: concurrent posts of one form token make one
    submission and one record; the others get the first one back (the unique token decides)."""
    import threading

    app = svc.client.app
    actor = app.state.keys.actor_by_id(svc.keys["clerk"].split("_")[1])
    body = deed(parcels=parcel("12", "3"), grantors=["BETTY BUYER"], grantees=["DORA DOE"])
    before = instruments(svc.db)
    barrier = threading.Barrier(4)
    results: list = []

    def post_form() -> None:
        barrier.wait()
        results.append(app.state.services.filing.file(actor, dict(body), channel="desk", form_token="form-1"))

    threads = [threading.Thread(target=post_form) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({r.submission_id for r in results}) == 1 and len(results) == 4
    assert sum(not r.replayed for r in results) == 1
    assert {str(r.state) for r in results} == {"recorded"}
    assert instruments(svc.db) == before + 1


def test_a_correction_is_no_twin_of_what_it_corrects(svc):
    original = post(svc, mortgage())
    assert original.status_code == 201
    number = original.json()["receipt"]["instrumentNumber"]
    fixed = svc.client.post(f"/api/v1/instruments/{number}/corrections", headers=svc.as_("clerk"),
                            json=mortgage(legal_description="Lot 3, not lot 4."))  # fmt: skip
    assert fixed.status_code == 201, fixed.text
    assert fixed.json()["receipt"]["corrects"] == number


def test_revision_0014_keeps_a_form_token_to_one_submission(db):
    """What the revision guarantees on both databases: a form token makes at most one submission
    (the unique index decides a race), and a submission is only ever in a state the table knows."""
    from sqlalchemy.exc import IntegrityError

    def row(token: str) -> Submission:
        return Submission(received_at=datetime.now(UTC), submitter="t", channel="desk", filing={}, doc_type="DEED",
                          document_digest="0" * 64, parcel_keys=[], state="waiting", findings=[], attestations=[],
                          confirmations=[], form_token=token)  # fmt: skip

    with db.write() as s:
        s.add(row("once"))
    with pytest.raises(IntegrityError), db.write() as s:
        s.add(row("once"))
        s.flush()
    with pytest.raises(IntegrityError), db.write() as s:  # a state the table does not know
        bad = row("other")
        bad.state = "lost"
        s.add(bad)
        s.flush()
