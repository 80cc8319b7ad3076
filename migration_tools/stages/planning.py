"""Planning a stage: a dry run with its figures (records, batches, gas, cost, time) and its gate."""

from __future__ import annotations

import logging
import math
import multiprocessing
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from hybrid_store.chain.client import RegistryChain
from hybrid_store.core import commitment as commitments
from hybrid_store.db.engine import Database
from hybrid_store.db.models import (
    Instrument,
    MigrationStage,
    OutboxEntry,
)
from migration_tools.stages.selection import (
    DEFAULT_BATCH_SIZE,
    AuditHook,
    Selector,
    StageError,
    book_municipalities,
    committed,
    count_candidates,
    gate_of,
    unmigrated,
)

log = logging.getLogger(__name__)


@dataclass
class Replaced:
    """What planning a stage again replaces: its earlier selection and what that would migrate now."""

    stage: str
    selector: str
    to_migrate: int
    batch_size: int


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
    refusals: list[str] = field(default_factory=list)  # why it is not recorded without --force
    replaces: Replaced | None = None  # the stage's earlier definition, when planned again

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
    force: bool = False,
    audit: AuditHook | None = None,
) -> PlanReport:
    """The dry run: what the stage would migrate, skip, cost and take. With ``save`` the stage is
    recorded (or its definition updated while it is still only planned).

    A stage that selects nothing, names a municipality the book does not hold, or overlaps another
    stage that has not run yet is refused (``StageError``) unless ``force``: each is a typo or a
    plan whose figures would mislead, and a recorded stage gates every stage after it."""
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
        refusals = _refusals(s, name, existing, selector, matching, to_migrate)
        replaces = None
        if existing is not None:
            old = Selector.from_json(existing.selector)
            replaces = Replaced(name, old.describe(), count_candidates(s, old), existing.batch_size)
    if save and refusals and not force:
        raise StageError(f"stage {name!r} not recorded: " + "; ".join(refusals)
                         + " (`--force` records it anyway)")  # fmt: skip
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
        refusals=refusals, replaces=replaces,
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
            if audit is not None:
                audit(s, "migration.plan", {
                    "target": f"stage {name}", "selector": report.selector, "to_migrate": to_migrate,
                    "batch_size": batch_size, "forced": refusals if force else [],
                    "replaced": asdict(replaces) if replaces else None,
                })  # fmt: skip
    return report


def _refusals(
    s: Session, name: str, existing: MigrationStage | None, selector: Selector, matching: int, to_migrate: int
) -> list[str]:
    """Why recording this stage would be a mistake, in the operator's words (empty: nothing)."""
    out: list[str] = []
    held = {m.code for m in book_municipalities(s)}
    missing = [code for code in selector.municipalities if code not in held]
    if missing:
        out.append(f"the book holds no legacy record in municipality {', '.join(missing)} "
                   "(`landreg legacy municipalities` lists the ones it holds)")  # fmt: skip
    if to_migrate == 0:
        total = s.scalar(select(func.count()).select_from(Instrument).where(Instrument.source == "legacy")) or 0
        if total == 0:
            out.append("the book holds no legacy records yet: load them first (`landreg legacy import ...` or "
                       "`landreg legacy sync`)")  # fmt: skip
        elif matching == 0:
            pointer = "" if missing else "; `landreg legacy municipalities` lists what the book holds"
            out.append(f"it selects 0 of the book's {total:,} legacy records ({selector.describe()}){pointer}")
        else:
            out.append(f"all {matching:,} records it selects are already migrated")
    # a stage over "every legacy record" planned after narrower ones is the runbook's "the rest": it
    # takes what they leave, since it waits for them; any other overlap is a stage whose count is wrong
    others = s.scalars(
        select(MigrationStage).where(MigrationStage.name != name, MigrationStage.state.in_(("planned", "running")))
    ).all()
    for other in others:
        other_sel = Selector.from_json(other.selector)
        is_rest = not selector.conditions() and other_sel.conditions()
        if is_rest and (existing is None or other.id < existing.id):
            continue
        both = s.scalar(
            select(func.count()).select_from(Instrument).where(*unmigrated(selector), *other_sel.conditions())
        ) or 0  # fmt: skip
        if both:
            out.append(f"{both:,} of its records are also selected by stage {other.name!r} ({other_sel.describe()}, "
                       f"{other.state}): narrow one of them")  # fmt: skip
    return out


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
