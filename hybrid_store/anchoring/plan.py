"""Planning a batch: which leaves, in which order, and the tree over them. Pure: no I/O.

A batch's leaves are records (their commitments) and, at most one each, marker leaves: a
rollback's (naming the root a re-anchoring batch supersedes), the audit log's head and the title
state's root (``hybrid_store.title_states``: every batch the anchoring paths build has one). Leaves are
sorted by their standard-v1 leaf hash, as ``@openzeppelin/merkle-tree`` lays them out, so a leaf's
tree index follows from its place in the plan.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hybrid_store.audit_log import ChainPlan
from hybrid_store.core import merkle
from hybrid_store.core.commitment import rollback_marker

if TYPE_CHECKING:
    from hybrid_store.title_states import TitlePlan

#: the manifest's name of a re-anchoring batch's marker leaf: "SUPERSEDES <chain batch id>"
SUPERSEDES = "SUPERSEDES "


def _leaf_hash(leaf: Leaf) -> bytes:
    return leaf.hash


class LeafKind(enum.StrEnum):
    RECORD = "record"
    ROLLBACK = "rollback"
    AUDIT = "audit"
    TITLE = "title"


@dataclass(frozen=True, slots=True)
class Leaf:
    hash: bytes  # the standard-v1 leaf: the tree's sort key
    value: bytes  # what it commits: a record's commitment, or a marker
    kind: LeafKind
    label: str  # the manifest's name: the instrument number, "SUPERSEDES 3", "AUDIT 120"
    instrument_id: int | None = None

    @classmethod
    def record(cls, instrument_id: int, number: str, commitment: bytes) -> Leaf:
        return cls(merkle.commitment_leaf(commitment), commitment, LeafKind.RECORD, number, instrument_id)

    @classmethod
    def rollback(cls, superseded_root: bytes, superseded_chain_batch_id: int) -> Leaf:
        value = rollback_marker(superseded_root)
        return cls(merkle.commitment_leaf(value), value, LeafKind.ROLLBACK, f"{SUPERSEDES}{superseded_chain_batch_id}")

    @classmethod
    def audit(cls, chain: ChainPlan) -> Leaf:
        return cls(merkle.commitment_leaf(chain.marker), chain.marker, LeafKind.AUDIT, chain.label)

    @classmethod
    def title(cls, state: TitlePlan) -> Leaf:
        return cls(merkle.commitment_leaf(state.marker), state.marker, LeafKind.TITLE, state.label)


@dataclass(frozen=True)
class Plan:
    """A batch to anchor: its leaves in tree order and the tree, the parcels it tokenizes (parcel
    id, key), the on-chain batch id it gets, and where its records come from (outbox entries to
    claim, or a migration stage)."""

    leaves: tuple[Leaf, ...]
    nodes: tuple[bytes, ...]
    new_parcels: tuple[tuple[int, str], ...]
    chain_batch_id: int
    outbox_ids: tuple[int, ...] = ()
    stage_id: int | None = None
    supersedes_batch_id: int | None = None
    audit: ChainPlan | None = None
    title: TitlePlan | None = None

    @property
    def root(self) -> bytes:
        return self.nodes[0]

    @property
    def source(self) -> str:
        return "migration" if self.stage_id is not None else "outbox"

    def tree_index(self, position: int) -> int:
        """The node index of the leaf at ``position`` of ``leaves``."""
        return len(self.nodes) - 1 - position

    def records(self) -> list[Leaf]:
        return [leaf for leaf in self.leaves if leaf.kind == LeafKind.RECORD]

    def marker(self, kind: LeafKind) -> int | None:
        """The position of the marker leaf of ``kind``, if the batch has one."""
        return next((k for k, leaf in enumerate(self.leaves) if leaf.kind == kind), None)


def plan_batch(
    leaves: Iterable[Leaf],
    chain_batch_id: int,
    new_parcels: Sequence[tuple[int, str]],
    *,
    outbox_ids: Sequence[int] = (),
    stage_id: int | None = None,
    supersedes_batch_id: int | None = None,
    audit: ChainPlan | None = None,
    title: TitlePlan | None = None,
) -> Plan:
    """The plan of a batch of ``leaves`` (the audit head's and the title state's marker leaves are
    added when ``audit`` and ``title`` are given)."""
    # by leaf hash (OpenZeppelin's sorted leaves); a key, not the dataclass's own ordering, which
    # compares field tuples and costs a tenth of a migration batch
    markers = [*([Leaf.audit(audit)] if audit is not None else []), *([Leaf.title(title)] if title is not None else [])]
    ordered = sorted([*leaves, *markers], key=_leaf_hash)
    if not ordered:
        raise ValueError("a batch needs at least one leaf")
    return Plan(tuple(ordered), tuple(merkle.build([leaf.hash for leaf in ordered])),
                tuple(sorted(new_parcels, key=lambda p: p[1])), chain_batch_id, tuple(outbox_ids), stage_id,
                supersedes_batch_id, audit, title)  # fmt: skip
