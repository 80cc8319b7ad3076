"""The certificate of recording, the public verify page its QR code opens, and the signed receipt a
clerk downloads (``landreg-receipt/v2``: the flags at recording and the fees), on the in-process
service. The printed page, its QR code and the command line are in tests/test_desk_browser.py."""

from __future__ import annotations

import json
import re

import pytest

from hybrid_store.trust import latest
from hybrid_store.verifier.receipts import verify_receipt
from tests.conftest import filing
from tests.test_api import make_service
from tests.test_desk_limits import sign_in

BASE = "https://records.example.gov/bergen"
PARCEL = "0223_100.01_5"
STRANGER = "PETER PIPER"  # not the owner of record: his deed is recorded, flagged for review


@pytest.fixture
def svc(tmp_path, db, chain):
    service = make_service(tmp_path, db, chain, public_base_url=BASE + "/")
    with service.client:
        yield service


def flagged_deed(svc) -> dict:
    """A deed by the owners of record, then one by a stranger on the same parcel: confirmed up front,
    recorded, and flagged (grantor_not_owner)."""
    svc.file(filing())
    filed = svc.file(filing(grantors=[STRANGER], grantees=["RITA ROE"], consideration="1000.00", page_count=3))
    assert [f["kind"] for f in filed["flags"]] == ["grantor_not_owner"]
    return filed


def receipt_check(svc, receipt: dict, bundle: dict) -> dict:
    return svc.client.post("/api/v1/receipts/verify", json={"receipt": receipt, "bundle": bundle}).json()


def desk_check(svc, receipt: dict, bundle: dict) -> str:
    csrf = sign_in(svc, "auditor")
    r = svc.client.post("/desk/audit/receipt", files=[
        ("csrf", (None, csrf)), ("receipt_file", ("receipt.json", json.dumps(receipt), "application/json")),
        ("bundle_file", ("bundle.json", json.dumps(bundle), "application/json"))])  # fmt: skip
    return re.sub(r"<[^>]+>", "", r.text.split('id="verdict"', 1)[1].split("</section>", 1)[0])


# --- the receipt ----------------------------------------------------------------------------------------
def test_the_receipt_carries_the_flags_at_recording_and_the_fees_and_is_signed_again_to_the_same_bytes(svc):
    filed = flagged_deed(svc)
    receipt = filed["receipt"]
    assert receipt["format"] == "landreg-receipt/v2"
    assert receipt["flags"] == [
        {"kind": "grantor_not_owner", "parcel": PARCEL, "message": filed["flags"][0]["message"]}
    ]
    assert STRANGER in receipt["flags"][0]["message"]
    # worked by hand (N.J.S.A. 22A:4-4.1, 46:15-7): 3 pages $30 + 2 x $10; the assessor's abstract $10;
    # the surcharge $5; the transfer fee on $1,000: 2 x $500 at $2.00 = $4.00; total $69.00
    assert {(line["code"], line["payer"], line["cents"]) for line in receipt["fees"]["lines"]} == {
        ("recording", "filer", 5000), ("assessor_abstract", "filer", 1000), ("surcharge", "filer", 500),
        ("realty_transfer_fee", "grantor", 400)}  # fmt: skip
    assert receipt["fees"]["totalCents"] == 6900
    number = receipt["instrumentNumber"]
    again = svc.client.get(f"/api/v1/instruments/{number}/receipt", headers=svc.as_("auditor")).json()
    assert again == receipt  # re-derived from the rows: the same flags, the same bytes
    sign_in(svc, "clerk")
    download = svc.client.get(f"/desk/instruments/{number}/receipt.json")
    assert download.status_code == 200 and download.headers["content-type"].startswith("application/json")
    assert download.headers["content-disposition"] == f'attachment; filename="landreg-receipt-{number}.json"'
    assert download.json() == receipt  # the bare receipt, what every verifier takes
    page = svc.client.get(f"/desk/instruments/{number}").text
    assert 'id="download-receipt"' in page and "Certificate of recording (print)" in page
    flags_table = page.split('id="receipt-flags"', 1)[1].split("</table>", 1)[0]
    assert "grantor not owner" in flags_table and PARCEL in flags_table
    fees_table = page.split('id="receipt-fees"', 1)[1].split("</table>", 1)[0]
    assert "$69.00" in fees_table and "realty transfer fee" in fees_table


def test_the_downloaded_receipt_verifies_and_a_tampered_flag_or_fee_is_refused(svc, tmp_path):
    number = flagged_deed(svc)["receipt"]["instrumentNumber"]
    svc.anchor()
    sign_in(svc, "auditor")
    receipt = svc.client.get(f"/desk/instruments/{number}/receipt.json").json()
    bundle = svc.client.get(f"/desk/instruments/{number}/bundle.json").json()
    verdict = receipt_check(svc, receipt, bundle)
    assert verdict["status"] == "valid", verdict
    assert "✔ Verified" in desk_check(svc, receipt, bundle)

    unflagged = {**receipt, "flags": []}
    feeless = {**receipt, "fees": {"lines": [{"code": "recording", "payer": "filer", "cents": 1}], "totalCents": 1}}
    for tampered in (unflagged, feeless):
        verdict = receipt_check(svc, tampered, bundle)
        assert verdict["status"] == "invalid" and "signature does not match" in verdict["reason"], verdict
        assert "✘ Not verified" in desk_check(svc, tampered, bundle)
    trust = latest(svc.client.app.state.settings)
    without_members = {k: v for k, v in receipt.items() if k not in ("flags", "fees")}
    assert (
        "names its flags and its fees" in verify_receipt(without_members, bundle, chain=svc.chain, trust=trust).reason
    )


