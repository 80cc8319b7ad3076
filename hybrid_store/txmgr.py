"""Transactions that get mined whatever the fee market does (the pattern of Chainlink's txmgr and
go-ethereum's replacement rules).

* Every attempt is stored with its nonce before it is sent (``tx_attempts``).
* An attempt not mined while the next block's base fee exceeds its fee cap, or for
  ``stuck_after_blocks`` blocks, is replaced: the same nonce and call, both fee fields raised by at
  least ``fee_bump_percent`` (nodes refuse a replacement that raises less than 10 %), never above
  the fee ceiling. Whichever attempt is mined wins.
* "already known" and "nonce too low" mean "maybe sent": the attempts are looked up by hash; the
  same batch never takes a second nonce.
* At most one new attempt per block: a node that is not mining gets no flood of replacements.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from hybrid_store.chain.port import ChainPort
from hybrid_store.chain.types import FeeQuote, Fees, Receipt, SendOutcome, SignedTx
from hybrid_store.db.engine import Database
from hybrid_store.db.models import TxAttempt, table

log = logging.getLogger(__name__)

GWEI = 10**9
#: what nodes require of a replacement (go-ethereum's txpool.pricebump default): the policy's own
#: bump may be larger, never smaller
NODE_MIN_BUMP_PERCENT = 10


def _raised(value: int, percent: int) -> int:
    return -(-value * (100 + percent) // 100)  # rounded up: 10 % of 1 wei is still 1 wei more


@dataclass(frozen=True)
class FeePolicy:
    bump_percent: int = 20
    ceiling_wei: int = 500 * GWEI
    stuck_after_blocks: int = 5

    def first(self, quote: FeeQuote) -> Fees:
        return quote.fees(self.ceiling_wei)

    def replacement(self, previous: Fees, quote: FeeQuote) -> Fees | None:
        """Fees for a replacement of ``previous``: raised by the policy's bump and enough for the
        next block; None when the ceiling leaves no replacement a node would accept."""
        tip = max(_raised(previous.max_priority_fee_per_gas, self.bump_percent), quote.tip)
        cap = max(_raised(previous.max_fee_per_gas, self.bump_percent), 2 * quote.next_base_fee + tip)
        cap = min(cap, self.ceiling_wei)
        tip = min(tip, cap)
        if cap < _raised(previous.max_fee_per_gas, NODE_MIN_BUMP_PERCENT) or tip < _raised(
            previous.max_priority_fee_per_gas, NODE_MIN_BUMP_PERCENT
        ):
            return None
        return Fees(cap, tip)


@dataclass(frozen=True)
class Attempt:
    id: int
    tx_hash: str
    raw: bytes
    nonce: int
    fees: Fees
    created_at_block: int | None
    sent_at_block: int | None

    def signed(self) -> SignedTx:
        return SignedTx(self.raw, self.tx_hash, self.nonce, self.fees.max_fee_per_gas,
                        self.fees.max_priority_fee_per_gas)  # fmt: skip


@dataclass(frozen=True)
class Outcome:
    """Where a transaction stands: ``mined`` (with the winning attempt's receipt, whatever its
    status), ``waiting`` (sent; maybe just replaced), ``nonce_taken`` (a transaction that is none of
    these attempts used the nonce), or ``fee_ceiling`` (stuck, and the ceiling forbids a bump)."""

    kind: str
    receipt: Receipt | None = None
    detail: str = ""


class TxManager:
    """The attempts of the transactions the anchoring worker sends (one per batch)."""

    def __init__(self, db: Database, chain: ChainPort, policy: FeePolicy | None = None):
        self.db = db
        self.chain = chain
        self.policy = policy or FeePolicy()

    @staticmethod
    def store_first(conn: Connection, batch_id: int, signed: SignedTx, head: int | None, now: datetime) -> None:
        """Record a batch's first attempt, inside the batch's own transaction (before it is sent)."""
        conn.execute(insert(table(TxAttempt)), {
            "batch_id": batch_id, "nonce": signed.nonce, "tx_hash": signed.tx_hash, "raw_tx": signed.raw,
            "max_fee_per_gas": signed.max_fee_per_gas, "max_priority_fee_per_gas": signed.max_priority_fee_per_gas,
            "created_at": now, "created_at_block": head,
        })  # fmt: skip

    def attempts(self, batch_id: int) -> list[Attempt]:
        with self.db.read() as s:
            rows = s.scalars(select(TxAttempt).where(TxAttempt.batch_id == batch_id).order_by(TxAttempt.id)).all()
        return [Attempt(r.id, r.tx_hash, bytes(r.raw_tx), r.nonce, Fees(r.max_fee_per_gas, r.max_priority_fee_per_gas),
                        r.created_at_block, r.sent_at_block) for r in rows]  # fmt: skip

    def settle(self, batch_id: int) -> Outcome:
        """Look the batch's attempts up, send the newest if the node lacks it, replace it if stuck."""
        attempts = self.attempts(batch_id)
        if not attempts:
            raise LookupError(f"batch {batch_id} has no stored transaction")
        if (mined := self._mined(attempts)) is not None:
            return mined
        newest = attempts[-1]
        if self.chain.mined_nonce() > newest.nonce:
            # a receipt may trail the nonce on a node behind a load balancer: look once more
            return self._mined(attempts) or Outcome(
                "nonce_taken", detail=f"nonce {newest.nonce} was used by another transaction")  # fmt: skip
        head = self.chain.head()
        refused = False
        if newest.sent_at_block is None or not self.chain.transaction_known(newest.tx_hash):
            sent = self._send(newest, head)
            if isinstance(sent, Outcome):
                return sent
            refused = not sent
        quote = self.chain.fee_quote()
        age = head - newest.sent_at_block if newest.sent_at_block is not None else 0
        stuck = refused or quote.next_base_fee > newest.fees.max_fee_per_gas or age >= self.policy.stuck_after_blocks
        if not stuck:
            return Outcome("waiting")
        if len(attempts) > 1 and newest.created_at_block is not None and head <= newest.created_at_block:
            return Outcome("waiting", detail="replaced in this block already; waiting for the next")
        why = "refused as underpriced" if refused else f"base fee {quote.next_base_fee / GWEI:.2f} gwei, {age} blocks"
        return self._replace(batch_id, newest, quote, head, why)

    def _mined(self, attempts: list[Attempt]) -> Outcome | None:
        for attempt in reversed(attempts):
            if (receipt := self.chain.receipt(attempt.tx_hash)) is not None:
                return Outcome("mined", receipt)
        return None

    def _send(self, attempt: Attempt, head: int) -> bool | Outcome:
        """Send ``attempt``: True when the node took it, False when it refused it as underpriced, or
        the outcome already known (mined at once; the nonce used)."""
        outcome = self.chain.send(attempt.signed())
        if outcome is SendOutcome.NONCE_USED:
            return Outcome("waiting", detail="the nonce is used: its receipt is looked up next time")
        if outcome is SendOutcome.UNDERPRICED:
            return False
        self._mark_sent(attempt, head)
        if (receipt := self.chain.receipt(attempt.tx_hash)) is not None:  # a node that mines at once
            return Outcome("mined", receipt)
        return True

    def _replace(self, batch_id: int, newest: Attempt, quote: FeeQuote, head: int, why: str) -> Outcome:
        """A replacement of ``newest`` with bumped fees: stored, then sent."""
        fees = self.policy.replacement(newest.fees, quote)
        if fees is None:
            return Outcome("fee_ceiling", detail=(
                f"the next block's base fee is {quote.next_base_fee / GWEI:.2f} gwei; replacing the transaction "
                f"would need more than the fee ceiling of {self.policy.ceiling_wei / GWEI:.2f} gwei"))  # fmt: skip
        signed = self.chain.resign(newest.raw, fees)
        log.warning("replacing transaction %s (nonce %d, fee cap %.2f gwei) with %s at %.2f gwei: %s", newest.tx_hash,
                    newest.nonce, newest.fees.max_fee_per_gas / GWEI, signed.tx_hash, fees.max_fee_per_gas / GWEI,
                    why)  # fmt: skip
        with self.db.write() as s:
            attempt_id = s.execute(insert(table(TxAttempt)).returning(table(TxAttempt).c.id), {
                "batch_id": batch_id, "nonce": signed.nonce, "tx_hash": signed.tx_hash, "raw_tx": signed.raw,
                "max_fee_per_gas": fees.max_fee_per_gas, "max_priority_fee_per_gas": fees.max_priority_fee_per_gas,
                "created_at": datetime.now(UTC), "created_at_block": head,
            }).scalar_one()  # fmt: skip
        sent = self._send(Attempt(attempt_id, signed.tx_hash, signed.raw, signed.nonce, fees, head, None), head)
        return sent if isinstance(sent, Outcome) and sent.kind == "mined" else Outcome(
            "waiting", detail=f"replaced by {signed.tx_hash}")  # fmt: skip

    def _mark_sent(self, attempt: Attempt, head: int) -> None:
        if attempt.sent_at_block is not None:
            return
        with self.db.write() as s:
            s.execute(update(TxAttempt).where(TxAttempt.id == attempt.id).values(sent_at_block=head))
