"""Running a stage: commit and anchor its records in batches, in recording order, resumably.

Each batch is one database transaction: the records' commitments, the batch with its signed
transaction, the parcel tokens it mints, and the stage's checkpoint. Only then is the transaction
sent. So a run killed at any moment resumes to exactly the state an uninterrupted run reaches.
While it runs it holds the anchoring lock and also anchors what clerks file meanwhile (the
outbox), so no record is anchored by both paths or by neither.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import OperationalError

from hybrid_store import ledger, title_states
from hybrid_store.anchoring import Anchorer, Leaf, plan_batch, untokenized_parcels
from hybrid_store.anchoring.worker import title_hold
from hybrid_store.chain.client import RegistryChain
from hybrid_store.crashpoints import crashpoint
from hybrid_store.db.engine import Database
from hybrid_store.db.models import (
    AnchorBatch,
    BatchState,
    ChainDeployment,
    Commitment,
    MigrationStage,
)
from hybrid_store.title_states import TitleStoreError
from hybrid_store.worker_lock import WorkerLock
from migration_tools import hashing_pool
from migration_tools.collector import bulk_run, refreeze
from migration_tools.stages.selection import Selector, StageError, candidates, gate_of, stage_row

log = logging.getLogger(__name__)

HANDOVER_WAIT_S = 120.0  # how long a stage waits for the anchoring worker to hand over its lock


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
        take_anchoring_lock(lock)
        try:
            # the title state's whole tree in memory while the stage runs (title_states.LIVE)
            with bulk_run(), title_states.LIVE.enabled():
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
            anchored = self._anchor_chunk_retrying(stage_id, entries)
            if anchored is None:
                continue
            batch, records = anchored
            crashpoint("migrate:stored")
            a.txm.send_stored(batch.id)  # refused (underpriced, ...): settling replaces it
            crashpoint("migrate:sent")
            a.wait_in_flight()
            report.records += records  # not the leaves: the title state's marker is one more
            report.batches += 1
            report.batch_ids.append(batch.chain_batch_id)
            if a.step() is not None:  # what clerks filed meanwhile, when its batch is due
                report.outbox_batches += 1
            if self.progress:
                self.progress(done_before + report.records, total)
            refreeze()  # the title state's node cache grows with every batch: out of the collector's walks
        self._finish(stage_id)
        with self.db.read() as s:
            # int(): PostgreSQL sums a bigint as numeric (a Decimal), which the audit entry refuses
            report.gas_used = int(s.scalar(
                select(func.coalesce(func.sum(AnchorBatch.gas_used), 0)).where(
                    AnchorBatch.stage_id == stage_id, AnchorBatch.state != BatchState.FAILED
                )
            ) or 0)  # fmt: skip
        report.seconds = time.perf_counter() - started
        return report

    def _start(self, name: str) -> tuple[int, int, Selector, int]:
        """The stage, checked that it may run and marked running: (id, batch size, selector, records done)."""
        with self.db.write() as s:
            stage = stage_row(s, name)
            if stage.state in ("signed_off", "rolled_back"):
                raise StageError(f"stage {name!r} is {stage.state}")
            gate = gate_of(s, stage)
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

    def _anchor_chunk_retrying(self, stage_id: int, entries: list[ledger.Entry]) -> tuple[AnchorBatch, int] | None:
        for attempt in range(5):
            try:
                return self._anchor_chunk(stage_id, entries)
            except TitleStoreError as exc:  # the batch's transaction is rolled back: hold now
                raise title_hold(self.db, exc) from None
            except OperationalError as exc:  # a deadlock with a filing that locked the same parcels
                if attempt == 4:
                    raise
                log.warning("migration batch retried after %s", getattr(exc.orig, "__class__", type(exc)).__name__)
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    def _anchor_chunk(self, stage_id: int, entries: list[ledger.Entry]) -> tuple[AnchorBatch, int] | None:
        """Commit, plan, sign and store one batch in one transaction (nothing is sent yet); returns
        it with the records it anchors."""
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
            planned = plan_batch([Leaf.record(m.instrument_id, numbers[m.instrument_id], m.commitment) for m in made],
                           a.next_chain_batch_id(s),
                           untokenized_parcels(s, (), {pid for e in fresh for pid in e.parcel_ids}), stage_id=stage_id,
                           title=a.title_plan(s, [m.instrument_id for m in made], made, hold_later=True))  # fmt: skip
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
        return batch, len(made)

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


def take_anchoring_lock(lock: WorkerLock) -> None:
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
