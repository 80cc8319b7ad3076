"""landreg's own checks of a submission, the ones that read the registry: a parcel it has never
seen, a possible twin of something already filed, grantors who are not the owners of record, and
an earlier submission waiting on the same parcel. Each gives findings that wait for a confirmation
(or, for a hold, for the earlier submission); none of them ever refuses a document
(``hybrid_store.examination`` says why the two kinds are kept apart).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, func, or_, select, text
from sqlalchemy.orm import Session

from hybrid_store.core import title
from hybrid_store.core.records import CONVEYANCES
from hybrid_store.db.models import Instrument, InstrumentParcel, InstrumentParty, Parcel, Submission
from hybrid_store.examination import (
    DUPLICATE_WINDOW_DAYS,
    HELD,
    NEW_PARCEL,
    POSSIBLE_DUPLICATE,
    Finding,
    Kind,
    State,
)
from hybrid_store.intake import InstrumentInput

#: submissions that may still become instruments, or did
_LIVE = (State.EXAMINING, State.WAITING, State.RECORDED)


def lock_parcels(session: Session, keys: Sequence[str]) -> None:
    """Examining and recording a submission's parcels is one turn: on PostgreSQL an advisory lock
    per parcel key (in key order, so two submissions never deadlock), held to the end of the
    transaction; SQLite's write transaction already holds the whole database."""
    if session.get_bind().dialect.name != "postgresql":
        return
    for key in sorted(set(keys)):
        lock = int.from_bytes(hashlib.sha256(b"landreg-parcel:" + key.encode()).digest()[:8], "big", signed=True)
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock})


def confirmations(session: Session, inst: InstrumentInput, now: datetime, *, exclude: int | None = None,
                  received_at: datetime | None = None) -> list[Finding]:  # fmt: skip
    """Every finding of ``inst`` that needs a confirmation or waits behind an earlier submission;
    ``exclude``: the submission's own id (re-examining a waiting one)."""
    keys = [p.key for p in inst.parcels]
    seen = _Seen.read(session, inst, exclude)
    waits = held(session, keys, exclude, received_at) if seen.waiting else []
    return [*new_parcels(session, inst, seen), *duplicates(session, inst, now, exclude, seen),
            *not_owners(session, inst, seen), *waits]  # fmt: skip


@dataclass(frozen=True)
class _Seen:
    """What the registry already holds that the checks start from, read in one round trip (a
    filing's examination runs inside its write transaction, with its parcels locked: each round
    trip there is time every other filing on those parcels waits): which of the parcels it knows,
    which of their places have any parcel, and a recorded instrument or a live submission with the
    same document digest; and whether any submission waits at all (none: no hold to look for)."""

    known: frozenset[str]
    places: frozenset[str]  # the instrument's places that have parcels
    twin_number: str | None  # a recorded instrument with the same digest
    twin_submission: int | None  # the earliest live submission with the same digest
    waiting: bool = True

    @classmethod
    def read(cls, session: Session, inst: InstrumentInput, exclude: int | None) -> _Seen:
        keys = sorted({p.key for p in inst.parcels})
        places = sorted({p.columns()["municipality_code"] for p in inst.parcels})
        digest = inst.document_digest
        # a correction of an indexing mistake re-records the very document: its twin is what it corrects
        others = [Instrument.instrument_number != inst.corrects] if inst.corrects else []
        corrected = select(Instrument.id).where(Instrument.instrument_number == inst.corrects)
        not_corrected = [or_(Submission.instrument_id.is_(None), Submission.instrument_id.not_in(corrected))] \
            if inst.corrects else []  # fmt: skip
        twin = select(Instrument.instrument_number).where(Instrument.document_digest == digest, *others).limit(1)
        earlier = select(Submission.id).where(
            Submission.document_digest == digest, Submission.state.in_(_LIVE), *not_corrected,
            *([Submission.id != exclude] if exclude is not None else [])).order_by(Submission.id).limit(1)  # fmt: skip
        row = session.execute(select(
            twin.scalar_subquery(), earlier.scalar_subquery(), exists().where(Submission.state == State.WAITING),
            *(exists().where(Parcel.parcel_key == key) for key in keys),
            *(exists().where(Parcel.municipality_code == place) for place in places),
        )).one()  # fmt: skip
        flags = list(row[3:])
        return cls(frozenset(k for k, there in zip(keys, flags[: len(keys)], strict=True) if there),
                   frozenset(p for p, there in zip(places, flags[len(keys):], strict=True) if there),
                   row[0], row[1], bool(row[2]))  # fmt: skip


