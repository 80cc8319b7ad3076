"""Flags and what ends them: the one way to acknowledge a flag, and the rule that a flag on who
owns a parcel is never acknowledged away.

Two families of flags exist. Title flags (``title``): a deed whose grantors are not the owners of
record (``grantor_not_owner``) or who already conveyed the parcel (``conflicting_conveyance``).
Both bear on who owns the parcel (``title.OWNERSHIP``), so only recording an instrument resolves
one, and filing does it as it records the instrument (a correction of the flagged deed, or a deed
that makes the flagged deed's grantees the owners of record: ``filing``): the title always follows
committed records. The legacy mirror's flags (``mirror``: a version the county's recorder system
replaced or deleted) say nothing of who owns what landreg did not already follow; an authorised
person acknowledges one with a reason, audit-logged. Who is authorised is decided at the edge
(the ``acknowledge`` permission); the API, the desk and the command line all come through
``acknowledge`` here.
"""

from __future__ import annotations

import enum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hybrid_store import mirror
from hybrid_store.db.models import Instrument, InstrumentParty, Parcel, TitleFlag, TitleFlagResolution
from hybrid_store.errors import Conflict, NotFound

#: the flag kinds an authorised person may acknowledge with a reason (every other kind bears on
#: who owns a parcel: ``title.OWNERSHIP``)
ACKNOWLEDGEABLE = frozenset({mirror.CHANGED, mirror.DELETED})


class Source(enum.StrEnum):
    """Which family a flag id belongs to (each numbers its flags on its own)."""

    TITLE = "title"
    MIRROR = "mirror"


class RecordToResolve(Conflict):
    """An acknowledgement of a flag that only a recorded instrument may resolve."""

    hint = ("record the instrument that resolves it: a correction of the flagged deed (\"Record a correction\" on "
            "the desk, POST /api/v1/instruments/{number}/corrections), or a deed from the owners of record to the "
            "flagged deed's grantees")  # fmt: skip


def acknowledge(session: Session, source: Source, flag_id: int, *, actor: str, role: str,
                reason: str) -> mirror.FlagView:  # fmt: skip
    """Acknowledge flag ``flag_id`` of ``source`` with ``reason`` (audit-logged), in the caller's
    transaction. Raises ``NotFound``, ``RecordToResolve`` for a flag on who owns a parcel, and
    ``Conflict`` for a missing reason or a flag acknowledged already."""
    if source is Source.TITLE:
        raise _refusal(session, flag_id)
    return mirror.acknowledge(session, flag_id, actor=actor, role=role, reason=reason)


def _refusal(session: Session, flag_id: int) -> Exception:
    """Why title flag ``flag_id`` cannot be acknowledged, in words that say what to record."""
    row = session.execute(
        select(TitleFlag.kind, Instrument.instrument_number, Parcel.parcel_key, Parcel.owner_instrument_id,
               TitleFlag.instrument_id)
        .join(Instrument, Instrument.id == TitleFlag.instrument_id).join(Parcel, Parcel.id == TitleFlag.parcel_id)
        .where(TitleFlag.id == flag_id)
    ).one_or_none()  # fmt: skip
    if row is None:
        return NotFound(f"no title flag {flag_id}")
    # every kind title_flags may hold (its CHECK) is in title.OWNERSHIP: none is acknowledged
    kind, number, key, owner_id, flagged_id = row
    resolved = session.execute(
        select(Instrument.instrument_number).join(TitleFlagResolution, TitleFlagResolution.instrument_id == Instrument.id)
        .where(TitleFlagResolution.flag_id == flag_id)
    ).scalar_one_or_none()  # fmt: skip
    if resolved is not None:
        return Conflict(f"title flag {flag_id} on instrument {number} was resolved by recording instrument {resolved}")
    owners = _grantees(session, owner_id) if owner_id else []
    grantees = _grantees(session, flagged_id)
    return RecordToResolve(
        f"title flag {flag_id} ({kind.replace('_', ' ')} on {key}, instrument {number}) bears on who owns the parcel, "
        "so it cannot be acknowledged: record the instrument that resolves it, a correction of "
        f"{number} if it was recorded with a mistake, or a deed from the owners of record "
        f"({'; '.join(owners) or 'none on record'}) to {'; '.join(grantees)}"
    )


def _grantees(session: Session, instrument_id: int) -> list[str]:
    return list(session.scalars(
        select(InstrumentParty.name).where(InstrumentParty.instrument_id == instrument_id,
                                           InstrumentParty.role == "grantee").order_by(InstrumentParty.position)
    ))  # fmt: skip


def resolved(session: Session, flag_ids: tuple[int, ...] | list[int]) -> list[dict[str, Any]]:
    """The title flags ``flag_ids`` (just resolved by a filing): id, flagged instrument, parcel, kind."""
    if not flag_ids:
        return []
    rows = session.execute(
        select(TitleFlag.id, Instrument.instrument_number, Parcel.parcel_key, TitleFlag.kind)
        .join(Instrument, Instrument.id == TitleFlag.instrument_id).join(Parcel, Parcel.id == TitleFlag.parcel_id)
        .where(TitleFlag.id.in_(sorted(flag_ids))).order_by(TitleFlag.id)
    ).all()  # fmt: skip
    return [{"id": fid, "instrument_number": number, "parcel": key, "kind": kind} for fid, number, key, kind in rows]
