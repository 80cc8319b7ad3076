"""The legacy database's mirror inside the deed database: versions, flags and owners of record.

While a registry follows a county's recorder database (``landreg legacy sync --follow``), the
legacy system is the authority and keeps editing its records in place. landreg never rewrites a
record it holds: an edited legacy document becomes a **new version** (its own instrument,
numbered ``<number>-V<n>``, committed with a link to the version it supersedes), and the old one
gets a ``changed_in_legacy`` flag holding the field-by-field difference; a deleted document's
version gets ``deleted_in_legacy``. Both stay provable; verification says what became of them.
The owner of record of a mirrored parcel follows the legacy system: the grantees of its latest
current conveyance (not replaced, not deleted), recomputed whenever the mirror changes it.

A flag is only a row of our database, and its revocation on the chain is what auditors read, so
the anchoring worker revokes a flagged version only when the database holds what an auditor will
check (``revocation_hold``): a successor that is a mirrored version of it, anchored, whose committed
history link names it on each of its parcels; or, for a deletion, a legacy record whose legacy
document landreg saw deleted. Anything else stays flagged, unrevoked, with the reason shown.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from hybrid_store import audit_log
from hybrid_store.core.hashing import to_hex
from hybrid_store.core.records import CONVEYANCES, InstrumentRecord
from hybrid_store.db.models import (
    AnchorBatch,
    BatchRecord,
    BatchState,
    Commitment,
    Instrument,
    InstrumentParcel,
    LegacyDocument,
    LegacySource,
    MirrorFlag,
    Parcel,
)
from hybrid_store.db.records import load_records
from hybrid_store.errors import Conflict, NotFound

MIN_REASON = 3  # characters an acknowledgement's reason needs
CHANGED = "changed_in_legacy"
DELETED = "deleted_in_legacy"
#: the fields a difference names (the committed fields that a legacy edit can change)
DIFF_FIELDS = ("doc_type", "recorded_at", "book", "page", "grantors", "grantees", "consideration_cents",
               "legal_description", "document_digest", "parcels", "corrects")  # fmt: skip


def version_number(base: str, version: int) -> str:
    """The instrument number of a record's ``version`` (the first keeps the legacy number)."""
    return base if version <= 1 else f"{base}-V{version}"


def base_number(number: str) -> str:
    head, sep, tail = number.rpartition("-V")
    return head if sep and tail.isdigit() else number


def attached(session: Session) -> LegacySource | None:
    """The legacy database this registry mirrors, if any (filing through landreg is then refused)."""
    return session.scalar(select(LegacySource).order_by(LegacySource.id).limit(1))


def difference(old: InstrumentRecord, new: InstrumentRecord) -> dict[str, dict[str, Any]]:
    """``{field: {"before": ..., "after": ...}}`` for each committed field that differs."""
    out: dict[str, dict[str, Any]] = {}
    for name in DIFF_FIELDS:
        before, after = getattr(old, name), getattr(new, name)
        if before != after:
            out[name] = {"before": list(before) if isinstance(before, tuple) else before,
                         "after": list(after) if isinstance(after, tuple) else after}  # fmt: skip
    return out


def flag_replaced(session: Session, source_id: int, key: str, old_id: int, new_id: int) -> dict[str, Any]:
    """Flag version ``old_id`` as replaced by ``new_id``; returns the difference it stores."""
    old, new = load_records(session.connection(), [old_id, new_id])
    diff = difference(old.record, new.record)
    session.add(MirrorFlag(source_id=source_id, legacy_key=key, instrument_id=old_id, kind=CHANGED,
                           successor_id=new_id, diff=diff, created_at=datetime.now(UTC)))  # fmt: skip
    return diff


def flag_deleted(session: Session, source_id: int, key: str, old_id: int) -> None:
    session.add(MirrorFlag(source_id=source_id, legacy_key=key, instrument_id=old_id, kind=DELETED,
                           created_at=datetime.now(UTC)))  # fmt: skip


def parcels_of(session: Session, instrument_ids: Iterable[int]) -> list[int]:
    ids = sorted(set(instrument_ids))
    if not ids:
        return []
    return sorted(
        set(session.scalars(select(InstrumentParcel.parcel_id).where(InstrumentParcel.instrument_id.in_(ids))))
    )


def recompute_owners(session: Session, parcel_ids: Sequence[int]) -> None:
    """Each parcel's owner of record: its latest conveyance that no legacy edit replaced or deleted."""
    for pid in sorted(set(parcel_ids)):
        current = (
            select(Instrument.id)
            .join(InstrumentParcel, InstrumentParcel.instrument_id == Instrument.id)
            .where(InstrumentParcel.parcel_id == pid, Instrument.doc_type.in_([str(t) for t in CONVEYANCES]))
            .where(~exists().where(MirrorFlag.instrument_id == Instrument.id))
            .order_by(Instrument.recorded_at.desc(), Instrument.id.desc())
            .limit(1)
        )
        session.execute(update(Parcel).where(Parcel.id == pid).values(owner_instrument_id=current.scalar_subquery()))


#: a hold that ends by itself: the worker revokes once the successor is anchored
WAITING = "waiting: the newer version is not anchored yet"
LEGACY, MIRRORED = "legacy", "mirror"  # instruments.source of a legacy record; commitments.source of a version


