"""Which legacy records a stage takes (its selector), and whether a stage may start (its gate)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from typing import Any

from sqlalchemy import Integer, cast, exists, func, select
from sqlalchemy.orm import Session

from hybrid_store.db.models import (
    Commitment,
    Instrument,
    InstrumentParcel,
    MigrationStage,
    Municipality,
    Parcel,
)
from hybrid_store.errors import LandregError, NotFound

log = logging.getLogger(__name__)


DEFAULT_BATCH_SIZE = 10_000

#: writes an audit entry inside the caller's transaction: (session, action, details with "target")
AuditHook = Callable[[Session, str, dict[str, Any]], None]


class StageError(LandregError):
    """A stage cannot do what was asked (order, state, sign-off); the message says why."""


@dataclass(frozen=True)
class Selector:
    """Which legacy records a stage takes. Empty means no restriction on that axis."""

    municipalities: tuple[str, ...] = ()
    date_from: date | None = None
    date_to: date | None = None
    book_from: int | None = None
    book_to: int | None = None

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["municipalities"] = list(self.municipalities)
        for k in ("date_from", "date_to"):
            d[k] = d[k].isoformat() if d[k] else None
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Selector:
        return cls(
            municipalities=tuple(d.get("municipalities") or ()),
            date_from=date.fromisoformat(d["date_from"]) if d.get("date_from") else None,
            date_to=date.fromisoformat(d["date_to"]) if d.get("date_to") else None,
            book_from=d.get("book_from"),
            book_to=d.get("book_to"),
        )

    def describe(self) -> str:
        parts = []
        if self.municipalities:
            parts.append("municipalities " + ", ".join(self.municipalities))
        if self.date_from or self.date_to:
            parts.append(f"recorded {self.date_from or '…'} to {self.date_to or '…'}")
        if self.book_from is not None or self.book_to is not None:
            parts.append(f"books {self.book_from or '…'} to {self.book_to or '…'}")
        return "; ".join(parts) or "every legacy record"

    def conditions(self) -> list[Any]:
        out: list[Any] = []
        if self.municipalities:
            out.append(
                exists(
                    select(InstrumentParcel.instrument_id)
                    .join(Parcel, Parcel.id == InstrumentParcel.parcel_id)
                    .where(InstrumentParcel.instrument_id == Instrument.id)
                    .where(Parcel.municipality_code.in_(self.municipalities))
                )
            )
        if self.date_from:
            out.append(Instrument.recorded_at >= datetime.combine(self.date_from, dtime.min, UTC))
        if self.date_to:
            out.append(Instrument.recorded_at < datetime.combine(self.date_to, dtime.min, UTC) + timedelta(days=1))
        if self.book_from is not None:
            out.append(cast(Instrument.book, Integer) >= self.book_from)
        if self.book_to is not None:
            out.append(cast(Instrument.book, Integer) <= self.book_to)
        return out


def committed():
    return exists(select(Commitment.instrument_id).where(Commitment.instrument_id == Instrument.id))


def unmigrated(selector: Selector | None) -> list[Any]:
    """Where-clauses of the legacy records a stage (all stages, without a selector) still has to migrate."""
    return [Instrument.source == "legacy", ~committed(), *(selector.conditions() if selector else [])]


def candidates(session: Session, selector: Selector) -> list[int]:
    """Ids of the records the stage still has to migrate, in recording order."""
    stmt = select(Instrument.id).where(*unmigrated(selector)).order_by(Instrument.recorded_at, Instrument.id)
    return list(session.scalars(stmt))


def count_candidates(session: Session, selector: Selector | None = None) -> int:
    """How many records ``candidates`` would return (all unmigrated legacy records without a selector)."""
    return session.scalar(select(func.count()).select_from(Instrument).where(*unmigrated(selector))) or 0


@dataclass(frozen=True)
class BookMunicipality:
    """A municipality the legacy book holds records of: what ``--municipality`` can select."""

    code: str
    name: str
    records: int  # legacy records with a parcel there (a record on parcels in two counts in both)
    unmigrated: int


def book_municipalities(session: Session) -> list[BookMunicipality]:
    """Every municipality with legacy records, by code."""
    rows = session.execute(
        select(Parcel.municipality_code, Municipality.name, func.count(func.distinct(Instrument.id)),
               func.count(func.distinct(Instrument.id)).filter(~committed()))
        .join(InstrumentParcel, InstrumentParcel.parcel_id == Parcel.id)
        .join(Instrument, Instrument.id == InstrumentParcel.instrument_id)
        .outerjoin(Municipality, Municipality.code == Parcel.municipality_code)
        .where(Instrument.source == "legacy")
        .group_by(Parcel.municipality_code, Municipality.name)
        .order_by(Parcel.municipality_code)
    ).all()  # fmt: skip
    return [BookMunicipality(code, name or "", records, unmigrated) for code, name, records, unmigrated in rows]


def gate_of(session: Session, stage: MigrationStage | None) -> str:
    earlier = session.scalars(
        select(MigrationStage)
        .where(MigrationStage.id < (stage.id if stage is not None else 2**62))
        .where(MigrationStage.state != "rolled_back")
        .order_by(MigrationStage.id)
    ).all()
    for s in earlier:
        if s.state != "signed_off":
            return f"waits for {s.name!r} ({s.state}) to be reconciled clean and signed off"
    return "ready"


def stage_row(s: Session, name: str) -> MigrationStage:
    stage = s.scalar(select(MigrationStage).where(MigrationStage.name == name))
    if stage is None:
        raise NotFound(f"no migration stage {name!r}: plan it first (`landreg migrate plan {name} ...`)")
    return stage
