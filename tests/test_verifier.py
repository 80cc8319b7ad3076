"""Single-record verdicts that tell the whole standing (issue 23, item 4), through the verifier
package, the API and the desk: a corrected original says "corrected by N" only when N's own
anchored bundle shows it, and no forged correction is believed; a redacted bundle lists what it
withheld, and amounts carry their unit; a record not yet at the confirmation depth is PENDING and
becomes VALID once deep enough. (The command line's side is in tests/test_forgery.py, on anvil.)"""

from __future__ import annotations

import copy
import json
import os
import re
from typing import Any

import pytest

from hybrid_store import anchoring
from hybrid_store.deployment import attach
from hybrid_store.filing import record_instruments
from hybrid_store.intake import validate
from hybrid_store.proofs import export_bundle
from hybrid_store.verifier.trust import load
from hybrid_store.verifier.verdicts import verify_document
from tests.conftest import deed, filing, make_sqlite
from tests.test_api import make_service
from tests.test_desk_limits import sign_in


@pytest.fixture
def svc(tmp_path, db, chain):
    service = make_service(tmp_path, db, chain)
    service.trust_file = tmp_path / "home" / "trust" / "root.json"  # as the service published it
    with service.client:
        yield service


def bundle_of(svc, number: str, **query: str) -> dict[str, Any]:
    r = svc.client.get(f"/api/v1/instruments/{number}/proof", params=query, headers=svc.as_("auditor"))
    assert r.status_code == 200, r.text
    return r.json()


def correct(svc, number: str, **changes: Any) -> str:
    r = svc.client.post(f"/api/v1/instruments/{number}/corrections", headers=svc.as_("clerk"),
                        json=filing(doc_type="CORRECTION", legal_description="Lot 5, not lot 6.", **changes))  # fmt: skip
    assert r.status_code == 201, r.text
    return r.json()["receipt"]["instrumentNumber"]


def lot(n: int) -> list[dict[str, str]]:
    return [{"municipality_code": "0223", "block": "900", "lot": str(n)}]


@pytest.fixture
def corrected(svc):
    """An original and its correction, both anchored, and another record (on another parcel) with
    its own correction."""
    original = svc.file(filing(parcels=lot(1)))["receipt"]["instrumentNumber"]
    other = svc.file(filing(parcels=lot(2)))["receipt"]["instrumentNumber"]
    plain = svc.file(filing(parcels=lot(3)))["receipt"]["instrumentNumber"]  # corrected by nothing
    svc.anchor()
    before = bundle_of(svc, original)  # made before the correction was recorded: it carries none
    fix = correct(svc, original, parcels=lot(1))
    other_fix = correct(svc, other, parcels=lot(2))
    svc.anchor()
    return {"original": original, "fix": fix, "other": other, "other_fix": other_fix, "before": before,
            "plain": plain}  # fmt: skip


def verdict(svc, document: dict[str, Any], **evidence: Any):
    """The verifier's verdict, as an auditor's machine holding the trust root reaches it."""
    return verify_document(document, chain=svc.chain, trust=load(svc.trust_file), **evidence)


# --- corrected by N ---------------------------------------------------------------------------------
def test_the_exported_bundle_carries_its_corrections_and_says_corrected_by_them(svc, corrected):
    document = bundle_of(svc, corrected["original"])
    assert document["format"] == "landreg-proof-bundle/v3"
    assert [c["record"]["fields"]["instrument_number"]["value"] for c in document["corrections"]] == [corrected["fix"]]
    shown = verdict(svc, document)
    assert shown.valid and shown.standing == "corrected", shown.reason
    assert [c.number for c in shown.corrections] == [corrected["fix"]]
    assert f"corrected by {corrected['fix']}" in shown.reason and f"corrected by {corrected['fix']}" in shown.summary
    assert shown.to_json()["correctedBy"][0]["number"] == corrected["fix"]
    # the correction itself, and the record it does not correct, are current as far as they show
    for number in (corrected["fix"], corrected["plain"]):
        plain = verdict(svc, bundle_of(svc, number))
        assert plain.valid and plain.standing == "current" and plain.corrections == ()
        assert "current as far as this bundle shows" in plain.standing_shown


def test_a_bundle_made_before_its_correction_says_current_as_far_as_it_shows_until_shown_the_correction(svc, corrected):
    alone = verdict(svc, corrected["before"])
    assert alone.valid and alone.standing == "current" and alone.standing_shown.startswith("current as far as")
    fix = bundle_of(svc, corrected["fix"])
    given = verdict(svc, corrected["before"], corrections=[fix])
    assert given.valid and given.standing == "corrected" and given.corrections[0].number == corrected["fix"]


def test_the_api_and_the_desk_say_corrected_by_n(svc, corrected):
    # a bundle made before the correction: the service finds the correction and checks it on chain
    for document in (corrected["before"], bundle_of(svc, corrected["original"])):
        r = svc.client.post("/api/v1/proofs/verify", json=document)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["status"] == "valid" and body["standing"] == "corrected", body
        assert [c["number"] for c in body["correctedBy"]] == [corrected["fix"]]
        assert body["standingShown"].startswith(f"corrected by {corrected['fix']}")
    page = desk_verify(svc, bundle_of(svc, corrected["original"]))
    assert f"✔ Verified, corrected by {corrected['fix']}" in page and "Standing:" in page