def test_a_v1_receipt_signed_the_old_way_keeps_verifying(svc):
    receipt = flagged_deed(svc)["receipt"]
    number = receipt["instrumentNumber"]
    svc.anchor()
    bundle = svc.client.get(f"/api/v1/instruments/{number}/proof", headers=svc.as_("auditor")).json()
    # what landreg signed before v2: the same members but flags and fees, under the v1 format
    old = svc.client.app.state.signer.sign(
        {
            **{k: v for k, v in receipt.items() if k not in ("flags", "fees", "signature")},
            "format": "landreg-receipt/v1",
        }
    )
    assert receipt_check(svc, old, bundle)["status"] == "valid"
    assert "✔ Verified" in desk_check(svc, old, bundle)
    assert receipt_check(svc, {**old, "book": "9999"}, bundle)["status"] == "invalid"


# --- the certificate --------------------------------------------------------------------------------
def test_the_certificate_states_the_recording_and_points_at_the_public_verify_page(svc):
    filed = flagged_deed(svc)
    number, book, page = (filed["receipt"][k] for k in ("instrumentNumber", "book", "page"))
    received = filed["submission"]["receivedAt"]
    assert svc.client.get(f"/desk/instruments/{number}/certificate", follow_redirects=False).status_code == 303
    for role in ("clerk", "auditor"):
        sign_in(svc, role)
        r = svc.client.get(f"/desk/instruments/{number}/certificate")
        assert r.status_code == 200, r.text[:500]
    html = r.text
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))
    assert f"Instrument {number} is recorded in book {book} , page {page} ." in text
    assert "Bergen County Clerk, Land Records" in text
    assert received[:10] in html.split('id="cert-received"', 1)[1][:80]
    assert STRANGER in html.split('id="cert-grantors"', 1)[1][:80]
    assert "Hackensack City (0223), block 100.01, lot 5" in text
    assert html.split('id="cert-fee-total">', 1)[1].startswith("$69.00")  # worked by hand above
    flags = html.split('id="cert-flags"', 1)[1].split("</section>", 1)[0]
    assert "grantor not owner" in flags and "confirmed by" in flags and "open: flagged for review" in flags
    url = f"{BASE}/verify/{number}"
    assert f'<span class="wrap" id="verify-url">{url}</span>' in html
    assert '<svg width="' in html and 'class="qr"' in html and f"<title>QR code: {url}</title>" in html
    r = svc.client.get("/desk/instruments/2099-9999999/certificate")
    assert r.status_code == 404 and "no instrument numbered 2099-9999999" in r.text


# --- the public verify page --------------------------------------------------------------------------
def test_an_anonymous_person_who_scans_it_sees_the_verdict_and_the_anchor_not_the_content(svc):
    filed = flagged_deed(svc)
    number = filed["receipt"]["instrumentNumber"]
    svc.client.cookies.clear()
    pending = svc.client.get(f"/verify/{number}")
    assert pending.status_code == 200 and "waits for its anchoring batch" in pending.text
    svc.anchor()
    r = svc.client.get(f"/verify/{number}")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "✔ Verified: recorded and anchored" in r.text
    anchor = r.text.split('id="verify-anchor"', 1)[1].split("</dl>", 1)[0]
    assert re.search(r'id="verify-chain">\d+<', anchor) and 'id="verify-tx">0x' in anchor
    assert 'id="verify-root">0x' in anchor and re.search(r'id="verify-batch">\d+<', anchor)
    assert "publishes no field" in r.text
    for private in (STRANGER, "RITA ROE", "JOHN Q. SMITH", "1000.00", "12 MAIN STREET", "ANNA LEE", "Hackensack"):
        assert private not in r.text, private
    assert "landreg_desk" not in r.headers.get("set-cookie", "")  # no session for the public


def test_a_field_the_registry_publishes_is_shown_and_nothing_else(tmp_path, db, chain):
    service = make_service(tmp_path, db, chain, public_fields={"instrument_number", "doc_type"})
    with service.client:
        number = flagged_deed(service)["receipt"]["instrumentNumber"]
        service.anchor()
        r = service.client.get(f"/verify/{number}")
    fields = r.text.split('id="verify-fields"', 1)[1].split("</section>", 1)[0]
    assert '<dd data-field="doc_type">DEED</dd>' in fields and f'<dd data-field="instrument_number">{number}<' in fields
    assert STRANGER not in r.text and "1000.00" not in r.text and "grantors" not in fields


@pytest.mark.parametrize(("number", "words"), [
    ("2099-9999999", "No instrument numbered 2099-9999999 is recorded in this registry"),
    ("not a number!", "This is not an instrument number: they look like 2026-0000123"),
])  # fmt: skip
def test_an_unknown_or_malformed_number_is_a_page_in_plain_words(svc, number, words):
    r = svc.client.get(f"/verify/{number}")
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert words in r.text
