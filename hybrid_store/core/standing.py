"""What became of an anchored record, as the chain says: its **standing**.

A record the registry replaced stays provable (its leaf stays under its anchored root), but the
registry revokes the leaf on the contract, with a tagged reason (32 bytes): ``LRS1`` and the first
28 bytes of the commitment of the version that supersedes it (a legacy record edited in place), or
``LRD1`` and zeros (a legacy record the county's system deleted). A verifier reads the revocation
and its reason from the listed contract itself, so a server that hid a newer version could not
make an auditor take the old one as current. Any other revocation reason keeps its old meaning: the
record is not valid. Pure: no I/O.

A revocation reason is only the registry's word: the registrar key (hot, on the registry's servers)
can revoke any leaf with any tag. So ``SUPERSEDED`` is never taken from the tag alone: the verifier
must be shown the successor (``supersession_problem``), an anchored record of the same registry whose
commitment starts with the tag's 28 bytes and whose committed history link (``prev``) names the
superseded record's commitment on each of its parcels. A deletion has no such evidence (the legacy
system deleted the document; nothing newer commits to that), so its verdict says it rests on the
registry's word.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hybrid_store.core.hashing import to_hex

SUPERSEDED_TAG, DELETED_TAG = b"LRS1", b"LRD1"
#: the revocation reason of a record deleted in the legacy database
DELETED_IN_LEGACY = DELETED_TAG + bytes(28)

CURRENT, SUPERSEDED, DELETED, REVOKED = "current", "superseded", "deleted_in_legacy", "revoked"


def revocation_reason(successor_commitment: bytes | None) -> bytes:
    """The reason a replaced version's leaf is revoked with."""
    if successor_commitment is None:
        return DELETED_IN_LEGACY
    return SUPERSEDED_TAG + successor_commitment[:28]


@dataclass(frozen=True)
class Standing:
    kind: str  # current | superseded | deleted_in_legacy | revoked (any other reason, or none given)
    at_block: int = 0
    successor: bytes | None = None  # the first 28 bytes of the superseding version's commitment

    def names_successor(self, commitment: bytes) -> bool:
        """Whether ``commitment`` is the one that superseded this record."""
        return self.successor is not None and commitment[:28] == self.successor

    @property
    def current(self) -> bool:
        return self.kind == CURRENT

    def describe(self) -> str:
        if self.kind == SUPERSEDED:
            assert self.successor is not None
            return (
                f"superseded at block {self.at_block} by the version whose commitment starts {to_hex(self.successor)}"
            )
        if self.kind == DELETED:  # nothing on the chain shows a deletion: say whose word it is
            return (
                f"revoked at block {self.at_block}; the registry says it was deleted in the county's recorder "
                "system (the registry's word: not provable from the chain)"
            )
        if self.kind == REVOKED:
            return f"revoked (superseded) at block {self.at_block}"
        return "current"


def standing_of(revoked_at_block: int, reason: bytes | None) -> Standing:
    """The standing of a record whose leaf was revoked at ``revoked_at_block`` (0: never)."""
    if not revoked_at_block:
        return Standing(CURRENT)
    if reason == DELETED_IN_LEGACY:
        return Standing(DELETED, revoked_at_block)
    if reason is not None and len(reason) == 32 and reason[:4] == SUPERSEDED_TAG:
        return Standing(SUPERSEDED, revoked_at_block, reason[4:])
    return Standing(REVOKED, revoked_at_block)


def supersession_problem(
    superseded: bytes, parcels: Sequence[str] | None, named: bytes, successor: bytes, successor_prev: Any
) -> str:
    """Why the record committed as ``superseded`` (on ``parcels``) is not shown to be superseded by
    the record committed as ``successor`` whose disclosed history link is ``successor_prev`` (the
    committed ``prev`` value: ``[[parcel key, commitment hex or null], ...]``), when the revocation
    names ``named`` (its 28 bytes); "" when it is. ``parcels`` None: the superseded record's parcels
    are not disclosed."""
    if successor[:28] != named[:28]:
        return (
            f"the newer version's commitment {to_hex(successor)} does not start with the {to_hex(named[:28])} the "
            "revocation names"
        )
    if successor == superseded:
        return "the newer version given is this very record"
    if parcels is None:
        return "this record's parcels are redacted, so its place in each parcel's history cannot be checked"
    if not parcels or not all(isinstance(key, str) for key in parcels):
        return "this record names no parcel keys, so no history link can show what replaced it"
    if successor_prev is None:
        return "the newer version's history link (prev) is redacted"
    links = (
        {(link[0], link[1]) for link in successor_prev if _is_link(link)} if isinstance(successor_prev, list) else set()
    )
    missing = [key for key in parcels if (key, to_hex(superseded)) not in links]
    if missing:
        return (
            f"the newer version's history link does not name this record on parcel {missing[0]} (it is not the "
            "version that replaced it, or a later record came between them)"
        )
    return ""


def _is_link(link: Any) -> bool:
    """A committed history link's entry: ``[parcel key, commitment hex or null]``."""
    return isinstance(link, list) and len(link) == 2 and isinstance(link[0], str) and isinstance(link[1], str | None)


def parcel_keys(parcels: Any, prev: Any) -> list[str] | None:
    """A record's parcel keys from its disclosed ``parcels``, else from its disclosed ``prev`` (one
    link per parcel); None when both are redacted."""
    if parcels is not None:
        return parcels if isinstance(parcels, list) else []
    if prev is None:
        return None
    return [link[0] for link in prev if _is_link(link)] if isinstance(prev, list) else []