def new_parcels(session: Session, inst: InstrumentInput, seen: _Seen | None = None) -> list[Finding]:
    """A parcel the registry has never seen, in a municipality whose parcels it knows. A registry
    that holds no parcel of a place yet (a new registry before its book is migrated) cannot tell a
    typo from a first recording there, so it asks only once the place has parcels."""
    seen = seen or _Seen.read(session, inst, None)
    out = []
    for parcel in inst.parcels:
        if parcel.key in seen.known:
            continue
        if parcel.columns()["municipality_code"] not in seen.places:
            continue
        out.append(Finding(NEW_PARCEL, Kind.CONFIRMATION, f"parcel {parcel.key} is not in the registry's book: "
                           "check the block and lot against the tax map; confirm only if it really is a parcel "
                           "recorded here for the first time (its record and token are made when it is recorded)",
                           parcel=parcel.key))  # fmt: skip
    return out


def duplicates(session: Session, inst: InstrumentInput, now: datetime, exclude: int | None,
               seen: _Seen | None = None) -> list[Finding]:  # fmt: skip
    """The same document digest as a recorded instrument or a submission not rejected; or the same
    type, parties, parcels and consideration recorded or submitted within the last 30 days."""
    seen = seen or _Seen.read(session, inst, exclude)
    digest = inst.document_digest
    if seen.twin_number is not None:
        return [_twin(f"this document (SHA-256 {digest[:12]}…) is already recorded as instrument {seen.twin_number}")]
    if seen.twin_submission is not None:
        return [_twin(f"this document (SHA-256 {digest[:12]}…) was already submitted as submission "
                      f"{seen.twin_submission}")]  # fmt: skip
    # the same filing names the same parcels: none to look for on a parcel the registry has never seen
    if min(p.key for p in inst.parcels) not in seen.known:
        return []
    number = _same_filing(session, inst, now - timedelta(days=DUPLICATE_WINDOW_DAYS))
    if number is not None:
        return [_twin(f"instrument {number}, recorded in the last {DUPLICATE_WINDOW_DAYS} days, has the same type, "
                      "parties, parcels and consideration")]  # fmt: skip
    return []


def _twin(words: str) -> Finding:
    return Finding(POSSIBLE_DUPLICATE, Kind.CONFIRMATION,
                   f"{words}: if this is a second copy, withdraw it; confirm only if it is a separate instrument")  # fmt: skip


def _signature(grantors: Sequence[str], grantees: Sequence[str]) -> tuple[Any, ...]:
    return (sorted(title.name_key(n) for n in grantors), sorted(title.name_key(n) for n in grantees))


