"""Corrections and title (issue 21, item 3): a correction re-records the instrument it corrects
and is judged against the title as it stood before that instrument; owners of record follow a
correction that changes grantees; "corrected by" on the original's pages; deeds an officer or a
court makes for the owner; flags that change who owns a parcel are resolved only by recording an
instrument, other flags are acknowledged with a reason by an authorised person (audit-logged)."""

from __future__ import annotations

import pytest

from tests.conftest import deed
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
    svc.file(deed(grantors=["PRIOR OWNER"], grantees=["JOHN Q. SMITH", "MARY SMITH"]))
    original = number_of(svc.file(deed()))  # the Smiths convey to María García
    assert owners(svc) == (["MARÍA GARCÍA"], original)
    fixed = correct(svc, original, deed(doc_type=doc_type, consideration="355000.00"))
    assert fixed["flags"] == []
    view = svc.client.get(f"/api/v1/instruments/{number_of(fixed)}", headers=svc.as_("auditor")).json()
    assert view["flags"] == []
    parcel = svc.client.get(f"/api/v1/parcels/{PARCEL}", headers=svc.as_("auditor")).json()
    assert parcel["open_flags"] == 0
    # the correction re-records the owners' conveyance: the owners of record follow it
    assert owners(svc) == (["MARÍA GARCÍA"], number_of(fixed))
