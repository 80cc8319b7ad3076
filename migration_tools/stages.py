"""Staged migration of the legacy book: plan, run (resumable), status, sign-off, roll back.

A stage selects legacy records (not yet committed) by municipality, recording dates and deed
books. Stages run in the order they were planned; a stage starts only when every earlier one has
been reconciled clean and signed off by an operator.

``run`` commits and anchors the stage in batches of ``batch_size`` records, in recording order.
Each batch is one database transaction: the records' commitments, the batch with its signed
transaction, the parcel tokens it mints, and the stage's checkpoint. Only then is the transaction
sent. So a run killed at any moment resumes (``resume``, or ``run`` again) to exactly the state an
uninterrupted run reaches: the same batches with the same roots, nothing twice, nothing missed.
While it runs it holds the anchoring lock and also anchors what clerks file meanwhile (the
outbox), so no record is anchored by both paths or by neither.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from typing import Any

from sqlalchemy import Integer, cast, exists, func, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from hybrid_store import hashing_pool, ledger
from hybrid_store.anchoring import Anchorer, Leaf, plan_batch, stored_tx, untokenized_parcels
from hybrid_store.chain.client import RegistryChain
from hybrid_store.core import commitment as commitments
from hybrid_store.crashpoints import crashpoint
from hybrid_store.db.engine import Database
from hybrid_store.db.models import (
    AnchorBatch,
    BatchState,
    ChainDeployment,
    Commitment,
    Instrument,
    InstrumentParcel,
    MigrationStage,
    OutboxEntry,
    Parcel,
)
from hybrid_store.errors import LandregError, NotFound
from hybrid_store.worker_lock import WorkerLock

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 10_000
HANDOVER_WAIT_S = 120.0


class StageError(LandregError):
    """A stage cannot do what was asked (order, state, sign-off); the message says why."""


@dataclass(frozen=True)
class Selector:
    """Which legacy records a stage takes. Empty means no restriction on that axis."""

    municipalities: tuple[str, ...] = ()
    date_from: date | None = None
    date_to: date | None = None
    book_from: int | None = None
    book_to: int | None = None

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["municipalities"] = list(self.municipalities)
        for k in ("date_from", "date_to"):
            d[k] = d[k].isoformat() if d[k] else None
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Selector:
        return cls(
            municipalities=tuple(d.get("municipalities") or ()),
            date_from=date.fromisoformat(d["date_from"]) if d.get("date_from") else None,
            date_to=date.fromisoformat(d["date_to"]) if d.get("date_to") else None,
            book_from=d.get("book_from"),
            book_to=d.get("book_to"),
        )

    def describe(self) -> str:
        parts = []
        if self.municipalities:
            parts.append("municipalities " + ", ".join(self.municipalities))
        if self.date_from or self.date_to:
            parts.append(f"recorded {self.date_from or '…'} to {self.date_to or '…'}")
        if self.book_from is not None or self.book_to is not None:
            parts.append(f"books {self.book_from or '…'} to {self.book_to or '…'}")
        return "; ".join(parts) or "every legacy record"

    def conditions(self) -> list[Any]:
        out: list[Any] = []
        if self.municipalities:
            out.append(
                exists(
                    select(InstrumentParcel.instrument_id)
                    .join(Parcel, Parcel.id == InstrumentParcel.parcel_id)
                    .where(InstrumentParcel.instrument_id == Instrument.id)
                    .where(Parcel.municipality_code.in_(self.municipalities))
                )
            )
        if self.date_from:
            out.append(Instrument.recorded_at >= datetime.combine(self.date_from, dtime.min, UTC))
        if self.date_to:
            out.append(Instrument.recorded_at < datetime.combine(self.date_to, dtime.min, UTC) + timedelta(days=1))
        if self.book_from is not None:
            out.append(cast(Instrument.book, Integer) >= self.book_from)
        if self.book_to is not None:
            out.append(cast(Instrument.book, Integer) <= self.book_to)
        return out


def _committed():
    return exists(select(Commitment.instrument_id).where(Commitment.instrument_id == Instrument.id))


def _unmigrated(selector: Selector | None) -> list[Any]:
    """Where-clauses of the legacy records a stage (all stages, without a selector) still has to migrate."""
    return [Instrument.source == "legacy", ~_committed(), *(selector.conditions() if selector else [])]


def candidates(session: Session, selector: Selector) -> list[int]:
    """Ids of the records the stage still has to migrate, in recording order."""
    stmt = select(Instrument.id).where(*_unmigrated(selector)).order_by(Instrument.recorded_at, Instrument.id)
    return list(session.scalars(stmt))


def count_candidates(session: Session, selector: Selector | None = None) -> int:
    """How many records ``candidates`` would return (all unmigrated legacy records without a selector)."""
    return session.scalar(select(func.count()).select_from(Instrument).where(*_unmigrated(selector))) or 0


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


def _gate(session: Session, stage: MigrationStage | None) -> str:
    earlier = session.scalars(
        select(MigrationStage)
        .where(MigrationStage.id < (stage.id if stage is not None else 2**62))
        .where(MigrationStage.state != "rolled_back")
        .order_by(MigrationStage.id)
    ).all()
    for s in earlier:
        if s.state != "signed_off":
            return f"waits for {s.name!r} ({s.state}) to be reconciled clean and signed off"
    return "ready"


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
        to_migrate = s.scalar(select(func.count()).select_from(Instrument).where(*base, ~_committed())) or 0
        by_outbox = s.scalar(
            select(func.count()).select_from(Instrument).where(
                *base, exists(select(OutboxEntry.id).where(OutboxEntry.instrument_id == Instrument.id))
            )
        ) or 0  # fmt: skip
        gate = _gate(s, existing)
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
        commitments.prepare(sample, b"\x00" * 32)
    per_record = (time.perf_counter() - started) / 200
    return records * (per_record / max(1, min(2, multiprocessing.cpu_count())) + 60e-6) + batches * 0.3


# --- run --------------------------------------------------------------------------------------------
@dataclass
class RunReport:
    stage: str
    records: int = 0
    batches: int = 0
    gas_used: int = 0
    seconds: float = 0.0
    outbox_batches: int = 0
    batch_ids: list[int] = field(default_factory=list)


class StageRunner:
    def __init__(
        self,
        db: Database,
        chain: RegistryChain,
        deployment: ChainDeployment,
        *,
        confirmations: int = 1,
        manifest_dir: Any = None,
        outbox_batch_records: int = 1000,
        outbox_max_age_s: float = 2.0,
        workers: int = 2,
        progress: Callable[[int, int], None] | None = None,
        anchorer: Anchorer | None = None,
    ):
        """``anchorer`` is the worker as configured (``Anchorer.from_settings``); without one, a worker
        of the other arguments and the defaults is made."""
        self.db = db
        self.anchorer = anchorer or Anchorer(
            db, chain, deployment, confirmations=confirmations, manifest_dir=manifest_dir,
            batch_max_records=outbox_batch_records, batch_max_age_s=outbox_max_age_s)  # fmt: skip
        self.workers = workers
        self.progress = progress

    def run(self, name: str) -> RunReport:
        lock = WorkerLock(self.db)
        _take_lock(lock)
        try:
            return self._run_locked(name)
        finally:
            lock.release()

    def _run_locked(self, name: str) -> RunReport:
        started = time.perf_counter()
        a = self.anchorer
        a.wait_in_flight()  # a killed run left its last batch signed or sent: finish it first
        a.check_consistency()
        stage_id, batch_size, selector, done_before = self._start(name)
        with self.db.read() as s:
            ids = candidates(s, selector)
        report = RunReport(stage=name)
        total = done_before + len(ids)
        if self.progress:
            self.progress(done_before, total)
        chunks = [ids[i : i + batch_size] for i in range(0, len(ids), batch_size)]
        for entries in self._prepared(chunks):
            batch = self._anchor_chunk_retrying(stage_id, entries)
            if batch is None:
                continue
            crashpoint("migrate:stored")
            a.chain.send(stored_tx(batch))  # refused (underpriced, ...): settling replaces it
            crashpoint("migrate:sent")
            a.wait_in_flight()
            report.records += batch.record_count
            report.batches += 1
            report.batch_ids.append(batch.chain_batch_id)
            if a.step() is not None:  # what clerks filed meanwhile, when its batch is due
                report.outbox_batches += 1
            if self.progress:
                self.progress(done_before + report.records, total)
        self._finish(stage_id)
        with self.db.read() as s:
            report.gas_used = s.scalar(
                select(func.coalesce(func.sum(AnchorBatch.gas_used), 0)).where(
                    AnchorBatch.stage_id == stage_id, AnchorBatch.state != BatchState.FAILED
                )
            ) or 0  # fmt: skip
        report.seconds = time.perf_counter() - started
        return report

    def _start(self, name: str) -> tuple[int, int, Selector, int]:
        """The stage, checked that it may run and marked running: (id, batch size, selector, records done)."""
        with self.db.write() as s:
            stage = _stage(s, name)
            if stage.state in ("signed_off", "rolled_back"):
                raise StageError(f"stage {name!r} is {stage.state}")
            gate = _gate(s, stage)
            if gate != "ready":
                raise StageError(f"stage {name!r} {gate}")
            if stage.state == "planned":
                stage.state = "running"
                stage.started_at = datetime.now(UTC)
            return stage.id, stage.batch_size, Selector.from_json(stage.selector), stage.records_done

    def _prepared(self, chunks: list[list[int]]) -> Iterator[list[ledger.Entry]]:
        """Each chunk's ledger entries, in order. Two chunks are in flight in the hashing processes
        while this one commits and anchors; the first is hashed here while they start up."""
        pool = self._pool() if len(chunks) > 1 and self.workers >= 1 else None

        def submit(chunk: list[int]) -> list[Any]:  # split so every hashing process has a share
            step = math.ceil(len(chunk) / self.workers)
            return [pool.apply_async(hashing_pool.prepare_chunk, (chunk[i : i + step],))  # type: ignore[union-attr]
                    for i in range(0, len(chunk), step)]  # fmt: skip

        try:
            ahead = [submit(chunk) for chunk in chunks[1:3]] if pool else []
            for k, chunk in enumerate(chunks):
                if pool is None or k == 0:
                    yield hashing_pool.prepare_chunk(chunk, self.db)
                    continue
                entries = [e for job in ahead.pop(0) for e in job.get()]
                if k + 2 < len(chunks):
                    ahead.append(submit(chunks[k + 2]))
                yield entries
        finally:
            if pool is not None:
                pool.terminate()

    def _pool(self):
        return hashing_pool.start(self.db.url, self.workers, yield_cpu=True)

    def _anchor_chunk_retrying(self, stage_id: int, entries: list[ledger.Entry]) -> AnchorBatch | None:
        for attempt in range(5):
            try:
                return self._anchor_chunk(stage_id, entries)
            except OperationalError as exc:  # a deadlock with a filing that locked the same parcels
                if attempt == 4:
                    raise
                log.warning("migration batch retried after %s", getattr(exc.orig, "__class__", type(exc)).__name__)
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    def _anchor_chunk(self, stage_id: int, entries: list[ledger.Entry]) -> AnchorBatch | None:
        """Commit, plan, sign and store one batch in one transaction (nothing is sent yet)."""
        a = self.anchorer
        with self.db.write() as s:
            ids = [e.instrument_id for e in entries]
            # lock the parcels first: a filing commits a parcel's older records only while holding
            # its row, so what is uncommitted after this point stays uncommitted until we are done
            heads = ledger.lock_heads(s, [pid for e in entries for pid in e.parcel_ids])
            taken = set(s.scalars(select(Commitment.instrument_id).where(Commitment.instrument_id.in_(ids))))
            fresh = [e for e in entries if e.instrument_id not in taken]  # a filing committed some meanwhile
            if not fresh:
                return None
            made = ledger.append(s, fresh, heads, enqueue=False)
            numbers = {e.instrument_id: e.number for e in fresh}
            planned = plan_batch([Leaf.record(iid, numbers[iid], value) for iid, value in made], a.next_chain_batch_id(s),
                           untokenized_parcels(s, (), {pid for e in fresh for pid in e.parcel_ids}), stage_id=stage_id)  # fmt: skip
            signed, first_token, parcel_tree, head = a.sign(planned)
            batch = a.store(s, planned, signed, first_token, parcel_tree, head)
            crashpoint("migrate:building")
            s.execute(
                update(MigrationStage)
                .where(MigrationStage.id == stage_id)
                .values(
                    records_done=MigrationStage.records_done + len(made), batches_done=MigrationStage.batches_done + 1
                )
            )
        return batch

    def _finish(self, stage_id: int) -> None:
        deadline = time.monotonic() + 600
        while True:
            self.anchorer.settle()
            with self.db.read() as s:
                open_batches = s.scalar(
                    select(func.count()).select_from(AnchorBatch).where(
                        AnchorBatch.stage_id == stage_id, AnchorBatch.state.in_([BatchState.SIGNED, BatchState.MINED])
                    )
                )  # fmt: skip
            if not open_batches or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        with self.db.write() as s:
            stage = s.get_one(MigrationStage, stage_id)
            with self.db.read() as r:
                left = candidates(r, Selector.from_json(stage.selector))
            if not left and not open_batches:
                stage.state = "anchored"
                stage.finished_at = datetime.now(UTC)


def _take_lock(lock: WorkerLock) -> None:
    if lock.acquire():
        return
    log.info("asking the running anchoring worker to hand over")
    lock.request_handover()
    deadline = time.monotonic() + HANDOVER_WAIT_S
    try:
        while not lock.acquire():
            if time.monotonic() > deadline:
                raise StageError(
                    "the anchoring worker did not hand over within 2 minutes; stop it (or the server's worker) and retry"
                )
            time.sleep(0.5)
    finally:
        lock.clear_handover()


def _stage(s: Session, name: str) -> MigrationStage:
    stage = s.scalar(select(MigrationStage).where(MigrationStage.name == name))
    if stage is None:
        raise NotFound(f"no migration stage {name!r}: plan it first (`landreg migrate plan {name} ...`)")
    return stage


# --- status, sign-off -------------------------------------------------------------------------------
@dataclass(frozen=True)
class StageStatus:
    name: str
    state: str
    selector: str
    batch_size: int
    records_done: int
    batches_done: int
    remaining: int
    reconciled_at: datetime | None
    reconciled_clean: bool | None
    signed_off_by: str | None
    signed_off_at: datetime | None
    gate: str

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("reconciled_at", "signed_off_at"):
            d[k] = d[k].isoformat() if d[k] else None
        return d


def stage_status(db: Database) -> list[StageStatus]:
    with db.read() as s:
        stages = s.scalars(select(MigrationStage).order_by(MigrationStage.id)).all()
        out = []
        for st in stages:
            selector = Selector.from_json(st.selector)
            remaining = 0 if st.state in ("signed_off", "rolled_back") else count_candidates(s, selector)
            out.append(StageStatus(
                st.name, st.state, selector.describe(), st.batch_size, st.records_done, st.batches_done, remaining,
                st.reconciled_at, st.reconciled_clean, st.signed_off_by, st.signed_off_at,
                _gate(s, st) if st.state in ("planned", "running") else "-",
            ))  # fmt: skip
    return out


def sign_off(db: Database, name: str, actor: str) -> None:
    """An operator accepts a stage: it must be fully anchored and its last reconciliation clean."""
    with db.write() as s:
        stage = _stage(s, name)
        if stage.state != "anchored":
            raise StageError(f"stage {name!r} is {stage.state}; only a fully anchored stage can be signed off")
        if (
            not stage.reconciled_clean
            or stage.reconciled_at is None
            or (stage.finished_at and stage.reconciled_at < stage.finished_at)
        ):
            raise StageError(
                f"stage {name!r} has no clean reconciliation since it finished: run `landreg reconcile --stage {name}`"
            )
        stage.state = "signed_off"
        stage.signed_off_by = actor
        stage.signed_off_at = datetime.now(UTC)


# --- roll back --------------------------------------------------------------------------------------
ROLLBACK_REASON = b"ROLLBACK".ljust(32, b"\x00")
REVOKE_CHUNK = 400  # leaves per revocation transaction (each revocation is one storage write)


@dataclass
class RollbackReport:
    stage: str
    batches: list[int] = field(default_factory=list)  # on-chain ids of the superseded batches
    replacements: list[int] = field(default_factory=list)  # ... and of the batches re-anchoring them
    records: int = 0


def rollback_stage(
    db: Database, chain: RegistryChain, deployment: ChainDeployment, name: str, *, confirmations: int = 1,
    manifest_dir: Any = None, batch_ids: Iterable[int] | None = None, anchorer: Anchorer | None = None,
) -> RollbackReport:  # fmt: skip
    """Roll back a stage (or some of its batches) without deleting anything: each batch's records
    are revoked on chain and the batch marked superseded, then the records are anchored again in a
    new batch that names the one it supersedes. Both stay in the history; bundles use the new one.
    Safe to run again after a crash: revocation skips what is revoked, and the re-anchoring batch
    is stored with its signed transaction before it is sent."""
    lock = WorkerLock(db)
    _take_lock(lock)
    anchorer = anchorer or Anchorer(db, chain, deployment, confirmations=confirmations, manifest_dir=manifest_dir)
    report = RollbackReport(stage=name)
    try:
        anchorer.wait_in_flight()
        anchorer.check_consistency()
        with db.read() as s:
            stage = _stage(s, name)
            stmt = select(AnchorBatch).where(
                AnchorBatch.stage_id == stage.id, AnchorBatch.state == BatchState.CONFIRMED,
                AnchorBatch.superseded_at.is_(None),
            )  # fmt: skip
            if batch_ids is not None:
                stmt = stmt.where(AnchorBatch.chain_batch_id.in_(list(batch_ids)))
            targets = s.scalars(stmt.order_by(AnchorBatch.id)).all()
            if not targets:
                raise StageError(f"stage {name!r} has no anchored batch to roll back")
            stage_id = stage.id
        for old in targets:
            members = _members(db, old.id)
            leaves = [merkle_leaf for merkle_leaf, _, _, _ in members]
            for i in range(0, len(leaves), REVOKE_CHUNK):
                signed = chain.sign_revoke(old.chain_batch_id, leaves[i : i + REVOKE_CHUNK], ROLLBACK_REASON,
                                           chain.pending_nonce())  # fmt: skip
                chain.wait(chain.broadcast(signed))
            crashpoint("rollback:revoked")
            with db.write() as s:
                records = [Leaf.record(iid, number, c) for _, iid, number, c in members]
                planned = plan_batch([*records, Leaf.rollback(old.root, old.chain_batch_id)], anchorer.next_chain_batch_id(s),
                               untokenized_parcels(s, [leaf.instrument_id for leaf in records]), stage_id=stage_id,
                               supersedes_batch_id=old.id)  # fmt: skip
                signed, first_token, parcel_tree, head = anchorer.sign(planned)
                new = anchorer.store(s, planned, signed, first_token, parcel_tree, head)
                s.execute(update(AnchorBatch).where(AnchorBatch.id == old.id).values(superseded_at=datetime.now(UTC)))
                s.execute(
                    update(MigrationStage).where(MigrationStage.id == stage_id)
                    .values(state="anchored", reconciled_clean=None, reconciled_at=None)
                )  # fmt: skip
            chain.send(stored_tx(new))
            anchorer.wait_in_flight()
            report.batches.append(old.chain_batch_id)
            report.replacements.append(new.chain_batch_id)
            report.records += len(members)
    finally:
        lock.release()
    return report


def _members(db: Database, batch_id: int) -> list[tuple[bytes, int, str, bytes]]:
    from hybrid_store.core import merkle
    from hybrid_store.db.models import BatchRecord

    with db.read() as s:
        rows = s.execute(
            select(BatchRecord.instrument_id, Instrument.instrument_number, Commitment.commitment)
            .join(Instrument, Instrument.id == BatchRecord.instrument_id)
            .join(Commitment, Commitment.instrument_id == BatchRecord.instrument_id)
            .where(BatchRecord.batch_id == batch_id)
        ).all()
    return sorted((merkle.commitment_leaf(c), iid, number, c) for iid, number, c in rows)
