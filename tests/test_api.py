"""The HTTP API on SQLite and PostgreSQL with an in-process chain: filing, receipts, idempotency,
roles, corrections, search, proofs, chain of title, bad input."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

from hybrid_store.anchoring import Anchorer
from hybrid_store.core.commitment import FIELDS
from hybrid_store.db.engine import Database
from hybrid_store.db.models import AuditEntry, Instrument
from hybrid_store.settings import Settings
from hybrid_store.verifier.receipts import check_signature
from registry_service.app import create_app
from registry_service.auth import Actor, Role, create_key
from tests.conftest import bypass_append_only, deed, filing

ADMIN = Actor("test-suite", Role.ADMIN)


@dataclass
class Service:
    client: TestClient
    db: Database
    chain: object
    deployment: object
    keys: dict[str, str]

    def as_(self, role: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"} if role else {}

    def file(self, body: dict | None = None, role: str = "clerk", **headers) -> dict:
        r = self.client.post("/api/v1/instruments", json=body or filing(), headers={**self.as_(role), **headers})
        assert r.status_code == 201, r.text
        return r.json()

    def anchor(self) -> None:
        Anchorer(self.db, self.chain, self.deployment).drain()


def make_service(
    tmp_path: Path, db: Database, chain, jurisdiction: str = "bergen", *, confirmations: int = 0, **service_settings
) -> Service:
    from hybrid_store.deployment import attach
    from hybrid_store.trust import publish

    cfg = Settings(
        home=tmp_path / "home",
        chain={"backend": "eth-tester", "confirmations": confirmations},
        service={"key_cache_s": 0, **service_settings},
        jurisdiction=jurisdiction,
    )
    cfg.ensure_home()
    deployment = attach(db, chain)
    app = create_app(cfg, db=db, chain_factory=lambda: chain, run_worker=False)
    publish(cfg, db)  # the trust root the service pins (deployment and receipt key), as `landreg serve` does
    keys = {role.value: create_key(db, role=role, name=f"{role.value} one", by=ADMIN)[0] for role in Role}
    return Service(TestClient(app), db, chain, deployment, keys)


@pytest.fixture
def svc(tmp_path, db, chain):
    service = make_service(tmp_path, db, chain)
    with service.client:
        yield service


def instruments(db: Database) -> int:
    with db.read() as s:
        return s.scalar(select(func.count()).select_from(Instrument))


# --- filing and receipts ----------------------------------------------------------------------------
def test_a_filing_returns_a_signed_receipt_anyone_can_check(svc):
    result = svc.file()
    receipt = result["receipt"]
    assert receipt["format"] == "landreg-receipt/v2" and receipt["instrumentNumber"].endswith("-0000001")
    assert receipt["flags"] == []
    # the fees as recorded: each line's code, payer and cents (the words stay on the certificate)
    assert receipt["fees"] == {"lines": [{k: line[k] for k in ("code", "payer", "cents")} for line in result["fees"]["lines"]],
                               "totalCents": result["fees"]["totalCents"]}  # fmt: skip
    assert receipt["commitment"].startswith("0x") and len(receipt["commitment"]) == 66
    assert result["anchoring"] == {"status": "pending"} and result["flags"] == []
    jwks = svc.client.get("/.well-known/landreg-receipt-keys.json").json()
    assert check_signature(receipt, jwks) == (True, f"signed by {receipt['signature']['kid']}")
    tampered = {**receipt, "book": "999"}
    assert check_signature(tampered, jwks)[0] is False
    again = svc.client.get(f"/api/v1/instruments/{receipt['instrumentNumber']}/receipt", headers=svc.as_("auditor"))
    assert again.json() == receipt  # the same signed bytes, at any later time


def test_invalid_input_names_field_and_rule_and_writes_nothing(svc):
    bad = deed(parcels=[{"municipality_code": "0299", "block": "1", "lot": "1"}], consideration="-5")
    r = svc.client.post("/api/v1/instruments", json=bad, headers=svc.as_("clerk"))
    assert r.status_code == 422
    fields = {(f["field"], f["rule"]) for f in r.json()["error"]["fields"]}
    assert ("parcels[0].municipality_code", "unknown_municipality") in fields
    assert ("consideration", "greater_than_equal") in fields
    r = svc.client.post("/api/v1/instruments", json={**deed(), "instrument_number": "2026-1"}, headers=svc.as_("clerk"))
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["rule"] == "extra_forbidden"
    assert instruments(svc.db) == 0


@pytest.mark.parametrize(
    ("content", "status", "code"),
    [
        (b'{"doc_type": "DEED", "doc_type": "LIEN"}', 422, "invalid_request"),
        (b"{not json", 422, "invalid_request"),
        (b'{"consideration": NaN}', 422, "invalid_request"),
        (b"[]", 422, "invalid_instrument"),
        (b'{"doc_type": "DEED", "grantors": ["' + b"x" * 2_000_000 + b'"]}', 413, "body_too_large"),
    ],
)
def test_malformed_duplicated_and_oversized_bodies(svc, content, status, code):
    r = svc.client.post("/api/v1/instruments", content=content,
                        headers={**svc.as_("clerk"), "content-type": "application/json"})  # fmt: skip
    assert r.status_code == status and r.json()["error"]["code"] == code, r.text
    assert instruments(svc.db) == 0


def test_idempotency_key_returns_the_first_receipt(svc):
    body = deed()
    first = svc.client.post("/api/v1/instruments", json=body, headers={**svc.as_("clerk"), "Idempotency-Key": "abc-1"})
    again = svc.client.post("/api/v1/instruments", json=body, headers={**svc.as_("clerk"), "Idempotency-Key": "abc-1"})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    other = svc.client.post("/api/v1/instruments", json=deed(grantees=["SOMEONE ELSE"]),
                            headers={**svc.as_("clerk"), "Idempotency-Key": "abc-1"})  # fmt: skip
    assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_key_reused"
    assert instruments(svc.db) == 1


def test_concurrent_retries_with_one_idempotency_key_record_once(svc):
    results = []
    body = deed()

    def send() -> None:
        results.append(svc.client.post("/api/v1/instruments", json=body,
                                       headers={**svc.as_("clerk"), "Idempotency-Key": "race"}))  # fmt: skip

    threads = [threading.Thread(target=send) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status_code for r in results] == [201] * 6
    assert len({r.json()["receipt"]["instrumentNumber"] for r in results}) == 1
    assert instruments(svc.db) == 1


# --- roles ------------------------------------------------------------------------------------------
NUMBER = "2026-0000001"


def role_matrix_requests():
    body = filing()
    return {
        "file": ("post", "/api/v1/instruments", body),
        "correct": ("post", f"/api/v1/instruments/{NUMBER}/corrections", filing(doc_type="CORRECTION")),
        "read": ("get", f"/api/v1/instruments/{NUMBER}", None),
        "search": ("get", "/api/v1/instruments?party=SMITH", None),
        "receipt": ("get", f"/api/v1/instruments/{NUMBER}/receipt", None),
        "parcel": ("get", "/api/v1/parcels/0223_100.01_5", None),
        "history": ("get", "/api/v1/parcels/0223_100.01_5/history", None),
        "status": ("get", "/api/v1/status", None),
        "migration": ("get", "/api/v1/migration", None),
        "migration-write": ("post", "/api/v1/migration", {}),
    }


#: expected status per role: None = no key
MATRIX = {
    "file": {None: 401, "clerk": 201, "auditor": 403, "operator": 403, "admin": 403},
    "correct": {None: 401, "clerk": 201, "auditor": 403, "operator": 403, "admin": 403},
    "read": {None: 401, "clerk": 200, "auditor": 200, "operator": 200, "admin": 200},
    "search": {None: 401, "clerk": 200, "auditor": 200, "operator": 200, "admin": 200},
    "receipt": {None: 401, "clerk": 200, "auditor": 200, "operator": 200, "admin": 403},
    "parcel": {None: 401, "clerk": 200, "auditor": 200, "operator": 200, "admin": 200},
    "history": {None: 401, "clerk": 200, "auditor": 200, "operator": 200, "admin": 200},
    "status": {None: 401, "clerk": 200, "auditor": 200, "operator": 200, "admin": 200},
    "migration": {None: 401, "clerk": 200, "auditor": 200, "operator": 200, "admin": 200},
    "migration-write": {None: 405, "clerk": 405, "auditor": 405, "operator": 405, "admin": 405},  # read-only
}


def test_role_matrix(svc):
    svc.file()  # instrument NUMBER exists
    requests = role_matrix_requests()
    seen = {}
    for action, expected in MATRIX.items():
        method, path, body = requests[action]
        for role, status in expected.items():
            before = instruments(svc.db)
            r = svc.client.request(method, path, json=body, headers=svc.as_(role))
            seen[(action, role)] = r.status_code
            if status >= 400:
                code = {401: "unauthenticated", 403: "forbidden", 405: "method_not_allowed"}[status]
                assert r.json()["error"]["code"] == code
                assert instruments(svc.db) == before  # a refused write writes nothing
    assert seen == {(a, r): s for a, e in MATRIX.items() for r, s in e.items()}
    bad = svc.client.get(f"/api/v1/instruments/{NUMBER}", headers={"Authorization": "Bearer lr_nope_nope"})
    assert bad.status_code == 401 and bad.headers["WWW-Authenticate"] == "Bearer"


def test_every_write_is_in_the_audit_log_with_its_actor(svc):
    number = svc.file()["receipt"]["instrumentNumber"]
    svc.client.post(
        f"/api/v1/instruments/{number}/corrections", json=deed(doc_type="CORRECTION"), headers=svc.as_("clerk")
    )
    with svc.db.read() as s:
        rows = s.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
    actions = [(e.action, e.role) for e in rows]
    assert actions[-2:] == [("instrument.file", "clerk"), ("instrument.correct", "clerk")]
    assert rows[-1].details["corrects"] == number and "clerk one (clerk, key" in rows[-1].actor
    assert ("key.create", "admin") in actions


def test_a_revoked_key_is_refused(svc, tmp_path):
    from registry_service.auth import revoke_key

    key_id = svc.keys["auditor"].split("_")[1]
    assert svc.client.get("/api/v1/status", headers=svc.as_("auditor")).status_code == 200
    revoke_key(svc.db, key_id, by=ADMIN)
    assert svc.client.get("/api/v1/status", headers=svc.as_("auditor")).status_code == 401


# --- corrections, search, parcels ---------------------------------------------------------------------
def test_a_correction_is_a_new_linked_version(svc):
    original = svc.file()["receipt"]["instrumentNumber"]
    fixed = svc.client.post(f"/api/v1/instruments/{original}/corrections",
                            json=deed(doc_type="CORRECTION", legal_description="Lot 5, not lot 6."),
                            headers=svc.as_("clerk"))  # fmt: skip
    assert fixed.status_code == 201
    number = fixed.json()["receipt"]["instrumentNumber"]
    assert fixed.json()["receipt"]["corrects"] == original
    old = svc.client.get(f"/api/v1/instruments/{original}", headers=svc.as_("auditor")).json()
    new = svc.client.get(f"/api/v1/instruments/{number}", headers=svc.as_("auditor")).json()
    assert old["corrected_by"] == [number] and new["corrects"] == original
    assert old["legal_description"] == deed()["legal_description"]  # the original is unchanged
    svc.anchor()
    for n in (original, number):  # both stay provable
        bundle = svc.client.get(f"/api/v1/instruments/{n}/proof", headers=svc.as_("auditor"))
        assert bundle.status_code == 200
        assert svc.client.post("/api/v1/proofs/verify", json=bundle.json()).json()["valid"]
    missing = svc.client.post("/api/v1/instruments/1999-0000001/corrections", json=deed(), headers=svc.as_("clerk"))
    assert missing.status_code == 404
    mismatch = svc.client.post(f"/api/v1/instruments/{original}/corrections", json=deed(corrects="2026-0000009"),
                               headers=svc.as_("clerk"))  # fmt: skip
    assert mismatch.status_code == 422


def test_search_filters_and_pages(svc):
    for i in range(7):
        svc.file(filing(grantees=[f"BUYER {i}"], doc_type="MORTGAGE" if i % 2 else "DEED",
                      parcels=[{"municipality_code": "0223", "block": "2", "lot": str(i % 3 + 1)}]))  # fmt: skip
    h = svc.as_("auditor")
    page = svc.client.get("/api/v1/instruments?type=MORTGAGE&limit=2", headers=h).json()
    assert page["count"] == 2 and page["next_cursor"]
    rest = svc.client.get(f"/api/v1/instruments?type=MORTGAGE&limit=2&cursor={page['next_cursor']}", headers=h).json()
    assert rest["count"] == 1 and rest["next_cursor"] is None
    assert {i["doc_type"] for i in page["data"] + rest["data"]} == {"MORTGAGE"}
    by_parcel = svc.client.get("/api/v1/instruments?parcel=0223_2_1", headers=h).json()
    assert by_parcel["count"] == 3
    assert svc.client.get("/api/v1/instruments?party=buyer 4", headers=h).json()["count"] == 1
    assert svc.client.get("/api/v1/instruments?party=%25'; drop table instruments;--", headers=h).json()["count"] == 0
    today = time.strftime("%Y-%m-%d")
    assert svc.client.get(f"/api/v1/instruments?from={today}&to={today}", headers=h).json()["count"] == 7
    assert svc.client.get("/api/v1/instruments?from=2030-01-01&to=2020-01-01", headers=h).status_code == 422
    # a Unix time is not a calendar date, though pydantic alone would take it as one
    assert svc.client.get("/api/v1/instruments?to=0", headers=h).status_code == 422
    assert svc.client.get("/api/v1/instruments?limit=1000", headers=h).status_code == 422
    assert svc.client.get("/api/v1/instruments?cursor=9300000000000000000", headers=h).status_code == 422  # > int64
    misspelt = svc.client.get("/api/v1/instruments?partyy=buyer", headers=h)  # never a silently wider search
    assert misspelt.status_code == 422 and misspelt.json()["error"]["fields"][0]["rule"] == "extra_forbidden"
    twice = svc.client.get("/api/v1/instruments?party=buyer 4&party=buyer 5", headers=h)  # nor a narrower one
    assert twice.status_code == 422 and twice.json()["error"]["fields"][0]["rule"] == "repeated", twice.text
    assert instruments(svc.db) == 7


def test_parcel_history_shows_chain_of_title_flags_and_anchoring(svc):
    first = svc.file(filing(grantors=["PRIOR OWNER"], grantees=["ANNA ADAMS"]))
    svc.anchor()
    second = svc.file(filing(grantors=["NOT THE OWNER"], grantees=["X"]))
    assert [f["kind"] for f in second["flags"]] == ["grantor_not_owner"]
    h = svc.as_("auditor")
    parcel = svc.client.get("/api/v1/parcels/0223_100.01_5", headers=h).json()
    assert parcel["owner_of_record"]["names"] == ["ANNA ADAMS"]
    assert parcel["token"]["token_id"] == 1 and parcel["token"]["status"] == "anchored"
    assert parcel["open_flags"] == 1 and parcel["instruments"] == 2
    entries = svc.client.get("/api/v1/parcels/0223_100.01_5/history", headers=h).json()["entries"]
    assert [e["title_link"] for e in entries] == [True, False]
    assert entries[0]["anchoring"]["status"] == "anchored" and entries[1]["anchoring"]["status"] == "pending"
    assert entries[1]["previous"] == first["receipt"]["commitment"]  # the hash chain
    assert entries[1]["flags"][0]["kind"] == "grantor_not_owner"
    assert svc.client.get("/api/v1/parcels/0223_999_9", headers=h).status_code == 404
    assert svc.client.get("/api/v1/parcels/not-a-key", headers=h).status_code == 422


def test_concurrent_transfers_through_the_api(svc):
    svc.file(filing(grantors=["PRIOR OWNER"], grantees=["ANNA ADAMS"]))
    barrier = threading.Barrier(2)
    results = []

    def transfer(buyer: str) -> None:
        barrier.wait()
        results.append(svc.client.post("/api/v1/instruments", json=filing(grantors=["ANNA ADAMS"], grantees=[buyer]),
                                       headers=svc.as_("clerk")))  # fmt: skip

    threads = [threading.Thread(target=transfer, args=(b,)) for b in ("BEN BAKER", "CARL CLARK")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status_code for r in results) == [201, 201]
    kinds = sorted(tuple(f["kind"] for f in r.json()["flags"]) for r in results)
    assert kinds == [(), ("conflicting_conveyance",)]


# --- proofs -----------------------------------------------------------------------------------------
def test_proof_is_pending_then_complete_and_verifies(svc):
    number = svc.file()["receipt"]["instrumentNumber"]
    pending = svc.client.get(f"/api/v1/instruments/{number}/proof", headers=svc.as_("auditor"))
    assert pending.status_code == 202 and pending.json()["anchor"] is None
    verdict = svc.client.post("/api/v1/proofs/verify", json=pending.json()).json()
    assert verdict["valid"] is False and "pending" in verdict["reason"]
    svc.anchor()
    done = svc.client.get(f"/api/v1/instruments/{number}/proof", headers=svc.as_("auditor"))
    assert done.status_code == 200 and set(done.json()["record"]["fields"]) == set(FIELDS)
    verdict = svc.client.post("/api/v1/proofs/verify", json=done.json()).json()
    assert verdict["valid"] and verdict["checkedOnChain"], verdict
    tampered = json.loads(json.dumps(done.json()))
    tampered["record"]["fields"]["consideration"]["value"] += 1
    bad = svc.client.post("/api/v1/proofs/verify", json=tampered).json()
    assert bad["valid"] is False and "do not produce its commitment" in bad["reason"]
    malformed = svc.client.post("/api/v1/proofs/verify", json={"format": "x"}).json()
    assert malformed["valid"] is False and malformed["details"]["field"] in ("anchor", "format", "record", "tree")
    assert svc.client.get("/api/v1/instruments/1990-9999999/proof").status_code == 404
    assert (
        svc.client.get(f"/api/v1/instruments/{number}/proof?redact=owner", headers=svc.as_("auditor")).status_code
        == 422
    )


def test_a_record_whose_rows_were_damaged_is_refused_by_name_and_the_rest_is_served(svc):
    """Rows changed outside landreg so that they no longer make a record: its proof and view answer a
    typed error naming it and what to do (never a guess, never a crash); other records are served."""
    damaged, fine = (svc.file()["receipt"]["instrumentNumber"] for _ in range(2))
    svc.anchor()
    with svc.db.write() as s:
        iid = s.scalar(select(Instrument.id).where(Instrument.instrument_number == damaged))
        bypass_append_only(s)
        s.execute(
            text("UPDATE commitments SET prev = :bad WHERE instrument_id = :id"), {"bad": '"not a list"', "id": iid}
        )
    for path in (f"/api/v1/instruments/{damaged}/proof", f"/api/v1/instruments/{damaged}"):
        r = svc.client.get(path, headers=svc.as_("auditor"))
        error = r.json()["error"]
        assert r.status_code == 500 and error["code"] == "damaged_record", r.text
        assert damaged in error["message"] and "landreg reconcile" in error["hint"]
    assert svc.client.get(f"/api/v1/instruments/{fine}/proof", headers=svc.as_("auditor")).status_code == 200


def test_unauthenticated_verifiers_see_only_the_public_fields(tmp_path, db, chain):
    svc = make_service(tmp_path, db, chain, public_fields=["instrument_number", "doc_type"])
    with svc.client:
        number = svc.file()["receipt"]["instrumentNumber"]
        svc.anchor()
        public = svc.client.get(f"/api/v1/instruments/{number}/proof").json()
        assert set(public["record"]["fields"]) == {"instrument_number", "doc_type"}
        assert svc.client.post("/api/v1/proofs/verify", json=public).json()["valid"]  # the proof is complete
        full = svc.client.get(f"/api/v1/instruments/{number}/proof", headers=svc.as_("auditor")).json()
        assert set(full["record"]["fields"]) == set(FIELDS)


def test_default_public_view_is_the_proof_only(svc):
    number = svc.file()["receipt"]["instrumentNumber"]
    svc.anchor()
    public = svc.client.get(f"/api/v1/instruments/{number}/proof").json()
    assert public["record"]["fields"] == {} and set(public["record"]["redacted"]) == set(FIELDS)
    assert svc.client.post("/api/v1/proofs/verify", json=public).json()["valid"]


# --- operations -------------------------------------------------------------------------------------
def test_health_readiness_and_metrics(svc):
    assert svc.client.get("/healthz").json() == {"status": "ok"}
    svc.file()
    ready = svc.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["anchoring"]["pending_records"] == 1
    svc.anchor()
    text = svc.client.get("/metrics").text
    assert 'landreg_instruments{doc_type="DEED"} 1.0' in text
    assert "landreg_pending_records 0.0" in text
    assert 'landreg_batches{state="confirmed"} 1.0' in text
    assert 'landreg_http_requests_total{method="POST",route="/api/v1/instruments",status="201"} 1.0' in text
    assert "landreg_anchoring_lag_seconds" in text and "landreg_batch_records_bucket" in text
    assert "landreg_chain_available 1.0" in text


def test_a_chain_outage_degrades_readiness_without_failing_it_or_revealing_the_node(tmp_path, db):
    from hybrid_store.errors import ChainUnavailable

    cfg = Settings(home=tmp_path / "h", chain={"backend": "eth-tester"})
    cfg.ensure_home()

    def down():  # hosted providers put the API key in the URL's path
        raise ChainUnavailable("cannot reach the node at https://node.example/v3/SECRET-API-KEY")

    with TestClient(create_app(cfg, db=db, chain_factory=down, run_worker=False)) as client:
        r = client.get("/readyz")
        filed = client.post("/api/v1/instruments", json=deed(), headers={"Authorization": "Bearer x"})
    assert (
        r.status_code == 200
        and r.json()["degraded"] is True
        and r.json()["checks"]["chain"] == {"ok": False, "block": None}
    )
    assert "SECRET" not in r.text and "node.example" not in r.text and "sqlite" not in r.text
    assert filed.status_code == 401  # the filing API is up (it needs the database, not the chain)


def test_the_openapi_document_describes_the_api(svc):
    spec = svc.client.get("/openapi.json").json()
    paths = spec["paths"]
    for path in (
        "/api/v1/instruments",
        "/api/v1/instruments/{number}/corrections",
        "/api/v1/instruments/{number}/proof",
        "/api/v1/parcels/{parcel_id}/history",
        "/api/v1/proofs/verify",
        "/healthz",
        "/readyz",
        "/metrics",
    ):
        assert path in paths, path
    assert "Idempotency-Key" in json.dumps(paths["/api/v1/instruments"]["post"]["parameters"])
    assert svc.client.get("/docs").status_code == 200


def test_the_in_process_worker_anchors_within_its_window(tmp_path, db, chain):
    from hybrid_store.deployment import attach

    cfg = Settings(home=tmp_path / "h", chain={"backend": "eth-tester"}, anchoring={"batch_max_age_s": 0.5})
    cfg.ensure_home()
    attach(db, chain)
    clerk = create_key(db, role=Role.CLERK, name="c", by=ADMIN)[0]
    with TestClient(create_app(cfg, db=db, chain_factory=lambda: chain, run_worker=True)) as client:
        filed = client.post("/api/v1/instruments", json=deed(), headers={"Authorization": f"Bearer {clerk}"}).json()
        number = filed["receipt"]["instrumentNumber"]
        deadline = time.monotonic() + 15
        status = None
        while time.monotonic() < deadline:
            status = client.get(f"/api/v1/instruments/{number}", headers={"Authorization": f"Bearer {clerk}"}).json()
            if status["anchoring"]["status"] == "anchored":
                break
            time.sleep(0.1)
        assert status["anchoring"]["status"] == "anchored"
        assert client.get("/readyz").json()["checks"]["anchoring"]["worker_here"] is True


def test_cached_bundles_keep_each_viewers_redactions(svc):
    number = svc.file()["receipt"]["instrumentNumber"]
    first = svc.client.get(f"/api/v1/instruments/{number}/proof", headers=svc.as_("auditor"))
    assert first.status_code == 202  # a pending bundle is never cached
    svc.anchor()
    for _ in range(2):  # the second round is served from the cache
        full = svc.client.get(f"/api/v1/instruments/{number}/proof", headers=svc.as_("auditor")).json()
        public = svc.client.get(f"/api/v1/instruments/{number}/proof").json()
        partial = svc.client.get(
            f"/api/v1/instruments/{number}/proof?redact=grantees", headers=svc.as_("auditor")
        ).json()
        assert set(full["record"]["fields"]) == set(FIELDS)
        assert public["record"]["fields"] == {}
        assert set(partial["record"]["redacted"]) == {"grantees"}
        assert full["anchor"] == public["anchor"] == partial["anchor"]


def test_failed_authentication_is_rate_limited_and_wrong_keys_are_not_cached(svc):
    keys = svc.client.app.state.keys
    wrong = [{"Authorization": f"Bearer lr_{n:010x}_" + "x" * 43} for n in range(22)]  # key ids of no key
    codes = [svc.client.get("/api/v1/status", headers=wrong[n]).status_code for n in range(21)]
    assert codes[:20] == [401] * 20 and codes[20] == 429
    limited = svc.client.get("/api/v1/status", headers=wrong[21])
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    assert limited.json()["error"]["code"] == "too_many_failures"
    assert keys.cached <= 5  # only good keys are remembered, never the wrong ones
    # the address is blocked for its window, whatever key it sends next; then it is let in again
    assert svc.client.get("/api/v1/status", headers=svc.as_("clerk")).status_code == 429
    keys.limiter.window_s = 0  # the window has passed
    assert svc.client.get("/api/v1/status", headers=svc.as_("clerk")).status_code == 200


def test_forwarded_addresses_are_believed_only_from_configured_proxies():
    import ipaddress
    from types import SimpleNamespace

    from starlette.requests import Request

    from registry_service.http import client_address

    def request(peer: str, forwarded: str, proxies: list[str]) -> Request:
        app = SimpleNamespace(state=SimpleNamespace(trusted_proxies=[ipaddress.ip_network(p) for p in proxies]))
        return Request({"type": "http", "client": (peer, 1), "headers": [(b"x-forwarded-for", forwarded.encode())],
                        "app": app})  # fmt: skip

    assert client_address(request("198.51.100.7", "203.0.113.9", [])) == "198.51.100.7"  # no proxy configured
    assert client_address(request("198.51.100.7", "203.0.113.9", ["10.0.0.0/8"])) == "198.51.100.7"  # not ours
    assert client_address(request("10.0.0.1", "1.2.3.4, 203.0.113.9, 10.0.0.2", ["10.0.0.0/8"])) == "203.0.113.9"


def test_security_headers_and_the_secure_cookie_setting(svc, tmp_path, db):
    for path in ("/api/v1/status", "/desk/login", "/healthz", "/docs"):
        h = svc.client.get(path).headers
        assert h["x-content-type-options"] == "nosniff" and h["x-frame-options"] == "DENY", path
        assert "frame-ancestors 'none'" in h["content-security-policy"], path
    assert "script-src 'self'" in svc.client.get("/desk/login").headers["content-security-policy"]
    assert "Secure" not in svc.client.get("/desk/login").headers.get("set-cookie", "")
    cfg = Settings(home=tmp_path / "home", chain={"backend": "eth-tester"}, service={"secure_cookies": True})
    cfg.ensure_home()
    with TestClient(create_app(cfg, db=db, chain_factory=lambda: svc.chain, run_worker=False)) as client:
        assert "secure" in client.get("/desk/login").headers["set-cookie"].lower()


def test_the_desk_takes_a_scan_the_api_would_refuse_and_answers_too_large_with_a_page(svc):
    two_mb = b"x" * 2_000_000
    api = svc.client.post("/api/v1/instruments", content=two_mb, headers={**svc.as_("clerk"),
                                                                          "Content-Type": "application/json"})  # fmt: skip
    assert api.status_code == 413 and api.json()["error"]["code"] == "body_too_large"
    desk = svc.client.post("/desk/file", files={"document": ("deed.pdf", two_mb, "application/pdf")},
                           follow_redirects=False)  # fmt: skip
    assert desk.status_code != 413  # past the size limit (to the sign-in and CSRF checks)
    # nobody's upload is read only to send them to sign in (a signed-in clerk's: tests/test_desk_limits.py)
    huge = svc.client.post("/desk/file", files={"document": ("deed.pdf", b"x" * 54_000_000, "application/pdf")},
                           follow_redirects=False)  # fmt: skip
    assert huge.status_code == 303 and huge.headers["location"].startswith("/desk/login")


def test_metrics_can_be_restricted_to_operators(svc, tmp_path, db):
    cfg = Settings(home=tmp_path / "home", chain={"backend": "eth-tester"}, service={"metrics_access": "operators",
                                                                                      "key_cache_s": 0})  # fmt: skip
    with TestClient(create_app(cfg, db=db, chain_factory=lambda: svc.chain, run_worker=False)) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers=svc.as_("clerk")).status_code == 403
        assert client.get("/metrics", headers=svc.as_("admin")).status_code == 403
        ok = client.get("/metrics", headers=svc.as_("operator"))
        assert ok.status_code == 200 and "landreg_pending_records" in ok.text
    assert svc.client.get("/metrics").status_code == 200  # the default: public, for a scraper without a key


def test_fifty_concurrent_transfers_of_one_parcel_make_one_unforked_chain(svc):
    parcel = {"municipality_code": "0223", "block": "50", "lot": "1"}
    svc.file(filing(grantors=["PRIOR OWNER"], grantees=["ANNA ADAMS"], parcels=[parcel]))
    barrier = threading.Barrier(50)
    results: list = []

    errors: list = []

    def transfer(i: int) -> None:
        barrier.wait()
        try:
            results.append(svc.client.post("/api/v1/instruments", headers=svc.as_("clerk"),
                                           json=filing(grantors=["ANNA ADAMS"], grantees=[f"BUYER {i}"], parcels=[parcel])))  # fmt: skip
        except Exception as exc:  # a server error surfaces here in the test client
            errors.append(repr(exc))

    threads = [threading.Thread(target=transfer, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(r.status_code for r in results) == [201] * 50, [r.text for r in results if r.status_code != 201]
    unflagged = [r for r in results if not r.json()["flags"]]
    assert len(unflagged) == 1  # exactly one sale by the owner of record; the other 49 are flagged
    assert all(f["kind"] in ("conflicting_conveyance", "grantor_not_owner") for r in results for f in r.json()["flags"])
    history = svc.client.get("/api/v1/parcels/0223_50_1/history", headers=svc.as_("auditor")).json()["entries"]
    assert len(history) == 51
    links = {e["commitment"]: e["previous"] for e in history}
    heads = [c for c in links if c not in set(links.values())]
    assert len(heads) == 1  # one chain, no fork: every record but the newest is someone's previous
    seen, at = 0, heads[0]
    while at is not None:
        seen, at = seen + 1, links[at]
    assert seen == 51  # walking back from the head visits every record once


# --- numbers a clerk did not type -------------------------------------------------------------------
NOT_TYPED = ["١٠٠٠.00", "1_000.00", " 1000.00", "1000.00\n", "１０００.00", "۱۰۰۰", "1000.00 ", "1e3", "1E+3", "+1000",
             "NaN", "Infinity", "-Infinity", "0x3e8", "1,000.00", "", "1000.", ".50"]  # fmt: skip


@pytest.mark.parametrize("typed", NOT_TYPED)
def test_an_amount_is_ascii_digits_only_in_the_legacy_readers_words(svc, typed):
    from hybrid_store.plain_numbers import is_amount, not_an_amount
    from migration_tools.legacy.layout import Column
    from migration_tools.legacy.mapping import Unreadable, amount

    r = svc.client.post("/api/v1/instruments", json=deed(consideration=typed), headers=svc.as_("clerk"))
    assert r.status_code == 422, r.text
    (field,) = r.json()["error"]["fields"]
    assert (field["field"], field["rule"]) == ("consideration", "amount_format")
    assert field["message"].startswith(not_an_amount(typed) + ": type digits 0-9")
    shown = typed.strip().replace(",", "")  # a legacy column is padded, and its amounts may have separators
    if shown and not is_amount(shown):
        with pytest.raises(Unreadable) as legacy:
            amount(Column(column="amt"), {"amt": typed})
        assert not_an_amount(shown) in str(legacy.value)  # the same words
    assert instruments(svc.db) == 0


@pytest.mark.parametrize(
    ("raw", "accepted"),
    [(b"1000", True), (b'"1000.50"', True), (b"1000.5", False), (b"1e3", False), (b"1000.0", False), (b"true", False)],
)
def test_json_numbers_are_whole_dollars_and_cents_come_as_a_string(svc, raw, accepted):
    body = json.dumps(deed(consideration="X")).encode().replace(b'"X"', raw)
    r = svc.client.post("/api/v1/instruments", content=body,
                        headers={**svc.as_("clerk"), "content-type": "application/json"})  # fmt: skip
    if accepted:
        assert r.status_code == 201, r.text
        number = r.json()["receipt"]["instrumentNumber"]
        shown = svc.client.get(f"/api/v1/instruments/{number}", headers=svc.as_("clerk")).json()["consideration"]
        assert shown == ("1000.00" if raw == b"1000" else "1000.50")
    else:
        assert r.status_code == 422 and r.json()["error"]["fields"][0]["rule"] == "amount_format", r.text


@pytest.mark.parametrize("typed", ["1_0", " 10", "10 ", "10\n", "+10", "10.0", "١٠", "１０", "1e1", "0x0a", "NaN"])
def test_whole_numbers_in_queries_and_paths_are_ascii_digits_only(svc, typed):
    from urllib.parse import quote

    from hybrid_store.plain_numbers import not_a_number

    for url in (f"/api/v1/instruments?limit={quote(typed)}", f"/.well-known/landreg-trust-root/{quote(typed)}.json"):
        r = svc.client.get(url, headers=svc.as_("clerk"))
        assert r.status_code == 422, (url, r.text)
        (field,) = r.json()["error"]["fields"]
        assert field["rule"] == "number_format" and field["message"].startswith(not_a_number(typed)), (url, field)
    assert svc.client.get("/api/v1/instruments?limit=10", headers=svc.as_("clerk")).status_code == 200
    assert svc.client.get("/.well-known/landreg-trust-root/1.json").status_code == 200
