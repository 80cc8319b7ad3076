"""Chain of title: whether a deed's grantors may convey a parcel.

A deed whose grantors include every owner of record becomes the next link (its grantees become
the owners). Otherwise it is still recorded (a recorder must accept a compliant document) but not
linked, and flagged for review: ``conflicting_conveyance`` when its grantors are the people who
already conveyed the parcel to the current owners (a double sale), else ``grantor_not_owner``.
Parcel row locks make concurrent deeds on one parcel take turns, so of two transfers by the same
owner exactly one becomes the link and the other is flagged.

A deed an officer or a court makes for the owner (a sheriff's, executor's, administrator's or tax
sale foreclosure deed, a court order: the profile's ``conveys_for_owner``) conveys without the
owner's signature: its grantors are not the owners of record, and it still becomes the link.

A correction re-records the instrument it corrects, so it is judged against the title as it stood
before that instrument (whose grantors were the owners then), never against the instrument itself
(``check_correction``): a price-only correction of the owners' deed is no double sale. When the
corrected instrument is still the owners' conveyance, the correction takes its place (the owners of
record follow the corrected grantees); a correction of a deed the title has since moved on from
leaves the current owners alone.

The flag kinds in ``OWNERSHIP`` say the owners of record may not be who the recorded instruments
make them: only recording an instrument resolves one (``resolves``), never someone's word.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass


def name_key(name: str) -> str:
    """How two spellings of one party's name compare: case, accents and punctuation ignored
    ("José García, Jr." and "JOSE GARCIA JR" are one name); suffixes still tell people apart."""
    letters = "".join(ch for ch in unicodedata.normalize("NFKD", name) if not unicodedata.combining(ch))
    return " ".join(re.sub(r"[^0-9A-Z]+", " ", letters.upper()).split())


#: flags that bear on who owns a parcel: resolved by recording an instrument, never acknowledged
OWNERSHIP = frozenset({"grantor_not_owner", "conflicting_conveyance"})


@dataclass(frozen=True)
class Flag:
    parcel_key: str
    kind: str
    message: str


@dataclass(frozen=True)
class Conveyance:
    """The conveyance whose grantees are a parcel's owners of record."""

    number: str
    grantors: Sequence[str]
    grantees: Sequence[str]


def check(key: str, grantors: Sequence[str], owner: Conveyance | None, *, for_owner: bool = False) -> Flag | None:
    """None when a deed by ``grantors`` may convey parcel ``key``: they include every owner of
    record, or (``for_owner``) the deed's type lets an officer or a court convey for the owner."""
    if owner is None or for_owner:
        return None  # no conveyance on record yet (this deed starts the chain of title), or not the owner's to sign
    given = {name_key(n) for n in grantors}
    if {name_key(n) for n in owner.grantees} <= given:
        return None
    if {name_key(n) for n in owner.grantors} <= given:
        return Flag(
            key,
            "conflicting_conveyance",
            f"{'; '.join(grantors)} already conveyed {key} to {'; '.join(owner.grantees)} by instrument {owner.number}",
        )
    return Flag(
        key,
        "grantor_not_owner",
        f"the owners of record of {key} are {'; '.join(owner.grantees)} (instrument {owner.number}), "
        f"not {'; '.join(grantors)}",
    )


@dataclass(frozen=True)
class Corrected:
    """The instrument a correction re-records, as one parcel's chain of title saw it."""

    number: str
    before: Conveyance | None  # the chain's link before it: the title its grantors conveyed
    linked: bool  # it (or an earlier correction of it) became a link of this parcel's chain
    holds_title: bool  # ... and is still the owners' conveyance


def check_correction(
    key: str, grantors: Sequence[str], corrected: Corrected, owner: Conveyance | None, *, for_owner: bool = False
) -> tuple[Flag | None, bool]:
    """(flag, whether the correction becomes the owners' conveyance) for a correction of
    ``corrected`` by ``grantors`` on parcel ``key``, whose owners of record ``owner`` names now."""
    flag = check(key, grantors, corrected.before, for_owner=for_owner)
    if flag is not None:
        return flag, False
    unchanged_since = owner is None or (corrected.before is not None and owner.number == corrected.before.number)
    if corrected.holds_title or unchanged_since:
        return None, True
    if corrected.linked:
        return None, False  # the title moved on from the corrected deed: its successors' owners stay
    # the corrected deed never became a link and another conveyance did since: an ordinary check
    flag = check(key, grantors, owner, for_owner=for_owner)
    return flag, flag is None


def resolves(flagged_grantees: Sequence[str], owners: Sequence[str]) -> bool:
    """Whether a conveyance whose grantees are now the owners of record (``owners``) resolves a flag
    on a deed to ``flagged_grantees``: the title follows committed records to the very people the
    flagged deed named (a deed from the owner of record to them, confirming it)."""
    return {name_key(n) for n in flagged_grantees} == {name_key(n) for n in owners}
