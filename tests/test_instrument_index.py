"""The instrument a recorder indexes (issue 21, part A): the date it bears, its pages, the grantee's
mailing address, the preparer, structured cross-references and the return-to address; deeds an
officer or a court makes for the owner; commitment scheme v2 beside v1 (a registry's v1 records
keep verifying after the upgrade, new ones are v2), and the trust root's list of schemes."""

from __future__ import annotations

import dataclasses
import json
import re
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from hybrid_store.anchoring import Anchorer
from hybrid_store.core import commitment
from hybrid_store.core import trust as core_trust
from hybrid_store.db.engine import Database
from hybrid_store.db.models import AnchorBatch, Commitment, Instrument, InstrumentReference, Parcel, TitleFlag
from hybrid_store.db.records import load_records
from hybrid_store.errors import InvalidInstrument
from hybrid_store.filing import record_instruments
from hybrid_store.intake import validate
from hybrid_store.proofs import export_bundle
from hybrid_store.settings import Settings
from hybrid_store.trust import latest
from hybrid_store.verifier.receipts import verify_receipt
from hybrid_store.verifier.verdicts import verify_document
from migration_tools.reconciliation.run import reconcile
from tests.conftest import deed, desk_attestations, filing, recorded_on_desk, trust_of
from tests.test_api import make_service

V1, V2 = commitment.SCHEME_V1, commitment.SCHEME_V2
RETURN_TO = "RETURN TO: PAT PRIVATE\n9 HIDDEN LANE, ORADELL, NJ 07649"
INDEX = {
    "document_date": "2026-10-28",
    "page_count": 4,
    "grantee_mailing_address": "12 ELM STREET\nHACKENSACK, NJ 07601",
    "preparer": "ROBERT DOE, ESQ.",
    "return_to": RETURN_TO,
}
V1_REGISTRY = Path(__file__).parent / "fixtures" / "registry-v1.sql"


@pytest.fixture
def svc(tmp_path, db, chain):
    service = make_service(tmp_path, db, chain)
    with service.client:
        yield service


def _private(text: str) -> bool:
    return "HIDDEN LANE" in text or "PAT PRIVATE" in text


# --- through the API ----------------------------------------------------------------------------------
def test_the_index_fields_round_trip_and_new_records_are_v2_without_the_return_to_address(svc, tmp_path):
    mortgage = svc.file(deed(doc_type="MORTGAGE", grantors=["MARÍA GARCÍA"], grantees=["VALLEY NATIONAL BANK"]))
    mortgage_number = mortgage["receipt"]["instrumentNumber"]
    body = deed(doc_type="SATISFACTION", grantors=["VALLEY NATIONAL BANK"], grantees=["MARÍA GARCÍA"],
                consideration=None, **INDEX,
                references=[{"kind": "acts_on_mortgage", "instrument_number": mortgage_number},
                            {"kind": "acts_on_mortgage", "book": "5120", "page": "77"}])  # fmt: skip
    filed = svc.file(body)
    number, receipt = filed["receipt"]["instrumentNumber"], filed["receipt"]
    assert receipt["commitmentScheme"] == V2
    assert (receipt["documentDate"], receipt["pageCount"], receipt["preparer"]) == ("2026-10-28", 4, "ROBERT DOE, ESQ.")
    assert receipt["references"] == [["acts_on_mortgage", mortgage_number, None, None],
                                     ["acts_on_mortgage", None, "5120", "77"]]  # fmt: skip
    assert not _private(json.dumps(filed))

    as_clerk = svc.client.get(f"/api/v1/instruments/{number}", headers=svc.as_("clerk")).json()
    assert as_clerk["commitment_scheme"] == V2
    assert {k: as_clerk[k] for k in INDEX} == INDEX  # the clerk mails the original back: sees the return-to
    assert as_clerk["references"] == [
        {"kind": "acts_on_mortgage", "instrument_number": mortgage_number, "book": None, "page": None},
        {"kind": "acts_on_mortgage", "instrument_number": None, "book": "5120", "page": "77"},
    ]
    as_auditor = svc.client.get(f"/api/v1/instruments/{number}", headers=svc.as_("auditor")).json()
    assert as_auditor["return_to"] is None and not _private(json.dumps(as_auditor))
    assert as_auditor["page_count"] == 4 and as_auditor["preparer"] == "ROBERT DOE, ESQ."

    again = svc.client.get(f"/api/v1/instruments/{number}/receipt", headers=svc.as_("auditor")).json()
    assert again == receipt  # signed again to the same bytes, v2 members included

    svc.anchor()
    raw = svc.client.get(f"/api/v1/instruments/{number}/proof", headers=svc.as_("auditor")).content
    assert not _private(raw.decode())
    bundle = json.loads(raw)
    assert bundle["record"]["scheme"] == V2
    assert set(bundle["record"]["fields"]) == set(commitment.FIELDS_V2)
    fields = bundle["record"]["fields"]
    assert fields["page_count"]["value"] == 4 and fields["supersedes"]["value"] is None
    assert fields["references"]["value"][0] == ["acts_on_mortgage", mortgage_number, None, None]
    trust = latest(Settings(home=tmp_path / "home"))  # what the service published when it started
    assert trust is not None and trust.commitment_schemes == (V2,)  # a registry that began with v2 lists v2 alone
    verdict = verify_document(bundle, chain=svc.chain, trust=trust)
    assert verdict.valid, verdict.reason
    assert verify_receipt(receipt, bundle, chain=svc.chain, trust=trust).valid
    with svc.db.read() as s:  # what went on chain: roots only, never the personal data
        for raw_tx in s.scalars(select(AnchorBatch.raw_tx)):
            assert b"HIDDEN LANE" not in raw_tx and b"HIDDEN LANE".hex().encode() not in raw_tx.hex().encode()
        assert (
            s.scalar(
                select(Commitment.scheme)
                .join(Instrument, Instrument.id == Commitment.instrument_id)
                .where(Instrument.instrument_number == number)
            )
            == V2
        )


