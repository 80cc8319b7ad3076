"""Submissions waiting for a clerk: the queue, one submission, a confirmation and a rejection.

Resolving a submission (recording or rejecting it) releases the ones held behind it: every waiting
submission that shares a parcel with it is examined again in order of receipt, and those nothing
stands in the way of any more are recorded, in that order, in the same transaction. So a mortgage
received after a deed on the same parcel is never recorded before the deed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hybrid_store import examination
from hybrid_store.db.engine import Database
from hybrid_store.db.models import Submission
from hybrid_store.errors import Conflict, NotFound
from hybrid_store.examination import MIN_REASON, Finding, Kind, State
from hybrid_store.intake import InstrumentInput, validate
from hybrid_store.settings import Settings
from registry_service.auth import Actor, audit
from registry_service.services import checks
from registry_service.services.filing import MAX_REASON, Filing, confirmed_codes, resolve, submission_view


class ReasonRequired(Conflict):
    hint = "write a sentence a later reader understands: it goes into the audit log"


class Submissions:
    def __init__(self, settings: Settings, db: Database, filing: Filing):
        self.settings = settings
        self.db = db
        self.filing = filing

    def listing(self, state: State | None = State.WAITING, limit: int = 100) -> list[dict[str, Any]]:
        """Submissions in ``state`` (all when None), oldest first: the order they are examined in."""
        with self.db.read() as s:
            stmt = select(Submission).order_by(Submission.received_at, Submission.id).limit(limit)
            if state is not None:
                stmt = stmt.where(Submission.state == state)
            return [submission_view(self.settings.profile, sub) for sub in s.scalars(stmt)]

    def get(self, submission_id: int) -> dict[str, Any]:
        with self.db.read() as s:
            sub = s.get(Submission, submission_id)
            if sub is None:
                raise NotFound(f"no submission numbered {submission_id}")
            return self.filing.outcome(sub).body

    def confirm(self, actor: Actor, submission_id: int, reason: str) -> dict[str, Any]:
        """An authorised clerk confirms every finding of a waiting submission that needs a
        confirmation, with a reason (audit-logged); it is recorded at once unless an earlier
        submission on its parcels still waits, and the ones held behind it follow."""
        reason = _reason(reason)
        self.filing.signer.refresh()
        now = datetime.now(UTC)
        with self.db.write() as s:
            sub = _waiting(s, submission_id)
            checks.lock_parcels(s, sub.parcel_keys)
            inst = self._instrument(sub)
            findings = checks.confirmations(s, inst, now, exclude=sub.id, received_at=sub.received_at)
            holds = [f for f in findings if f.kind == Kind.HELD]
            if holds:
                raise Conflict(f"submission {sub.id} cannot be recorded yet: {holds[0].words}")
            codes = sorted({f.code for f in findings if f.kind == Kind.CONFIRMATION})
            sub.confirmations = [*sub.confirmations, {"codes": codes, "by": actor.label, "at": now.isoformat(),
                                                      "reason": reason, "up_front": False}]  # fmt: skip
            sub.findings = [f.to_json() for f in findings]
            sub.resolved_at, sub.resolved_by, sub.resolution_reason = now, actor.label, reason
            audit(s, actor, "submission.confirm", f"submission {sub.id}", confirmed=codes, reason=reason)
            self.filing.record(s, actor, sub, inst, now)
            self._release(s, actor, sub.parcel_keys, now)
            return self.filing.outcome(sub).body

    def reject(self, actor: Actor, submission_id: int, reason: str) -> dict[str, Any]:
        """A clerk rejects a waiting submission (audit-logged with the reason); never recorded, never
        anchored; the ones held behind it are examined again."""
        reason = _reason(reason)
        self.filing.signer.refresh()
        now = datetime.now(UTC)
        with self.db.write() as s:
            sub = _waiting(s, submission_id)
            checks.lock_parcels(s, sub.parcel_keys)
            resolve(sub, State.REJECTED, actor.label, now, reason)
            audit(s, actor, "submission.reject", f"submission {sub.id}", reason=reason)
            self._release(s, actor, sub.parcel_keys, now)
            return self.filing.outcome(sub).body

    def _instrument(self, sub: Submission) -> InstrumentInput:
        return validate(sub.filing, profile=self.settings.profile, content_only=True)

    def _release(self, s: Session, actor: Actor, keys: list[str], now: datetime) -> None:
        """Examine again, in order of receipt, every waiting submission that shares a parcel with
        ``keys`` (or with one recorded here): record those nothing stands in the way of any more."""
        touched: set[str] = set(keys)
        stmt = select(Submission).where(Submission.state == State.WAITING).order_by(Submission.received_at,
                                                                                    Submission.id)  # fmt: skip
        for sub in list(s.scalars(stmt)):
            if not touched & set(sub.parcel_keys):
                continue
            checks.lock_parcels(s, sub.parcel_keys)
            inst = self._instrument(sub)
            findings = checks.confirmations(s, inst, now, exclude=sub.id, received_at=sub.received_at)
            sub.findings = [f.to_json() for f in findings]
            if examination.unconfirmed(findings, confirmed_codes(sub)):
                continue
            audit(s, actor, "submission.release", f"submission {sub.id}",
                  findings=[f.code for f in findings], submitter=sub.submitter)  # fmt: skip
            sub.resolved_at, sub.resolved_by = now, actor.label
            sub.resolution_reason = "released when the submission it was held behind was resolved"
            self.filing.record(s, actor, sub, inst, now)
            touched |= set(sub.parcel_keys)
            s.flush()


def _waiting(s: Session, submission_id: int) -> Submission:
    sub = s.get(Submission, submission_id, with_for_update=True)
    if sub is None:
        raise NotFound(f"no submission numbered {submission_id}")
    if sub.state != State.WAITING:
        raise Conflict(f"submission {submission_id} is {sub.state}, not waiting: there is nothing to confirm or reject")
    return sub


def _reason(reason: str) -> str:
    reason = " ".join((reason or "").split())
    if len(reason) < MIN_REASON:
        raise ReasonRequired("say why (at least a short sentence): the reason is audit-logged with your name")
    if len(reason) > MAX_REASON:
        raise ReasonRequired(f"the reason is longer than {MAX_REASON} characters: say it shorter")
    return reason


__all__ = ["Finding", "ReasonRequired", "Submissions"]
