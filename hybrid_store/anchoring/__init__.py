"""Anchoring: records in, anchored Merkle batches out, in four parts.

* ``plan``: which leaves, in which order, and the tree (pure);
* ``store``: the batch and its signed transaction, written in one database transaction before
  anything is sent;
* ``settle``: what became of each transaction, reverts classified, batches re-checked until final;
* ``worker``: the loop (``Anchorer``), built from settings in one place (``Anchorer.from_settings``).

Names are imported on first use, so a process that needs only ``plan`` (reconciliation's hashing
processes) never loads the chain libraries.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_WHERE = {
    "SUPERSEDES": "plan", "Leaf": "plan", "LeafKind": "plan", "Plan": "plan", "plan_batch": "plan",
    "Finality": "settle", "Settler": "settle", "classify_revert": "settle",
    "Target": "store", "stored_tx": "store", "untokenized_parcels": "store",
    "AnchoredBatch": "worker", "Anchorer": "worker", "AnchoringHeld": "worker", "DrainSummary": "worker",
}  # fmt: skip
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_WHERE[name]}"), name)
