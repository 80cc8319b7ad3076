"""Schemathesis drives every operation of the OpenAPI document with generated input, valid and
invalid: the service must never answer 5xx, must answer as it documents, and must reject what is
not in its schema."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, assume, given, settings
from schemathesis import GenerationMode

from hybrid_store.chain.connect import eth_tester_chain
from hybrid_store.deployment import attach
from hybrid_store.settings import Settings
from registry_service.app import create_app
from registry_service.auth import Actor, Role, create_key
from tests.conftest import make_sqlite

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("fuzz")
    cfg = Settings(home=tmp_path / "home", chain={"backend": "eth-tester"})
    cfg.ensure_home()
    db = make_sqlite(tmp_path)
    chain = eth_tester_chain()
    attach(db, chain)
    key = create_key(db, role=Role.CLERK, name="fuzzer", by=Actor("test-suite", Role.ADMIN))[0]
    app = create_app(cfg, db=db, chain_factory=lambda: chain, run_worker=False)
    from hybrid_store.trust import publish

    publish(cfg, db)
    return schemathesis.openapi.from_asgi("/openapi.json", app), {"Authorization": f"Bearer {key}"}


def operations():
    """Every operation of the document (test_api.py checks the document lists exactly these)."""
    return [
        ("POST", "/api/v1/instruments"), ("POST", "/api/v1/instruments/{number}/corrections"),
        ("GET", "/api/v1/instruments"), ("GET", "/api/v1/instruments/{number}"),
        ("GET", "/api/v1/instruments/{number}/receipt"), ("GET", "/api/v1/instruments/{number}/proof"),
        ("GET", "/api/v1/parcels/{parcel_id}"), ("GET", "/api/v1/parcels/{parcel_id}/history"),
        ("GET", "/api/v1/parcels/{parcel_id}/abstract"), ("GET", "/api/v1/parcels/{parcel_id}/head"),
        ("POST", "/api/v1/flags/{source}/{flag_id}/acknowledge"),
        ("POST", "/api/v1/proofs/verify"), ("GET", "/api/v1/status"), ("GET", "/api/v1/migration"), ("GET", "/healthz"), ("GET", "/readyz"),
        ("GET", "/.well-known/landreg-receipt-keys.json"), ("POST", "/api/v1/receipts/verify"),
        ("GET", "/.well-known/landreg-trust-root.json"), ("GET", "/.well-known/landreg-trust-root/{version}.json"),
        ("GET", "/api/v1/submissions"), ("GET", "/api/v1/submissions/{submission_id}"),
        ("POST", "/api/v1/submissions/{submission_id}/confirm"), ("POST", "/api/v1/submissions/{submission_id}/reject"),
        ("POST", "/api/v1/fees/quote"), ("GET", "/api/v1/fees/report"),
        ("GET", "/api/v1/queues"), ("GET", "/api/v1/queues/today"), ("GET", "/api/v1/queues/mine"),
        ("GET", "/api/v1/queues/review"),
    ]  # fmt: skip


WITHOUT_INPUT = {"/api/v1/status", "/api/v1/migration", "/healthz", "/readyz", "/.well-known/landreg-receipt-keys.json",
                 "/.well-known/landreg-trust-root.json", "/api/v1/queues", "/api/v1/queues/review"}  # fmt: skip
CASES = [
    (method, path, mode)
    for method, path in operations()
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode == GenerationMode.POSITIVE or path not in WITHOUT_INPUT  # nothing to make invalid
]


@pytest.mark.parametrize(("method", "path", "mode"), CASES, ids=lambda x: getattr(x, "value", x))
def test_every_operation_answers_as_documented(api, method, path, mode):
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        negative_data_rejection,
        response_schema_conformance,
        status_code_conformance,
    )

    schema, headers = api
    operation = schema[path][method]
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    if mode == GenerationMode.NEGATIVE:
        checks.append(negative_data_rejection)

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def run(case):
        if mode == GenerationMode.NEGATIVE:
            assume(sent_as_generated(case))
        case.call_and_validate(headers=headers, checks=checks)

    run()


def sent_as_generated(case) -> bool:
    """The HTTP client leaves out a query parameter whose value is an empty list, so a negative
    case whose only fault was such a parameter reaches the service as a valid request (with the
    Authorization header the suite adds), and Schemathesis would call its acceptance a failure."""
    return not any(value == [] for value in (case.query or {}).values())


def test_the_fuzzed_operations_are_all_the_documented_ones(api):
    schema, _headers = api
    documented = {(method.upper(), path) for path, ops in schema.raw_schema["paths"].items() for method in ops}
    assert documented - {("GET", "/metrics")} == set(operations())
