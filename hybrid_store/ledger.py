"""The ledger: the one place where a record joins its parcels' histories.

Every source of records goes through ``append``: a clerk's filing (committed at once), a legacy
record a filing catches up on, a migration stage's batch, and the legacy mirror's new versions.
Each record's ``prev`` links each of its parcels to the commitment of that parcel's head (the last
record committed for it), and the record becomes the new head; so every parcel's history is a
hash chain. Heads come in row-locked (``lock_heads``: PostgreSQL row locks, in parcel id order so
two writers never deadlock; SQLite's write lock) and go out updated, in recording order.

The expensive part of a commitment (its salted field hashes but ``prev``) depends on the record alone and
may be prepared in parallel processes (``core.commitment.prepare``); the history link is added
here, in order. The commitment row is unique per instrument, so no record is committed (or
anchored) twice, whichever path reached it first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from hybrid_store.core import commitment as commitments
from hybrid_store.core.canonical import canonical_text
from hybrid_store.core.hashing import to_hex
from hybrid_store.db.bulk import copies, copy_binary, update_pairs
from hybrid_store.db.engine import IDS_PER_ARRAY, bulk_execute, chunks, driver_datetime
from hybrid_store.db.models import Commitment, Instrument, InstrumentParcel, OutboxEntry, Parcel, table
from hybrid_store.db.records import StoredRecord, load_records

#: parcel id -> (number, commitment hex) of its head, or None for a parcel with no record yet
Heads = dict[int, tuple[str, str] | None]


class Source:
    """How a record entered the hybrid system (``commitments.source``)."""

    FILING = "filing"  # filed through landreg and committed at once
    CATCH_UP = "catch_up"  # a legacy record a filing on one of its parcels committed first
    MIGRATION = "migration"  # a legacy record committed by a migration stage
    MIRROR = "mirror"  # a record (or a new version of one) mirrored from the legacy database


@dataclass(frozen=True, slots=True)
class Entry:
    """One record to append: its prepared commitment and its parcels (in record order)."""

    instrument_id: int
    number: str
    prepared: commitments.Prepared
    parcel_ids: tuple[int, ...]
    parcel_keys: tuple[str, ...]
    source: str = Source.FILING
    supersedes: int | None = None  # the instrument id of the version this one replaces (mirror)

    @classmethod
    def of(cls, stored: StoredRecord, source: str, supersedes: int | None = None) -> Entry:
        # committed now, so under the current scheme (a record keeps the scheme it is committed under)
        prepared = commitments.prepare(stored.record, stored.seed, commitments.SCHEME)
        return cls(stored.instrument_id, stored.number, prepared,
                   stored.parcel_ids, stored.record.parcels, source, supersedes)  # fmt: skip


class Appended(NamedTuple):
    """A record ``append`` committed: its commitment and its history links exactly as stored in
    ``commitments.prev`` (``[parcel key, previous number, previous commitment hex]`` per parcel), so
    a caller that needs them next (the title state of a migration batch) need not read them back."""

    instrument_id: int
    commitment: bytes
    prev: list[list[str | None]]


_I = table(Instrument)
_P = table(Parcel)
_IP = table(InstrumentParcel)
_SET_HEAD = update(_P).where(_P.c.id == bindparam("pid")).values(head_instrument_id=bindparam("head"))
_SET_HEAD_AND_OWNER = (
    update(_P).where(_P.c.id == bindparam("pid"))
    .values(head_instrument_id=bindparam("head"), owner_instrument_id=bindparam("owner"))
)  # fmt: skip
_BULK = 100  # from this many rows on, straight through the driver
_COMMITMENT_COLUMNS = ("instrument_id", "scheme", "commitment", "prev", "source", "supersedes_id", "created_at",
                       "field_hashes")  # fmt: skip
#: their PostgreSQL types for a binary COPY (``prev`` is json, whose binary form is its text)
_COMMITMENT_TYPES = ("int8", "text", "bytea", "text", "text", "int8", "timestamptz", "bytea")


def lock_heads(session: Session, parcel_ids: Iterable[int]) -> Heads:
    """The heads of ``parcel_ids``, their parcel rows locked until the caller's transaction ends."""
    conn = session.connection()
    heads: dict[int, int | None] = {}
    ids = sorted(set(parcel_ids))
    for chunk in chunks(ids, IDS_PER_ARRAY):
        stmt = select(_P.c.id, _P.c.head_instrument_id).where(_P.c.id.in_(chunk)).order_by(_P.c.id)
        if conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        heads.update(dict(conn.execute(stmt).all()))
    return heads_of(session, heads)


def heads_of(session: Session, head_ids: dict[int, int | None]) -> Heads:
    """Parcel id -> (number, commitment) of its head, from the head instrument ids of parcels the
    caller holds locked already (a filing's parcel upsert returns them with its row locks)."""
    conn = session.connection()
    facts: dict[int, tuple[str, str]] = {}
    wanted = sorted({h for h in head_ids.values() if h is not None})
    for chunk in chunks(wanted, IDS_PER_ARRAY):
        for iid, number, value in conn.execute(
            select(_I.c.id, _I.c.instrument_number, Commitment.commitment)
            .join(Commitment, Commitment.instrument_id == _I.c.id)
            .where(_I.c.id.in_(chunk))
        ):
            facts[iid] = (number, to_hex(value))
    return {pid: (facts[h] if h is not None else None) for pid, h in head_ids.items()}