def test_malformed_index_fields_are_refused_and_missing_ones_are_not(svc):
    for field, value in [("page_count", 0), ("page_count", "٣"), ("page_count", True), ("page_count", 2.5),
                         ("document_date", "2026-02-30"), ("document_date", 1767225600), ("document_date", "28/10/2026")]:  # fmt: skip
        r = svc.client.post("/api/v1/instruments", json=deed(**{field: value}), headers=svc.as_("clerk"))
        assert r.status_code == 422, (field, value)
        [error] = r.json()["error"]["fields"]
        assert error["field"] == field and ("e.g." in error["message"]), error
    bad_ref = svc.client.post("/api/v1/instruments", headers=svc.as_("clerk"), json=deed(
        doc_type="SATISFACTION", references=[{"kind": "acts_on_mortgage", "instrument_number": "2026-0000001",
                                              "book": "1", "page": "2"}]))  # fmt: skip
    assert bad_ref.status_code == 422 and bad_ref.json()["error"]["fields"][0]["field"] == "references[0]"
    # a satisfaction that cites nothing is a ground for examination to find (a rejection naming it,
    # the submission kept), not a malformed filing
    r = svc.client.post("/api/v1/instruments", json=deed(doc_type="SATISFACTION", grantors=["A BANK"]),
                        headers=svc.as_("clerk"))  # fmt: skip
    assert r.status_code == 422 and r.json()["error"]["code"] == "rejected", r.text
    assert [g["code"] for g in r.json()["error"]["grounds"]] == ["no_mortgage_cited"]
    # a field given as null is a field not given, never a server error
    svc.file(filing(page_count=None, document_date=None, preparer="A PREPARER"))


def test_a_corrects_reference_is_the_correction_link(svc):
    first = svc.file()["receipt"]["instrumentNumber"]
    fixed = svc.file(deed(doc_type="CORRECTION", references=[{"kind": "corrects", "instrument_number": first}]))
    assert fixed["receipt"]["corrects"] == first
    view = svc.client.get(f"/api/v1/instruments/{first}", headers=svc.as_("auditor")).json()
    assert view["corrected_by"] == [fixed["receipt"]["instrumentNumber"]]
    clash = svc.client.post(f"/api/v1/instruments/{first}/corrections", headers=svc.as_("clerk"),
                            json=deed(references=[{"kind": "corrects", "instrument_number": "2026-9999999"}]))  # fmt: skip
    assert clash.status_code == 422