def _same_filing(session: Session, inst: InstrumentInput, since: datetime) -> str | None:
    keys = sorted(p.key for p in inst.parcels)
    cents = inst.consideration_cents
    candidates = list(session.execute(
        select(Instrument.id, Instrument.instrument_number)
        .join(InstrumentParcel, InstrumentParcel.instrument_id == Instrument.id)
        .join(Parcel, Parcel.id == InstrumentParcel.parcel_id)
        .where(Parcel.parcel_key == keys[0], Instrument.doc_type == str(inst.doc_type), Instrument.recorded_at >= since,
               Instrument.consideration_cents.is_(None) if cents is None else Instrument.consideration_cents == cents)
    ))  # fmt: skip
    wanted = _signature(inst.grantors, inst.grantees)
    for iid, number in candidates:
        if number == inst.corrects:
            continue  # a correction re-records the instrument it corrects: looking like it is the point
        parcels = sorted(session.scalars(select(Parcel.parcel_key).join(InstrumentParcel, InstrumentParcel.parcel_id
                                                                        == Parcel.id)
                                         .where(InstrumentParcel.instrument_id == iid)))  # fmt: skip
        parties = list(session.execute(select(InstrumentParty.role, InstrumentParty.name)
                                       .where(InstrumentParty.instrument_id == iid)))  # fmt: skip
        grantors = [n for r, n in parties if r == "grantor"]
        grantees = [n for r, n in parties if r == "grantee"]
        if parcels == keys and _signature(grantors, grantees) == wanted:
            return str(number)
    return None


def not_owners(session: Session, inst: InstrumentInput, seen: _Seen | None = None) -> list[Finding]:
    """A conveyance whose grantors are not the owners of record (``title.check``'s flags), unless an
    officer or a court conveys for the owner (the type's rule) or it corrects the very conveyance
    that made the owners (a correction re-records that instrument)."""
    if inst.doc_type not in CONVEYANCES or inst.doc_type in inst.profile.conveys_for_owner:
        return []
    if inst.corrects:
        # a correction is judged against the title as it stood before what it corrects, and only the
        # recording has that chain (filing's title judgement): it is recorded, and flagged if it must be
        return []
    known = (seen or _Seen.read(session, inst, None)).known
    out = []
    for parcel in inst.parcels:
        # a parcel the registry has never seen has no owner of record
        owner = _owner_of_record(session, parcel.key) if parcel.key in known else None
        if owner is None or (inst.corrects and owner.number == inst.corrects):
            continue
        flag = title.check(parcel.key, inst.grantors, owner)
        if flag is not None:
            out.append(Finding(flag.kind, Kind.CONFIRMATION, f"{flag.message}: confirm only if the title examiner "
                               "has seen why they may convey (it is then recorded and flagged for review)",
                               parcel=parcel.key))  # fmt: skip
    return out


def _owner_of_record(session: Session, key: str) -> title.Conveyance | None:
    rows = session.execute(select(Instrument.instrument_number, InstrumentParty.role, InstrumentParty.name)
                           .select_from(Parcel).join(Instrument, Parcel.owner_instrument_id == Instrument.id)
                           .outerjoin(InstrumentParty, InstrumentParty.instrument_id == Instrument.id)
                           .where(Parcel.parcel_key == key)
                           .order_by(InstrumentParty.role, InstrumentParty.position)).all()  # fmt: skip
    if not rows:
        return None
    return title.Conveyance(rows[0].instrument_number, [n for _, r, n in rows if r == "grantor"],
                            [n for _, r, n in rows if r == "grantee"])  # fmt: skip


def held(session: Session, keys: Sequence[str], exclude: int | None, received_at: datetime | None) -> list[Finding]:
    """The earliest waiting submission received before this one that touches one of its parcels:
    order of receipt is priority, so this one waits for it to be recorded or rejected."""
    stmt = select(Submission.id, Submission.received_at, Submission.parcel_keys).where(
        Submission.state == State.WAITING).order_by(Submission.received_at, Submission.id)  # fmt: skip
    wanted = set(keys)
    for sid, received, their_keys in session.execute(stmt):
        if sid == exclude or (
            exclude is not None and received_at is not None and (received, sid) > (received_at, exclude)
        ):
            continue
        shared = sorted(wanted & set(their_keys))
        if shared:
            return [Finding(HELD, Kind.HELD, f"held behind submission {sid} (received {received:%Y-%m-%d %H:%M:%S} "
                            f"UTC), which waits on parcel {shared[0]}: recorded in order of receipt once it is "
                            "recorded or rejected", parcel=shared[0])]  # fmt: skip
    return []


def waiting_count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(Submission).where(Submission.state == State.WAITING))
               or 0)  # fmt: skip
