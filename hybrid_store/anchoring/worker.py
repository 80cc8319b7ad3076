"""The anchoring worker: outbox entries in, anchored Merkle batches out.

Each step first settles what is in flight (``settle``), then may build one new batch: when the
oldest pending record has waited ``batch_max_age_s`` or ``batch_max_records`` are pending (or the
audit log's head has waited ``audit_max_age_s``), claim them, plan the tree (``plan``), assign
token ids to new parcels, sign the ``anchorBatch`` transaction and store everything in ONE
database transaction (``store``). Only then is it sent. One batch is in flight at a time, so
batch ids and token ids stay in order; nothing new is built while anchoring holds.

Because the signed bytes are stored before they are sent, a crash at any point leaves either
nothing (the records are still pending) or exactly one transaction to find or re-send; and the
contract refuses a root it already has and a batch id out of sequence. So a record is never lost
and never anchored twice. ``crashpoint`` marks the places the crash tests kill the process.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hybrid_store import audit_log, title_states
from hybrid_store.anchoring.identity import ChainIdentity
from hybrid_store.anchoring.plan import Leaf, Plan, plan_batch
from hybrid_store.anchoring.revoke import Revoker
from hybrid_store.anchoring.settle import Finality, Settler, classify_revert
from hybrid_store.anchoring.store import Target, store_batch, untokenized_parcels
from hybrid_store.batches import open_hold, records_of_batches
from hybrid_store.chain.port import ChainPort
from hybrid_store.chain.types import SignedTx
from hybrid_store.core import merkle
from hybrid_store.crashpoints import crashpoint
from hybrid_store.db.engine import Database, select_in
from hybrid_store.db.models import (
    AnchorBatch,
    AnchoringHold,
    BatchState,
    ChainDeployment,
    Commitment,
    FailureKind,
    Instrument,
    OutboxEntry,
)
from hybrid_store.errors import ChainError, ChainMismatch, ChainReset, TransactionReverted
from hybrid_store.title_states import TitlePlan, TitleStoreError
from hybrid_store.txmgr import GWEI, FeePolicy, TxManager

if TYPE_CHECKING:
    from hybrid_store.ledger import Appended
    from hybrid_store.settings import Settings

log = logging.getLogger(__name__)


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


def configured(settings: Settings) -> dict[str, object]:
    """The worker's keyword arguments as the settings give them."""
    a, c = settings.anchoring, settings.chain
    finality = c.finality if c.finality != "auto" else ("tag" if c.backend == "rpc" else "depth")
    return {
        "batch_max_records": a.batch_max_records, "batch_max_age_s": a.batch_max_age_s,
        "audit_max_age_s": a.audit_max_age_s, "confirmations": c.confirmations,
        "manifest_dir": settings.manifests_dir, "finality": finality, "finality_depth": c.finality_depth,
        "fees": FeePolicy(c.fee_bump_percent, int(c.fee_ceiling_gwei * GWEI), c.stuck_after_blocks,
                          c.refusals_before_hold, c.refused_retry_s),
        "in_flight_timeout_s": max(c.receipt_timeout_s, 600.0), "identity_check_s": c.identity_check_s,
        "title_state": a.title_state,
    }  # fmt: skip


