"""Benchmark only: `landreg serve` with one more route, ``POST /bench/bare/instruments``, the
baseline issue 25 measures filing against.

    PYTHONPATH=.:bench python -m bare_filing --port 8000 --workers 2   # as `landreg serve` takes them

The bare endpoint is served by the same processes as the product's (the same app, middleware,
key check, JSON reading and validation, the same database and pool) and writes the same deed rows
in one transaction: the instrument with its parties, parcels and index terms
(``record_instruments(with_commitments=False)``, as a legacy load writes them) and the submission
row. It leaves out what a filing adds on top: examination, the commitment, the ledger's links and
heads, the outbox entry, the fee book, the audit entry and the signed receipt. It is never part of
the product: only this script mounts it.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from hybrid_store.db.models import Submission
from hybrid_store.filing import record_instruments
from hybrid_store.intake import validate
from registry_service.auth import Actor
from registry_service.deps import Filer
from registry_service.http import read_json
from registry_service.services.filing import Envelope

APP = "bare_filing:create_app"


def create_app() -> FastAPI:
    from registry_service.app import create_app as create_registry_app

    app = create_registry_app()

    @app.post("/bench/bare/instruments", status_code=201, include_in_schema=False)
    async def bare_file(request: Request, who: Filer) -> JSONResponse:
        body = await read_json(request)
        number, submission = await run_in_threadpool(_record, request.app, who, body)
        return JSONResponse({"instrumentNumber": number, "submission": submission}, status_code=201)

    return app


def _record(app: FastAPI, who: Actor, body: Any) -> tuple[str, int]:
    profile = app.state.settings.profile
    data = dict(body)
    envelope = Envelope.take(data, profile)
    instrument = validate(data, profile=profile, content_only=True)
    now = datetime.now(UTC)
    keys = [p.key for p in instrument.parcels]
    with app.state.db.write() as s:
        [made] = record_instruments(s, [instrument], source="filing", now=now, with_commitments=False)
        sub = Submission(
            received_at=now, submitter=who.label, api_key_id=who.api_key_pk, channel="api",
            filing=instrument.model_dump(mode="json", exclude_none=True), doc_type=str(instrument.doc_type),
            document_digest=instrument.document_digest, parcel_keys=keys, state="recorded", findings=[],
            attestations=[], confirmations=[{"codes": list(envelope.confirm), "by": who.label, "at": now.isoformat(),
                                             "reason": envelope.confirm_reason, "up_front": True}],
            instrument_id=made.instrument_id, resolved_at=now, resolved_by="examination",
        )  # fmt: skip
        s.add(sub)
        s.flush()
        return made.instrument_number, sub.id


def run_http(host: str, port: int, reuse_port: bool = False) -> None:
    """One HTTP process of the benchmark server: ``registry_service.server.run_one`` on this app."""
    from registry_service import server

    server.APP = APP
    server.run_one(host, port, reuse_port)


def main() -> None:
    parser = argparse.ArgumentParser(description="landreg serve, plus the bare filing endpoint (benchmark only)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if args.workers < 2:
        raise SystemExit("--workers 2 or more: the one-process server takes another path (run_one_on)")
    import bare_filing  # this module by its importable name: the spawned processes import it so

    from registry_service import server
    from registry_service.cli.main import serve

    server.run_one = bare_filing.run_http  # type: ignore[assignment]
    serve(host=args.host, port=args.port, workers=args.workers, worker=None)


if __name__ == "__main__":
    main()