# --- through the desk ---------------------------------------------------------------------------------
def _desk_login(svc, role: str) -> str:
    client = svc.client
    client.cookies.clear()
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/desk/login").text).group(1)
    client.post("/desk/login", data={"api_key": svc.keys[role], "csrf": csrf}, follow_redirects=False)
    return re.search(r'name="csrf" value="([^"]+)"', client.get("/desk/file").text).group(1)


def test_the_desk_files_and_shows_the_index_fields(svc):
    csrf = _desk_login(svc, "clerk")
    form = {
        "csrf": csrf, "doc_type": "SHERIFFS_DEED", "grantors": "SHERIFF OF BERGEN COUNTY", "grantees": "ANA LIMA",
        "municipality_0": "0223", "block_0": "100.01", "lot_0": "5", "consideration": "120000",
        "document_digest": "ab" * 32, "document_date": "2026-10-28", "page_count": "3",
        "grantee_mailing_address": "1 MAIN ST\r\nTEANECK, NJ 07666", "preparer": "OFFICE OF THE SHERIFF",
        "return_to": RETURN_TO, "ref_kind_0": "acts_on_mortgage", "ref_book_0": "5120", "ref_page_0": "77",
        **desk_attestations(),
    }  # fmt: skip
    r = svc.client.post("/desk/file", data=form, files={"document": ("", b"", "application/octet-stream")},
                        follow_redirects=False)  # fmt: skip
    assert r.status_code == 303, r.text[:500]
    instrument, _ = recorded_on_desk(svc, r.headers["location"])
    page = svc.client.get(instrument).text
    assert 'id="document-date">2026-10-28<' in page and 'id="page-count">3<' in page
    assert "OFFICE OF THE SHERIFF" in page and "book 5120, page 77" in page and V2 in page
    assert "1 MAIN ST\nTEANECK, NJ 07666" in page and "HIDDEN LANE" in page  # a clerk's page shows the return-to
    _desk_login(svc, "auditor")
    assert "HIDDEN LANE" not in svc.client.get(instrument).text
    bad = dict(form, csrf=_desk_login(svc, "clerk"), page_count="three")
    refused = svc.client.post("/desk/file", data=bad, files={"document": ("", b"", "application/octet-stream")})
    assert refused.status_code == 422 and 'id="err-page_count"' in refused.text


# --- title: deeds made for the owner ------------------------------------------------------------------
def test_a_sheriffs_deed_from_a_grantor_who_is_not_the_owner_of_record_conveys(db):
    with db.write() as s:
        [first] = record_instruments(s, [validate(deed())])
    for doc_type, grantor in [("SHERIFFS_DEED", "SHERIFF OF BERGEN COUNTY"), ("EXECUTORS_DEED", "ESTATE EXECUTOR"),
                              ("TAX_SALE_DEED", "TAX LIEN FUND LLC"), ("COURT_ORDER", "SUPERIOR COURT OF NJ"),
                              ("ADMINISTRATORS_DEED", "ESTATE ADMINISTRATOR")]:  # fmt: skip
        with db.write() as s:
            [made] = record_instruments(s, [validate(deed(doc_type=doc_type, grantors=[grantor],
                                                          grantees=[f"BUYER FROM {grantor}"]))])  # fmt: skip
        assert made.flags == (), doc_type
        with db.read() as s:
            owner = s.scalar(select(Parcel.owner_instrument_id).where(Parcel.parcel_key == "0223_100.01_5"))
            assert owner == made.instrument_id, doc_type
            assert not s.scalars(select(TitleFlag).where(TitleFlag.instrument_id == made.instrument_id)).all()
    with db.write() as s:  # an ordinary deed from someone else is still flagged, and changes nothing
        [stranger] = record_instruments(s, [validate(deed(grantors=["JOHN Q. SMITH"], grantees=["X"]))])
    assert [f.kind for f in stranger.flags] == ["grantor_not_owner"]
    with db.write() as s:  # the administrator's grantee conveys as the owner of record
        [onward] = record_instruments(s, [validate(deed(grantors=["BUYER FROM ESTATE ADMINISTRATOR"], grantees=["Y"]))])
    assert onward.flags == () and first.instrument_id != onward.instrument_id


