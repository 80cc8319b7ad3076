"""What became of an anchored record, as the chain says: its **standing**.

A record the registry replaced stays provable (its leaf stays under its anchored root), but the
registry revokes the leaf on the contract, with a tagged reason (32 bytes): ``LRS1`` and the first
28 bytes of the commitment of the version that supersedes it (a legacy record edited in place), or
``LRD1`` and zeros (a legacy record the county's system deleted). A verifier reads the revocation
and its reason from the listed contract itself, so a server that hid a newer version could not
make an auditor take the old one as current. Any other revocation reason keeps its old meaning: the
record is not valid. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

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
        if self.kind == DELETED:
            return f"deleted in the county's recorder system (revoked at block {self.at_block})"
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
