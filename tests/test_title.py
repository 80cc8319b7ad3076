"""Corrections and title (issue 21, item 3): a correction re-records the instrument it corrects
and is judged against the title as it stood before that instrument; owners of record follow a
correction that changes grantees; "corrected by" on the original's pages; deeds an officer or a
court makes for the owner; flags that change who owns a parcel are resolved only by recording an
instrument, other flags are acknowledged with a reason by an authorised person (audit-logged)."""

from __future__ import annotations

import pytest

from tests.conftest import deed, desk_attestations, filing, recorded_on_desk
from tests.test_api import make_service

PARCEL = "0223_100.01_5"


@pytest.fixture
def svc(tmp_path, db, chain):
    service = make_service(tmp_path, db, chain)
    with service.client:
        yield service


def number_of(result: dict) -> str:
    return result["receipt"]["instrumentNumber"]


def correct(svc, number: str, body: dict, role: str = "clerk") -> dict:
    r = svc.client.post(f"/api/v1/instruments/{number}/corrections", json=body, headers=svc.as_(role))
    assert r.status_code == 201, r.text
    return r.json()


def owners(svc, key: str = PARCEL) -> tuple[list[str], str]:
    owner = svc.client.get(f"/api/v1/parcels/{key}", headers=svc.as_("auditor")).json()["owner_of_record"]
    return owner["names"], owner["instrument_number"]


# --- (a) a correction is judged against the title before what it corrects --------------------------
@pytest.mark.parametrize("doc_type", ["DEED", "CORRECTION"])
def test_a_price_only_correction_raises_no_conveyance_flag(svc, doc_type):
    """The issue's walk: deed 2026-0000717 corrected for its price only was flagged
    conflicting_conveyance against the very deed it corrects."""
    svc.file(filing(grantors=["PRIOR OWNER"], grantees=["JOHN Q. SMITH", "MARY SMITH"]))
    original = number_of(svc.file(filing()))  # the Smiths convey to María García
    assert owners(svc) == (["MARÍA GARCÍA"], original)
    fixed = correct(svc, original, deed(doc_type=doc_type, consideration="355000.00"))
    assert fixed["flags"] == []
    view = svc.client.get(f"/api/v1/instruments/{number_of(fixed)}", headers=svc.as_("auditor")).json()
    assert view["flags"] == []
    parcel = svc.client.get(f"/api/v1/parcels/{PARCEL}", headers=svc.as_("auditor")).json()
    assert parcel["open_flags"] == 0
    # the correction re-records the owners' conveyance: the owners of record follow it
    assert owners(svc) == (["MARÍA GARCÍA"], number_of(fixed))


def desk_correct(svc, number: str, **changes: str) -> tuple[str, str]:
    """A correction of ``number`` on the desk's form, prefilled from the original (its type
    included, as a clerk leaves it), with ``changes``: the new number and the page it lands on."""
    import re

    form = svc.client.get(f"/desk/file?corrects={number}").text
    fields = dict(re.findall(r'<input[^>]* name="([a-z_0-9]+)"[^>]* value="([^"]*)"', form))
    fields.update(re.findall(r'<textarea[^>]* name="([a-z_]+)"[^>]*>([^<]*)</textarea>', form))
    fields["doc_type"] = re.search(r"<option selected>([A-Z_]+)</option>", form).group(1)
    fields["municipality_0"] = re.search(r'<option value="([0-9]+)" selected', form).group(1)
    assert (fields["doc_type"], fields["block_0"], fields["lot_0"]) == ("DEED", "100.01", "5")  # prefilled
    filed = svc.client.post("/desk/file", data={**fields, **desk_attestations(), **changes}, follow_redirects=False)
    assert filed.status_code == 303, filed.text
    instrument, told = recorded_on_desk(svc, filed.headers["location"])
    return instrument.rsplit("/", 1)[1], told + svc.client.get(instrument).text


def test_a_price_only_correction_on_the_desk_raises_no_conveyance_flag(svc):
    from tests.test_role_matrix import desk_session

    svc.file(filing(grantors=["PRIOR OWNER"], grantees=["JOHN Q. SMITH", "MARY SMITH"]))
    original = number_of(svc.file(filing()))
    desk_session(svc, "clerk")
    fixed, page = desk_correct(svc, original, consideration="355,000.00")
    assert f"Recorded as instrument {fixed}." in page and "Flagged" not in page
    assert "$355,000.00" in page and f'<a href="/desk/instruments/{original}">{original}</a>' in page
    assert owners(svc) == (["MARÍA GARCÍA"], fixed) and open_flags(svc) == 0


