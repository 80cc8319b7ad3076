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
from typing import Any, NamedTuple

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from hybrid_store.core import commitment as commitments
from hybrid_store.core.canonical import canonical_text
from hybrid_store.core.hashing import to_hex
from hybrid_store.core.records import InstrumentRecord, format_timestamp
from hybrid_store.db.engine import bulk_execute, driver_datetime
from hybrid_store.db.models import Commitment, Instrument, InstrumentParcel, OutboxEntry, Parcel

_IN = 5_000  # ids per IN list (SQLite allows 32,766 parameters, PostgreSQL 65,535)
_I = Instrument.__table__
_P = Parcel.__table__
_IP = InstrumentParcel.__table__


@dataclass(frozen=True)
class Pending:
    """A record to commit: its committed form (``prev`` still empty), seed and parcels."""

    instrument_id: int
    record: InstrumentRecord
    seed: bytes
    parcel_ids: tuple[int, ...]

    @property
    def number(self) -> str:
        return self.record.instrument_number

    @property
    def parcel_keys(self) -> tuple[str, ...]:
        return self.record.parcels

    @property
    def prev_salt(self) -> None:
        return None  # computed when needed

    def slim(self) -> Committable:
        return Committable(self.instrument_id, self.record.instrument_number, self.seed, self.parcel_ids,
                           self.record.parcels, commitments.field_salt(self.seed, "prev"))  # fmt: skip


class Committable(NamedTuple):
    """What committing needs of a record once its field hashes are known (cheap to send between
    processes, unlike the whole record)."""

    instrument_id: int
    number: str
    seed: bytes
    parcel_ids: tuple[int, ...]
    parcel_keys: tuple[str, ...]
    prev_salt: bytes | None = None  # field_salt(seed, "prev"), when the hashing process made it


Hasher = Callable[[Sequence[Pending | Committable]], list[list[bytes]]]


def sequential_hasher(items: Sequence[Pending]) -> list[list[bytes]]:
    return [commitments.hashes_before_history(p.record, p.seed) for p in items]


def _chunks(items: Sequence, size: int = _IN) -> Iterable[Sequence]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def load_pending(session: Session, instrument_ids: Sequence[int]) -> list[Pending]:
    """The records of ``instrument_ids`` in recording order, ready to commit.

    Bulk migration and reconciliation read every record through here, so it talks to the driver
    directly, with the ids as one array parameter (no per-id bind parameters, no ORM rows)."""
    conn = session.connection()
    ids_in = ids_clause(conn)
    rows, names, parcels = [], {}, {}
    for chunk in _chunks(list(instrument_ids)):
        param = ids_param(conn, chunk)
        rows.extend(driver_rows(conn, _SQL_INSTRUMENTS.format(ids=ids_in("i.id")), param))
        for iid, role, name in driver_rows(conn, _SQL_PARTIES.format(ids=ids_in("instrument_id")), param):
            names.setdefault((iid, role), []).append(name)
        for iid, pid, key in driver_rows(conn, _SQL_PARCELS.format(ids=ids_in("ip.instrument_id")), param):
            parcels.setdefault(iid, []).append((key, pid))
    out = []
    for r in sorted(rows, key=lambda r: (r[3], r[0])):  # recording order (SQLite's text sorts as time)
        iid = r[0]
        keyed = sorted(parcels.get(iid, ()))
        keys = tuple([k for k, _ in keyed])
        record = InstrumentRecord(
            instrument_number=r[1], doc_type=r[2], recorded_at=_timestamp(r[3]), book=r[4], page=r[5],
            grantors=tuple(names.get((iid, "grantor"), ())), grantees=tuple(names.get((iid, "grantee"), ())),
            consideration_cents=r[6], legal_description=r[7], document_digest=r[8],
            parcels=keys, corrects=r[10], prev=tuple([(k, None) for k in keys]),
        )  # fmt: skip
        out.append(Pending(iid, record, bytes(r[9]), tuple([pid for _, pid in keyed])))
    return out