def append(
    session: Session,
    entries: Sequence[Entry],
    heads: Heads,
    *,
    enqueue: bool,
    now: datetime | None = None,
    owners: Mapping[int, int] | None = None,
) -> list[Appended]:
    """Append ``entries`` (in recording order) on top of ``heads`` (updated in place): write their
    commitment rows and the new heads, and their outbox entries when ``enqueue``. ``owners``
    (parcel id -> its new owner of record, chain of title's call) is written in the same statement
    as the parcel's new head. Returns each record's instrument id, commitment and history links."""
    if not entries:
        return []
    now = now or datetime.now(UTC)
    rows, made, moved = [], [], {}
    for e in entries:
        links = sorted(zip(e.parcel_keys, (heads.get(pid) for pid in e.parcel_ids), strict=True))
        value = e.prepared.complete([[key, head[1] if head else None] for key, head in links])
        history = [[key, head[0] if head else None, head[1] if head else None] for key, head in links]
        rows.append((e.instrument_id, e.prepared.scheme, value, history, e.source, e.supersedes,
                     b"".join(e.prepared.field_hashes)))  # fmt: skip
        made.append(Appended(e.instrument_id, value, history))
        head = (e.number, to_hex(value))
        for pid in e.parcel_ids:
            heads[pid] = head
            moved[pid] = e.instrument_id
    conn = session.connection()
    if len(rows) >= _BULK:  # a migration batch: straight through the driver
        stamp = driver_datetime(conn, now)
        values = [(iid, scheme, value, canonical_text(prev), source, sup, stamp, fields)
                  for iid, scheme, value, prev, source, sup, fields in rows]  # fmt: skip
        if copies(conn, len(values)):  # PostgreSQL: COPY (``prev`` goes as its text, as the INSERT sends it)
            copy_binary(conn, "commitments", _COMMITMENT_COLUMNS, _COMMITMENT_TYPES, values)
        else:
            bulk_execute(conn, f"INSERT INTO commitments ({', '.join(_COMMITMENT_COLUMNS)}) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", values)  # fmt: skip
        update_pairs(conn, "parcels", "head_instrument_id", [(i, p) for p, i in moved.items()])
        if owners:
            update_pairs(conn, "parcels", "owner_instrument_id", [(o, p) for p, o in owners.items()])
    else:
        conn.execute(insert(table(Commitment)), [
            {"instrument_id": iid, "scheme": scheme, "commitment": value, "prev": prev, "source": source,
             "supersedes_id": sup, "created_at": now, "field_hashes": fields}
            for iid, scheme, value, prev, source, sup, fields in rows
        ])  # fmt: skip
        owned = owners or {}
        both = [{"pid": pid, "head": iid, "owner": owned[pid]} for pid, iid in moved.items() if pid in owned]
        heads_only = [{"pid": pid, "head": iid} for pid, iid in moved.items() if pid not in owned]
        for stmt, params in ((_SET_HEAD_AND_OWNER, both), (_SET_HEAD, heads_only)):
            if params:  # one row: a plain execute (executemany goes through the driver's pipeline)
                conn.execute(stmt, params[0] if len(params) == 1 else params)
        for pid in set(owned) - set(moved):  # (every parcel of a committed record moves its head)
            conn.execute(update(_P).where(_P.c.id == pid).values(owner_instrument_id=owned[pid]))
    if enqueue:
        conn.execute(insert(table(OutboxEntry)), [{"instrument_id": a.instrument_id, "enqueued_at": now} for a in made])
    return made


def catch_up(session: Session, parcel_ids: Iterable[int], *, enqueue: bool) -> list[Appended]:
    """Commit the records not committed yet that touch ``parcel_ids`` (legacy records a filing on
    those parcels must link to), on locked heads."""
    ids = uncommitted_touching(session, parcel_ids)
    if not ids:
        return []
    stored = load_records(session.connection(), ids)
    heads = lock_heads(session, [pid for r in stored for pid in r.parcel_ids])
    # a migration batch may have committed some between our look and our locks
    taken = set(session.scalars(select(Commitment.instrument_id).where(Commitment.instrument_id.in_(ids))))
    entries = [Entry.of(r, Source.CATCH_UP) for r in stored if r.instrument_id not in taken]
    return append(session, entries, heads, enqueue=enqueue)


def uncommitted_touching(session: Session, parcel_ids: Iterable[int]) -> list[int]:
    """Instruments without a commitment that touch any of ``parcel_ids`` (legacy records not migrated)."""
    ids = sorted(set(parcel_ids))
    found: set[int] = set()
    conn = session.connection()
    for chunk in chunks(ids, IDS_PER_ARRAY):
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
