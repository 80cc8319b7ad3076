"""Planning a stage: a dry run with its figures (records, batches, gas, cost, time) and its gate."""

from __future__ import annotations

import logging
import math
import multiprocessing
import time
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import exists, func, select

from hybrid_store.chain.client import RegistryChain
from hybrid_store.core import commitment as commitments
from hybrid_store.db.engine import Database
from hybrid_store.db.models import (
    Instrument,
    MigrationStage,
    OutboxEntry,
)
from migration_tools.stages.selection import DEFAULT_BATCH_SIZE, Selector, StageError, committed, gate_of

log = logging.getLogger(__name__)


# --- plan -------------------------------------------------------------------------------------------
@dataclass
class PlanReport:
    stage: str
    selector: str
    batch_size: int
    matching: int
    to_migrate: int
    skipped: dict[str, int]
    batches: int
    gas_per_batch: int
    gas_total: int
    gas_per_record: float
    gas_price_wei: int
    cost_eth: float
    seconds_estimate: float
    gate: str  # why the stage may or may not run now

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def plan_stage(
    db: Database,
    chain: RegistryChain | None,
    name: str,
    selector: Selector,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    actor: str,
    save: bool = True,
) -> PlanReport:
    """The dry run: what the stage would migrate, skip, cost and take. With ``save`` the stage is
    recorded (or its definition updated while it is still only planned)."""
    with db.read() as s:
        existing = s.scalar(select(MigrationStage).where(MigrationStage.name == name))
        if existing is not None and existing.state != "planned":
            raise StageError(f"stage {name!r} is {existing.state}; its definition can no longer change")
        base = [Instrument.source == "legacy", *selector.conditions()]
        matching = s.scalar(select(func.count()).select_from(Instrument).where(*base)) or 0
        to_migrate = s.scalar(select(func.count()).select_from(Instrument).where(*base, ~committed())) or 0
        by_outbox = s.scalar(
            select(func.count()).select_from(Instrument).where(
                *base, exists(select(OutboxEntry.id).where(OutboxEntry.instrument_id == Instrument.id))
            )
        ) or 0  # fmt: skip
        gate = gate_of(s, existing)
    skipped = {
        "already committed by a filing on the same parcel (anchored through the outbox)": by_outbox,
        "already migrated by an earlier stage": matching - to_migrate - by_outbox,
    }
    batches = math.ceil(to_migrate / batch_size) if to_migrate else 0
    gas_per_batch, gas_price = _gas_estimate(chain, min(batch_size, max(to_migrate, 1)))
    gas_total = gas_per_batch * batches
    report = PlanReport(
        stage=name, selector=selector.describe(), batch_size=batch_size, matching=matching, to_migrate=to_migrate,
        skipped={k: v for k, v in skipped.items() if v}, batches=batches, gas_per_batch=gas_per_batch,
        gas_total=gas_total, gas_per_record=gas_total / to_migrate if to_migrate else 0.0, gas_price_wei=gas_price,
        cost_eth=gas_total * gas_price / 1e18, seconds_estimate=_time_estimate(to_migrate, batches), gate=gate,
    )  # fmt: skip
    if save:
        with db.write() as s:
            stage = s.scalar(select(MigrationStage).where(MigrationStage.name == name))
            if stage is None:
                s.add(MigrationStage(name=name, selector=selector.to_json(), state="planned", batch_size=batch_size,
                                     created_by=actor, records_done=0, batches_done=0))  # fmt: skip
            else:
                stage.selector = selector.to_json()
                stage.batch_size = batch_size
    return report


def _gas_estimate(chain: RegistryChain | None, records: int) -> tuple[int, int]:
    """Gas of one anchoring transaction (estimated by the node on a sample batch), and the gas price."""
    if chain is None or chain.address is None:
        return 180_000, 0
    try:
        return chain.anchor_cost(records)
    except Exception as exc:  # an estimate must not stop planning
        log.warning("gas estimate failed (%s); using 180,000 per batch", exc)
        return 180_000, 0


def _time_estimate(records: int, batches: int) -> float:
    """Commitment hashing measured here on sample records, spread over the hashing processes,
    plus a per-batch allowance for database writes and the chain round trip."""
    from hybrid_store.core.records import build_record

    sample = build_record(
        instrument_number="2026-0000001", doc_type="DEED", recorded_at="2026-01-01T00:00:00Z", book="1", page="1",
        grantors=["A PERSON"], grantees=["ANOTHER PERSON", "A THIRD"], consideration_cents=10_000_000,
        legal_description="ALL that certain lot " * 10, document_digest="a" * 64, parcels=["0223_1_1"],
        corrects=None, prev={},
    )  # fmt: skip
    started = time.perf_counter()
    for _ in range(200):
        commitments.prepare(sample, b"\x00" * 32, commitments.SCHEME)
    per_record = (time.perf_counter() - started) / 200
    return records * (per_record / max(1, min(2, multiprocessing.cpu_count())) + 60e-6) + batches * 0.3
