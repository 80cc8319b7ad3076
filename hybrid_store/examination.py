"""Examination: what a recorder finds in a submission before recording it.

Two kinds of finding, kept apart because the law keeps them apart. A **ground** is a reason the
statute lets a recorder refuse the document (its form and prerequisites, fees): the jurisdiction
profile lists them as data (``Profile.grounds``) and ``grounds`` evaluates them, purely, against the
filing and the clerk's attestations. A **confirmation** is landreg's own check (a parcel the registry
has never seen, a possible duplicate, grantors who are not the owners of record): it can never
refuse a compliant document, only make it wait for an authorised clerk's explicit confirmation (or
the submitter's, given up front). A submission **held** behind an earlier waiting one on the same
parcel waits for that one to be resolved: order of receipt is priority, and nobody confirms it away.

The database-facing checks (which parcels exist, what was recorded) live in the service; this
module holds the finding's shape, the rule engine and the statutory clocks, and does no I/O.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import asdict, dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from hybrid_store.core.records import ReferenceKind
from hybrid_store.jurisdictions import Profile
from hybrid_store.jurisdictions.base import GroundRule
from hybrid_store.jurisdictions.calendar import add_business_days


class Kind(StrEnum):
    GROUND = "ground"  # the statute lets the recorder refuse for it: the submission is rejected
    CONFIRMATION = "confirmation"  # landreg's own check: waits for a clerk's confirmation with a reason
    HELD = "held"  # behind an earlier waiting submission on the same parcel: waits for it, in order


class State(StrEnum):
    EXAMINING = "examining"
    WAITING = "waiting"
    RECORDED = "recorded"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


#: the confirmations a submitter may give up front (with a reason) or a clerk later
NEW_PARCEL = "new_parcel"
POSSIBLE_DUPLICATE = "possible_duplicate"
GRANTOR_NOT_OWNER = "grantor_not_owner"
CONFLICTING_CONVEYANCE = "conflicting_conveyance"
HELD = "held_behind"
CONFIRMABLE = frozenset({NEW_PARCEL, POSSIBLE_DUPLICATE, GRANTOR_NOT_OWNER, CONFLICTING_CONVEYANCE})
#: a confirmation says why; a reason of fewer characters says nothing
MIN_REASON = 10
#: how far back a filing with the same type, parties, parcels and consideration counts as a twin
DUPLICATE_WINDOW_DAYS = 30


@dataclass(frozen=True)
class Finding:
    code: str
    kind: Kind
    words: str
    statute: str = ""
    parcel: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Kind) else v) for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Finding:
        return cls(data["code"], Kind(data["kind"]), data["words"], data.get("statute", ""), data.get("parcel"))


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, str | list | tuple) and not value)


def _cites(content: Any, kind: ReferenceKind) -> bool:
    if kind == ReferenceKind.CORRECTS and getattr(content, "corrects", None):
        return True  # the correction link is a reference by number (``corrects``)
    return any(r.kind == kind for r in getattr(content, "references", ()))


def _broken(rule: GroundRule, content: Any, attested: Collection[str]) -> bool:
    if rule.doc_types is not None and content.doc_type not in rule.doc_types:
        return False
    if rule.field is not None and not _present(getattr(content, rule.field, None)):
        return True
    if rule.attestation is not None and rule.attestation not in attested:
        return True
    if rule.any_field and not any(_present(getattr(content, f, None)) for f in rule.any_field):
        return True
    return rule.cites is not None and not _cites(content, rule.cites)


def grounds(profile: Profile, content: Any, attested: Collection[str]) -> list[Finding]:
    """Every ground for refusal ``content`` (a validated filing) gives under ``profile``'s rules,
    in the rules' order: a rejection names all of them at once (N.J.S.A. 46:26A-6)."""
    return [Finding(r.code, Kind.GROUND, r.words, r.statute) for r in profile.grounds
            if _broken(r, content, attested)]  # fmt: skip


def unconfirmed(findings: Iterable[Finding], confirmed: Collection[str]) -> list[Finding]:
    """The findings that still make a submission wait: grounds and holds always, confirmations not
    yet given."""
    return [f for f in findings if f.kind != Kind.CONFIRMATION or f.code not in confirmed]


@dataclass(frozen=True)
class Clocks:
    """The statutory clocks of a submission received at ``received``: the last day to record it and
    the last day to reject it (None where the jurisdiction's law sets none)."""

    received: datetime
    record_by: date | None
    reject_by: date | None

    def to_json(self) -> dict[str, Any]:
        return {"receivedAt": self.received.isoformat(),
                "recordBy": self.record_by.isoformat() if self.record_by else None,
                "rejectBy": self.reject_by.isoformat() if self.reject_by else None}  # fmt: skip


def clocks(profile: Profile, received: datetime) -> Clocks:
    """Counted in business days after the day of receipt, in the recorder's own time zone."""
    day = received.astimezone(ZoneInfo(profile.timezone)).date()

    def after(n: int | None) -> date | None:
        return None if n is None else add_business_days(day, n, profile.holidays)

    return Clocks(received, after(profile.record_within), after(profile.reject_within))
