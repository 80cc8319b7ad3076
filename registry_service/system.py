"""Operational endpoints: liveness, readiness, metrics, the trust root and the receipt-signing keys."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text

from registry_service.auth import Permission, Unauthenticated
from registry_service.deps import Caller, require
from registry_service.http import WholeNumber

router = APIRouter(tags=["operations"])
log = logging.getLogger(__name__)


@router.get("/healthz", summary="Liveness")
def healthz() -> dict[str, str]:
    """The process is up (it does not look at the database or the chain: see /readyz)."""
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: database (required), chain (degraded), anchoring lag")
def readyz(request: Request) -> JSONResponse:
    """503 only when the database cannot be reached: filing needs the database, not the chain.
    A chain node that does not answer makes the service *degraded* (filings queue for anchoring)
    without taking the filing API out of a load balancer. Open to everyone, so it reveals no
    configuration: no URL (hosted nodes put the API key in it), no error text (that goes to the log)."""
    state = request.app.state
    checks: dict[str, Any] = {}
    ready = True
    try:
        with state.db.read() as s:
            s.execute(text("SELECT 1"))
        checks["database"] = {"ok": True}
    except Exception:
        log.exception("readiness: the database does not answer")
        ready = False
        checks["database"] = {"ok": False}
    try:
        chain = state.services.proofs.read_chain()
        checks["chain"] = {"ok": True, "block": chain.head()}
    except Exception:
        log.warning("readiness: the chain node does not answer", exc_info=True)
        checks["chain"] = {"ok": False}
    if checks["database"]["ok"]:
        status = state.services.status.anchoring(recent=0)
        checks["anchoring"] = {
            "pending_records": status.pending_records,
            "lag_s": status.oldest_pending_age_s or 0.0,
            "worker_here": bool(state.background and state.background.active),
        }
    degraded = ready and not checks["chain"]["ok"]
    return JSONResponse({"ready": ready, "degraded": degraded, "checks": checks}, status_code=200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(request: Request, who: Caller) -> Response:
    """Open to everyone, or to operators' keys only (`LANDREG_SERVICE__METRICS_ACCESS=operators`)."""
    if request.app.state.settings.service.metrics_access == "operators":
        if who is None:
            raise Unauthenticated("/metrics is for operators: send an operator's API key")
        require(who, Permission.OPERATE)
    return Response(request.app.state.metrics.render(), media_type="text/plain; version=0.0.4")


@router.get("/.well-known/landreg-receipt-keys.json", summary="Receipt-signing public keys (JWK set)")
def receipt_keys(request: Request) -> dict[str, Any]:
    """Check a receipt offline: Ed25519 over the RFC 8785 canonical JSON of the receipt without
    its `signature` member (`landreg receipt verify`)."""
    return request.app.state.signer.jwks()


TRUST_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "the signed trust root (docs/proof-bundle.md)", "content": {"application/json": {}}},
    404: {"description": "not published (yet)"},
}


@router.get("/.well-known/landreg-trust-root.json", summary="The registry's trust root (newest version)",
            response_class=Response, responses=TRUST_RESPONSES)  # fmt: skip
def trust_root(request: Request) -> Response:
    """What auditors pin: the registry's chain, its DeedRegistry deployments with their block ranges
    and code hashes, and its receipt keys with their windows. Obtain the first copy out of band (the
    county publishes it); each later version is signed by a root key of the one before it."""
    return _trust_file(request, "root.json")


@router.get("/.well-known/landreg-trust-root/{version}.json", summary="One version of the trust root",
            response_class=Response, responses=TRUST_RESPONSES)  # fmt: skip
def trust_root_version(request: Request, version: Annotated[WholeNumber, Path(ge=1, le=1_000_000)]) -> Response:
    """Version N, for verifiers following updates from the version they hold (`landreg trust update`)."""
    return _trust_file(request, f"{version}.root.json")


def _trust_file(request: Request, name: str) -> Response:
    path = request.app.state.settings.trust_dir / name
    try:
        body = path.read_bytes()
    except OSError:
        return JSONResponse({"detail": "no such trust root version (the registry has not published it)"},
                            status_code=404)  # fmt: skip
    return Response(body, media_type="application/json", headers={"Cache-Control": "no-cache"})