def test_a_correction_that_changes_grantees_moves_the_owners_of_record(svc):
    svc.file(filing(grantors=["PRIOR OWNER"], grantees=["JOHN Q. SMITH", "MARY SMITH"]))
    original = number_of(svc.file(filing(grantees=["MARIA GARCIA"])))  # the name was misspelt on the deed
    fixed = correct(svc, original, deed(doc_type="CORRECTION", grantees=["MARÍA GARCÍA", "LUIS GARCÍA"]))
    assert fixed["flags"] == []
    assert owners(svc) == (["MARÍA GARCÍA", "LUIS GARCÍA"], number_of(fixed))
    # the next owners convey as the correction names them, without a flag
    sale = svc.file(filing(grantors=["MARÍA GARCÍA", "LUIS GARCÍA"], grantees=["NEW BUYER"]))
    assert sale["flags"] == [] and owners(svc) == (["NEW BUYER"], number_of(sale))


@pytest.mark.parametrize("doc_type", ["DEED", "CORRECTION"])
def test_a_correction_of_a_deed_the_title_moved_on_from_leaves_the_owners_alone(svc, doc_type):
    svc.file(filing(grantors=["PRIOR OWNER"], grantees=["JOHN Q. SMITH", "MARY SMITH"]))
    original = number_of(svc.file(filing()))
    later = number_of(svc.file(filing(grantors=["MARÍA GARCÍA"], grantees=["NEW BUYER"])))
    fixed = correct(svc, original, deed(doc_type=doc_type, consideration="1.00"))
    assert fixed["flags"] == []  # neither against the corrected deed nor against the later one
    assert owners(svc) == (["NEW BUYER"], later)


def test_a_correction_from_someone_else_than_the_corrected_deeds_grantors_is_still_flagged(svc):
    svc.file(filing(grantors=["PRIOR OWNER"], grantees=["JOHN Q. SMITH", "MARY SMITH"]))
    original = number_of(svc.file(filing()))
    fixed = correct(svc, original, deed(doc_type="CORRECTION", grantors=["A STRANGER"]))
    assert [f["kind"] for f in fixed["flags"]] == ["grantor_not_owner"]
    assert "JOHN Q. SMITH; MARY SMITH" in fixed["flags"][0]["message"]
    assert owners(svc) == (["MARÍA GARCÍA"], original)


# --- (b) "corrected by N" on the original's pages ---------------------------------------------------
def test_the_corrected_original_says_corrected_by_on_the_api_and_the_desk(svc):
    from tests.test_role_matrix import desk_session

    svc.file(filing(grantors=["PRIOR OWNER"], grantees=["JOHN Q. SMITH", "MARY SMITH"]))
    original = number_of(svc.file(filing()))
    fixed = number_of(correct(svc, original, deed(doc_type="CORRECTION", consideration="355000.00")))
    h = svc.as_("auditor")
    assert svc.client.get(f"/api/v1/instruments/{original}", headers=h).json()["corrected_by"] == [fixed]
    entries = {e["instrument_number"]: e for e in
               svc.client.get(f"/api/v1/parcels/{PARCEL}/history", headers=h).json()["entries"]}  # fmt: skip
    assert entries[original]["corrected_by"] == [fixed] and entries[fixed]["corrects"] == original
    assert entries[fixed]["corrected_by"] == []
    # the correction is the chain of title's link now; the original was one until it was corrected
    assert entries[fixed]["title_link"] is True

    desk_session(svc, "auditor")
    page = svc.client.get(f"/desk/instruments/{original}").text
    assert f'id="corrected-by">Corrected by <a href="/desk/instruments/{fixed}">{fixed}</a>' in page
    history = svc.client.get(f"/desk/parcels/{PARCEL}").text
    assert f'corrected by <a href="/desk/instruments/{fixed}">{fixed}</a>' in history
    assert f"corrects {original}" in history
    assert "corrected-by" not in svc.client.get(f"/desk/instruments/{fixed}").text


# --- (c) deeds an officer or a court makes for the owner --------------------------------------------
FOR_OWNER = ["SHERIFFS_DEED", "EXECUTORS_DEED", "ADMINISTRATORS_DEED", "TAX_SALE_DEED", "COURT_ORDER"]


