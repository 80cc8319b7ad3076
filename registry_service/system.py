"""Operational endpoints: liveness, readiness, metrics, the trust root and the receipt-signing keys."""

from __future__ import annotations

import logging
import pathlib
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text

from hybrid_store.db.models import FailureKind
from registry_service.auth import Permission, Unauthenticated
from registry_service.deps import Caller, require
from registry_service.http import WholeNumber

router = APIRouter(tags=["operations"])
log = logging.getLogger(__name__)


@router.get("/healthz", summary="Liveness")
def healthz() -> dict[str, str]:
    """The process is up (it does not look at the database or the chain: see /readyz)."""
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: database (required), chain and server processes (degraded), anchoring lag")
def readyz(request: Request) -> JSONResponse:
    """503 only when the database cannot be reached: filing needs the database, not the chain.
    A chain node that does not answer makes the service *degraded* (filings queue for anchoring)
    without taking the filing API out of a load balancer; so do server processes that died
    recently or wait to be replaced (``checks.processes``: counts per kind, never pids). Open to
    everyone, so it reveals no configuration: no URL (hosted nodes put the API key in it), no error
    text (that goes to the log). The chain is as this process last saw it (``chain_probe``): a hung
    node is reported within about a second, never waited on; a node that answers as another chain
    (a ``chain_reset`` hold) is not ok."""
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
    # the node as last seen, never waited on for more than a second: a hung node must not hang the probe
    seen = state.services.status.chain()
    checks["chain"] = {"ok": bool(seen and seen.ok), "block": seen.block if seen else None}
    if checks["database"]["ok"]:
        status = state.services.status.anchoring(recent=0)
        holds = sorted(h.kind for h in status.holds)
        checks["anchoring"] = {
            "pending_records": status.pending_records,
            "lag_s": status.oldest_pending_age_s or 0.0,
            "worker_here": bool(state.background and state.background.active),
            "holds": holds,
        }
        if FailureKind.CHAIN_RESET in holds:  # the node answers, but as another chain: nothing is anchored to it
            checks["chain"].update(ok=False, reset=True)
    processes = _supervision(state.settings.service.supervisor_status)
    if processes is not None:
        checks["processes"] = processes
    degraded = ready and not (checks["chain"]["ok"] and (processes is None or processes["ok"]))
    return JSONResponse({"ready": ready, "degraded": degraded, "checks": checks}, status_code=200 if ready else 503)


def _supervision(path: pathlib.Path | None) -> dict[str, Any] | None:
    """Server processes being replaced (after a crash, a kill) make the service degraded, not
    unready: this process answers, and the supervisor keeps replacing the others."""
    from registry_service.supervisor import supervision

    return None if path is None else supervision(path)


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
