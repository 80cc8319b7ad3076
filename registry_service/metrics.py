"""Prometheus metrics at ``/metrics``.

Registry-wide figures (filings, anchoring lag, batches, gas) are read from the database at scrape
time, so every server process reports the same truth. Per-process figures (requests, their
latency, errors) come from this process; with several processes set PROMETHEUS_MULTIPROC_DIR and
they are aggregated by prometheus_client's multiprocess mode.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from sqlalchemy import func, select

from hybrid_store.batches import confirmed_records, open_holds
from hybrid_store.db.engine import Database
from hybrid_store.db.models import AnchorBatch, FailureKind, Instrument, OutboxEntry, TitleFlag

BATCH_BUCKETS = (1, 10, 50, 100, 500, 1000, 2500, 5000, 10_000, 50_000)


class Metrics:
    def __init__(self, db: Database, chain_available: Callable[[], bool | None] = lambda: None):
        self.registry = CollectorRegistry()
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            multiprocess.MultiProcessCollector(self.registry)
        self.requests = Counter(
            "landreg_http_requests", "HTTP requests", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "landreg_http_request_seconds", "HTTP request latency", ["route"], registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )  # fmt: skip
        self.errors = Counter(
            "landreg_http_errors", "HTTP responses with status >= 500", ["route"], registry=self.registry
        )
        self.registry.register(_RegistryCollector(db, chain_available))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _RegistryCollector:
    def __init__(self, db: Database, chain_available: Callable[[], bool | None]):
        self.db = db
        self.chain_available = chain_available  # the chain as this process last saw it (never waited on)

    def collect(self):
        with self.db.read() as s:
            by_type = s.execute(select(Instrument.doc_type, func.count()).group_by(Instrument.doc_type)).all()
            pending, oldest = s.execute(
                select(func.count(), func.min(OutboxEntry.enqueued_at)).where(OutboxEntry.batch_id.is_(None))
            ).one()
            flags = s.execute(select(TitleFlag.kind, func.count()).group_by(TitleFlag.kind)).all()
            batches = s.execute(select(AnchorBatch.state, func.count()).group_by(AnchorBatch.state)).all()
            confirmed = confirmed_records(s)
            holds = {h.kind for h in open_holds(s)}
            failures = s.execute(select(AnchorBatch.error_kind, func.count()).where(AnchorBatch.state == "failed")
                                 .group_by(AnchorBatch.error_kind)).all()  # fmt: skip
        filings = GaugeMetricFamily("landreg_instruments", "recorded instruments", labels=["doc_type"])
        for doc_type, n in by_type:
            filings.add_metric([doc_type], n)
        yield filings
        yield GaugeMetricFamily("landreg_pending_records", "records waiting for a batch", value=pending)
        lag = (datetime.now(UTC) - oldest).total_seconds() if oldest else 0.0
        yield GaugeMetricFamily(
            "landreg_anchoring_lag_seconds", "age of the oldest record waiting for a batch", value=lag
        )
        flagged = GaugeMetricFamily("landreg_title_flags", "filings flagged for review", labels=["kind"])
        for kind, n in flags:
            flagged.add_metric([kind], n)
        yield flagged
        states = GaugeMetricFamily("landreg_batches", "anchoring batches by state", labels=["state"])
        for state, n in batches:
            states.add_metric([state], n)
        yield states
        yield _histogram(
            "landreg_batch_records", "records per confirmed batch", [r for r, _ in confirmed], BATCH_BUCKETS
        )
        held = GaugeMetricFamily("landreg_anchoring_held", "1 while anchoring holds, by cause", labels=["kind"])
        for kind in (FailureKind.PAUSED, FailureKind.MISSING_ROLE, FailureKind.FEE_CEILING, FailureKind.REFUSED,
                     FailureKind.PERMANENT, FailureKind.CHAIN_RESET):  # fmt: skip
            held.add_metric([kind], 1 if kind in holds else 0)
        yield held
        failed = GaugeMetricFamily("landreg_failed_batches", "failed batches by cause", labels=["kind"])
        for error_kind, n in failures:
            failed.add_metric([error_kind or "unknown"], n)
        yield failed
        available = self.chain_available()
        if available is not None:
            yield GaugeMetricFamily("landreg_chain_available", "1 while the chain's node answers", value=int(available))
        gas = [g for _, g in confirmed if g is not None]
        yield GaugeMetricFamily("landreg_anchoring_gas", "gas used by confirmed batches", value=sum(gas))


class MeasureRequests:
    """Counts and times every HTTP request by route template (a pure ASGI middleware: Starlette's
    BaseHTTPMiddleware would add a task and a stream copy to every request)."""

    def __init__(self, app, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            template = getattr(scope.get("route"), "path", "(unmatched)")
            self.metrics.requests.labels(scope["method"], template, str(status)).inc()
            self.metrics.latency.labels(template).observe(time.perf_counter() - started)
            if status >= 500:
                self.metrics.errors.labels(template).inc()


def _histogram(name: str, doc: str, values: list[int], buckets: tuple[int, ...]) -> HistogramMetricFamily:
    counts = [(str(b), sum(1 for v in values if v <= b)) for b in buckets] + [("+Inf", len(values))]
    return HistogramMetricFamily(name, doc, buckets=counts, sum_value=sum(values))