class Anchorer:
    def __init__(
        self,
        db: Database,
        chain: ChainPort,
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
        identity_check_s: float = 30.0,
        title_state: bool = True,
    ):
        self.db = db
        self.chain = chain
        self.identity = ChainIdentity(db, chain, deployment, identity_check_s)
        self.target = Target.of(deployment)
        self.manifest_dir = manifest_dir
        self.batch_max_records = batch_max_records
        self.batch_max_age_s = batch_max_age_s
        self.audit_max_age_s = audit_max_age_s
        self.clock = clock
        self.txm = TxManager(db, chain, fees)
        self.settler = Settler(db, chain, self.target, self.txm,
                               Finality(confirmations, finality == "tag", finality_depth), clock,
                               verify_chain=self.identity.verify)  # fmt: skip
        self.in_flight_timeout_s = in_flight_timeout_s
        self.title_state, self.revoker = title_state, Revoker(db, chain, self.target, self.txm.policy)
        #: the worker asks the node about batches in flight and unfinal at most this often
        self.poll_s = max(0.02, float(getattr(chain, "poll_interval_s", 0.05) or 0.05))
        self._final_due, self._running = 0.0, False  # inside ``run``: finality re-checks are spaced out

    @classmethod
    def from_settings(cls, db: Database, chain: ChainPort, deployment: ChainDeployment, settings: Settings,
                      **overrides: object) -> Anchorer:  # fmt: skip
        """The worker as configured (``overrides`` replace single settings, e.g. a demo's batch size).
        Every worker of the registry is built here."""
        return cls(db, chain, deployment, **(configured(settings) | overrides))  # type: ignore[arg-type]

    # --- driving ----------------------------------------------------------------------------------
    def step(self, *, force: bool = False) -> AnchoredBatch | None:
        """Settle in-flight batches, revoke replaced versions on the chain (``anchoring.revoke``),
        then anchor one new batch if one is due (or ``force``); the node's identity first, when due."""
        self.identity.check_if_due()
        self.settle()
        if not self.settler.in_flight():
            self.revoker.between_batches(self.holding())
        batch = self.build_and_send(force=force)
        if batch is not None:
            self.settle()
            return _summary(self.db, batch.id)
        return None

    def check_consistency(self) -> None:
        """Refuse to start when the contract and the database disagree on the anchored batches."""
        with self.db.read() as s:
            self.next_chain_batch_id(s)

    def drain(self, progress: Callable[[AnchoredBatch], None] | None = None) -> DrainSummary:
        """Anchor everything pending now, in batches of ``batch_max_records``, and wait until each is
        mined. Raises ``AnchoringHeld`` if anchoring holds (paused, role, fees, a permanent failure)."""
        self.identity.verify()
        self.settle()
        self.check_consistency()
        summary = DrainSummary()
        while True:
            self.wait_in_flight()
            batch = self.step(force=True)
            if batch is None:
                revoking = self.revoker.waiting  # the batch waits for the revocation ahead of it
                self.wait_in_flight()
                if (hold := self.holding()) is not None:
                    raise AnchoringHeld(hold)
                if revoking:
                    continue
                self.revoker.step()  # what the last batches anchored may be replaced already
                self.wait_in_flight()
                break
            summary.batches.append(batch)
            if progress:
                progress(batch)
        summary.batches = [_summary(self.db, b.batch_id) for b in summary.batches]
        return summary

    def wait_in_flight(self) -> None:
        """Settle until no batch or revocation waits to be mined (replacing stuck transactions
        meanwhile)."""
        self.settler.wait_in_flight(self.settle, self.in_flight_timeout_s, self.poll_s)
        self.revoker.wait_in_flight(lambda: self.holding() is None, self.in_flight_timeout_s, self.poll_s)

    def run(
        self, stop: threading.Event, idle_sleep_s: float = 0.1, keep_going: Callable[[], bool] = lambda: True
    ) -> None:
        """Anchor until ``stop`` is set (or ``keep_going`` says no: the lock is lost), finishing the batch
        in hand. A silent node is waited for; another chain holds anchoring (``anchoring.identity``)."""
        self.identity.verify()
        self.settle()
        self.check_consistency()
        log.info("anchoring worker started (batches of up to %d records or %.1f s)", self.batch_max_records,
                 self.batch_max_age_s)  # fmt: skip
        self._running = True
        try:
            while not stop.is_set() and keep_going():
                try:
                    batch = self.step()
                    self.identity.failures = 0
                except ChainReset:  # another chain: held by the check (now or at the next step); look again later
                    self.identity.failed()
                    stop.wait(self.identity.check_s)
                    continue
                except ChainMismatch:
                    raise  # the chain and the database disagree: a person must look (landreg reconcile)
                except (ChainError, OSError) as exc:  # node down, reverted, ...: report and try again later
                    self.identity.failed(exc)
                    batch = None
                    stop.wait(min(5.0, self.batch_max_age_s))
                if batch is None:
                    stop.wait(max(idle_sleep_s, self.poll_s) if self.settler.in_flight() else idle_sleep_s)
        finally:
            self._running = False
        log.info("anchoring worker stopped")

    def holding(self) -> AnchoringHold | None:
        return self.settler.holding()

    def settle(self) -> None:
        # a few node calls: the continuous worker (``run``) makes them at most once a second
        if not self._running or time.monotonic() >= self._final_due:
            self._final_due = time.monotonic() + max(1.0, self.poll_s)
            self.settler.recheck_until_final()
        self.settler.settle_in_flight()

    # --- build ------------------------------------------------------------------------------------
    def build_and_send(self, *, force: bool = False) -> AnchorBatch | None:
        batch = self.build(force=force)
        if batch is None:
            return None
        crashpoint("anchor:signed")
        self.txm.send_stored(batch.id)  # refused (underpriced, ...): settling replaces it
        crashpoint("anchor:sent")
        log.info("sent batch %d (chain batch %d, %d records, %d new parcel tokens) in %s", batch.id,
                 batch.chain_batch_id, batch.record_count, batch.token_count, batch.tx_hash)  # fmt: skip
        return batch

    def build(self, *, force: bool = False) -> AnchorBatch | None:
        """Plan the next outbox batch (a read), sign its transaction (chain calls, outside any
        database transaction), then store batch, signed transaction and claims in one short write.
        Only one worker runs (see hybrid_store.worker_lock), so nothing claims the planned records
        meanwhile; the write checks that anyway. Nothing is built while a batch waits to be mined
        (or a revocation) or while anchoring holds."""
        if self.settler.in_flight() or self.revoker.waiting or self.holding() is not None:
            return None
        with self.db.read() as s:
            planned = self._plan_outbox(s, force=force)
        if planned is None:
            return None
        try:
            signed, first_token, parcel_tree, head = self.sign(planned)
        except TransactionReverted as exc:  # the node's gas estimation ran it: it would revert
            kind = classify_revert(exc.reason)
            if kind == FailureKind.REPLAN:
                raise ChainError(f"the batch id moved while planning ({exc.reason}); planning again") from None
            open_hold(
                self.db, kind if kind != "adopt" else FailureKind.PERMANENT, f"a new batch would revert: {exc.reason}"
            )
            return None
        with self.db.write() as s:
            return self.store(s, planned, signed, first_token, parcel_tree, head)

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
            return plan_batch([], self.next_chain_batch_id(s), [], audit=audit, title=self.title_plan(s, []))
        oldest_age = (self.clock() - claimed[0].enqueued_at).total_seconds()
        if not force and len(claimed) < self.batch_max_records and oldest_age < self.batch_max_age_s:
            return None
        ids = [row.instrument_id for row in claimed]
        leaves = [Leaf.record(iid, number, value) for iid, number, value in select_in(
            s, select(Instrument.id, Instrument.instrument_number, Commitment.commitment)
            .join(Commitment, Commitment.instrument_id == Instrument.id), Instrument.id, ids)]  # fmt: skip
        return plan_batch(leaves, self.next_chain_batch_id(s), untokenized_parcels(s, ids),
                    outbox_ids=[row.id for row in claimed], audit=audit, title=self.title_plan(s, ids))  # fmt: skip

    def title_plan(
        self, s: Session, ids: Sequence[int], appended: Sequence[Appended] | None = None, *, hold_later: bool = False
    ) -> TitlePlan | None:
        """The batch's title state (None when off), ``appended`` as ``ledger.append`` made them (links from
        memory); ``hold_later``: the caller opens the hold (``title_hold``) after its transaction."""
        return _title_or_hold(None if hold_later else self.db, s, ids, appended) if self.title_state else None

    def sign(self, planned: Plan) -> tuple[SignedTx, int | None, merkle.StandardTree | None, int]:
        """Sign the ``anchorBatch`` transaction of ``planned`` (token ids continue the contract's);
        returns it with the chain's head at signing."""
        first_token = self.chain.next_token_id() if planned.new_parcels else None
        parcel_tree = None
        if planned.new_parcels:
            assert first_token is not None
            parcel_tree = merkle.StandardTree.of(
                [(first_token + i, key) for i, (_, key) in enumerate(planned.new_parcels)], merkle.PARCEL_TOKEN_ENCODING
            )
        head = self.chain.head()
        signed = self.chain.sign_anchor(
            planned.chain_batch_id, planned.root, len(planned.leaves), parcel_tree.root if parcel_tree else None,
            len(planned.new_parcels), nonce=self.chain.pending_nonce(), fees=self.txm.policy.first(self.chain.fee_quote()),
        )  # fmt: skip
        return signed, first_token, parcel_tree, head

    def store(
        self, s: Session, planned: Plan, signed: SignedTx, first_token: int | None,
        parcel_tree: merkle.StandardTree | None, head: int | None = None,
    ) -> AnchorBatch:  # fmt: skip
        """Write the batch, its signed transaction, its records' places, its parcel tokens and its
        manifest, inside the caller's transaction (nothing is sent yet)."""
        return store_batch(s, planned, signed, first_token, parcel_tree, target=self.target, head=head,
                           now=self.clock(), manifest_dir=self.manifest_dir)  # fmt: skip

    def next_chain_batch_id(self, s: Session) -> int:
        """The on-chain id the next batch gets. Every batch the database knows mined must be on
        chain, and the chain may hold no batch the database does not know (a batch is stored before
        it is sent); else ``ChainMismatch``: the next id follows the database's live batches."""
        counts = dict(s.execute(
            select(AnchorBatch.state, func.count()).where(AnchorBatch.deployment_id == self.target.deployment_id,
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


def _title_or_hold(
    db: Database | None, s: Session, instrument_ids: Sequence[int], appended: Sequence[Appended] | None
) -> TitlePlan:
    """The title state after a batch of these records, for its marker leaf; a hold if it cannot be
    built (``db`` None: ``TitleStoreError`` goes up, for a caller to hold once its transaction is over)."""
    links = title_states.record_links((a.commitment, a.prev) for a in appended) if appended is not None else None
    try:
        return title_states.plan_title(s, instrument_ids, links)
    except TitleStoreError as exc:  # no batch may anchor a state built on edited rows: a person must look
        if db is None:
            raise
        raise title_hold(db, exc) from None


def title_hold(db: Database, exc: TitleStoreError) -> ChainError:
    """Open the hold for a title state that cannot be built; the error to raise."""
    open_hold(db, FailureKind.PERMANENT, f"the title state cannot be built: {exc}")
    return ChainError(f"anchoring holds: the title state cannot be built: {exc}")


def _summary(db: Database, batch_id: int) -> AnchoredBatch:
    with db.read() as s:
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
            FailureKind.REFUSED: "fix what the node names (often: fund the registrar's account); the transaction is "
            "sent again every LANDREG_CHAIN__REFUSED_RETRY_S and anchoring resumes once the node takes it",
            FailureKind.CHAIN_RESET: ChainReset.hint,
        }.get(self.kind, "look at the reason, then `landreg chain release-hold permanent --reason ...`")