# --- the upgrade: v1 records keep verifying, new ones are v2 -----------------------------------------
def _v1_registry(tmp_path: Path) -> Database:
    """The database landreg 16949d2 left (revision 0012, three v1 records waiting for their batch),
    upgraded by ``db upgrade``."""
    path = tmp_path / "v1.db"
    con = sqlite3.connect(path)
    con.executescript(V1_REGISTRY.read_text(encoding="utf-8"))
    con.close()
    db = Database(f"sqlite:///{path}")
    assert db.current_revision() == "0012"
    db.migrate()
    return db


def test_a_v1_registry_upgraded_keeps_every_proof_and_reconciles_clean(tmp_path, chain):
    from hybrid_store.deployment import attach

    db = _v1_registry(tmp_path)
    with db.read() as s:
        before = dict(s.execute(select(Commitment.instrument_id, Commitment.commitment)).all())
        assert set(s.scalars(select(Commitment.scheme))) == {V1}
        stored = load_records(s.connection(), sorted(before))
    for r in stored:  # the rows recompute under their own scheme, to the commitment 16949d2 made
        assert r.scheme == V1 and r.recompute() == before[r.instrument_id]
    with db.write() as s:  # a new filing on the v1 parcel: a v2 record linked to the v1 head
        [new] = record_instruments(s, [validate(deed(doc_type="SATISFACTION", grantors=["VALLEY NATIONAL BANK"],
                                                     **INDEX, references=[{"kind": "acts_on_mortgage",
                                                                           "instrument_number": "2026-0000002"}]))])  # fmt: skip
    dep = attach(db, chain)
    Anchorer(db, chain, dep).drain()
    trust = trust_of(db, tmp_path / "trust")
    assert trust.commitment_schemes == (V1, V2)
    with db.read() as s:
        assert s.scalar(select(Commitment.scheme).where(Commitment.instrument_id == new.instrument_id)) == V2
        assert s.scalar(select(InstrumentReference.target_number)) == "2026-0000002"
        [latest] = load_records(s.connection(), [new.instrument_id])
        assert latest.record.prev[0][1] == "0x" + before[3].hex()  # linked to the v1 correction, the parcel's head
        bundles = {n: export_bundle(s, n).to_json() for n in ("2026-0000001", "2026-0000002", "2026-0000003",
                                                              new.instrument_number)}  # fmt: skip
    for number, bundle in bundles.items():
        assert bundle["record"]["scheme"] == (V2 if number == new.instrument_number else V1)
        verdict = verify_document(bundle, chain=chain, trust=trust)
        assert verdict.valid, (number, verdict.reason)
    assert set(bundles["2026-0000001"]["record"]["fields"]) == set(commitment.FIELDS_V1)
    result = reconcile(db, chain, manifest_dir=None, workers=1)
    assert result.clean, result.kinds()
    v1_only = core_trust.parse(json.loads(json.dumps(trust.document)))  # as a verifier pinned before v2
    assert v1_only.lists_scheme(V1)


def test_a_verifier_refuses_a_scheme_its_trust_root_does_not_list(tmp_path, chain):
    from hybrid_store.deployment import attach

    db = _v1_registry(tmp_path)
    dep = attach(db, chain)
    old_trust = trust_of(db, tmp_path / "trust")  # published before any v2 record: it lists v1 and v2 (the next)
    with db.write() as s:
        [new] = record_instruments(s, [validate(deed())])
    Anchorer(db, chain, dep).drain()
    with db.read() as s:
        v2_bundle = export_bundle(s, new.instrument_number).to_json()
        v1_bundle = export_bundle(s, "2026-0000001").to_json()
    assert verify_document(v2_bundle, chain=chain, trust=old_trust).valid
    body = {k: v for k, v in old_trust.document["signed"].items()}
    for listed, v1_ok, v2_ok in [([V1], True, False), ([], True, False), ([V2], False, True)]:
        pinned = _resigned(tmp_path, db, body, listed)
        assert pinned.lists_scheme(V1) is v1_ok and pinned.lists_scheme(V2) is v2_ok
        for bundle, ok in ((v1_bundle, v1_ok), (v2_bundle, v2_ok)):
            verdict = verify_document(bundle, chain=chain, trust=pinned)
            assert verdict.valid is ok, (listed, bundle["record"]["scheme"], verdict.reason)
            if not ok:
                assert "is not one" in verdict.reason and bundle["record"]["scheme"] in verdict.reason