def revocation_hold(session: Session, flag: MirrorFlag) -> str | None:
    """Why the flagged version's leaf must not be revoked on the chain (yet); None when it may be.
    The revocation tells auditors the version is no longer current, so it needs what they will
    check: a successor that is a mirrored version superseding it, whose committed history link
    names its commitment on each of its parcels (no later record between them), anchored; for a
    deletion, a record from the legacy database whose document landreg saw deleted there."""
    old = session.get(Commitment, flag.instrument_id)
    if old is None:
        return "the flagged version has no commitment"
    if session.scalar(select(Instrument.source).where(Instrument.id == flag.instrument_id)) != LEGACY:
        return "the flagged record did not come from the legacy database"
    if flag.successor_id is None:
        state = session.scalar(select(LegacyDocument.state).where(
            LegacyDocument.source_id == flag.source_id, LegacyDocument.legacy_key == flag.legacy_key,
            LegacyDocument.instrument_id == flag.instrument_id))  # fmt: skip
        if state != "deleted":  # legacy_documents.state of a document gone from the legacy database
            return f"landreg holds no deletion of legacy document {flag.legacy_key} for this version"
        return None
    new = session.get(Commitment, flag.successor_id)
    if new is None or new.source != MIRRORED or new.supersedes_id != flag.instrument_id:
        return "the successor is not a mirrored version that supersedes this one"
    mine = to_hex(bytes(old.commitment))
    named = {(link[0], link[2]) for link in new.prev}
    missing = [link[0] for link in old.prev if (link[0], mine) not in named]
    if missing:
        return (
            f"the successor's history link does not name this version on parcel {missing[0]} (a later record came "
            "between them), so the chain could not show the supersession"
        )
    anchored = session.scalar(
        select(BatchRecord.batch_id).join(AnchorBatch, AnchorBatch.id == BatchRecord.batch_id)
        .where(BatchRecord.instrument_id == flag.successor_id, AnchorBatch.state == BatchState.CONFIRMED,
               AnchorBatch.superseded_at.is_(None)).limit(1)
    )  # fmt: skip
    return None if anchored is not None else WAITING


@dataclass(frozen=True)
class FlagView:
    id: int
    kind: str
    instrument_number: str
    successor_number: str | None
    diff: dict[str, Any] | None
    created_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    ack_reason: str | None
    revoke_tx: str | None
    revoked_block: int | None  # the replaced version's leaf revoked on the chain at this block
    held: str | None = None  # why the worker does not revoke it (``revocation_hold``), while it does not

    def to_json(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        for k in ("created_at", "acknowledged_at"):
            out[k] = out[k].isoformat() if out[k] else None
        return out


def flags(session: Session, *, instrument_ids: Sequence[int] | None = None, open_only: bool = False,
          limit: int = 1000) -> list[FlagView]:  # fmt: skip
    """Mirror flags, newest first: of ``instrument_ids`` (the flagged versions) or all."""
    stmt = select(MirrorFlag).order_by(MirrorFlag.id.desc()).limit(limit)
    if instrument_ids is not None:
        if not instrument_ids:
            return []
        stmt = stmt.where(MirrorFlag.instrument_id.in_(list(instrument_ids)))
    if open_only:
        stmt = stmt.where(MirrorFlag.acknowledged_at.is_(None))
    rows = list(session.scalars(stmt))
    ids = {r.instrument_id for r in rows} | {r.successor_id for r in rows if r.successor_id}
    numbers = dict(session.execute(select(Instrument.id, Instrument.instrument_number)
                                   .where(Instrument.id.in_(sorted(ids)))).all()) if ids else {}  # fmt: skip
    return [
        FlagView(r.id, r.kind, numbers[r.instrument_id], numbers.get(r.successor_id) if r.successor_id else None,
                 r.diff, r.created_at, r.acknowledged_at, r.acknowledged_by, r.ack_reason, r.revoke_tx,
                 r.revoked_block, revocation_hold(session, r) if r.revoked_block is None else None)
        for r in rows
    ]  # fmt: skip


def acknowledge(session: Session, flag_id: int, *, actor: str, role: str, reason: str) -> FlagView:
    """An operator's acknowledgement of a flag, with the reason (audit-logged)."""
    row = session.get(MirrorFlag, flag_id, with_for_update=True)
    if row is None:
        raise NotFound(f"no mirror flag {flag_id}")
    reason = " ".join(reason.split())
    if len(reason) < MIN_REASON:
        raise Conflict(f"say why the flag is acknowledged (a reason of at least {MIN_REASON} characters)")
    if row.acknowledged_at is not None:
        raise Conflict(
            f"mirror flag {flag_id} was acknowledged by {row.acknowledged_by} on {row.acknowledged_at:%Y-%m-%d}"
        )
    row.acknowledged_at, row.acknowledged_by, row.ack_reason = datetime.now(UTC), actor, reason[:2000]
    number = session.scalar(select(Instrument.instrument_number).where(Instrument.id == row.instrument_id))
    audit_log.append(session, actor=actor, role=role, action="mirror.acknowledge", target=f"flag {flag_id}",
                     details={"kind": row.kind, "instrument": number, "reason": row.ack_reason})  # fmt: skip
    session.flush()
    [view] = flags(session, instrument_ids=[row.instrument_id])
    return view
