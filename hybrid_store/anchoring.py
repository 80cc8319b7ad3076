"""The anchoring worker: outbox entries in, anchored Merkle batches out.

Each step first settles what is in flight, then may build one new batch:

1. *settle*: every batch whose transaction is signed but not known to be mined is resolved from
   the chain: mined (record block, gas), reverted (fail it and put its records back in the queue),
   pending in the node (wait), or unknown to the node. An unknown transaction is found by content
   (is its root anchored?) and otherwise re-sent byte for byte while its nonce is unused, or failed
   if another transaction took the nonce. Mined batches are promoted to *confirmed* once the
   configured number of blocks sit on top, or sent back to *signed* if their block left the chain.
2. *build*: when the oldest pending record has waited ``batch_max_age_s`` or ``batch_max_records``
   are pending, claim them, build the standard-v1 tree, assign token ids to new parcels, sign the
   ``anchorBatch`` transaction and store batch + raw transaction + claims in ONE database
   transaction. Only then broadcast it.

Because the signed bytes are stored before they are sent, a crash at any point leaves either
nothing (the records are still pending) or exactly one transaction to find or re-send; and the
contract refuses a root it already has and a batch id out of sequence. So a record is never lost
and never anchored twice. ``crashpoint`` marks the places the crash tests kill the process.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session

from hybrid_store import audit_log, manifests
from hybrid_store.batches import clear_hold, open_hold, records_of_batches, requeue_batch
from hybrid_store.chain.client import Receipt, RegistryChain, SignedTx
from hybrid_store.core import merkle
from hybrid_store.crashpoints import crashpoint
from hybrid_store.db.engine import Database, bulk_execute
from hybrid_store.db.models import (
    AnchorBatch,
    AnchoringHold,
    BatchState,
    ChainDeployment,
    Commitment,
    FailureKind,
    Instrument,
    InstrumentParcel,
    OutboxEntry,
    Parcel,
)
from hybrid_store.errors import ChainError, ChainMismatch, TransactionReverted
from hybrid_store.txmgr import GWEI, FeePolicy, TxManager

if TYPE_CHECKING:
    from hybrid_store.settings import Settings

log = logging.getLogger(__name__)

_IN_CHUNK = 500


@dataclass(frozen=True)
class Plan:
    """A batch to anchor: its records as sorted (leaf, instrument id, number, commitment), the tree,
    the parcels it tokenizes, the on-chain batch id it gets, and where its records come from
    (outbox entries to claim, or a migration stage)."""

    leaves: list[tuple[bytes, int, str, bytes]]
    nodes: list[bytes]
    new_parcels: list[tuple[int, str]]
    chain_batch_id: int
    outbox_ids: list[int] = field(default_factory=list)
    stage_id: int | None = None
    supersedes_batch_id: int | None = None
    #: leaves that are not records (a rollback's marker): (value, label); instrument id 0 in ``leaves``
    extra: list[tuple[bytes, str]] = field(default_factory=list)
    #: the audit entries this batch chains; its head's marker is one of the leaves
    audit: audit_log.ChainPlan | None = None

    @property
    def source(self) -> str:
        return "migration" if self.stage_id is not None else "outbox"


def plan_batch(
    s: Session,
    commitments: dict[int, tuple[str, bytes]],
    chain_batch_id: int,
    parcel_ids: Iterable[int] | None = None,
    **kw: object,
) -> Plan:
    """Tree and parcels to tokenize for records ``commitments`` (instrument id -> (number, commitment));
    ``parcel_ids`` are their parcels when the caller knows them already."""
    extra = list(kw.get("extra") or [])  # type: ignore[arg-type]
    audit = kw.get("audit")
    if isinstance(audit, audit_log.ChainPlan):
        extra.append((audit.marker, audit.label))
    leaves = sorted(
        [(merkle.commitment_leaf(c), iid, number, c) for iid, (number, c) in commitments.items()]
        + [(merkle.commitment_leaf(value), 0, label, value) for value, label in extra]
    )
    if parcel_ids is None:  # two index lookups; a join here lets SQLite scan every untokenized parcel
        parcel_ids = {pid for (pid,) in _select_in(s, select(InstrumentParcel.parcel_id),
                                                   InstrumentParcel.instrument_id, list(commitments))}  # fmt: skip
    new_parcels = sorted(
        _select_in(s, select(Parcel.id, Parcel.parcel_key).where(Parcel.token_id.is_(None)), Parcel.id,
                   sorted(set(parcel_ids))),
        key=lambda row: row[1],
    )  # fmt: skip
    return Plan(leaves, merkle.build([leaf for leaf, *_ in leaves]), new_parcels, chain_batch_id, **kw)  # type: ignore[arg-type]


@dataclass(frozen=True)
class AnchoredBatch:
    batch_id: int
    chain_batch_id: int
    records: int
    tokens: int
    tx_hash: str
    gas_used: int | None
    state: str


@dataclass
class DrainSummary:
    batches: list[AnchoredBatch] = field(default_factory=list)

    @property
    def records(self) -> int:
        return sum(b.records for b in self.batches)

    @property
    def gas_used(self) -> int:
        return sum(b.gas_used or 0 for b in self.batches)

    @property
    def tokens(self) -> int:
        return sum(b.tokens for b in self.batches)


class Anchorer:
    def __init__(
        self,
        db: Database,
        chain: RegistryChain,
        deployment: ChainDeployment,
        *,
        batch_max_records: int = 1000,
        batch_max_age_s: float = 2.0,
        confirmations: int = 1,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        manifest_dir: Path | None = None,
        audit_max_age_s: float = 60.0,
        fees: FeePolicy | None = None,
        finality: str = "depth",
        finality_depth: int = 64,
        in_flight_timeout_s: float = 600.0,
    ):
        self.db = db
        self.chain = chain
        self.deployment_id = deployment.id
        self.chain_id = deployment.chain_id
        self.contract = deployment.contract_address
        self.manifest_dir = manifest_dir
        self.batch_max_records = batch_max_records
        self.batch_max_age_s = batch_max_age_s
        self.audit_max_age_s = audit_max_age_s
        self.confirmations = confirmations
        self.clock = clock
        self.txm = TxManager(db, chain, fees)
        self.finality = finality  # "tag": the node's finalized block; "depth": finality_depth blocks
        self.finality_depth = finality_depth
        self.in_flight_timeout_s = in_flight_timeout_s
        #: the worker asks the node about batches in flight and unfinal at most this often
        self.poll_s = max(0.02, float(getattr(chain, "poll_interval_s", 0.05) or 0.05))
        self._final_due = 0.0
        self._running = False  # inside ``run``: finality re-checks are spaced out

    @classmethod
    def from_settings(cls, db: Database, chain: RegistryChain, deployment: ChainDeployment, settings: Settings,
                      **overrides: object) -> Anchorer:  # fmt: skip
        """The worker as configured (``overrides`` replace single settings, e.g. a demo's batch size)."""
        a, c = settings.anchoring, settings.chain
        finality = c.finality if c.finality != "auto" else ("tag" if c.backend == "rpc" else "depth")
        kw: dict[str, object] = {
            "batch_max_records": a.batch_max_records, "batch_max_age_s": a.batch_max_age_s,
            "audit_max_age_s": a.audit_max_age_s, "confirmations": c.confirmations,
            "manifest_dir": settings.manifests_dir, "finality": finality, "finality_depth": c.finality_depth,
            "fees": FeePolicy(c.fee_bump_percent, int(c.fee_ceiling_gwei * GWEI), c.stuck_after_blocks),
            "in_flight_timeout_s": max(c.receipt_timeout_s, 600.0),
        }  # fmt: skip
        kw.update(overrides)
        return cls(db, chain, deployment, **kw)  # type: ignore[arg-type]

    # --- driving ----------------------------------------------------------------------------------
    def step(self, *, force: bool = False) -> AnchoredBatch | None:
        """Settle in-flight batches, then anchor one new batch if one is due (or ``force``)."""
        self.settle()
        batch = self.build_and_send(force=force)
        if batch is not None:
            self.settle()
            return self._summary(batch)
        return None

    def check_consistency(self) -> None:
        """Refuse to start when the contract and the database disagree on the anchored batches
        (a node that lost state, or someone else anchoring with this contract)."""
        with self.db.read() as s:
            self._next_chain_batch_id(s)

    def drain(self, progress: Callable[[AnchoredBatch], None] | None = None) -> DrainSummary:
        """Anchor everything pending now, in batches of ``batch_max_records``, and wait until each is
        mined. Raises ``AnchoringHeld`` if anchoring holds (paused, role, fees, a permanent failure)."""
        self.settle()
        self.check_consistency()
        summary = DrainSummary()
        while True:
            self.wait_in_flight()
            batch = self.step(force=True)
            if batch is None:
                self.wait_in_flight()
                if (hold := self.holding()) is not None:
                    raise AnchoringHeld(hold)
                break
            summary.batches.append(batch)
            if progress:
                progress(batch)
        summary.batches = [self._summary_by_id(b.batch_id) for b in summary.batches]
        return summary

    def wait_in_flight(self, poll_s: float | None = None) -> None:
        """Settle until no batch waits to be mined (replacing stuck transactions meanwhile)."""
        deadline = time.monotonic() + self.in_flight_timeout_s
        poll = poll_s if poll_s is not None else self.poll_s
        while self._in_flight():
            if time.monotonic() > deadline:
                raise ChainError(f"batches still unmined after {self.in_flight_timeout_s:.0f} s: is the node mining?")
            time.sleep(poll)
            self.settle()

    def run(
        self, stop: threading.Event, idle_sleep_s: float = 0.1, keep_going: Callable[[], bool] = lambda: True
    ) -> None:
        """Anchor continuously until ``stop`` is set (or ``keep_going`` says no: the worker lost its
        lock); the batch in hand is finished first."""
        self.settle()
        self.check_consistency()
        log.info(
            "anchoring worker started (batches of up to %d records or %.1f s)",
            self.batch_max_records,
            self.batch_max_age_s,
        )
        self._running = True
        while not stop.is_set() and keep_going():
            try:
                batch = self.step()
            except ChainMismatch:
                raise  # the chain and the database disagree: a person must look (landreg reconcile)
            except (ChainError, OSError) as exc:  # node down, reverted, ...: report and try again later
                log.error("anchoring step failed: %s", exc)
                batch = None
                stop.wait(min(5.0, self.batch_max_age_s))
            if batch is None:
                stop.wait(max(idle_sleep_s, self.poll_s) if self._in_flight() else idle_sleep_s)
        self._running = False
        log.info("anchoring worker stopped")

    # --- holds ------------------------------------------------------------------------------------
    def holding(self) -> AnchoringHold | None:
        """The open hold that stops new batches, after clearing those whose cause is gone."""
        with self.db.read() as s:
            holds = s.scalars(select(AnchoringHold).where(AnchoringHold.cleared_at.is_(None))).all()
        for h in holds:
            gone = (h.kind == FailureKind.PAUSED and not self.chain.paused()) or (
                h.kind == FailureKind.MISSING_ROLE and self.chain.registrar_holds_role()
            )
            if not gone:
                return h  # (a fee hold still lets the batch in flight be replaced: settle clears it)
            clear_hold(self.db, h.kind, "the worker: the cause is gone")
            log.warning("anchoring resumes: the %s hold cleared itself", h.kind)
        return None

    # --- settle -----------------------------------------------------------------------------------
    def settle(self) -> None:
        # a few node calls: the continuous worker (``run``) makes them at most once a second
        if not self._running or time.monotonic() >= self._final_due:
            self._final_due = time.monotonic() + max(1.0, self.poll_s)
            self._recheck_until_final()
        with self.db.read() as s:
            in_flight = s.scalars(
                select(AnchorBatch)
                .where(AnchorBatch.deployment_id == self.deployment_id)
                .where(AnchorBatch.state.in_([BatchState.SIGNED, BatchState.MINED]))
                .order_by(AnchorBatch.id)
            ).all()
        for batch in in_flight:
            if batch.state == BatchState.SIGNED:
                self._settle_signed(batch)
            else:
                self._promote(batch)

    def _in_flight(self) -> bool:
        with self.db.read() as s:
            return bool(s.scalar(select(func.count()).select_from(AnchorBatch).where(
                AnchorBatch.deployment_id == self.deployment_id, AnchorBatch.state == BatchState.SIGNED)))  # fmt: skip

    def _settle_signed(self, batch: AnchorBatch) -> None:
        outcome = self.txm.settle(batch.id)
        receipt = outcome.receipt
        if outcome.kind == "fee_ceiling":
            open_hold(self.db, FailureKind.FEE_CEILING, f"batch {batch.chain_batch_id}: {outcome.detail}")
            return
        clear_hold(self.db, FailureKind.FEE_CEILING, "the worker: fees are within the ceiling again")
        if outcome.kind == "nonce_taken":
            anchored_as = self.chain.batch_of_root(batch.root)
            receipt = self.chain.anchoring_receipt(anchored_as) if anchored_as is not None else None
            if receipt is None:
                self._fail(batch.id, f"{outcome.detail}; not anchored", FailureKind.NONCE_TAKEN)
                return
            log.warning("batch %d was anchored by another transaction %s; adopting it", batch.id, receipt.tx_hash)
        if receipt is None:
            return  # sent (or replaced); mined in a later step
        if receipt.status != 1:
            self._reverted(batch, self.chain.revert_reason(receipt))
            return
        self._mark_mined(batch.id, receipt)
        crashpoint("anchor:mined")
        with self.db.read() as s:
            self._promote(s.get_one(AnchorBatch, batch.id))

    def _reverted(self, batch: AnchorBatch, reason: str) -> None:
        kind = classify_revert(reason)
        if kind == "adopt":  # the root is on chain already, anchored by another transaction
            anchored_as = self.chain.batch_of_root(batch.root)
            receipt = self.chain.anchoring_receipt(anchored_as) if anchored_as is not None else None
            if receipt is not None and receipt.status == 1:
                self._mark_mined(batch.id, receipt)
                return
            kind = FailureKind.PERMANENT
        self._fail(batch.id, reason, kind)
        if kind in (FailureKind.PAUSED, FailureKind.MISSING_ROLE, FailureKind.PERMANENT):
            open_hold(self.db, kind, f"batch {batch.chain_batch_id} reverted: {reason}")

    def _recheck_until_final(self) -> None:
        """Confirmed batches are re-checked until final: a block that left the chain sends its batch
        back to be settled again (its transaction found in the new chain, or re-sent). A reorg
        replaces a suffix of the chain, so when the newest such batch's block is still there, all
        older ones are too: one block lookup per step."""
        base = (
            select(AnchorBatch)
            .where(AnchorBatch.deployment_id == self.deployment_id, AnchorBatch.state == BatchState.CONFIRMED,
                   AnchorBatch.finalized_at.is_(None))
            .order_by(AnchorBatch.chain_batch_id.desc())
        )  # fmt: skip
        with self.db.read() as s:
            newest = s.scalars(base.limit(1)).first()
        if newest is None:
            return
        if self.chain.block_hash_at(newest.block_number) != newest.block_hash:
            with self.db.read() as s:
                unfinal = s.scalars(base).all()
            gone = []
            for b in unfinal:
                if self.chain.block_hash_at(b.block_number) == b.block_hash:
                    break
                gone.append(b.id)
            log.warning("batches %s: their blocks left the canonical chain; settling them again", gone)
            with self.db.write() as s:
                s.execute(update(AnchorBatch).where(AnchorBatch.id.in_(gone)).values(
                    state=BatchState.SIGNED, block_number=None, block_hash=None, mined_at=None, confirmed_at=None))  # fmt: skip
        head = self.chain.head()
        final_block = self.chain.finalized_block() if self.finality == "tag" else None
        if final_block is None:
            final_block = head - self.finality_depth + 1
        with self.db.write() as s:
            s.execute(update(AnchorBatch).where(
                AnchorBatch.deployment_id == self.deployment_id, AnchorBatch.state == BatchState.CONFIRMED,
                AnchorBatch.finalized_at.is_(None), AnchorBatch.block_number <= final_block,
            ).values(finalized_at=self.clock()))  # fmt: skip

    def _promote(self, batch: AnchorBatch) -> None:
        assert batch.block_number is not None and batch.block_hash is not None
        depth = self.chain.confirmations(batch.block_number, batch.block_hash)
        if depth == 0:
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
            self._settle_signed(batch)
        elif depth >= self.confirmations:
            with self.db.write() as s:
                s.execute(
                    update(AnchorBatch)
                    .where(AnchorBatch.id == batch.id)
                    .values(state=BatchState.CONFIRMED, confirmed_at=self.clock())
                )

    def _mark_mined(self, batch_id: int, receipt: Receipt) -> None:
        with self.db.write() as s:
            s.execute(
                update(AnchorBatch).where(AnchorBatch.id == batch_id).values(
                    state=BatchState.MINED, tx_hash=receipt.tx_hash, block_number=receipt.block_number,
                    block_hash=receipt.block_hash, gas_used=receipt.gas_used, mined_at=self.clock(),
                )
            )  # fmt: skip

    def _fail(self, batch_id: int, reason: str, kind: str) -> None:
        """Mark a batch failed and give its records and parcel tokens back to the queue."""
        log.error("batch %d failed (%s): %s; its records go back to the queue", batch_id, kind, reason)
        with self.db.write() as s:
            requeue_batch(s, batch_id, reason, kind)

    # --- build ------------------------------------------------------------------------------------
    def build_and_send(self, *, force: bool = False) -> AnchorBatch | None:
        batch = self.build(force=force)
        if batch is None:
            return None
        crashpoint("anchor:signed")
        self.chain.send(_stored_tx(batch))  # refused (underpriced, ...): settling replaces it
        crashpoint("anchor:sent")
        log.info("sent batch %d (chain batch %d, %d records, %d new parcel tokens) in %s", batch.id,
                 batch.chain_batch_id, batch.record_count, batch.token_count, batch.tx_hash)  # fmt: skip
        return batch

    def build(self, *, force: bool = False) -> AnchorBatch | None:
        """Plan the next outbox batch (a read), sign its transaction (chain calls, outside any
        database transaction), then store batch, signed transaction and claims in one short write.
        Only one worker runs (see hybrid_store.worker_lock), so nothing claims the planned records
        meanwhile; the write checks that anyway. Nothing is built while a batch waits to be mined
        or while anchoring holds."""
        if self._in_flight() or self.holding() is not None:
            return None
        with self.db.read() as s:
            plan = self._plan_outbox(s, force=force)
        if plan is None:
            return None
        try:
            signed, first_token, parcel_tree, head = self.sign(plan)
        except TransactionReverted as exc:  # the node's gas estimation ran it: it would revert
            kind = classify_revert(exc.reason)
            if kind == FailureKind.REPLAN:
                raise ChainError(f"the batch id moved while planning ({exc.reason}); planning again") from None
            open_hold(
                self.db, kind if kind != "adopt" else FailureKind.PERMANENT, f"a new batch would revert: {exc.reason}"
            )
            return None
        with self.db.write() as s:
            return self.store(s, plan, signed, first_token, parcel_tree, head)

    def _plan_outbox(self, s: Session, *, force: bool) -> Plan | None:
        claimed = s.execute(
            select(OutboxEntry.id, OutboxEntry.instrument_id, OutboxEntry.enqueued_at)
            .where(OutboxEntry.batch_id.is_(None))
            .order_by(OutboxEntry.id)
            .limit(self.batch_max_records)
        ).all()
        audit = audit_log.plan(s)
        if not claimed:  # the audit log's head alone, once it has waited long enough (or on a drain)
            if audit is None:
                return None
            if not force and (self.clock() - audit.waiting_since).total_seconds() < self.audit_max_age_s:
                return None
            return plan_batch(s, {}, self._next_chain_batch_id(s), parcel_ids=(), audit=audit)
        oldest_age = (self.clock() - claimed[0].enqueued_at).total_seconds()
        if not force and len(claimed) < self.batch_max_records and oldest_age < self.batch_max_age_s:
            return None
        ids = [row.instrument_id for row in claimed]
        commitments = {
            iid: (number, value)
            for iid, number, value in _select_in(
                s,
                select(Instrument.id, Instrument.instrument_number, Commitment.commitment).join(
                    Commitment, Commitment.instrument_id == Instrument.id
                ),
                Instrument.id,
                ids,
            )
        }
        return plan_batch(s, commitments, self._next_chain_batch_id(s), outbox_ids=[row.id for row in claimed],
                          audit=audit)  # fmt: skip

    def sign(self, plan: Plan) -> tuple[SignedTx, int | None, merkle.StandardTree | None, int]:
        """Sign the ``anchorBatch`` transaction of ``plan`` (token ids continue the contract's);
        returns it with the chain's head at signing."""
        first_token = self.chain.next_token_id() if plan.new_parcels else None
        parcel_tree = None
        if plan.new_parcels:
            assert first_token is not None
            parcel_tree = merkle.StandardTree.of(
                [(first_token + i, key) for i, (_, key) in enumerate(plan.new_parcels)], merkle.PARCEL_TOKEN_ENCODING
            )
        head = self.chain.head()
        signed = self.chain.sign_anchor(
            plan.chain_batch_id, plan.nodes[0], len(plan.leaves), parcel_tree.root if parcel_tree else None,
            len(plan.new_parcels), nonce=self.chain.pending_nonce(), fees=self.txm.policy.first(self.chain.fee_quote()),
        )  # fmt: skip
        return signed, first_token, parcel_tree, head

    def store(
        self, s: Session, plan: Plan, signed: SignedTx, first_token: int | None, parcel_tree: merkle.StandardTree | None,
        head: int | None = None,
    ) -> AnchorBatch:  # fmt: skip
        """Write the batch, its signed transaction, its records' places, its parcel tokens and its
        manifest, inside the caller's transaction (nothing is sent yet)."""
        batch = AnchorBatch(
            deployment_id=self.deployment_id, chain_batch_id=plan.chain_batch_id, source=plan.source,
            stage_id=plan.stage_id, supersedes_batch_id=plan.supersedes_batch_id,
            state=BatchState.SIGNED, root=plan.nodes[0], record_count=len(plan.leaves),  # leaves, markers included
            nodes=merkle.nodes_to_bytes(plan.nodes),
            parcel_root=parcel_tree.root if parcel_tree else None,
            parcel_nodes=merkle.nodes_to_bytes(parcel_tree.nodes) if parcel_tree else None,
            first_token_id=first_token, token_count=len(plan.new_parcels),
            nonce=signed.nonce, tx_hash=signed.tx_hash, raw_tx=signed.raw, created_at=self.clock(),
        )  # fmt: skip
        s.add(batch)
        s.flush()
        conn = s.connection()
        TxManager.store_first(conn, batch.id, signed, head, self.clock())
        size = len(plan.nodes)
        bulk_execute(
            conn,
            "INSERT INTO batch_records (batch_id, instrument_id, tree_index) VALUES (?, ?, ?)",
            [(batch.id, iid, size - 1 - k) for k, (_, iid, _, _) in enumerate(plan.leaves) if iid],
        )
        claimed = 0
        for chunk in _chunks(plan.outbox_ids):
            claimed += conn.execute(
                update(OutboxEntry.__table__)
                .where(OutboxEntry.__table__.c.id.in_(chunk), OutboxEntry.__table__.c.batch_id.is_(None))
                .values(batch_id=batch.id)
            ).rowcount
        if claimed != len(plan.outbox_ids):  # only possible with a second worker: give way
            raise ChainError("records of this batch were claimed by another anchoring worker; run only one")
        crashpoint("anchor:building")  # inside the transaction: a kill here must leave nothing behind
        if plan.new_parcels:
            assert first_token is not None
            conn.execute(
                _ASSIGN_TOKENS,
                [
                    {"pid": pid, "token": first_token + i, "batch": batch.id}
                    for i, (pid, _) in enumerate(plan.new_parcels)
                ],
            )
        if plan.audit is not None:
            k = next(k for k, (_, iid, label, _) in enumerate(plan.leaves) if not iid and label == plan.audit.label)
            audit_log.store(conn, plan.audit, batch.id, merkle.proof_from_nodes(plan.nodes, size - 1 - k), self.clock())
        if self.manifest_dir is not None:
            manifests.write(
                self.manifest_dir,
                manifests.from_tree(self.chain_id, self.contract, plan.chain_batch_id, plan.nodes[0],
                                    [(number, c) for _, _, number, c in plan.leaves]),
            )  # fmt: skip
        return batch

    def next_chain_batch_id(self, s: Session) -> int:
        """The on-chain id the next batch gets; raises ``ChainMismatch`` when the contract and the
        database disagree on what was anchored."""
        return self._next_chain_batch_id(s)

    def _next_chain_batch_id(self, s: Session) -> int:
        """Every batch the database knows mined must be on chain, and the chain may hold no batch
        the database does not know (a batch is stored before it is sent): the next id follows the
        database's live batches."""
        counts = dict(s.execute(
            select(AnchorBatch.state, func.count()).where(AnchorBatch.deployment_id == self.deployment_id,
                                                          AnchorBatch.state != BatchState.FAILED)
            .group_by(AnchorBatch.state)).all())  # fmt: skip
        live = sum(counts.values())
        settled = live - counts.get(BatchState.SIGNED, 0)
        on_chain = self.chain.batch_count()
        if not settled <= on_chain <= live:
            raise ChainMismatch(
                f"the contract holds {on_chain} batches but the database knows {settled} mined and {live} in all: "
                "anchoring stops until `landreg reconcile` explains the difference"
            )
        return live

    def _summary(self, batch: AnchorBatch) -> AnchoredBatch:
        return self._summary_by_id(batch.id)

    def _summary_by_id(self, batch_id: int) -> AnchoredBatch:
        with self.db.read() as s:
            b = s.get_one(AnchorBatch, batch_id)
            records = records_of_batches(s, [b.id]).get(b.id, 0)
            return AnchoredBatch(b.id, b.chain_batch_id, records, b.token_count, b.tx_hash, b.gas_used, b.state)


class AnchoringHeld(ChainError):
    """Anchoring holds: no new batch is built until the cause is gone (or an operator releases it)."""

    def __init__(self, hold: AnchoringHold):
        self.kind = hold.kind
        super().__init__(f"anchoring holds ({hold.kind}) since {hold.since:%Y-%m-%d %H:%M:%S} UTC: {hold.reason}")

    @property
    def hint(self) -> str:  # type: ignore[override]
        return {
            FailureKind.PAUSED: "the contract is paused: `landreg chain unpause` (the pauser's key) resumes anchoring",
            FailureKind.MISSING_ROLE: "grant the registrar role again: `landreg chain grant-registrar ADDRESS`",
            FailureKind.FEE_CEILING: "wait for fees to fall, or raise LANDREG_CHAIN__FEE_CEILING_GWEI",
        }.get(self.kind, "look at the reason, then `landreg chain release-hold permanent --reason ...`")


def classify_revert(reason: str) -> str:
    """What to do about a revert, from its decoded custom error (``client.decode_revert``)."""
    name = reason.split("(", 1)[0].strip()
    return {
        "EnforcedPause": FailureKind.PAUSED,
        "DeedRegistryUnexpectedBatchId": FailureKind.REPLAN,
        "AccessControlUnauthorizedAccount": FailureKind.MISSING_ROLE,
        "DeedRegistryRootAlreadyAnchored": "adopt",
    }.get(name, FailureKind.PERMANENT)


_ASSIGN_TOKENS = (
    update(Parcel.__table__)
    .where(Parcel.__table__.c.id == bindparam("pid"))
    .values(token_id=bindparam("token"), token_batch_id=bindparam("batch"))
)


def _stored_tx(batch: AnchorBatch) -> SignedTx:
    return SignedTx(raw=batch.raw_tx, tx_hash=batch.tx_hash, nonce=batch.nonce)


def _chunks(items: list, size: int = _IN_CHUNK) -> Iterable[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _select_in(s: Session, stmt, column, values: list) -> list:
    out = []
    for chunk in _chunks(values):
        out.extend(s.execute(stmt.where(column.in_(chunk))).all())
    return out