def _resigned(tmp_path: Path, db: Database, body: dict, schemes: list[str]) -> core_trust.TrustRoot:
    """The registry's trust root with another list of schemes, signed with its own trust-root key
    (what a registry that listed those would have published)."""
    from hybrid_store import signing_keys
    from hybrid_store.settings import Settings
    from hybrid_store.trust import key_source
    from tests.conftest import TEST_TRUST_PASSPHRASE

    cfg = Settings(home=tmp_path / "trust", trust={"signing_key_passphrase": TEST_TRUST_PASSPHRASE})
    source = key_source(cfg)
    keys = [source.load(k.kid) for k in signing_keys.keys_of(db, "trust-root")]
    signed = {**body, "registry": {**body["registry"], "commitmentSchemes": schemes}}
    root = core_trust.parse(core_trust.sign(signed, keys))
    core_trust.check_self_signed(root)
    return root


def test_a_mirrored_new_version_commits_the_commitment_it_supersedes(db, chain):
    from hybrid_store.deployment import attach

    with db.write() as s:
        [old] = record_instruments(s, [validate(deed())], source="legacy", mirror=[None])
    with db.write() as s:  # the legacy system edited the grantee: landreg records a new version
        [new] = record_instruments(s, [validate(deed(grantees=["MARÍA GARCÍA LÓPEZ"]))], source="legacy",
                                   mirror=[old.instrument_id])  # fmt: skip
    with db.read() as s:
        first, second = load_records(s.connection(), [old.instrument_id, new.instrument_id])
    assert first.record.supersedes is None
    assert second.record.supersedes == "0x" + old.commitment.hex() and second.scheme == V2
    assert second.recompute() == new.commitment
    forged = commitment.prepare(dataclasses.replace(second.record, supersedes=None), second.seed, V2)
    assert forged.complete(second.prev_value) != new.commitment  # the link is committed, not a tag beside it
    Anchorer(db, chain, attach(db, chain)).drain()
    with db.read() as s:
        bundle = export_bundle(s, new.instrument_number).to_json()
    assert bundle["record"]["fields"]["supersedes"]["value"] == "0x" + old.commitment.hex()
    assert verify_document(bundle, chain=chain, trust=trust_of(db)).valid


# --- intake: only malformed values are refused --------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(st.integers(1, 100_000), st.booleans())
def test_a_page_count_is_a_positive_whole_number_in_ascii_digits(pages, as_text):
    made = validate(deed(page_count=str(pages) if as_text else pages), content_only=True)
    assert made.page_count == pages


@settings(max_examples=60, deadline=None)
@given(st.text(st.characters(categories=["Nd"]), min_size=1, max_size=4).filter(lambda t: not t.isascii()))
def test_digits_of_other_scripts_are_no_page_count_and_no_date(digits):
    for field, value in (("page_count", digits), ("document_date", f"2026-01-{digits}")):
        with pytest.raises(InvalidInstrument) as exc:
            validate(deed(**{field: value}), content_only=True)
        assert [e.field for e in exc.value.errors] == [field]


def test_a_v1_records_receipt_keeps_its_members_after_the_upgrade(tmp_path, chain):
    svc = make_service(tmp_path, _v1_registry(tmp_path), chain)
    with svc.client:
        old = svc.client.get("/api/v1/instruments/2026-0000001/receipt", headers=svc.as_("auditor")).json()
        new = svc.file()["receipt"]
        view = svc.client.get("/api/v1/instruments/2026-0000001", headers=svc.as_("clerk")).json()
    v1_members = {"format", "registry", "instrumentNumber", "book", "page", "recordedAt", "docType", "parcels",
                  "documentDigest", "commitment", "corrects", "signature"}  # fmt: skip
    assert set(old) == v1_members  # what 16949d2 signed, so the same bytes and signature
    assert old["format"] == "landreg-receipt/v1"  # filed before receipts carried flags and fees: v1 it stays
    assert set(new) == v1_members | {"commitmentScheme", "documentDate", "pageCount", "granteeMailingAddress",
                                     "preparer", "references", "flags", "fees"}  # fmt: skip
    assert new["format"] == "landreg-receipt/v2"
    assert view["commitment_scheme"] == V1 and view["page_count"] is None and view["references"] == []
