"""The FastAPI application. ``create_app`` builds everything from settings; nothing happens at
import time, so tests build apps with their own database and chain."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import cache
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from hybrid_store import __version__
from hybrid_store.chain.client import RegistryChain
from hybrid_store.chain.connect import open_chain
from hybrid_store.db.engine import Database
from hybrid_store.pins import pin_jurisdiction
from hybrid_store.settings import Settings, get_settings
from hybrid_store.strict_json import restore_recursion_limit
from registry_service import api, system
from registry_service.auth import FailureLimiter, KeyVerifier
from registry_service.background import BackgroundAnchorer
from registry_service.http import BodySizeLimit, SecurityHeaders, install_error_handlers
from registry_service.metrics import MeasureRequests, Metrics
from registry_service.receipts import ReceiptSigner
from registry_service.services import Services

DESCRIPTION = """
A county land registry whose deed database stays the authority, while every recorded instrument
gets a salted commitment anchored on an Ethereum chain and every parcel an ERC-721 token in
registry custody.

* **Clerks** record instruments and corrections and get signed receipts.
* **Auditors** read any record or parcel history and fetch proof bundles they verify themselves
  (`landreg verify`, or `POST /api/v1/proofs/verify`).

Authenticate with an API key: `Authorization: Bearer lr_...` (`landreg keys create`).
Errors have one shape: `{"error": {"code", "message", "hint"?, "fields"?}}`.
"""


def _document_request_models(app: FastAPI) -> None:
    """Put the filing bodies (validated by the registry, not by FastAPI) into the OpenAPI components."""
    from fastapi.openapi.utils import get_openapi

    from registry_service.schemas import CorrectionCreate, InstrumentCreate

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes,
                           tags=app.openapi_tags)  # fmt: skip
        components = spec.setdefault("components", {}).setdefault("schemas", {})
        for model in (InstrumentCreate, CorrectionCreate):
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}", mode="validation")
            components.update(schema.pop("$defs", {}))
            components[model.__name__] = schema
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(
    settings: Settings | None = None,
    *,
    db: Database | None = None,
    chain_factory: Callable[[], RegistryChain] | None = None,
    run_worker: bool | None = None,
) -> FastAPI:
    settings = settings or get_settings()
    settings.ensure_home()
    db = db or Database(settings.db_url)
    pin_jurisdiction(db, settings.profile)  # refuses to serve a registry under another jurisdiction
    chain_factory = chain_factory or (lambda: open_chain(settings))
    read_chain = cache(chain_factory)  # one read connection per process; the worker opens its own
    signer = ReceiptSigner.for_settings(settings, db)  # refuses to start without its passphrase
    run_worker = settings.service.run_worker if run_worker is None else run_worker
    background = BackgroundAnchorer(settings, db, chain_factory) if run_worker else None

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if background:
            background.start()
        try:
            yield
        finally:
            if background:
                background.stop()

    app = FastAPI(
        title="landreg — land registry",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_tags=[
            {"name": "clerks", "description": "Record instruments and corrections."},
            {"name": "auditors", "description": "Read records and verify proofs."},
            {"name": "operators", "description": "Anchoring status."},
            {"name": "operations", "description": "Health, readiness, metrics, keys."},
        ],
    )
    app.state.settings = settings
    app.state.db = db
    app.state.signer = signer
    service = settings.service
    app.state.keys = KeyVerifier(
        db, service.key_cache_s, max_cached=service.key_cache_size,
        limiter=FailureLimiter(service.auth_failures_per_address, service.auth_failures_per_address_and_key,
                               service.auth_failures_global),
    )  # fmt: skip
    app.state.trusted_proxies = [ipaddress.ip_network(p, strict=False) for p in settings.service.trusted_proxies]
    app.state.services = Services.build(settings, db, signer, read_chain)
    app.state.metrics = Metrics(db, lambda: seen.ok if (seen := app.state.services.status.chain()) else None)
    app.state.background = background

    install_error_handlers(app)
    _document_request_models(app)
    app.include_router(api.router)
    app.include_router(system.router)
    from registry_service.web import desk

    desk.install(app, settings)
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")

    restore_recursion_limit()  # after every chain library has been imported (see hybrid_store.strict_json)
    app.add_middleware(MeasureRequests, metrics=app.state.metrics)
    # the desk's filing form carries the scanned deed (up to desk.MAX_DOCUMENT_BYTES) plus its fields
    app.add_middleware(BodySizeLimit, limit=settings.service.max_body_bytes,
                       larger={"/desk/file": desk.MAX_DOCUMENT_BYTES + 1_000_000})  # fmt: skip
    app.add_middleware(SecurityHeaders)
    return app
