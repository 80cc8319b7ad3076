"""The database's side of batches: what each holds, putting a failed batch's records back in
the queue, and the holds that stop the anchoring worker. No chain library is imported here
(reconciliation loads them late), so every caller, the worker and ``reconcile --heal`` alike,
shares one way of doing each."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from hybrid_store.db.engine import Database, rows_affected, select_in
from hybrid_store.db.models import AnchorBatch, AnchoringHold, BatchRecord, BatchState, OutboxEntry, Parcel, table

log = logging.getLogger(__name__)


def requeue_batch(s: Session, batch_id: int, reason: str, kind: str) -> int:
    """Fail a batch and give its records back to the anchoring queue (commitments unchanged) and its
    parcel tokens back to their parcels, in the caller's transaction; the batch stays in the history
    with the reason. A migration batch's records join the queue too, so nothing is left
    committed and never anchored. Returns the records re-queued."""
    s.execute(update(AnchorBatch).where(AnchorBatch.id == batch_id)
              .values(state=BatchState.FAILED, error=reason, error_kind=kind))  # fmt: skip
    s.execute(update(Parcel).where(Parcel.token_batch_id == batch_id).values(token_id=None, token_batch_id=None))
    s.execute(update(OutboxEntry).where(OutboxEntry.batch_id == batch_id).values(batch_id=None))
    ids = list(s.scalars(select(BatchRecord.instrument_id).where(BatchRecord.batch_id == batch_id)))
    queued = {iid for (iid,) in select_in(s, select(OutboxEntry.instrument_id), OutboxEntry.instrument_id, ids)}
    fresh = [i for i in ids if i not in queued]
    if fresh:
        now = datetime.now(UTC)
        s.execute(table(OutboxEntry).insert(), [{"instrument_id": i, "enqueued_at": now} for i in fresh])
    return len(ids)


def records_of_batches(session: Session, batch_ids: Iterable[int]) -> dict[int, int]:
    """Records (not leaves: marker leaves are no records) of each batch."""
    ids = list(batch_ids)
    if not ids:
        return {}
    rows = select_in(session, select(BatchRecord.batch_id, func.count()).group_by(BatchRecord.batch_id),
                      BatchRecord.batch_id, ids)  # fmt: skip
    return {bid: n for bid, n in rows}


def confirmed_records(session: Session) -> list[tuple[int, int | None]]:
    """(records, gas used) of every confirmed batch."""
    return [(n, gas) for n, gas in session.execute(
        select(func.count(BatchRecord.instrument_id), AnchorBatch.gas_used)
        .select_from(AnchorBatch).outerjoin(BatchRecord, BatchRecord.batch_id == AnchorBatch.id)
        .where(AnchorBatch.state == BatchState.CONFIRMED).group_by(AnchorBatch.id, AnchorBatch.gas_used))]  # fmt: skip


def pending_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(OutboxEntry).where(OutboxEntry.batch_id.is_(None))) or 0


def open_hold(db: Database, kind: str, reason: str) -> None:
    """Open a hold of ``kind`` unless one is open (one per kind: the index enforces it)."""
    with db.write() as s:
        if s.scalar(select(AnchoringHold.id).where(AnchoringHold.kind == kind, AnchoringHold.cleared_at.is_(None))):
            return
        s.add(AnchoringHold(kind=kind, reason=reason, since=datetime.now(UTC)))
    log.error("anchoring holds (%s): %s", kind, reason)


def clear_hold(db: Database, kind: str, by: str) -> bool:
    with db.write() as s:
        done = rows_affected(s.execute(
            update(AnchoringHold).where(AnchoringHold.kind == kind, AnchoringHold.cleared_at.is_(None))
            .values(cleared_at=datetime.now(UTC), cleared_by=by)
        ))  # fmt: skip
    return bool(done)


def open_holds(session: Session) -> list[AnchoringHold]:
    return list(
        session.scalars(select(AnchoringHold).where(AnchoringHold.cleared_at.is_(None)).order_by(AnchoringHold.id))
    )
