"""Revoking replaced versions on the chain: the leaf of a mirrored record that the legacy system
edited (or deleted) is revoked on the contract, its reason the commitment of the version that
supersedes it (or ``standing.DELETED_IN_LEGACY``), once the replaced version is anchored.

The anchoring worker does this between batches, when no batch waits to be mined (the registrar's
nonces are then its alone). Idempotent: the contract ignores a leaf revoked already, and a flag
whose leaf the chain shows revoked is only recorded; a revocation sent but lost from the node's
pool is signed and sent again.
"""

from __future__ import annotations

import logging

from sqlalchemy import select, update
from sqlalchemy.orm import aliased

from hybrid_store.anchoring.store import Target
from hybrid_store.chain.port import ChainPort
from hybrid_store.core import merkle, standing
from hybrid_store.db.engine import Database
from hybrid_store.db.models import AnchorBatch, BatchRecord, BatchState, Commitment, MirrorFlag
from hybrid_store.txmgr import FeePolicy

log = logging.getLogger(__name__)
PER_STEP = 20  # revocations sent per worker step (the next batch is not held up long)


class Revoker:
    def __init__(self, db: Database, chain: ChainPort, target: Target, fees: FeePolicy):
        self.db = db
        self.chain = chain
        self.target = target
        self.fees = fees

    def due(self) -> list[tuple[int, int, bytes, bytes, str | None]]:
        """(flag id, chain batch id, leaf, reason, transaction sent) of each replaced version that is
        anchored and whose revocation is not on the chain yet."""
        old, new = aliased(Commitment), aliased(Commitment)
        stmt = (
            select(MirrorFlag.id, AnchorBatch.chain_batch_id, old.commitment, new.commitment, MirrorFlag.revoke_tx)
            .join(old, old.instrument_id == MirrorFlag.instrument_id)
            .join(BatchRecord, BatchRecord.instrument_id == MirrorFlag.instrument_id)
            .join(AnchorBatch, AnchorBatch.id == BatchRecord.batch_id)
            .outerjoin(new, new.instrument_id == MirrorFlag.successor_id)
            .where(MirrorFlag.revoked_block.is_(None), AnchorBatch.state == BatchState.CONFIRMED,
                   AnchorBatch.superseded_at.is_(None), AnchorBatch.deployment_id == self.target.deployment_id)
            .order_by(MirrorFlag.id)
            .limit(PER_STEP)
        )  # fmt: skip
        with self.db.read() as s:
            return [(fid, batch, merkle.commitment_leaf(bytes(value)),
                     standing.revocation_reason(bytes(succ) if succ is not None else None), tx)
                    for fid, batch, value, succ, tx in s.execute(stmt)]  # fmt: skip

    def step(self) -> int:
        """Send the revocations that are due; returns how many the chain now holds."""
        done = 0
        for flag_id, batch_id, leaf, reason, sent in self.due():
            at = self.chain.revoked_at(batch_id, leaf)
            if not at and sent is not None:
                receipt = self.chain.receipt(sent)
                if receipt is None and self.chain.transaction_known(sent):
                    continue  # on its way
                at = self.chain.revoked_at(batch_id, leaf) if receipt is not None else 0
            if not at:
                signed = self.chain.sign_revoke(batch_id, [leaf], reason, nonce=self.chain.pending_nonce(),
                                                fees=self.fees.first(self.chain.fee_quote()))  # fmt: skip
                self._record(flag_id, tx=signed.tx_hash)  # before it is sent
                self.chain.send(signed)
                receipt = self.chain.receipt(signed.tx_hash)
                at = self.chain.revoked_at(batch_id, leaf) if receipt is not None else 0
                log.info("revoked the replaced version of mirror flag %d in batch %d (tx %s)", flag_id, batch_id,
                         signed.tx_hash)  # fmt: skip
            if at:
                self._record(flag_id, block=at)
                done += 1
        return done

    def _record(self, flag_id: int, *, tx: str | None = None, block: int | None = None) -> None:
        values: dict[str, object] = {"revoke_tx": tx} if tx is not None else {"revoked_block": block}
        with self.db.write() as s:
            s.execute(update(MirrorFlag).where(MirrorFlag.id == flag_id).values(**values))
