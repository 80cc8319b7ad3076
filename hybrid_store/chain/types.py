"""What the chain answers, as plain values: fees, signed transactions, receipts, batches.

Nothing here holds a web3 object, so the rest of landreg can keep and pass these around (and store
them) without touching the library behind ``RegistryChain``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Fees:
    """EIP-1559 fees of one transaction attempt, in wei."""

    max_fee_per_gas: int
    max_priority_fee_per_gas: int


@dataclass(frozen=True)
class FeeQuote:
    """What the node asks for now: the next block's base fee and a suggested tip, in wei."""

    next_base_fee: int
    tip: int

    def fees(self, ceiling: int | None = None) -> Fees:
        """Fees for a new transaction: room for the base fee to double, capped at ``ceiling``."""
        cap = 2 * self.next_base_fee + self.tip
        if ceiling is not None:
            cap = min(cap, ceiling)
        return Fees(cap, min(self.tip, cap))


@dataclass(frozen=True)
class SignedTx:
    raw: bytes
    tx_hash: str
    nonce: int
    max_fee_per_gas: int = 0
    max_priority_fee_per_gas: int = 0


class SendOutcome(enum.Enum):
    """What the node said to a raw transaction. Only SENT and KNOWN mean it is in the node's hands;
    NONCE_USED means some transaction with that nonce was mined (maybe an earlier attempt of this
    one: look it up, never take a new nonce); UNDERPRICED means its fee cap is below what the
    node accepts now (the base fee rose, or a replacement's bump was too small)."""

    SENT = "sent"
    KNOWN = "known"
    NONCE_USED = "nonce_used"
    UNDERPRICED = "underpriced"


@dataclass(frozen=True)
class Receipt:
    tx_hash: str
    block_number: int
    block_hash: str
    gas_used: int
    status: int
    to: str | None
    contract_address: str | None
    logs: tuple[Any, ...]  # the node's raw log entries; only the chain client decodes them


@dataclass(frozen=True)
class OnChainBatch:
    """One batch as ``DeedRegistry.getBatch`` returns it; ``batch_id`` is the chain's numbering."""

    batch_id: int
    root: bytes
    parcel_root: bytes
    chain_hash: bytes
    record_count: int
    first_token_id: int
    token_count: int
    anchored_at_block: int
