"""The role matrix over every route the app serves (API and desk), for every kind of caller:
anonymous, clerk, auditor, operator, admin, a revoked key and a malformed key. Deny by default:
the routes are listed from the app itself, so a new route without a line here fails the test."""

from __future__ import annotations

import re

import pytest

from registry_service.auth import ROLE_PERMISSIONS, Permission, Role, create_key, revoke_key
from tests.conftest import app_routes, deed
from tests.test_api import ADMIN, make_service

PUBLIC = None
#: (method, route template) -> the permission it needs (None: open to everyone)
SPEC: dict[tuple[str, str], Permission | None] = {
    ("POST", "/api/v1/instruments"): Permission.FILE,
    ("GET", "/api/v1/instruments"): Permission.READ,
    ("POST", "/api/v1/instruments/{number}/corrections"): Permission.CORRECT,
    ("GET", "/api/v1/instruments/{number}"): Permission.READ,
    ("GET", "/api/v1/instruments/{number}/receipt"): Permission.PROOF,
    ("GET", "/api/v1/instruments/{number}/proof"): PUBLIC,  # redacted unless the key may see more
    ("GET", "/api/v1/parcels/{parcel_id}"): Permission.READ,
    ("GET", "/api/v1/parcels/{parcel_id}/history"): Permission.READ,
    ("GET", "/api/v1/parcels/{parcel_id}/abstract"): PUBLIC,  # index fields always; the rest as the key may see
    ("GET", "/api/v1/parcels/{parcel_id}/head"): PUBLIC,  # a commitment and a count, no field
    ("POST", "/api/v1/flags/{source}/{flag_id}/acknowledge"): Permission.ACKNOWLEDGE,
    ("POST", "/api/v1/proofs/verify"): PUBLIC,
    ("POST", "/api/v1/receipts/verify"): PUBLIC,
    ("GET", "/api/v1/status"): Permission.READ,
    ("GET", "/api/v1/migration"): Permission.READ,
    ("GET", "/api/v1/submissions"): Permission.READ,
    ("GET", "/api/v1/queues"): Permission.READ,
    ("GET", "/api/v1/queues/today"): Permission.READ,
    ("GET", "/api/v1/queues/mine"): Permission.READ,
    ("GET", "/api/v1/queues/review"): Permission.READ,
    ("GET", "/api/v1/submissions/{submission_id}"): Permission.READ,
    ("POST", "/api/v1/submissions/{submission_id}/confirm"): Permission.EXAMINE,
    ("POST", "/api/v1/submissions/{submission_id}/reject"): Permission.EXAMINE,
    ("POST", "/api/v1/fees/quote"): Permission.FILE,
    ("GET", "/api/v1/fees/report"): Permission.FILE,  # the till is the filing clerks'
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,  # the default; test_api covers LANDREG_SERVICE__METRICS_ACCESS=operators
    ("GET", "/.well-known/landreg-receipt-keys.json"): PUBLIC,
    ("GET", "/.well-known/landreg-trust-root.json"): PUBLIC,
    ("GET", "/.well-known/landreg-trust-root/{version}.json"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
    ("GET", "/"): PUBLIC,
    ("GET", "/desk/login"): PUBLIC,
    ("POST", "/desk/login"): PUBLIC,
    ("POST", "/desk/logout"): PUBLIC,
    ("GET", "/desk/"): Permission.READ,
    ("GET", "/desk/parcels/{key}"): Permission.READ,
    ("GET", "/desk/file"): Permission.FILE,
    ("POST", "/desk/file"): Permission.FILE,
    ("GET", "/desk/instruments/{number}"): Permission.READ,
    ("GET", "/desk/instruments/{number}/bundle.json"): Permission.PROOF,
    ("GET", "/desk/instruments/{number}/receipt.json"): Permission.PROOF,
    ("GET", "/desk/instruments/{number}/certificate"): Permission.READ,  # what the instrument page shows
    ("GET", "/verify/{number}"): PUBLIC,  # the certificate's QR code: verdict and anchor, public fields only
    ("GET", "/desk/audit"): Permission.PROOF,
    ("POST", "/desk/audit/verify"): Permission.PROOF,
    ("POST", "/desk/audit/receipt"): Permission.PROOF,
    ("GET", "/desk/status"): Permission.READ,
    ("GET", "/desk/submissions"): Permission.READ,
    ("GET", "/desk/queues/today"): Permission.READ,
    ("GET", "/desk/queues/mine"): Permission.READ,
    ("GET", "/desk/queues/review"): Permission.READ,
    ("GET", "/desk/submissions/{submission_id}"): Permission.READ,
    ("POST", "/desk/submissions/{submission_id}/{verb}"): Permission.EXAMINE,
    ("POST", "/desk/mirror-flags/{flag_id}/ack"): Permission.ACKNOWLEDGE,
    ("GET", "/desk/fees"): Permission.FILE,
    ("GET", "/desk/fees.csv"): Permission.FILE,
}
CALLERS = ["anonymous", "clerk", "auditor", "operator", "admin", "revoked", "malformed"]


@pytest.fixture
def matrix_svc(tmp_path, sqlite_db):
    from hybrid_store.chain.connect import eth_tester_chain

    # every route with one wrong key from one address: the failure limits (tested in test_auth) stay out of the way
    svc = make_service(tmp_path, sqlite_db, eth_tester_chain(), auth_failures_per_address=10_000,
                       auth_failures_per_address_and_key=10_000)  # fmt: skip
    key, row = create_key(sqlite_db, role=Role.AUDITOR, name="left the county", by=ADMIN)
    svc.keys["revoked"] = key
    svc.keys["malformed"] = "lr_not-a-key"
    svc.keys["revoked_id"] = row.key_id
    return svc


def test_every_route_is_in_the_matrix(matrix_svc):
    assert app_routes(matrix_svc.client.app) == set(SPEC)


def request_for(svc, method: str, path: str, number: str) -> dict:
    url = (path.replace("{number}", number).replace("{parcel_id}", "0223_100.01_5").replace("{key}", "0223_100.01_5")
           .replace("{flag_id}", "1").replace("{source}", "mirror").replace("{submission_id}", "1")
           .replace("{verb}", "confirm")
           .replace("{version}", "1"))  # fmt: skip
    kwargs: dict = {"url": url, "method": method, "follow_redirects": False}
    if method == "POST" and url.startswith("/api/"):
        kwargs["json"] = (deed(doc_type="CORRECTION") if "corrections" in url else {} if "verify" in url
                          else {"reason": "checked against the image"} if "acknowledge" in url else deed())  # fmt: skip
    return kwargs


def expected_api(permission: Permission | None, caller: str) -> set[int] | str:
    if permission is None:
        return "open"
    if caller in ("anonymous", "revoked", "malformed"):
        return {401}
    return "allowed" if permission in ROLE_PERMISSIONS[Role(caller)] else {403}


@pytest.mark.parametrize("caller", CALLERS)
def test_api_routes(matrix_svc, caller):
    svc = matrix_svc
    number = svc.file()["receipt"]["instrumentNumber"]
    revoke_key(svc.db, svc.keys["revoked_id"], by=ADMIN)
    headers = {} if caller == "anonymous" else {"Authorization": f"Bearer {svc.keys[caller]}"}
    wrong = []
    for (method, path), permission in SPEC.items():
        if path.startswith("/desk"):
            continue
        r = svc.client.request(**request_for(svc, method, path, number), headers=headers)
        want = expected_api(permission, caller)
        if want == "open":  # a wrong key is still refused where a key may be given
            ok = r.status_code < 500 and r.status_code != 403
            ok = ok and (r.status_code != 401 or caller in ("revoked", "malformed"))
        elif want == "allowed":
            ok = r.status_code < 400 or r.status_code in (404, 409, 422)  # past the gate
        else:
            ok = r.status_code in want
        if not ok:
            wrong.append((method, path, r.status_code, r.text[:120]))
    assert wrong == []


def desk_session(svc, caller: str):
    """A browser session: signed in with the caller's key (anonymous: none). A revoked key was
    valid at sign-in and revoked afterwards: its session must end with it."""
    client = svc.client
    client.cookies.clear()
    if caller == "anonymous":
        return
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/desk/login").text).group(1)
    client.post("/desk/login", data={"api_key": svc.keys[caller], "csrf": csrf}, follow_redirects=False)
    if caller == "revoked":
        revoke_key(svc.db, svc.keys["revoked_id"], by=ADMIN)


@pytest.mark.parametrize("caller", CALLERS)
def test_desk_routes(matrix_svc, caller):
    svc = matrix_svc
    number = svc.file()["receipt"]["instrumentNumber"]
    desk_session(svc, caller)
    signed_in = caller in ("clerk", "auditor", "operator", "admin")
    csrf = ""
    if signed_in:
        page = svc.client.get("/desk/status").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1) if 'name="csrf"' in page else ""
    wrong = []
    for (method, path), permission in SPEC.items():
        if not path.startswith("/desk") or path in ("/desk/login", "/desk/logout"):
            continue
        kwargs = request_for(svc, method, path, number)
        if method == "POST":
            kwargs["data"] = {"csrf": csrf}
            upload = ("u.json", b"{}", "application/json")
            names = {"/desk/file": ["document"], "/desk/audit/verify": ["bundle_file"]}.get(
                path, ["bundle_file", "receipt_file"]
            )
            kwargs["files"] = {name: upload for name in names}
        r = svc.client.request(**kwargs)
        if not signed_in:  # anonymous, a revoked key's session, a malformed key that never signed in
            ok = r.status_code == 303 and r.headers["location"].startswith("/desk/login")
        elif permission in ROLE_PERMISSIONS[Role(caller)]:  # past the gate (an empty form is a 400/422)
            ok = r.status_code < 400 or r.status_code in (400, 404, 422)
        else:
            ok = r.status_code == 403 and "text/html" in r.headers["content-type"]
        if not ok:
            wrong.append((method, path, r.status_code))
    assert wrong == []