def test_a_bundle_that_withholds_the_records_number_says_once_why_no_correction_could_be_checked(svc, corrected):
    hidden = bundle_of(svc, corrected["original"], redact="instrument_number")
    assert hidden["format"] == "landreg-proof-bundle/v1"  # evidence it could not use is not attached
    body = svc.client.post("/api/v1/proofs/verify", json=hidden).json()  # the service still finds the correction
    assert body["status"] == "valid" and body["standing"] == "current" and body["correctedBy"] == [], body
    assert body["warnings"] == [
        "1 correction could not be checked: a correction names what it corrects by its instrument number, and this "
        "bundle withholds the record's"
    ]


def test_the_public_verify_page_says_corrected_by_n_when_the_number_is_published(tmp_path, db, chain):
    svc = make_service(tmp_path, db, chain, public_fields=frozenset({"instrument_number", "corrects", "references"}))
    with svc.client:
        original = svc.file(filing(parcels=lot(1)))["receipt"]["instrumentNumber"]
        svc.anchor()
        fix = correct(svc, original, parcels=lot(1))
        svc.anchor()
        page = svc.client.get(f"/verify/{original}").text
        assert f"✔ Verified: recorded and anchored, and corrected by {fix}" in page, page[:2000]
        assert "✔ Verified: recorded and anchored</h2>" in svc.client.get(f"/verify/{fix}").text


def desk_verify(svc, document: dict[str, Any]) -> str:
    import json

    csrf = sign_in(svc, "auditor")
    r = svc.client.post("/desk/audit/verify", files=[("csrf", (None, csrf)),
                        ("bundle_file", ("b.json", json.dumps(document).encode(), "application/json"))])  # fmt: skip
    return r.text


def carrying(document: dict[str, Any], *corrections: dict[str, Any]) -> dict[str, Any]:
    return {**document, "format": "landreg-proof-bundle/v3", "corrections": list(corrections)}


def look_alike_correction(tmp_path, chain, number: str) -> dict[str, Any]:
    """Another registry's contract on the same chain: its own record numbered ``number``, and a
    correction of it, anchored there."""
    (tmp_path / "look-alike").mkdir()
    other = make_sqlite(tmp_path / "look-alike")
    with other.write() as s:
        [made] = record_instruments(s, [validate(deed(parcels=lot(1)))])
    assert made.instrument_number == number  # both registries number from the same start
    with other.write() as s:
        [fix] = record_instruments(s, [validate(deed(doc_type="CORRECTION", corrects=number, parcels=lot(1),
                                                     legal_description="Lot 5, not lot 6."))])  # fmt: skip
    from hybrid_store.chain.client import RegistryChain

    own = RegistryChain(chain.w3, chain.registrar, None, role_addresses=chain.role_addresses)  # deploys its own
    anchoring.Anchorer(other, own, attach(other, own)).drain()
    assert own.address != chain.address
    with other.read() as s:
        return export_bundle(s, fix.instrument_number).to_json()


def forged_corrections(svc, corrected, tmp_path) -> dict[str, tuple[dict[str, Any], str]]:
    renamed = copy.deepcopy(bundle_of(svc, corrected["other_fix"]))
    renamed["record"]["fields"]["corrects"]["value"] = corrected["original"]  # the link edited to name the original
    unanchored_number = correct(svc, corrected["original"], parcels=lot(1))
    with svc.db.read() as s:
        unanchored = export_bundle(s, unanchored_number).to_json()
    assert unanchored["tree"] is None
    return {
        "another parcel's correction": (bundle_of(svc, corrected["other_fix"]), "not " + corrected["original"]),
        "an edited correction link": (renamed, "do not produce its commitment"),
        "an unanchored correction": (unanchored, "pending"),
        "a look-alike contract's correction": (look_alike_correction(tmp_path, svc.chain, corrected["original"]),
                                               "is not a DeedRegistry of"),
        "the record itself": (corrected["before"], "this very record"),
        "a correction with its link redacted": (bundle_of(svc, corrected["fix"], redact="corrects,references"),
                                                "link to what it corrects (corrects, references) is redacted"),
    }  # fmt: skip


