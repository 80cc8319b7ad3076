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
* A refusal that is none of these ("insufficient funds", "intrinsic gas too high") is counted; after
  ``refusals_before_hold`` of them the outcome is ``refused`` (the caller holds anchoring) and the
  attempt is sent again only every ``refused_retry_s``, until the node takes it.

Every transaction landreg sends goes through here: a batch's ``anchorBatch`` and the revocation of a
replaced version (``Subject``). A path that signs and sends on its own is the one that sticks on a
real network, and holds every later nonce behind it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from hybrid_store.chain.port import ChainPort
from hybrid_store.chain.types import FeeQuote, Fees, Receipt, SendOutcome, SignedTx
from hybrid_store.db.engine import Database
from hybrid_store.db.models import TxAttempt, table
from hybrid_store.errors import ChainError, TransactionRefused, TransactionReverted

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
    #: outright refusals of one attempt before the outcome is ``refused`` (a hold) ...
    refusals_before_hold: int = 5
    #: ... after which it is sent again only this often, until the node takes it
    refused_retry_s: float = 60.0

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
class Subject:
    """What a transaction is for: a batch's ``anchorBatch``, the revocation of a mirror flag's
    replaced version, or a rollback's revocation of a batch's leaves (the columns of
    ``tx_attempts`` that say so; exactly one is set)."""

    batch_id: int | None = None
    mirror_flag_id: int | None = None
    revokes_batch_id: int | None = None

    @classmethod
    def of(cls, subject: int | Subject) -> Subject:
        """``subject``, where a bare number is a batch id."""
        return subject if isinstance(subject, Subject) else cls(batch_id=subject)

    def columns(self) -> dict[str, int | None]:
        return {"batch_id": self.batch_id, "mirror_flag_id": self.mirror_flag_id,
                "revokes_batch_id": self.revokes_batch_id}  # fmt: skip

    def criterion(self) -> ColumnElement[bool]:
        if self.batch_id is not None:
            return TxAttempt.batch_id == self.batch_id
        if self.mirror_flag_id is not None:
            return TxAttempt.mirror_flag_id == self.mirror_flag_id
        return TxAttempt.revokes_batch_id == self.revokes_batch_id

    def __str__(self) -> str:
        if self.batch_id is not None:
            return f"batch {self.batch_id}"
        if self.mirror_flag_id is not None:
            return f"the revocation of mirror flag {self.mirror_flag_id}"
        return f"the rollback's revocation of batch {self.revokes_batch_id}"


@dataclass(frozen=True)
class Attempt:
    id: int
    tx_hash: str
    raw: bytes
    nonce: int
    fees: Fees
    created_at_block: int | None
    sent_at_block: int | None
    refusals: int = 0
    last_refused_at: datetime | None = None

    def signed(self) -> SignedTx:
        return SignedTx(self.raw, self.tx_hash, self.nonce, self.fees.max_fee_per_gas,
                        self.fees.max_priority_fee_per_gas)  # fmt: skip


@dataclass(frozen=True)
class Outcome:
    """Where a transaction stands: ``mined`` (with the winning attempt's receipt, whatever its
    status), ``waiting`` (sent; maybe just replaced), ``nonce_taken`` (a transaction that is none of
    these attempts used the nonce), ``fee_ceiling`` (stuck, and the ceiling forbids a bump), or
    ``refused`` (the node refused it outright ``refusals_before_hold`` times: ``detail`` says why)."""

    kind: str
    receipt: Receipt | None = None
    detail: str = ""


