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