def test_a_forged_correction_is_not_believed_on_any_path(svc, corrected, tmp_path):
    """A correction that does not hold leaves the record VALID (it is no evidence about the record
    either way: junk attached to a good record must not make it look invalid) but not corrected, and
    the verdict says which correction was refused and why."""
    plain = corrected["before"]
    for name, (forged, why) in forged_corrections(svc, corrected, tmp_path).items():
        given = verdict(svc, plain, corrections=[forged])
        assert given.valid and given.standing == "current" and given.corrections == (), (name, given.reason)
        assert len(given.warnings) == 1 and why in given.warnings[0], (name, given.warnings)
        # carried inside a bundle, through the API and the desk (whose own lookup finds none: the
        # registry knows no correction of the record carrying it)
        stripped = {k: v for k, v in forged.items() if k not in ("corrections", "successor")}
        stripped["format"] = "landreg-proof-bundle/v1"
        host = bundle_of(svc, corrected["plain"])
        body = svc.client.post("/api/v1/proofs/verify", json=carrying(host, stripped)).json()
        assert body["status"] == "valid" and body["standing"] == "current" and body["correctedBy"] == [], name
        assert any("carried in the bundle" in w for w in body["warnings"]), (name, body["warnings"])
    page = desk_verify(svc, carrying(bundle_of(svc, corrected["plain"]), bundle_of(svc, corrected["fix"])))
    assert "✔ Verified" in page and "corrected by" not in page.split('id="verdict"')[1].split("</h2>")[0]
    assert re.search(r'class="warning"[^>]*>Warning: correction 1 carried in the bundle does not show', page)


# --- fields verified and withheld -------------------------------------------------------------------
def test_a_redacted_bundle_lists_what_it_withheld_and_amounts_carry_their_unit(svc):
    number = svc.file(filing(consideration="612500.00"))["receipt"]["instrumentNumber"]
    svc.anchor()
    full = verdict(svc, bundle_of(svc, number))
    by_name = {f.name: f for f in full.disclosed.verified}
    assert full.disclosed.withheld == ()
    assert by_name["consideration"].value == 61_250_000
    assert by_name["consideration"].shown == "$612,500.00 (US dollars)" and by_name["consideration"].unit
    redacted = bundle_of(svc, number, redact="consideration,grantees")
    shown = verdict(svc, redacted)
    assert shown.valid and shown.disclosed.withheld == ("grantees", "consideration")
    assert "consideration" not in {f.name for f in shown.disclosed.verified}
    body = svc.client.post("/api/v1/proofs/verify", json=redacted).json()
    assert body["fields"]["withheld"] == ["grantees", "consideration"]
    assert {"name": "instrument_number", "value": number, "shown": number, "unit": None} in body["fields"]["verified"]
    page = desk_verify(svc, redacted)
    assert re.search(r"<dt>consideration</dt><dd class=\"withheld\">withheld", page)
    assert "$612,500.00 (US dollars)" in desk_verify(svc, bundle_of(svc, number))


# --- pending ----------------------------------------------------------------------------------------
def test_a_young_record_is_pending_under_a_deep_requirement_and_valid_once_deep_enough(svc):
    number = svc.file()["receipt"]["instrumentNumber"]
    svc.anchor()
    document = bundle_of(svc, number)
    depth = 12
    young = verdict(svc, document, depth=depth)
    assert young.status == "pending" and not young.valid and young.reason.startswith("PENDING")
    have = young.details["confirmations"]
    assert 1 <= have < depth and young.details["depthRequired"] == depth
    tester = svc.chain.w3.provider.ethereum_tester
    tester.mine_blocks(depth - have - 1)
    assert verdict(svc, document, depth=depth).status == "pending"  # one block short
    tester.mine_blocks(1)
    deep = verdict(svc, document, depth=depth)
    assert deep.valid and deep.details["confirmations"] == depth, deep.reason


def test_the_api_and_the_desk_say_pending_below_the_registrys_depth(tmp_path, db, chain):
    """The registry's own API and desk verify at the depth it settles batches at (chain.confirmations):
    a bundle anchored shallower (here by a worker settling at one block) is PENDING there."""
    svc = make_service(tmp_path, db, chain, confirmations=12)
    with svc.client:
        number = svc.file()["receipt"]["instrumentNumber"]
        svc.anchor()
        document = bundle_of(svc, number)
        body = svc.client.post("/api/v1/proofs/verify", json=document).json()
        assert body["status"] == "pending" and not body["valid"] and body["details"]["depthRequired"] == 12, body
        assert body["fields"]["verified"] and body["reason"].startswith("PENDING")
        assert "⧗ Pending: not yet deep enough on the chain" in desk_verify(svc, document)
        chain.w3.provider.ethereum_tester.mine_blocks(12)
        assert svc.client.post("/api/v1/proofs/verify", json=document).json()["status"] == "valid"


# --- what the command line prints is the record's own text ----------------------------------------
def test_the_command_line_prints_a_records_text_as_written_never_as_styling(svc, tmp_path):
    """A party's name that looks like rich markup or an emoji code prints as its characters: the
    verdict an auditor reads cannot be restyled, shortened or dressed up by a record's text."""
    from tests.processes import landreg

    name = "[bold green]VALID[/bold green] :smile: HOLDINGS [LLC]"
    number = svc.file(filing(grantees=[name], parcels=lot(40)))["receipt"]["instrumentNumber"]
    svc.anchor()
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle_of(svc, number)))
    env = {**os.environ, "LANDREG_HOME": str(tmp_path / "auditor"), "NO_COLOR": "1"}
    shown = landreg(env, "verify", str(path), "--trust", str(svc.trust_file))
    assert shown.returncode == 3, shown.stdout + shown.stderr  # offline: the math holds, nothing checked on chain
    assert f"  grantees: {name}" in shown.stdout.splitlines(), shown.stdout
    assert "😄" not in shown.stdout
