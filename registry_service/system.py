"""Operational endpoints: liveness, readiness, metrics, the trust root and the receipt-signing keys."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness")
def healthz() -> dict[str, str]:
    """The process is up (it does not look at the database or the chain: see /readyz)."""
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: database, chain, anchoring lag")
def readyz(request: Request) -> JSONResponse:
    """503 when the database or the chain node cannot be reached; reports the anchoring lag."""
    state = request.app.state
    checks: dict[str, Any] = {}
    ready = True
    try:
        with state.db.read() as s:
            s.execute(text("SELECT 1"))
        checks["database"] = {"ok": True, "dialect": state.db.dialect}
    except Exception as exc:
        ready = False
        checks["database"] = {"ok": False, "error": str(exc).splitlines()[0]}
    try:
        chain = state.registry.read_chain()
        checks["chain"] = {"ok": True, "chain_id": chain.chain_id, "block": chain.head()}
    except Exception as exc:
        ready = False
        checks["chain"] = {"ok": False, "error": str(exc).splitlines()[0]}
    if checks["database"]["ok"]:
        status = state.registry.status(recent=0)
        checks["anchoring"] = {
            "pending_records": status.pending_records,
            "lag_s": status.oldest_pending_age_s or 0.0,
            "worker_here": bool(state.background and state.background.active),
        }
    return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(request: Request) -> Response:
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
def trust_root_version(request: Request, version: Annotated[int, Path(ge=1, le=1_000_000)]) -> Response:
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