@pytest.mark.parametrize("doc_type", FOR_OWNER)
def test_a_deed_made_for_the_owner_conveys_title_without_the_owners_signature(svc, doc_type):
    svc.file(filing(grantors=["PRIOR OWNER"], grantees=["JOHN Q. SMITH", "MARY SMITH"]))
    made = svc.file(filing(doc_type=doc_type, grantors=["AN OFFICER OF THE COURT"], grantees=["HIGHEST BIDDER LLC"]))
    assert made["flags"] == []
    assert owners(svc) == (["HIGHEST BIDDER LLC"], number_of(made))
    entries = svc.client.get(f"/api/v1/parcels/{PARCEL}/history", headers=svc.as_("auditor")).json()["entries"]
    assert [(e["doc_type"], e["title_link"]) for e in entries] == [("DEED", True), (doc_type, True)]
    # the new owners convey as owners of record; the former owners no longer can
    assert svc.file(filing(grantors=["HIGHEST BIDDER LLC"], grantees=["NEXT OWNER"]))["flags"] == []
    late = svc.file(filing(grantors=["JOHN Q. SMITH", "MARY SMITH"], grantees=["TOO LATE"]))
    assert [f["kind"] for f in late["flags"]] == ["grantor_not_owner"]


def test_a_correction_of_a_sheriffs_deed_conveys_for_the_owner_too(svc):
    svc.file(filing(grantors=["PRIOR OWNER"], grantees=["JOHN Q. SMITH", "MARY SMITH"]))
    sheriffs = number_of(svc.file(filing(doc_type="SHERIFFS_DEED", grantors=["SHERIFF OF BERGEN COUNTY"],
                                       grantees=["HIGHEST BIDDER"])))  # fmt: skip
    fixed = correct(svc, sheriffs, deed(doc_type="CORRECTION", grantors=["SHERIFF OF BERGEN COUNTY"],
                                        grantees=["HIGHEST BIDDER LLC"]))  # fmt: skip
    assert fixed["flags"] == [] and owners(svc) == (["HIGHEST BIDDER LLC"], number_of(fixed))


def test_an_ordinary_deed_by_an_officer_is_still_checked(svc):
    svc.file(filing(grantors=["PRIOR OWNER"], grantees=["JOHN Q. SMITH", "MARY SMITH"]))
    made = svc.file(filing(grantors=["SHERIFF OF BERGEN COUNTY"], grantees=["HIGHEST BIDDER LLC"]))
    assert [f["kind"] for f in made["flags"]] == ["grantor_not_owner"]
    assert owners(svc)[0] == ["JOHN Q. SMITH", "MARY SMITH"]


# --- (d) flags on who owns a parcel are resolved by recording an instrument -------------------------
def flags_of(svc, number: str) -> list[dict]:
    return svc.client.get(f"/api/v1/instruments/{number}", headers=svc.as_("auditor")).json()["flags"]


def open_flags(svc) -> int:
    return svc.client.get(f"/api/v1/parcels/{PARCEL}", headers=svc.as_("auditor")).json()["open_flags"]


def test_a_correction_of_a_flagged_deed_resolves_its_flag(svc):
    from sqlalchemy import select

    from hybrid_store.db.models import AuditEntry

    svc.file(filing(grantors=["PRIOR OWNER"], grantees=["JOHN Q. SMITH", "MARY SMITH"]))
    typo = svc.file(filing(grantors=["JOHN Q. SMITH", "MARY SMYTH"]))  # a misspelt grantor: not the owners
    [flag] = typo["flags"]
    assert flag["kind"] == "grantor_not_owner" and open_flags(svc) == 1
    original = number_of(typo)
    fixed = correct(svc, original, deed(doc_type="CORRECTION"))
    assert fixed["flags"] == []
    [resolved] = fixed["resolved_flags"]
    assert resolved["instrument_number"] == original and resolved["kind"] == "grantor_not_owner"
    [view] = flags_of(svc, original)
    assert view["id"] == resolved["id"] and view["resolved_by"] == number_of(fixed)
    assert view["resolution"] == f"corrected by instrument {number_of(fixed)}"
    assert open_flags(svc) == 0 and owners(svc) == (["MARÍA GARCÍA"], number_of(fixed))
    with svc.db.read() as s:
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "instrument.correct")).one()
    assert entry.details["resolves"] == [view["id"]]


