"""The audit log: who did what, when, in the write's own transaction; hash-chained and anchored.

An entry is written with an *unplaced* link (``audit_chain``), which is the queue of entries still
to chain. The anchoring worker, the only one there is (``worker_lock``), places the queued entries
at the end of the chain when it plans a batch, and anchors the new head as a marker leaf of that
batch (``core.audit``). So filings never queue on one row (each writes its own entry and link),
and an entry whose transaction commits late, after later ones were chained, is simply chained in
the next batch: the chain's order is the order of chaining, not of ids.

Reconciliation (``migration_tools.reconciliation.audit_log``) recomputes the chain from the log's rows and
checks each anchored head against the chain's root.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from hybrid_store.core import audit as chain
from hybrid_store.db.engine import bulk_execute
from hybrid_store.db.models import AnchorBatch, AuditCheckpoint, AuditEntry, AuditLink, BatchState, table

#: entries chained per batch at most (the rest wait for the next one)
MAX_ENTRIES_PER_BATCH = 20_000
#: the manifest's name of an audit-head marker leaf: "AUDIT <entries>"
MANIFEST_PREFIX = "AUDIT "


def append(session: Session, *, actor: str, role: str, action: str, target: str, details: dict[str, Any]) -> int:
    """Write one entry and queue it for the chain, inside the caller's transaction; returns its id.
    Raises ``ValueError`` for details the chain cannot hash exactly (before anything is written)."""
    at = datetime.now(UTC)
    row = {"actor": actor, "role": role, "action": action, "target": target, "details": details, "at": at}
    chain.encode_entry({**row, "id": 0})  # fails now, not later in the worker
    conn = session.connection()
    entry = insert(table(AuditEntry)).values(row).returning(table(AuditEntry).c.id)
    if conn.dialect.name == "postgresql":
        # the entry and its place in the chain's queue in one statement: one round trip less inside
        # every write transaction (SQLite has no INSERT in a WITH, and no network to save)
        written = entry.cte("entry")
        queued = insert(table(AuditLink)).from_select(["entry_id"], select(written.c.id))
        return int(conn.execute(queued.returning(table(AuditLink).c.entry_id)).scalar_one())
    entry_id = conn.execute(entry).scalar_one()
    conn.execute(insert(table(AuditLink)), {"entry_id": entry_id})
    return int(entry_id)


@dataclass(frozen=True)
class ChainPlan:
    """The audit entries a batch chains and the head it anchors."""

    links: tuple[tuple[int, int, bytes], ...]  # (entry id, position, entry hash), in chain order
    entries: int  # entries the new head covers
    head: bytes
    #: since when the head has waited: the oldest queued entry, or the failed checkpoint re-anchored
    waiting_since: datetime

    @property
    def marker(self) -> bytes:
        return chain.head_marker(self.head, self.entries)

    @property
    def label(self) -> str:
        return f"{MANIFEST_PREFIX}{self.entries}"


def plan(session: Session, limit: int = MAX_ENTRIES_PER_BATCH) -> ChainPlan | None:
    """What the next batch chains: the queued entries in id order after the last placed link; or,
    when nothing is queued but the newest head is not in a live batch (its batch failed), that
    head again. None when the chain's head is anchored or on its way."""
    last = session.execute(
        select(AuditCheckpoint.entries, AuditCheckpoint.head, AuditCheckpoint.created_at, AnchorBatch.state)
        .join(AnchorBatch, AnchorBatch.id == AuditCheckpoint.batch_id)
        .order_by(AuditCheckpoint.id.desc())
        .limit(1)
    ).first()
    # the newest checkpoint covers every placed link: both are written in one transaction
    entries, head = (int(last.entries), bytes(last.head)) if last else (0, chain.GENESIS)
    queued = session.execute(
        select(AuditEntry).join(AuditLink, AuditLink.entry_id == AuditEntry.id)
        .where(AuditLink.position.is_(None)).order_by(AuditEntry.id).limit(limit)
    ).scalars().all()  # fmt: skip
    if not queued:
        if last is None or last.state != BatchState.FAILED:
            return None
        return ChainPlan((), entries, head, last.created_at)
    links = []
    for k, entry in enumerate(queued):
        hashed = chain.entry_hash(as_document(entry))
        head = chain.link(head, hashed)
        links.append((entry.id, entries + k, hashed))
    return ChainPlan(tuple(links), entries + len(links), head, queued[0].at)


def store(conn: Connection, plan_: ChainPlan, batch_id: int, proof: Sequence[bytes], now: datetime) -> None:
    """Place the plan's links and write its checkpoint, inside the batch's own transaction."""
    checkpoint_id = conn.execute(
        insert(table(AuditCheckpoint)).returning(table(AuditCheckpoint).c.id),
        {"entries": plan_.entries, "head": plan_.head, "batch_id": batch_id, "proof": b"".join(proof),
         "created_at": now},
    ).scalar_one()  # fmt: skip
    bulk_execute(
        conn,
        "UPDATE audit_chain SET position = ?, entry_hash = ?, checkpoint_id = ? WHERE entry_id = ? "
        "AND position IS NULL",
        [(position, hashed, checkpoint_id, entry_id) for entry_id, position, hashed in plan_.links],
    )


def as_document(entry: AuditEntry) -> dict[str, Any]:
    return {"id": entry.id, "at": entry.at, "actor": entry.actor, "role": entry.role, "action": entry.action,
            "target": entry.target, "details": entry.details}  # fmt: skip


def pending_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(AuditLink).where(AuditLink.position.is_(None))) or 0
