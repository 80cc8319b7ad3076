"""Committing records already in the deed database (loaded from a legacy book).

A legacy record enters the hybrid system when its commitment is made: by a migration stage in
bulk, or, when a clerk files against a parcel whose older records are not migrated yet, by the
filing itself (``commit_existing`` with ``enqueue=True``), so the new record can link to them.
Either way the commitment row is unique per instrument, so no record is committed (or anchored)
by both paths.

Records are committed in recording order. Each record's ``prev`` links each of its parcels to the
commitment of that parcel's head (the last record committed for it), and the record becomes the
new head. The expensive part (twelve salted field hashes per record) depends on the record alone
and may run in parallel (``hasher``); the history link is added in order afterwards.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from hybrid_store.core import commitment as commitments
from hybrid_store.core.hashing import to_hex
from hybrid_store.core.records import InstrumentRecord, build_record
from hybrid_store.db.engine import bulk_execute, driver_datetime
from hybrid_store.db.models import Commitment, Instrument, InstrumentParcel, InstrumentParty, OutboxEntry, Parcel

_IN = 500
_I = Instrument.__table__
_CORRECTED = Instrument.__table__.alias("corrected")
_P = Parcel.__table__
_IP = InstrumentParcel.__table__


@dataclass(frozen=True)
class Pending:
    """A record to commit: its committed form (``prev`` still empty), seed and parcels."""

    instrument_id: int
    record: InstrumentRecord
    seed: bytes
    parcel_ids: tuple[int, ...]


Hasher = Callable[[Sequence[Pending]], list[list[bytes]]]


def sequential_hasher(items: Sequence[Pending]) -> list[list[bytes]]:
    return [commitments.hashes_before_history(p.record, p.seed) for p in items]


def _chunks(items: Sequence, size: int = _IN) -> Iterable[Sequence]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def load_pending(session: Session, instrument_ids: Sequence[int]) -> list[Pending]:
    """The records of ``instrument_ids`` in recording order, ready to commit."""
    conn = session.connection()
    rows, names, parcels = [], {}, {}
    for chunk in _chunks(list(instrument_ids)):
        rows.extend(
            conn.execute(
                select(
                    _I.c.id, _I.c.instrument_number, _I.c.doc_type, _I.c.recorded_at, _I.c.book, _I.c.page,
                    _I.c.consideration_cents, _I.c.legal_description, _I.c.document_digest, _I.c.salt_seed,
                    _CORRECTED.c.instrument_number,
                )
                .select_from(_I.outerjoin(_CORRECTED, _CORRECTED.c.id == _I.c.corrects_id))
                .where(_I.c.id.in_(chunk))
            ).all()
        )  # fmt: skip
        for iid, role, name in conn.execute(
            select(InstrumentParty.instrument_id, InstrumentParty.role, InstrumentParty.name)
            .where(InstrumentParty.instrument_id.in_(chunk))
            .order_by(InstrumentParty.instrument_id, InstrumentParty.role, InstrumentParty.position)
        ):
            names.setdefault((iid, role), []).append(name)
        for iid, pid, key in conn.execute(
            select(_IP.c.instrument_id, _IP.c.parcel_id, _P.c.parcel_key)
            .join(_P, _P.c.id == _IP.c.parcel_id)
            .where(_IP.c.instrument_id.in_(chunk))
        ):
            parcels.setdefault(iid, []).append((key, pid))
    rows.sort(key=lambda r: (r.recorded_at, r.id))
    out = []
    for r in rows:
        keyed = sorted(parcels.get(r.id, []))
        record = build_record(
            instrument_number=r.instrument_number, doc_type=r.doc_type, recorded_at=r.recorded_at, book=r.book,
            page=r.page, grantors=names.get((r.id, "grantor"), []), grantees=names.get((r.id, "grantee"), []),
            consideration_cents=r.consideration_cents, legal_description=r.legal_description,
            document_digest=r.document_digest, parcels=[k for k, _ in keyed], corrects=r[10], prev={},
        )  # fmt: skip
        out.append(Pending(r.id, record, r.salt_seed, tuple(pid for _, pid in keyed)))
    return out


def uncommitted_touching(session: Session, parcel_ids: Iterable[int]) -> list[int]:
    """Instruments without a commitment that touch any of ``parcel_ids`` (legacy records not migrated)."""
    ids = sorted(set(parcel_ids))
    found: set[int] = set()
    conn = session.connection()
    for chunk in _chunks(ids):
        found.update(
            conn.execute(
                select(_IP.c.instrument_id)
                .where(_IP.c.parcel_id.in_(chunk))
                .where(
                    ~select(Commitment.instrument_id).where(Commitment.instrument_id == _IP.c.instrument_id).exists()
                )
            ).scalars()
        )
    return sorted(found)


def lock_heads(session: Session, parcel_ids: Iterable[int]) -> dict[int, tuple[str, str] | None]:
    """parcel id -> (number, commitment hex) of its head, the parcels row-locked on PostgreSQL
    (in id order, so two committers never deadlock)."""
    conn = session.connection()
    heads: dict[int, int | None] = {}
    ids = sorted(set(parcel_ids))
    for chunk in _chunks(ids):
        stmt = select(_P.c.id, _P.c.head_instrument_id).where(_P.c.id.in_(chunk)).order_by(_P.c.id)
        if conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        heads.update(dict(conn.execute(stmt).all()))
    facts: dict[int, tuple[str, str]] = {}
    head_ids = sorted({h for h in heads.values() if h is not None})
    for chunk in _chunks(head_ids):
        for iid, number, value in conn.execute(
            select(_I.c.id, _I.c.instrument_number, Commitment.commitment)
            .join(Commitment, Commitment.instrument_id == _I.c.id)
            .where(_I.c.id.in_(chunk))
        ):
            facts[iid] = (number, to_hex(value))
    return {pid: (facts[h] if h is not None else None) for pid, h in heads.items()}


_SET_HEAD = update(_P).where(_P.c.id == bindparam("pid")).values(head_instrument_id=bindparam("head"))


def commit_pending(
    session: Session,
    items: Sequence[Pending],
    heads: dict[int, tuple[str, str] | None],
    *,
    enqueue: bool,
    hasher: Hasher = sequential_hasher,
    now: datetime | None = None,
) -> list[tuple[int, bytes]]:
    """Commit ``items`` (in recording order) on top of ``heads`` (updated in place); write the
    commitment rows and new heads, and outbox entries when ``enqueue``. Returns (id, commitment)."""
    if not items:
        return []
    now = now or datetime.now(UTC)
    key_of: dict[int, str] = {}
    for p in items:
        key_of.update(zip(p.parcel_ids, p.record.parcels, strict=True))
    before = hasher(items)
    rows, made, moved = [], [], {}
    for p, hashes in zip(items, before, strict=True):
        links = [[key_of[pid], heads.get(pid)] for pid in p.parcel_ids]
        links.sort(key=lambda link: link[0])
        prev_value = [[key, head[1] if head else None] for key, head in links]
        value = commitments.commit_with_history(hashes, p.seed, prev_value)
        rows.append({
            "instrument_id": p.instrument_id, "scheme": commitments.SCHEME, "commitment": value,
            "prev": [[key, head[0] if head else None, head[1] if head else None] for key, head in links],
            "created_at": now,
        })  # fmt: skip
        made.append((p.instrument_id, value))
        for pid in p.parcel_ids:
            heads[pid] = (p.record.instrument_number, to_hex(value))
            moved[pid] = p.instrument_id
    conn = session.connection()
    if len(rows) > 100:  # bulk (a migration batch): straight through the driver
        stamp = driver_datetime(conn, now)
        bulk_execute(
            conn, "INSERT INTO commitments (instrument_id, scheme, commitment, prev, created_at) VALUES (?, ?, ?, ?, ?)",
            [(r["instrument_id"], r["scheme"], r["commitment"], json.dumps(r["prev"]), stamp) for r in rows],
        )  # fmt: skip
        bulk_execute(conn, "UPDATE parcels SET head_instrument_id = ? WHERE id = ?", [(i, p) for p, i in moved.items()])
    else:
        conn.execute(insert(Commitment.__table__), rows)
        conn.execute(_SET_HEAD, [{"pid": pid, "head": iid} for pid, iid in moved.items()])
    if enqueue:
        conn.execute(insert(OutboxEntry.__table__), [{"instrument_id": i, "enqueued_at": now} for i, _ in made])
    return made


def commit_existing(session: Session, instrument_ids: Sequence[int], *, enqueue: bool) -> list[tuple[int, bytes]]:
    """Commit already-recorded instruments now (the small-scale path: a filing's catch-up)."""
    items = load_pending(session, instrument_ids)
    heads = lock_heads(session, [pid for p in items for pid in p.parcel_ids])
    # a migration batch may have committed some between our look and our locks
    taken = set(session.scalars(select(Commitment.instrument_id).where(Commitment.instrument_id.in_(instrument_ids))))
    return commit_pending(session, [p for p in items if p.instrument_id not in taken], heads, enqueue=enqueue)


def with_prev(record: InstrumentRecord, prev: dict[str, str | None]) -> InstrumentRecord:
    """``record`` with its history link filled in (tests and reconciliation rebuild the full record)."""
    return dataclasses.replace(record, prev=tuple((k, prev.get(k)) for k in record.parcels))