def test_a_deed_from_the_owners_to_the_flagged_grantees_resolves_a_double_sale(svc):
    svc.file(filing(grantors=["PRIOR OWNER"], grantees=["ANNA ADAMS"]))
    svc.file(filing(grantors=["ANNA ADAMS"], grantees=["BEN BAKER"]))
    double = svc.file(filing(grantors=["ANNA ADAMS"], grantees=["CARL CLARK"]))
    assert [f["kind"] for f in double["flags"]] == ["conflicting_conveyance"]
    unrelated = svc.file(filing(grantors=["BEN BAKER"], grantees=["DORA DAVIS"]))  # owners of record, someone else
    assert unrelated["resolved_flags"] == [] and open_flags(svc) == 1
    confirming = svc.file(filing(grantors=["DORA DAVIS"], grantees=["Carl Clark"]))  # to the flagged grantee
    assert [f["instrument_number"] for f in confirming["resolved_flags"]] == [number_of(double)]
    [view] = flags_of(svc, number_of(double))
    assert view["resolved_by"] == number_of(confirming) and "CARL CLARK the owners of record" in view["resolution"]
    assert open_flags(svc) == 0


def test_a_flagged_deed_stays_flagged_until_an_instrument_resolves_it(svc):
    svc.file(filing(grantors=["PRIOR OWNER"], grantees=["ANNA ADAMS"]))
    stranger = svc.file(filing(grantors=["A STRANGER"], grantees=["CARL CLARK"]))
    svc.file(filing(doc_type="MORTGAGE", grantors=["ANNA ADAMS"], grantees=["BANK"]))  # not a conveyance
    flagged = correct(svc, number_of(stranger), deed(doc_type="CORRECTION", grantors=["ANOTHER STRANGER"],
                                                     grantees=["CARL CLARK"]))  # fmt: skip
    assert flagged["resolved_flags"] == [] and [f["kind"] for f in flagged["flags"]] == ["grantor_not_owner"]
    assert open_flags(svc) == 2
    assert flags_of(svc, number_of(stranger))[0]["resolved_by"] is None


# --- acknowledging: one mechanism, an authorised person, never for a flag on ownership --------------
ACK_ROLES = {"clerk": 403, "auditor": 403, "admin": 403, None: 401}


def test_acknowledging_a_flag_on_who_owns_a_parcel_is_refused_with_what_to_record(svc):
    from sqlalchemy import func, select

    from hybrid_store.db.models import AuditEntry

    svc.file(filing(grantors=["PRIOR OWNER"], grantees=["ANNA ADAMS"]))
    flagged = svc.file(filing(grantors=["A STRANGER"], grantees=["CARL CLARK"]))
    flag_id = flags_of(svc, number_of(flagged))[0]["id"]
    url = f"/api/v1/flags/title/{flag_id}/acknowledge"
    with svc.db.read() as s:
        before = s.scalar(select(func.count()).select_from(AuditEntry))
    for role, status in ACK_ROLES.items():
        r = svc.client.post(url, json={"reason": "looks fine to me"}, headers=svc.as_(role))
        assert r.status_code == status, (role, r.text)
    r = svc.client.post(url, json={"reason": "looks fine to me"}, headers=svc.as_("operator"))
    assert r.status_code == 409, r.text
    error = r.json()["error"]
    assert error["code"] == "conflict"
    assert "bears on who owns the parcel, so it cannot be acknowledged" in error["message"]
    assert f"a correction of {number_of(flagged)}" in error["message"]
    assert "a deed from the owners of record (ANNA ADAMS) to CARL CLARK" in error["message"]
    assert "Record a correction" in error["hint"]
    missing = svc.client.post("/api/v1/flags/title/999/acknowledge", json={"reason": "x y z"},
                              headers=svc.as_("operator"))  # fmt: skip
    assert missing.status_code == 404
    assert svc.client.post("/api/v1/flags/other/1/acknowledge", json={"reason": "x y z"},
                           headers=svc.as_("operator")).status_code == 422  # fmt: skip
    assert open_flags(svc) == 1 and flags_of(svc, number_of(flagged))[0]["resolved_by"] is None
    with svc.db.read() as s:  # a refusal writes nothing, not even an audit entry
        assert s.scalar(select(func.count()).select_from(AuditEntry)) == before