def driver_rows(conn: Any, sql: str, param: tuple[Any, ...]) -> list[tuple]:
    """The rows of driver SQL straight from the DB-API cursor: for the bulk reads, where SQLAlchemy's
    row objects cost more than the query (same connection, same transaction)."""
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        cursor.execute(sql, param)
        return cursor.fetchall()
    finally:
        cursor.close()


_SQL_INSTRUMENTS = (
    "SELECT i.id, i.instrument_number, i.doc_type, i.recorded_at, i.book, i.page, i.consideration_cents, "
    "i.legal_description, i.document_digest, i.salt_seed, c.instrument_number "
    "FROM instruments i LEFT OUTER JOIN instruments c ON c.id = i.corrects_id WHERE {ids}"
)
_SQL_PARTIES = (
    "SELECT instrument_id, role, name FROM instrument_parties WHERE {ids} ORDER BY instrument_id, role, position"
)
_SQL_PARCELS = (
    "SELECT ip.instrument_id, ip.parcel_id, p.parcel_key FROM instrument_parcels ip "
    "JOIN parcels p ON p.id = ip.parcel_id WHERE {ids}"
)


def ids_clause(conn: Any) -> Callable[[str], str]:
    """``column IN <the ids>`` in driver SQL, for ``ids_param``'s one parameter."""
    if conn.dialect.name == "postgresql":
        return lambda column: f"{column} = ANY(%s)"
    return lambda column: f"{column} IN (SELECT value FROM json_each(?))"


def ids_param(conn: Any, ids: Sequence[int]) -> tuple[Any]:
    if conn.dialect.name == "postgresql":
        return ([int(i) for i in ids],)
    return (json.dumps([int(i) for i in ids]),)


def _timestamp(value: datetime | str) -> str:
    """The committed spelling of a stored recording time (SQLite gives its text, UTC)."""
    if isinstance(value, str):  # "YYYY-MM-DD HH:MM:SS[.ffffff]"
        return f"{value[:10]}T{value[11:19]}Z"
    return format_timestamp(value if value.tzinfo else value.replace(tzinfo=UTC))


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
    items: Sequence[Pending | Committable],
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
        key_of.update(zip(p.parcel_ids, p.parcel_keys, strict=True))
    before = hasher(items)
    rows, made, moved = [], [], {}
    for p, hashes in zip(items, before, strict=True):
        links = sorted((key_of[pid], heads.get(pid)) for pid in p.parcel_ids)
        prev_value = [[key, head[1] if head else None] for key, head in links]
        value = commitments.commit_with_history(hashes, p.seed, prev_value, salt=p.prev_salt)
        rows.append((p.instrument_id, value, [[key, head[0] if head else None, head[1] if head else None]
                                              for key, head in links]))  # fmt: skip
        made.append((p.instrument_id, value))
        head = (p.number, to_hex(value))
        for pid in p.parcel_ids:
            heads[pid] = head
            moved[pid] = p.instrument_id
    conn = session.connection()
    scheme = commitments.SCHEME
    if len(rows) > 100:  # bulk (a migration batch): straight through the driver
        stamp = driver_datetime(conn, now)
        bulk_execute(
            conn, "INSERT INTO commitments (instrument_id, scheme, commitment, prev, created_at) VALUES (?, ?, ?, ?, ?)",
            [(iid, scheme, value, canonical_text(prev), stamp) for iid, value, prev in rows],
        )  # fmt: skip
        bulk_execute(conn, "UPDATE parcels SET head_instrument_id = ? WHERE id = ?", [(i, p) for p, i in moved.items()])
    else:
        conn.execute(insert(Commitment.__table__), [
            {"instrument_id": iid, "scheme": scheme, "commitment": value, "prev": prev, "created_at": now}
            for iid, value, prev in rows
        ])  # fmt: skip
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
