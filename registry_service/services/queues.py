"""The clerk's queues: today's filings, the signed-in clerk's own, and what waits for review
(submissions waiting for a confirmation, title flags only a recorded instrument resolves).

"Today" is the recorder's day, in its own time zone (a filing at 23:30 in Hackensack is today's
there, though it is tomorrow in UTC). "Mine" is what was filed with the clerk's own key: the key is
what the submission keeps of its filer, so a clerk with two keys sees each key's filings under it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from hybrid_store.core import title
from hybrid_store.db.engine import Database
from hybrid_store.db.models import Instrument, Parcel, Submission, TitleFlag, TitleFlagResolution
from hybrid_store.examination import State
from hybrid_store.settings import Settings
from registry_service.auth import Actor
from registry_service.services.filing import submission_view

#: the most rows a queue page shows; a queue longer than this says so and shows the oldest first
QUEUE_ROWS = 200


@dataclass(frozen=True)
class Counts:
    """What the desk's front page shows beside each queue."""

    today: int
    mine: int
    waiting: int
    open_flags: int

    @property
    def review(self) -> int:
        return self.waiting + self.open_flags


@dataclass(frozen=True)
class OpenFlag:
    """A title flag no recorded instrument has resolved yet."""

    id: int
    instrument_number: str
    parcel: str
    kind: str
    message: str
    flagged_at: datetime
    ownership: bool


class Queues:
    def __init__(self, settings: Settings, db: Database):
        self.settings = settings
        self.db = db

    def counts(self, actor: Actor) -> Counts:
        with self.db.read() as s:
            return Counts(
                today=_count(s, self._today()), mine=_count(s, _mine(actor)),
                waiting=_count(s, select(Submission.id).where(Submission.state == State.WAITING)),
                open_flags=_count(s, _open_flags()),
            )  # fmt: skip

    def today(self, limit: int = QUEUE_ROWS) -> list[dict[str, Any]]:
        """Every submission received on the recorder's day, newest first, whatever became of it."""
        return self._listing(self._today(), limit)

    def mine(self, actor: Actor, limit: int = QUEUE_ROWS) -> list[dict[str, Any]]:
        """The submissions filed with ``actor``'s key, newest first."""
        return self._listing(_mine(actor), limit)

    def open_flags(self, limit: int = QUEUE_ROWS) -> list[OpenFlag]:
        """Title flags waiting for the instrument that resolves them, oldest first."""
        stmt = (
            select(TitleFlag.id, Instrument.instrument_number, Parcel.parcel_key, TitleFlag.kind, TitleFlag.message,
                   TitleFlag.created_at)
            .join(Instrument, Instrument.id == TitleFlag.instrument_id).join(Parcel, Parcel.id == TitleFlag.parcel_id)
            .where(TitleFlag.id.in_(_open_flags())).order_by(TitleFlag.id).limit(limit)
        )  # fmt: skip
        with self.db.read() as s:
            return [OpenFlag(fid, number, key, kind, message, at, kind in title.OWNERSHIP)
                    for fid, number, key, kind, message, at in s.execute(stmt)]  # fmt: skip

    def _today(self) -> Select[Any]:
        zone = ZoneInfo(self.settings.profile.timezone)
        start = datetime.combine(datetime.now(zone).date(), time(), zone)
        return select(Submission.id).where(Submission.received_at >= start.astimezone(UTC),
                                           Submission.received_at < (start + timedelta(days=1)).astimezone(UTC))  # fmt: skip

    def _listing(self, ids: Select[Any], limit: int) -> list[dict[str, Any]]:
        stmt = (select(Submission).where(Submission.id.in_(ids))
                .order_by(Submission.received_at.desc(), Submission.id.desc()).limit(limit))  # fmt: skip
        with self.db.read() as s:
            return [submission_view(self.settings.profile, sub) for sub in s.scalars(stmt)]


def _mine(actor: Actor) -> Select[Any]:
    # a caller with no key (the command line) has filed nothing through the desk or the API
    return select(Submission.id).where(Submission.api_key_id == (actor.api_key_pk or -1))


def _open_flags() -> Select[Any]:
    resolved = select(TitleFlagResolution.id).where(TitleFlagResolution.flag_id == TitleFlag.id)
    return select(TitleFlag.id).where(~resolved.exists())


def _count(s: Session, ids: Select[Any]) -> int:
    return s.scalar(select(func.count()).select_from(ids.subquery())) or 0