def test_the_desk_tells_how_a_flag_on_ownership_is_resolved_and_shows_its_resolution(svc):
    from tests.test_role_matrix import desk_session

    svc.file(filing(grantors=["PRIOR OWNER"], grantees=["JOHN Q. SMITH", "MARY SMITH"]))
    typo = number_of(svc.file(filing(grantors=["JOHN Q. SMITH", "MARY SMYTH"])))
    desk_session(svc, "operator")
    page = svc.client.get(f"/desk/instruments/{typo}").text
    assert "it is resolved by recording an instrument" in page and "Acknowledge" not in page
    desk_session(svc, "clerk")  # the clerk records the correction on the desk
    fixed, page = desk_correct(svc, typo, grantors="JOHN Q. SMITH\nMARY SMITH")
    assert f"Recorded as instrument {fixed}. It resolves the title flags on {typo}." in page
    assert "Flagged" not in page
    desk_session(svc, "operator")
    page = svc.client.get(f"/desk/instruments/{typo}").text
    assert f'<strong>Resolved</strong> by recording <a href="/desk/instruments/{fixed}">{fixed}</a>' in page
    history = svc.client.get(f"/desk/parcels/{PARCEL}").text
    assert f'resolved by <a href="/desk/instruments/{fixed}">{fixed}</a>' in history
    assert "<dt>Open flags</dt><dd>0</dd>" in history


def test_an_operator_acknowledges_a_mirror_flag_through_the_api_with_a_reason(registry, monkeypatch, tmp_path):
    """The other flags (a version the county's recorder system replaced) are acknowledged through
    the same mechanism as the desk's and the command line's: only with the acknowledge permission,
    only with a reason, audit-logged, once."""
    from sqlalchemy import select

    from hybrid_store.chain.connect import eth_tester_chain
    from hybrid_store.db.models import AuditEntry
    from tests.test_legacy_follow import EDITED, follow_one_edit

    db, profile = registry
    follow_one_edit(db, profile, monkeypatch, tmp_path,
                    f"UPDATE acris_master SET docamount = 1 WHERE documentid = '{EDITED}'")  # fmt: skip
    service = make_service(tmp_path, db, eth_tester_chain(), jurisdiction="nyc")
    with service.client as client:
        [flag] = client.get("/api/v1/instruments/2019000004567", headers=service.as_("auditor")).json()["mirror_flags"]
        url = f"/api/v1/flags/mirror/{flag['id']}/acknowledge"
        for role, status in ACK_ROLES.items():
            assert client.post(url, json={"reason": "checked"}, headers=service.as_(role)).status_code == status
        blank = client.post(url, json={"reason": "  "}, headers=service.as_("operator"))
        assert blank.status_code == 409 and "say why" in blank.json()["error"]["message"]
        done = client.post(url, json={"reason": "the recorder fixed the amount"}, headers=service.as_("operator"))
        assert done.status_code == 200, done.text
        assert done.json()["ack_reason"] == "the recorder fixed the amount"
        assert done.json()["acknowledged_by"].startswith("operator one (operator, key")
        again = client.post(url, json={"reason": "twice"}, headers=service.as_("operator"))
        assert again.status_code == 409 and "was acknowledged" in again.json()["error"]["message"]
    with db.read() as s:
        [entry] = s.scalars(select(AuditEntry).where(AuditEntry.action == "mirror.acknowledge")).all()
    assert entry.role == "operator" and entry.details["reason"] == "the recorder fixed the amount"
    # the command line goes through the same mechanism: the flag is acknowledged already
    from typer.testing import CliRunner

    from registry_service.cli.main import app

    monkeypatch.setenv("DATABASE_URL", str(db.engine.url))
    monkeypatch.setenv("LANDREG_HOME", str(tmp_path / "cli-home"))
    monkeypatch.setenv("LANDREG_JURISDICTION", "nyc")
    cli = CliRunner().invoke(app, ["legacy", "ack", str(flag["id"]), "--reason", "once more"])
    assert cli.exit_code == 1 and "was acknowledged" in cli.output, cli.output


def test_every_flag_kind_is_classified_once():
    """A new kind of flag must say whether it bears on who owns a parcel (resolved only by recording
    an instrument) or may be acknowledged: the kinds the tables accept are exactly the two classes."""
    import re

    from hybrid_store import flags
    from hybrid_store.core import title
    from hybrid_store.db.models import MirrorFlag, TitleFlag

    def kinds(model) -> set[str]:
        [check] = [c for c in model.__table__.constraints if getattr(c, "name", "") and "kind" in str(c.name)]
        return set(re.findall(r"'([a-z_]+)'", str(check.sqltext)))

    assert kinds(TitleFlag) == set(title.OWNERSHIP)
    assert kinds(MirrorFlag) == set(flags.ACKNOWLEDGEABLE)
    assert not title.OWNERSHIP & flags.ACKNOWLEDGEABLE
