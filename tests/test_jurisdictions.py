"""Jurisdiction profiles: New York City's tax lots beside Bergen County's, pinned per registry,
named in the trust root and in every bundle; a bundle read under another jurisdiction's rules is
not the registry's."""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from hybrid_store.core import bundle as bundles
from hybrid_store.core import trust as core
from hybrid_store.db.models import Parcel
from hybrid_store.errors import InvalidInstrument, MalformedBundle, VerificationFailed
from hybrid_store.filing import record_instruments
from hybrid_store.intake import validate
from hybrid_store.jurisdictions import get_profile
from hybrid_store.jurisdictions.nyc import parcel_key
from hybrid_store.pins import pin_jurisdiction
from tests.conftest import deed, make_sqlite
from tests.test_trust import root_of, signed_body

NYC = get_profile("nyc")
BERGEN = get_profile("bergen")


def nyc_deed(**overrides) -> dict:
    return deed(parcels=[{"borough": "1", "block": "1500", "lot": "1001"}], **overrides)


@given(st.sampled_from("12345"), st.integers(1, 99_999), st.integers(1, 9_999))
def test_nyc_keys_round_trip_and_are_the_bbl_with_dashes(borough, block, lot):
    parcel = NYC.parcel(borough=borough, block=str(block), lot=f"{lot:05d}")  # leading zeros are no difference
    assert parcel.key == parcel_key(borough, block, lot) == f"{borough}-{block:05d}-{lot:04d}"
    assert NYC.parcel_key_pattern.fullmatch(parcel.key)
    assert NYC.parse_parcel_key(parcel.key).key == parcel.key
    assert parcel.key.replace("-", "") == f"{borough}{block:05d}{lot:04d}"  # the city's ten-digit BBL


@pytest.mark.parametrize(
    ("fields", "rule"),
    [
        ({"borough": "6", "block": "1", "lot": "1"}, "unknown_borough"),
        ({"borough": "0", "block": "1", "lot": "1"}, "unknown_borough"),
        ({"borough": "1", "block": "0", "lot": "1"}, "block_format"),
        ({"borough": "1", "block": "100000", "lot": "1"}, "block_format"),
        ({"borough": "1", "block": "1", "lot": "10000"}, "lot_format"),
        ({"borough": "1", "block": "١٢", "lot": "1"}, "block_format"),  # other scripts' digits
        ({"borough": "1", "block": "12", "lot": "1", "qualifier": "C0001"}, "extra_forbidden"),
        ({"municipality_code": "0223", "block": "1", "lot": "1"}, "missing"),  # Bergen's fields
    ],
)
def test_nyc_parcels_outside_the_rules_are_refused(fields, rule):
    with pytest.raises(InvalidInstrument) as caught:
        validate(deed(parcels=[fields]), profile=NYC)
    assert rule in {e.rule for e in caught.value.errors}


def test_each_registry_records_its_own_document_types():
    assert str(validate(nyc_deed(doc_type="OTHER"), profile=NYC).doc_type) == "OTHER"
    with pytest.raises(InvalidInstrument) as caught:
        validate(deed(doc_type="OTHER"), profile=BERGEN)
    assert caught.value.errors[0].rule == "doc_type_not_recorded"
    assert "Bergen County" in caught.value.errors[0].message


def test_an_nyc_registry_records_boroughs_and_keys_its_parcels_by_bbl(tmp_path):
    db = make_sqlite(tmp_path)
    pin_jurisdiction(db, NYC)
    with db.write() as s:
        [made] = record_instruments(s, [validate(nyc_deed(), profile=NYC)])
    with db.read() as s:
        parcel = s.scalar(select(Parcel))
    assert (parcel.parcel_key, parcel.municipality_code, parcel.block, parcel.lot) == ("1-01500-1001", "1", "01500",
                                                                                      "1001")  # fmt: skip
    assert made.commitment is not None
    db.dispose()


def test_an_nyc_registry_answers_for_its_parcels_over_the_api(tmp_path):
    from hybrid_store.chain.connect import eth_tester_chain
    from tests.test_api import make_service

    db = make_sqlite(tmp_path)
    svc = make_service(tmp_path, db, eth_tester_chain(), jurisdiction="nyc")
    with svc.client:
        number = svc.file(nyc_deed())["receipt"]["instrumentNumber"]
        parcel = svc.client.get("/api/v1/parcels/1-01500-1001", headers=svc.as_("auditor"))
        assert parcel.status_code == 200, parcel.text
        assert (parcel.json()["key"], parcel.json()["municipality"], parcel.json()["instruments"]) == (
            "1-01500-1001", "Manhattan", 1)  # fmt: skip
        history = svc.client.get("/api/v1/parcels/1-01500-1001/history", headers=svc.as_("auditor"))
        assert [e["instrument_number"] for e in history.json()["entries"]] == [number], history.text
        # a key of the right form for another jurisdiction is simply not one of this registry's parcels
        assert svc.client.get("/api/v1/parcels/0223_100.01_5", headers=svc.as_("auditor")).status_code == 404
        assert svc.client.get("/api/v1/parcels/6-01500-1001", headers=svc.as_("auditor")).status_code == 422
    db.dispose()


def test_the_trust_root_never_changes_jurisdiction():
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    v1 = root_of(signed_body(1, [key]), [key])
    moved = signed_body(2, [key], registry={"name": "Test County", "jurisdiction": "nyc",
                                             "commitmentSchemes": ["landreg-commitment/v1"]})  # fmt: skip
    with pytest.raises(core.TrustRootError, match="never changes how its parcels are named"):
        core.check_update(v1, root_of(moved, [key]))


def test_bundles_name_their_jurisdiction_and_the_verifier_holds_them_to_the_trust_roots(tmp_path):
    from hybrid_store import anchoring, deployment
    from hybrid_store.chain.connect import eth_tester_chain
    from hybrid_store.proofs import export_bundle
    from hybrid_store.verifier.anchor import verify_anchor
    from tests.conftest import trust_of

    db = make_sqlite(tmp_path)
    pin_jurisdiction(db, BERGEN)
    with db.write() as s:
        [made] = record_instruments(s, [validate(deed())])
    chain = eth_tester_chain()
    anchoring.Anchorer(db, chain, deployment.attach(db, chain)).drain()
    with db.read() as s:
        bundle = export_bundle(s, made.instrument_number)
    trust = trust_of(db, tmp_path / "trust")
    document = bundle.to_json()
    assert document["jurisdiction"] == "bergen" == trust.jurisdiction
    assert verify_anchor(bundles.parse(document), chain, trust).batch_id == 0
    # the same record read under New York City's rules is not this registry's record
    claimed = copy.deepcopy(document)
    claimed["jurisdiction"] = "nyc"
    bundles.verify_offline(bundles.parse(claimed))  # the math does not cover it ...
    with pytest.raises(VerificationFailed, match="'nyc'.*a registry of 'bergen'"):
        verify_anchor(bundles.parse(claimed), chain, trust)  # ... the trust root does
    # a bundle made before bundles named it is Bergen County's and still verifies
    older = {k: v for k, v in document.items() if k != "jurisdiction"}
    assert verify_anchor(bundles.parse(older), chain, trust).batch_id == 0
    for bad in ("NYC", "", "x" * 40, 7):
        with pytest.raises(MalformedBundle, match="jurisdiction"):
            bundles.parse({**document, "jurisdiction": bad})
    assert json.loads(json.dumps(document)) == bundles.parse(document).to_json()
    db.dispose()