class TxManager:
    """The attempts of every transaction landreg sends (a batch's, a revocation's)."""

    def __init__(self, db: Database, chain: ChainPort, policy: FeePolicy | None = None):
        self.db = db
        self.chain = chain
        self.policy = policy or FeePolicy()

    @staticmethod
    def store_first(
        conn: Connection | Session, subject: int | Subject, signed: SignedTx, head: int | None, now: datetime
    ) -> None:
        """Record a transaction's first attempt, inside the caller's transaction (before it is sent)."""
        conn.execute(insert(table(TxAttempt)), {
            **Subject.of(subject).columns(), "nonce": signed.nonce, "tx_hash": signed.tx_hash, "raw_tx": signed.raw,
            "max_fee_per_gas": signed.max_fee_per_gas, "max_priority_fee_per_gas": signed.max_priority_fee_per_gas,
            "created_at": now, "created_at_block": head,
        })  # fmt: skip

    def start(
        self, subject: Subject, signed: SignedTx, head: int, also: Callable[[Session], object] | None = None
    ) -> Outcome:
        """Store a new transaction's first attempt (with ``also``'s writes, in the same database
        transaction), then send it."""
        with self.db.write() as s:
            self.store_first(s, subject, signed, head, datetime.now(UTC))
            if also is not None:
                also(s)
        [attempt] = [a for a in self.attempts(subject) if a.tx_hash == signed.tx_hash]
        sent = self._send(attempt, head)
        return sent if isinstance(sent, Outcome) else Outcome("waiting")

    def send_stored(self, subject: int | Subject) -> None:
        """Send the newest stored attempt of ``subject`` (right after it was stored); whatever the
        node says is counted and settled as usual (``settle``)."""
        self._send(self.attempts(subject)[-1], self.chain.head())

    def attempts(self, subject: int | Subject) -> list[Attempt]:
        """The attempts of ``subject``, oldest first."""
        with self.db.read() as s:
            rows = s.scalars(select(TxAttempt).where(Subject.of(subject).criterion()).order_by(TxAttempt.id)).all()
        return [Attempt(r.id, r.tx_hash, bytes(r.raw_tx), r.nonce, Fees(r.max_fee_per_gas, r.max_priority_fee_per_gas),
                        r.created_at_block, r.sent_at_block, r.refusals, r.last_refused_at) for r in rows]  # fmt: skip

    def settle(self, subject: int | Subject) -> Outcome:
        """Look the subject's attempts up, send the newest if the node lacks it, replace it if stuck.
        Only the attempts of the newest nonce count: a revocation whose transaction reverted is
        tried again with a new one (a batch never takes a second nonce)."""
        subject = Subject.of(subject)
        attempts = self.attempts(subject)
        if not attempts:
            raise LookupError(f"{subject} has no stored transaction")
        attempts = [a for a in attempts if a.nonce == attempts[-1].nonce]
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
            if (resting := self._resting(newest)) is not None:
                return resting
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
        return self._replace(subject, newest, quote, head, why)

    def _resting(self, attempt: Attempt) -> Outcome | None:
        """``refused`` while an attempt the node keeps refusing waits for its next try, else None."""
        if attempt.refusals < self.policy.refusals_before_hold or attempt.last_refused_at is None:
            return None
        waited = (datetime.now(UTC) - attempt.last_refused_at.replace(tzinfo=UTC)).total_seconds()
        if waited >= self.policy.refused_retry_s:
            return None
        return Outcome("refused", detail=self._refusal(attempt, None))

    def _refusal(self, attempt: Attempt, said: str | None) -> str:
        with self.db.read() as s:
            said = said or s.scalar(select(TxAttempt.send_error).where(TxAttempt.id == attempt.id)) or ""
        return (f"the node refused transaction {attempt.tx_hash} {max(attempt.refusals, 1)} times, and not because of "
                f"its fees or nonce (the node said: {said}); fix what the node names (often the registrar's account balance), "
                f"then it is sent again within {self.policy.refused_retry_s:g} s and anchoring resumes by itself")  # fmt: skip

    def wait(self, subject: Subject, timeout_s: float, poll_s: float) -> Receipt:
        """Settle ``subject`` until its transaction is mined (replacing it when stuck) and return the
        receipt; ``TransactionReverted`` if it reverted, ``ChainError`` if it cannot be mined."""
        deadline = time.monotonic() + timeout_s
        while (outcome := self.settle(subject)).kind == "waiting":
            if time.monotonic() > deadline:
                raise ChainError(f"{subject} still unmined after {timeout_s:.0f} s: is the node mining?")
            time.sleep(poll_s)
        if outcome.receipt is None:
            raise ChainError(f"{subject} was not mined: {outcome.detail}")
        if outcome.receipt.status != 1:
            raise TransactionReverted(outcome.receipt.tx_hash, self.chain.revert_reason(outcome.receipt))
        return outcome.receipt

    def receipt_of(self, subject: int | Subject) -> Receipt | None:
        """The receipt of whichever attempt of ``subject`` was mined (newest first), or None."""
        mined = self._mined(self.attempts(subject))
        return mined.receipt if mined is not None else None

    def _mined(self, attempts: list[Attempt]) -> Outcome | None:
        for attempt in reversed(attempts):
            if (receipt := self.chain.receipt(attempt.tx_hash)) is not None:
                return Outcome("mined", receipt)
        return None

    def _send(self, attempt: Attempt, head: int) -> bool | Outcome:
        """Send ``attempt``: True when the node took it, False when it refused it as underpriced, or
        the outcome already known (mined at once; the nonce used; refused outright)."""
        try:
            outcome = self.chain.send(attempt.signed())
        except TransactionRefused as exc:  # (an unreachable node refused nothing: ChainUnavailable passes)
            return self._refused(attempt, exc.said)
        if outcome is SendOutcome.NONCE_USED:
            return Outcome("waiting", detail="the nonce is used: its receipt is looked up next time")
        if outcome is SendOutcome.UNDERPRICED:
            return False
        self._mark_sent(attempt, head)
        if (receipt := self.chain.receipt(attempt.tx_hash)) is not None:  # a node that mines at once
            return Outcome("mined", receipt)
        return True

    def _refused(self, attempt: Attempt, said: str) -> Outcome:
        """Count an outright refusal; ``refused`` once there were ``refusals_before_hold`` of them."""
        with self.db.write() as s:
            s.execute(update(TxAttempt).where(TxAttempt.id == attempt.id).values(
                refusals=TxAttempt.refusals + 1, send_error=said[:2000], last_refused_at=datetime.now(UTC)))  # fmt: skip
        refusals = attempt.refusals + 1
        log.warning("the node refused transaction %s (%d of %d before anchoring holds): %s", attempt.tx_hash, refusals,
                    self.policy.refusals_before_hold, said)  # fmt: skip
        if refusals < self.policy.refusals_before_hold:
            return Outcome("waiting", detail=f"refused: {said}")
        return Outcome("refused", detail=self._refusal(replace(attempt, refusals=refusals), said))

    def _replace(self, subject: Subject, newest: Attempt, quote: FeeQuote, head: int, why: str) -> Outcome:
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
                **subject.columns(), "nonce": signed.nonce, "tx_hash": signed.tx_hash, "raw_tx": signed.raw,
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
