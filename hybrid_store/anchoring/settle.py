"""Settling batches in flight: what became of each stored transaction, and of each anchored batch
until its block is final.

* A *signed* batch is looked up through the transaction manager (``txmgr``): mined (its block and
  gas recorded), reverted (the revert classified by its custom error: the batch fails and its
  records go back to the queue, and anchoring holds where a person or time must act), still
  waiting (sent, or replaced with bumped fees), or its nonce taken by another transaction (adopted
  if that one anchored the same root, else failed).
* A *mined* batch becomes *confirmed* at the confirmation depth, or goes back to *signed* when its
  block left the chain.
* A *confirmed* batch is re-checked until its block is final (the node's ``finalized`` block, or
  the finality depth): a reorganisation sends it back to be settled again, and the very same
  transaction is found in the new chain or sent again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update

from hybrid_store.anchoring.store import Target
from hybrid_store.batches import clear_hold, open_hold, requeue_batch
from hybrid_store.chain.port import ChainPort
from hybrid_store.chain.types import Receipt
from hybrid_store.crashpoints import crashpoint
from hybrid_store.db.engine import Database
from hybrid_store.db.models import AnchorBatch, AnchoringHold, BatchState, FailureKind
from hybrid_store.errors import ChainError
from hybrid_store.txmgr import TxManager

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Finality:
    confirmations: int = 1  # blocks on top (its own included) before a batch counts as anchored
    tag: bool = False  # the node's finalized block decides (else the depth)
    depth: int = 64  # blocks on top before a batch is final, where no tag decides


class Settler:
    def __init__(self, db: Database, chain: ChainPort, target: Target, txm: TxManager, finality: Finality,
                 clock: Callable[[], datetime], verify_chain: Callable[[], None] = lambda: None):  # fmt: skip
        self.db = db
        self.chain = chain
        self.target = target
        self.txm = txm
        self.finality = finality
        self.clock = clock
        #: raises ``ChainReset`` unless the node is still the registry's chain: a block missing from
        #: a reset or replaced node is no reorganisation, so nothing is demoted on its word
        self.verify_chain = verify_chain

    # --- in flight ----------------------------------------------------------------------------------
    def settle_in_flight(self) -> None:
        with self.db.read() as s:
            in_flight = s.scalars(
                select(AnchorBatch)
                .where(AnchorBatch.deployment_id == self.target.deployment_id)
                .where(AnchorBatch.state.in_([BatchState.SIGNED, BatchState.MINED]))
                .order_by(AnchorBatch.id)
            ).all()
        for batch in in_flight:
            if batch.state == BatchState.SIGNED:
                self.settle_signed(batch)
            else:
                self.promote(batch)

    def in_flight(self) -> bool:
        """Whether a batch waits to be mined."""
        with self.db.read() as s:
            return bool(s.scalar(select(func.count()).select_from(AnchorBatch).where(
                AnchorBatch.deployment_id == self.target.deployment_id, AnchorBatch.state == BatchState.SIGNED)))  # fmt: skip

    def settle_signed(self, batch: AnchorBatch) -> None:
        outcome = self.txm.settle(batch.id)
        receipt = outcome.receipt
        if outcome.kind in ("fee_ceiling", "refused"):
            open_hold(self.db, outcome.kind, f"batch {batch.chain_batch_id}: {outcome.detail}")
            return
        clear_held_sends(self.db)
        if outcome.kind == "nonce_taken":
            receipt = self._anchored_elsewhere(batch.root)
            if receipt is None:
                self.fail(batch.id, f"{outcome.detail}; not anchored", FailureKind.NONCE_TAKEN)
                return
            log.warning("batch %d was anchored by another transaction %s; adopting it", batch.id, receipt.tx_hash)
        if receipt is None:
            return  # sent (or replaced); mined in a later step
        if receipt.status != 1:
            self.reverted(batch, self.chain.revert_reason(receipt))
            return
        self.mark_mined(batch.id, receipt)
        crashpoint("anchor:mined")
        with self.db.read() as s:
            self.promote(s.get_one(AnchorBatch, batch.id))

    def _anchored_elsewhere(self, root: bytes) -> Receipt | None:
        anchored_as = self.chain.batch_of_root(root)
        return self.chain.anchoring_receipt(anchored_as) if anchored_as is not None else None

    def reverted(self, batch: AnchorBatch, reason: str) -> None:
        kind = classify_revert(reason)
        if kind == "adopt":  # the root is on chain already, anchored by another transaction
            receipt = self._anchored_elsewhere(batch.root)
            if receipt is not None and receipt.status == 1:
                self.mark_mined(batch.id, receipt)
                return
            kind = FailureKind.PERMANENT
        self.fail(batch.id, reason, kind)
        if kind in (FailureKind.PAUSED, FailureKind.MISSING_ROLE, FailureKind.PERMANENT):
            open_hold(self.db, kind, f"batch {batch.chain_batch_id} reverted: {reason}")

    def promote(self, batch: AnchorBatch) -> None:
        assert batch.block_number is not None and batch.block_hash is not None
        depth = self.chain.confirmations(batch.block_number, batch.block_hash)
        if depth == 0:
            self.verify_chain()
            log.warning(
                "batch %d: block %d left the canonical chain; re-checking its transaction", batch.id, batch.block_number
            )
            with self.db.write() as s:
                s.execute(
                    update(AnchorBatch)
                    .where(AnchorBatch.id == batch.id)
                    .values(state=BatchState.SIGNED, block_number=None, block_hash=None, mined_at=None)
                )
                batch = s.get_one(AnchorBatch, batch.id)
            self.settle_signed(batch)
        elif depth >= self.finality.confirmations:
            with self.db.write() as s:
                s.execute(
                    update(AnchorBatch)
                    .where(AnchorBatch.id == batch.id)
                    .values(state=BatchState.CONFIRMED, confirmed_at=self.clock())
                )

    def mark_mined(self, batch_id: int, receipt: Receipt) -> None:
        with self.db.write() as s:
            s.execute(
                update(AnchorBatch).where(AnchorBatch.id == batch_id).values(
                    state=BatchState.MINED, tx_hash=receipt.tx_hash, block_number=receipt.block_number,
                    block_hash=receipt.block_hash, gas_used=receipt.gas_used, mined_at=self.clock(),
                )
            )  # fmt: skip

    def fail(self, batch_id: int, reason: str, kind: str) -> None:
        """Mark a batch failed and give its records and parcel tokens back to the queue."""
        log.error("batch %d failed (%s): %s; its records go back to the queue", batch_id, kind, reason)
        with self.db.write() as s:
            requeue_batch(s, batch_id, reason, kind)

    def wait_in_flight(self, settle: Callable[[], None], timeout_s: float, poll_s: float) -> None:
        """Settle until no batch waits to be mined (stuck transactions are replaced meanwhile)."""
        deadline = time.monotonic() + timeout_s
        while self.in_flight() and not self._sending_held():
            if time.monotonic() > deadline:
                raise ChainError(f"batches still unmined after {timeout_s:.0f} s: is the node mining?")
            time.sleep(poll_s)
            settle()

    def _sending_held(self) -> bool:
        """Whether a fee or refusal hold is open: the batch in flight then waits for fees to fall or
        for a person, not for the next block (the caller sees the hold)."""
        with self.db.read() as s:
            return s.scalar(select(AnchoringHold.id).where(
                AnchoringHold.cleared_at.is_(None),
                AnchoringHold.kind.in_([FailureKind.FEE_CEILING, FailureKind.REFUSED])).limit(1)) is not None  # fmt: skip

    # --- until final --------------------------------------------------------------------------------
    def recheck_until_final(self) -> None:
        """Confirmed batches are re-checked until final: a block that left the chain sends its batch
        back to be settled again. A reorg replaces a suffix of the chain, so when the newest such
        batch's block is still there, all older ones are too: one block lookup per check."""
        base = (
            select(AnchorBatch)
            .where(AnchorBatch.deployment_id == self.target.deployment_id, AnchorBatch.state == BatchState.CONFIRMED,
                   AnchorBatch.finalized_at.is_(None))
            .order_by(AnchorBatch.chain_batch_id.desc())
        )  # fmt: skip
        with self.db.read() as s:
            newest = s.scalars(base.limit(1)).first()
        if newest is None or newest.block_number is None:
            return
        if self.chain.block_hash_at(newest.block_number) != newest.block_hash:
            self.verify_chain()
            self._send_back_reorganised(base)
        head = self.chain.head()
        final_block = self.chain.finalized_block() if self.finality.tag else None
        if final_block is None:
            final_block = head - self.finality.depth + 1
        with self.db.write() as s:
            s.execute(update(AnchorBatch).where(
                AnchorBatch.deployment_id == self.target.deployment_id, AnchorBatch.state == BatchState.CONFIRMED,
                AnchorBatch.finalized_at.is_(None), AnchorBatch.block_number <= final_block,
            ).values(finalized_at=self.clock()))  # fmt: skip

    def _send_back_reorganised(self, unfinal_newest_first) -> None:
        with self.db.read() as s:
            unfinal = s.scalars(unfinal_newest_first).all()
        gone = []
        for b in unfinal:
            if self.chain.block_hash_at(b.block_number) == b.block_hash:
                break
            gone.append(b.id)
        log.warning("batches %s: their blocks left the canonical chain; settling them again", gone)
        with self.db.write() as s:
            s.execute(update(AnchorBatch).where(AnchorBatch.id.in_(gone)).values(
                state=BatchState.SIGNED, block_number=None, block_hash=None, mined_at=None, confirmed_at=None))  # fmt: skip

    # --- holds -------------------------------------------------------------------------------------------
    def holding(self) -> AnchoringHold | None:
        """The open hold that stops new batches, after clearing those whose cause is gone."""
        with self.db.read() as s:
            holds = s.scalars(select(AnchoringHold).where(AnchoringHold.cleared_at.is_(None))).all()
        for h in holds:
            gone = (h.kind == FailureKind.PAUSED and not self.chain.paused()) or (
                h.kind == FailureKind.MISSING_ROLE and self.chain.registrar_holds_role()
            )
            if not gone:
                return h  # (a fee or refusal hold still lets the transaction in flight be sent: settling clears it)
            clear_hold(self.db, h.kind, "the worker: the cause is gone")
            log.warning("anchoring resumes: the %s hold cleared itself", h.kind)
        return None


def clear_held_sends(db: Database) -> None:
    """The node took (or mined) a transaction: holds about sending it are over."""
    clear_hold(db, FailureKind.FEE_CEILING, "the worker: fees are within the ceiling again")
    clear_hold(db, FailureKind.REFUSED, "the worker: the node accepts the transaction again")


def classify_revert(reason: str) -> str:
    """What to do about a revert, from its decoded custom error (``client.decode_revert``)."""
    name = reason.split("(", 1)[0].strip()
    return {
        "EnforcedPause": FailureKind.PAUSED,
        "DeedRegistryUnexpectedBatchId": FailureKind.REPLAN,
        "AccessControlUnauthorizedAccount": FailureKind.MISSING_ROLE,
        "DeedRegistryRootAlreadyAnchored": "adopt",
    }.get(name, FailureKind.PERMANENT)
