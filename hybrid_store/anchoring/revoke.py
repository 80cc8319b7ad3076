"""Revoking replaced versions on the chain: the leaf of a mirrored record that the legacy system
edited (or deleted) is revoked on the contract, its reason the commitment of the version that
supersedes it (or ``standing.DELETED_IN_LEGACY``), once the replaced version is anchored.

The anchoring worker does this between batches, when no batch waits to be mined, and builds no
batch while a revocation waits to be mined (the registrar's nonces are one queue: a stuck one holds
every later one). Every revocation goes through the transaction manager (``hybrid_store.txmgr``):
its attempt is stored before it is sent, a stuck one is replaced with the same nonce and bumped
fees, "nonce too low" and "already known" are looked up. Idempotent: the contract ignores a leaf
revoked already, and a flag whose leaf the chain shows revoked is only recorded; a revocation that
reverted or lost its nonce is signed again with a new one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from sqlalchemy import select, update
from sqlalchemy.orm import Session, aliased

from hybrid_store import mirror
from hybrid_store.anchoring.settle import classify_revert, clear_held_sends
from hybrid_store.anchoring.store import Target
from hybrid_store.batches import open_hold
from hybrid_store.chain.port import ChainPort
from hybrid_store.core import merkle, standing
from hybrid_store.db.engine import Database
from hybrid_store.db.models import (
    AnchorBatch,
    AnchoringHold,
    BatchRecord,
    BatchState,
    Commitment,
    FailureKind,
    MirrorFlag,
)
from hybrid_store.errors import ChainError, TransactionReverted
from hybrid_store.txmgr import FeePolicy, Outcome, Subject, TxManager

log = logging.getLogger(__name__)
PER_STEP = 20  # revocations sent per worker step (the next batch is not held up long)


class Revoker:
    def __init__(self, db: Database, chain: ChainPort, target: Target, fees: FeePolicy):
        self.db = db
        self.chain = chain
        self.target = target
        self.fees = fees
        #: flag id -> (its successor, the hold last logged for it); a hold other than WAITING rests on
        #: append-only rows (commitments, a legacy document's deletion) and is not looked up again
        #: while the flag names the same successor
        self._held: dict[int, tuple[int | None, str]] = {}
        self.txm = TxManager(db, chain, fees)
        self.waiting = False  # a revocation sent in the last step is not mined yet

    def due(self) -> list[tuple[int, int, bytes, bytes, str | None]]:
        """(flag id, chain batch id, leaf, reason, transaction sent) of each replaced version that is
        anchored, whose revocation is not on the chain yet and that nothing holds back."""
        old, new = aliased(Commitment), aliased(Commitment)
        stmt = (
            select(MirrorFlag, AnchorBatch.chain_batch_id, old.commitment, new.commitment, MirrorFlag.revoke_tx)
            .join(old, old.instrument_id == MirrorFlag.instrument_id)
            .join(BatchRecord, BatchRecord.instrument_id == MirrorFlag.instrument_id)
            .join(AnchorBatch, AnchorBatch.id == BatchRecord.batch_id)
            .outerjoin(new, new.instrument_id == MirrorFlag.successor_id)
            .where(MirrorFlag.revoked_block.is_(None), AnchorBatch.state == BatchState.CONFIRMED,
                   AnchorBatch.superseded_at.is_(None), AnchorBatch.deployment_id == self.target.deployment_id)
            .order_by(MirrorFlag.id)
        )  # fmt: skip
        out: list[tuple[int, int, bytes, bytes, str | None]] = []
        with self.db.read() as s:
            for flag, batch, value, succ, tx in s.execute(stmt):
                if self._holds(s, flag):  # (even with a revocation "sent": revoke_tx is a row anyone could write)
                    continue
                out.append((flag.id, batch, merkle.commitment_leaf(bytes(value)),
                            standing.revocation_reason(bytes(succ) if succ is not None else None), tx))  # fmt: skip
                if len(out) == PER_STEP:
                    break
        return out

    def _holds(self, session: Session, flag: MirrorFlag) -> bool:
        known = self._held.get(flag.id)
        if known is not None and known[0] == flag.successor_id and known[1] != mirror.WAITING:
            return True
        hold = mirror.revocation_hold(session, flag)
        if hold is not None and known != (flag.successor_id, hold):
            level = logging.INFO if hold == mirror.WAITING else logging.WARNING
            log.log(level, "mirror flag %d (version %d) is not revoked on the chain: %s", flag.id, flag.instrument_id,
                    hold)  # fmt: skip
            self._held[flag.id] = (flag.successor_id, hold)
        return hold is not None

    def step(self, *, start_new: bool = True) -> int:
        """Settle the revocations that are due and send those not sent yet (unless ``start_new`` is
        False: anchoring holds, and only transactions in flight are looked after), each through the
        transaction manager; returns how many the chain now holds. Afterwards ``waiting`` says
        whether one is still unmined: no batch is built behind it (its nonce would wait for it)."""
        done = 0
        self.waiting = False
        for flag_id, batch_id, leaf, reason, _sent in self.due():
            at = self.chain.revoked_at(batch_id, leaf)
            if not at:
                outcome = self._settle(flag_id, batch_id, leaf, reason, start_new=start_new)
                if outcome is None:
                    break  # anchoring holds: the next revocation would meet the same
                if outcome.kind in ("waiting", "not_sent"):
                    self.waiting = self.waiting or outcome.kind == "waiting"
                    continue
                at = self.chain.revoked_at(batch_id, leaf)
            if at:
                if (mined := self.txm.receipt_of(Subject(mirror_flag_id=flag_id))) is not None:
                    self._record(flag_id, tx=mined.tx_hash)  # the attempt that was mined (maybe a replacement)
                self._record(flag_id, block=at)
                done += 1
        return done

    def between_batches(self, hold: AnchoringHold | None) -> None:
        """The worker's turn for revocations: all of them when nothing holds; while a fee or a
        refusal holds, only those in flight (sending them is what clears such a hold)."""
        if hold is None or hold.kind in (FailureKind.FEE_CEILING, FailureKind.REFUSED):
            self.step(start_new=hold is None)

    def wait_in_flight(self, going: Callable[[], bool], timeout_s: float, poll_s: float) -> None:
        """Settle until no revocation sent waits to be mined (or ``going`` says anchoring holds)."""
        deadline = time.monotonic() + timeout_s
        while self.waiting and going():
            if time.monotonic() > deadline:
                raise ChainError(f"revocations still unmined after {timeout_s:.0f} s: is the node mining?")
            time.sleep(poll_s)
            self.step(start_new=False)

    def _settle(self, flag_id: int, batch_id: int, leaf: bytes, reason: bytes, *, start_new: bool) -> Outcome | None:
        """Where the flag's revocation stands (a new transaction sent if it has none, or its last one
        reverted or lost its nonce); None when anchoring must hold."""
        subject = Subject(mirror_flag_id=flag_id)
        if self.txm.attempts(subject):
            outcome = self.txm.settle(subject)
            if outcome.kind in ("fee_ceiling", "refused"):
                open_hold(self.db, outcome.kind, f"{subject}: {outcome.detail}")
                return None
            clear_held_sends(self.db)
            if outcome.kind == "waiting" or (outcome.receipt is not None and outcome.receipt.status == 1):
                return outcome
            if outcome.receipt is not None:
                log.warning("%s reverted (%s); sending it again", subject, self.chain.revert_reason(outcome.receipt))
            else:
                log.warning("%s: %s; sending it again", subject, outcome.detail)
        if not start_new:
            return Outcome("not_sent")
        try:
            signed = self.chain.sign_revoke(batch_id, [leaf], reason, nonce=self.chain.pending_nonce(),
                                            fees=self.txm.policy.first(self.chain.fee_quote()))  # fmt: skip
        except TransactionReverted as exc:  # the node ran it: it would revert (paused, role revoked, ...)
            kind = classify_revert(exc.reason)
            kind = kind if kind in (FailureKind.PAUSED, FailureKind.MISSING_ROLE) else FailureKind.PERMANENT
            open_hold(self.db, kind, f"{subject} would revert: {exc.reason}")
            return None
        record_sent = update(MirrorFlag).where(MirrorFlag.id == flag_id).values(revoke_tx=signed.tx_hash)
        outcome = self.txm.start(subject, signed, self.chain.head(), also=lambda s: s.execute(record_sent))
        log.info("sent %s in batch %d (tx %s)", subject, batch_id, signed.tx_hash)
        return outcome

    def _record(self, flag_id: int, *, tx: str | None = None, block: int | None = None) -> None:
        values: dict[str, object] = {"revoke_tx": tx} if tx is not None else {"revoked_block": block}
        with self.db.write() as s:
            s.execute(update(MirrorFlag).where(MirrorFlag.id == flag_id).values(**values))
