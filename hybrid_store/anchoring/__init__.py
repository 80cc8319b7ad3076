"""Anchoring: records in, anchored Merkle batches out, in four parts.

* ``plan``: which leaves, in which order, and the tree (pure);
* ``store``: the batch and its signed transaction, written in one database transaction before
  anything is sent;
* ``settle``: what became of each transaction, reverts classified, batches re-checked until final;
* ``worker``: the loop (``Anchorer``), built from settings in one place (``Anchorer.from_settings``).

Names are imported on first use, so a process that needs only ``plan`` (reconciliation's hashing
processes) never loads the chain libraries. The same names are imported for the type checker
below, so mypy sees each one's real type (a lazy ``__getattr__`` alone makes every one ``Any``);
``tests/test_architecture.py`` keeps the lists equal.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hybrid_store.anchoring.plan import SUPERSEDES, Leaf, LeafKind, Plan, plan_batch
    from hybrid_store.anchoring.settle import Finality, Settler, classify_revert
    from hybrid_store.anchoring.store import Target, stored_tx, untokenized_parcels
    from hybrid_store.anchoring.worker import AnchoredBatch, Anchorer, AnchoringHeld, DrainSummary

_WHERE = {
    "SUPERSEDES": "plan", "Leaf": "plan", "LeafKind": "plan", "Plan": "plan", "plan_batch": "plan",
    "Finality": "settle", "Settler": "settle", "classify_revert": "settle",
    "Target": "store", "stored_tx": "store", "untokenized_parcels": "store",
    "AnchoredBatch": "worker", "Anchorer": "worker", "AnchoringHeld": "worker", "DrainSummary": "worker",
}  # fmt: skip
__all__ = [
    "SUPERSEDES", "AnchoredBatch", "Anchorer", "AnchoringHeld", "DrainSummary", "Finality", "Leaf", "LeafKind",
    "Plan", "Settler", "Target", "classify_revert", "plan_batch", "stored_tx", "untokenized_parcels",
]  # fmt: skip


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_WHERE[name]}"), name)
