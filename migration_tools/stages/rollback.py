"""Rolling back a stage: revoke its records on chain and anchor them again, deleting nothing."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update

from hybrid_store.anchoring import Anchorer, Leaf, plan_batch, untokenized_parcels
from hybrid_store.chain.client import RegistryChain
from hybrid_store.crashpoints import crashpoint
from hybrid_store.db.engine import Database
from hybrid_store.db.models import (
    AnchorBatch,
    BatchState,
    ChainDeployment,
    Commitment,
    Instrument,
    MigrationStage,
)
from hybrid_store.txmgr import Subject
from hybrid_store.worker_lock import WorkerLock
from migration_tools.stages.runner import take_anchoring_lock
from migration_tools.stages.selection import StageError, stage_row

log = logging.getLogger(__name__)

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
    take_anchoring_lock(lock)
    anchorer = anchorer or Anchorer(db, chain, deployment, confirmations=confirmations, manifest_dir=manifest_dir)
    report = RollbackReport(stage=name)
    try:
        anchorer.wait_in_flight()
        anchorer.check_consistency()
        with db.read() as s:
            stage = stage_row(s, name)
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
            revocation = Subject(revokes_batch_id=old.id)  # through the transaction manager, as every transaction
            for i in range(0, len(leaves), REVOKE_CHUNK):
                signed = chain.sign_revoke(old.chain_batch_id, leaves[i : i + REVOKE_CHUNK], ROLLBACK_REASON,
                                           chain.pending_nonce(), anchorer.txm.policy.first(chain.fee_quote()))  # fmt: skip
                anchorer.txm.start(revocation, signed, chain.head())
                anchorer.txm.wait(revocation, anchorer.in_flight_timeout_s, anchorer.poll_s)
            crashpoint("rollback:revoked")
            with db.write() as s:
                records = [Leaf.record(iid, number, c) for _, iid, number, c in members]
                planned = plan_batch([*records, Leaf.rollback(old.root, old.chain_batch_id)], anchorer.next_chain_batch_id(s),
                               untokenized_parcels(s, [iid for _, iid, _, _ in members]), stage_id=stage_id,
                               supersedes_batch_id=old.id,
                               title=anchorer.title_plan(s, [iid for _, iid, _, _ in members]))  # fmt: skip
                signed, first_token, parcel_tree, head = anchorer.sign(planned)
                new = anchorer.store(s, planned, signed, first_token, parcel_tree, head)
                s.execute(update(AnchorBatch).where(AnchorBatch.id == old.id).values(superseded_at=datetime.now(UTC)))
                s.execute(
                    update(MigrationStage).where(MigrationStage.id == stage_id)
                    .values(state="anchored", reconciled_clean=None, reconciled_at=None)
                )  # fmt: skip
            anchorer.txm.send_stored(new.id)
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
