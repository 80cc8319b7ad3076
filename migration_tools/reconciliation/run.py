"""Parallel-run reconciliation: does the chain agree with the deed database, record by record?

For every anchored batch the chain's own root is the authority. Each record's commitment is
recomputed from the database's current rows (fields, salt seed, history link) and compared with
what that root covers:

* with the batch's **manifest** (written at anchoring, kept outside the database, and accepted
  only if its records rebuild the chain's root), the record's expected commitment is known: a
  mismatch names the exact instrument, even when whoever changed the row also rewrote the stored
  commitment, leaf, tree and proof columns, which the manifest never reads;
* without one, the recomputed records must rebuild the chain's root; if they do not, the batch is
  reported tampered and, where the stored commitments were left alone, the changed record too.

The work is streamed: the hashing processes check a few batches per task (``reconciliation.recompute``)
against the roots the database holds, while this process asks the chain for its own; an outcome
counts only where the two roots are the same, and a batch whose database root differs is checked
again against the chain's. Memory grows with the batch size, not with the book.

Discrepancy kinds: ``pending`` (not yet anchored or confirmed: never called tampering),
``missing_on_chain`` (the chain lacks a final batch the database says was anchored: a node that
lost state; a batch not yet final that a reorganisation took is pending: the worker re-sends it), ``tampered_record`` / ``tampered_batch`` / ``missing_record``, ``chain_reset`` (other
chain id or genesis, no contract code, an anchoring block gone from the chain) and
``manifest_mismatch``; for the audit log, ``audit_log_altered`` and ``audit_log_truncated``
(``reconciliation.audit_log``). Only ``pending`` leaves a run clean.
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from multiprocessing.pool import Pool
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, defer

from hybrid_store.batches import requeue_batch
from hybrid_store.core import title_state as ts
from hybrid_store.db.engine import Database
from hybrid_store.db.models import (
    AnchorBatch,
    BatchState,
    ChainDeployment,
    Commitment,
    FailureKind,
    Instrument,
    MigrationStage,
    OutboxEntry,
    Reconciliation,
    TitleVersion,
)
from hybrid_store.db.records import ids_clause, ids_param
from hybrid_store.errors import ChainUnavailable, NotFound
from migration_tools import hashing_pool
from migration_tools.reconciliation import audit_log, recompute, title_state
from migration_tools.reconciliation.recompute import Discrepancy
from migration_tools.reconciliation.wording import count

if TYPE_CHECKING:  # the chain libraries load only once the hashing processes are at work
    from hybrid_store.chain.client import RegistryChain

__all__ = ["CLEAN_KINDS", "Discrepancy", "ReconcileResult", "StageLine", "reconcile"]

CLEAN_KINDS = frozenset({"pending"})
#: findings about the records themselves: the title state recomputed from them would differ for that alone
_RECORD_KINDS = frozenset({"tampered_record", "missing_record", "tampered_batch", "manifest_mismatch"})


@dataclass
class StageLine:
    name: str
    state: str
    batches: int = 0
    records: int = 0
    verified: int = 0
    discrepancies: int = 0


@dataclass
class ReconcileResult:
    started_at: str
    seconds: float = 0.0
    chain: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    stages: list[StageLine] = field(default_factory=list)
    timeline: list[tuple[str, int]] = field(default_factory=list)  # (day, records anchored that day)
    discrepancies: list[Discrepancy] = field(default_factory=list)
    healed: dict[str, int] = field(default_factory=dict)
    legacy: dict[str, Any] | None = None  # three-way: the legacy database's side (``reconciliation.legacy``)

    @property
    def clean(self) -> bool:
        return all(d.kind in CLEAN_KINDS for d in self.discrepancies)

    def kinds(self) -> dict[str, int]:
        return dict(Tally(d.kind for d in self.discrepancies))

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["clean"] = self.clean
        out["kinds"] = self.kinds()
        return out


# --- reconcile ----------------------------------------------------------------------------------------
def reconcile(
    db: Database,
    chain: RegistryChain | Callable[[], RegistryChain],
    *,
    manifest_dir: Path | None,
    stage: str | None = None,
    workers: int = 2,
    actor: str = "cli",
    heal: bool = False,
    progress: Callable[[str], None] | None = None,
    pool: Pool | None = None,
    legacy: str | None = None,
) -> ReconcileResult:
    """Reconcile the anchored batches (of ``stage``, or all) with ``chain`` (or a call that opens it,
    made once the records are being recomputed); ``pool`` is a ``hashing_pool`` the caller started
    early (else one of ``workers`` processes is started here). ``legacy`` names an attached legacy
    database to compare with landreg's mirror too (three-way)."""
    # the hashing processes start up while this one reads the database and asks the chain
    own = pool is None and workers > 1
    if own:
        pool = hashing_pool.start(db.url, workers)
    try:
        return _reconcile(db, chain, manifest_dir=manifest_dir, stage=stage, actor=actor, heal=heal,
                          progress=progress, pool=pool, legacy=legacy)  # fmt: skip
    finally:
        if own and pool is not None:
            pool.terminate()


def _reconcile(
    db: Database,
    chain: RegistryChain | Callable[[], RegistryChain],
    *,
    manifest_dir: Path | None,
    stage: str | None,
    actor: str,
    heal: bool,
    progress: Callable[[str], None] | None,
    pool: Pool | None,
    legacy: str | None = None,
) -> ReconcileResult:
    run = _Run(db, manifest_dir, progress or (lambda _msg: None))
    run.read_database(stage)
    if run.deployment is None:
        run.result.chain = {"deployment": None}
        run.result.counts = {"batches": 0}
        if legacy is not None:
            run.result.discrepancies.extend(run.check_legacy(legacy))
        run.result.seconds = time.perf_counter() - run.started
        return run.result
    # the hashing processes check the batches against the roots the database holds while this one
    # asks the chain for its roots; an outcome counts only where the two roots are the same
    checking = _check_async(db, run.tasks(), manifest_dir, pool)
    run.count_waiting()
    # the legacy database is read here while the hashing processes recompute the batches; what it
    # finds is reported after the chain's findings, as when the two ran one after the other
    legacy_found = run.check_legacy(legacy) if legacy is not None else []
    run.say("checking the chain")
    run.chain = chain() if callable(chain) else chain
    run.check_identity()
    run.check_batch_states()
    if run.identity and run.stage_id is None:
        _check_coverage(db, run.deployment, run.on_chain_count, run.result)
    run.check_records(checking())
    _check_superseded(run.superseded, run.proven, run.batches, run.chain_roots, run.result)
    run.check_lost_tail()
    if run.stage_id is None:
        run.check_audit_log()
        run.check_title_state()
    run.result.discrepancies.extend(legacy_found)
    return run.finish(actor, heal)


class _Run:
    """One reconciliation: what it read, what the chain holds, and one method per named check."""

    def __init__(self, db: Database, manifest_dir: Path | None, say: Callable[[str], None]):
        self.db = db
        self.manifest_dir = manifest_dir
        self.say = say
        self.started = time.perf_counter()
        self.result = ReconcileResult(started_at=datetime.now(UTC).isoformat(timespec="seconds"))
        self.counts: Tally = Tally(records_checked=0, verified=0)
        self.chain: RegistryChain | None = None
        self.identity = False
        self.on_chain_count = 0
        self.chain_roots: dict[int, bytes] = {}  # the chain's root of each batch it holds
        self.lost: list[AnchorBatch] = []
        self.superseded: list[AnchorBatch] = []
        self.proven: set[int] = set()  # rolled-back batches whose re-anchoring batch's marker names them
        self.manifest_audit: dict[int, list[tuple[int, bytes]]] = {}  # audit heads each manifest lists
        self.verified_by_batch: dict[int, int] = {}

    def report(self, kind: str, message: str, batch: int | None = None, **found: Any) -> None:
        self.result.discrepancies.append(Discrepancy(kind, message, batch, **found))

    def check_legacy(self, name: str) -> list[Discrepancy]:
        """The legacy database against landreg's mirror (``reconciliation.legacy``): what it finds."""
        from migration_tools.reconciliation import legacy

        found: list[Discrepancy] = []
        self.result.legacy = legacy.check(self.db, name, found.append, self.say)
        return found

    # --- what the database says -----------------------------------------------------------------------
    def read_database(self, stage: str | None) -> None:
        with self.db.read() as s:
            self.deployment = s.scalar(select(ChainDeployment).order_by(ChainDeployment.id.desc()).limit(1))
            stage_row = s.scalar(select(MigrationStage).where(MigrationStage.name == stage)) if stage else None
            if stage and stage_row is None:
                raise NotFound(f"no migration stage {stage!r}")
            self.stage_id = stage_row.id if stage_row else None
            stmt = (
                select(AnchorBatch).where(AnchorBatch.state != BatchState.FAILED).order_by(AnchorBatch.chain_batch_id)
            )
            if self.stage_id is not None:
                stmt = stmt.where(AnchorBatch.stage_id == self.stage_id)
            # the node arrays are not needed here (the chain's root is the authority)
            self.batches = s.scalars(stmt.options(defer(AnchorBatch.nodes), defer(AnchorBatch.parcel_nodes))).all()
            self.sizes = _batch_sizes(s, [b.id for b in self.batches])
        self.audit_points = audit_log.checkpoints(self.db)
        self.replaces: dict[int, int] = {
            b.id: b.supersedes_batch_id for b in self.batches if b.supersedes_batch_id is not None
        }
        self.counts["batches"] = len(self.batches)

    def tasks(self) -> list[recompute.BatchTask]:
        """Every batch the chain may hold is checked, whatever the database's state column says; a
        rolled-back batch only if it re-anchored another (what it anchored proves that rollback)."""
        roots: dict[int | None, bytes] = {b.id: b.root for b in self.batches}  # None: supersedes nothing
        markers = {p.batch_id: p.marker for p in self.audit_points}
        with self.db.read() as s:
            title = {bid: ts.state_marker(bytes(root)) for bid, root in s.execute(select(TitleVersion.batch_id,
                                                                                          TitleVersion.root))}  # fmt: skip
        tasks = [recompute.BatchTask(b.id, b.chain_batch_id, self.sizes.get(b.id, 0), b.root,
                                       roots.get(b.supersedes_batch_id), markers.get(b.id), title.get(b.id))
                 for b in self.batches if b.superseded_at is None or b.supersedes_batch_id is not None]  # fmt: skip
        self.say(
            f"recomputing {count(sum(t.records for t in tasks), 'record')} of "
            f"{count(len(tasks), 'batch', 'batches')} from the database"
        )
        return tasks

    def count_waiting(self) -> None:
        with self.db.read() as s:
            pending = s.scalar(select(func.count()).select_from(OutboxEntry).where(OutboxEntry.batch_id.is_(None))) or 0
            not_migrated = s.scalar(select(func.count()).select_from(Instrument).where(
                ~select(Commitment.instrument_id).where(Commitment.instrument_id == Instrument.id).exists())) or 0  # fmt: skip
        self.counts.update(pending_outbox=pending, not_yet_migrated=not_migrated)
        if pending:
            self.report("pending", f"{pending} records wait for their batch")

    # --- the checks -------------------------------------------------------------------------------------
    def check_identity(self) -> None:
        """chain_reset: another chain id or genesis, or no contract code (unreachable is no reset)."""
        assert self.chain is not None and self.deployment is not None
        self.identity = _chain_identity(self.chain, self.deployment, self.result)
        self.on_chain_count = self.chain.batch_count() if self.identity else 0

    def check_batch_states(self) -> None:
        """pending / missing_on_chain / chain_reset, batch by batch; the chain's roots are read here."""
        self.say(f"checking {count(len(self.batches), 'batch', 'batches')}")
        for b in self.batches:
            self._check_batch(b)

    def _check_batch(self, b: AnchorBatch) -> None:
        assert self.chain is not None
        on_chain = self.identity and b.chain_batch_id < self.on_chain_count
        k = b.chain_batch_id
        if b.state != BatchState.CONFIRMED:
            self.report("pending", f"batch {k} is {b.state}: not yet at the confirmation depth", k)
            if on_chain:  # its records are checked all the same: the chain decides, not the state column
                self._read_root(b)
            return
        if not self.identity:
            self.report("chain_reset", f"batch {k} cannot be found: the chain was reset or replaced", k)
            return
        if not on_chain and b.finalized_at is None:  # a reorganisation took it before it was final
            self.report("pending", f"batch {k} is not on chain: its block was reorganised away before it was final; "
                        "the anchoring worker sends its transaction again", k)  # fmt: skip
            return
        if not on_chain:
            self.lost.append(b)
            self.report("missing_on_chain", f"batch {k} ({self.sizes.get(b.id, 0)} records) is not on chain: the node "
                        "lost it (restart it from its saved state, then `landreg reconcile --heal` re-anchors them)", k)  # fmt: skip
            return
        if b.block_number is not None and b.block_hash and self.chain.block_hash_at(b.block_number) != b.block_hash:
            if b.finalized_at is None:  # not final: the batch is on chain, in another block than recorded
                self.report("pending", f"batch {k} moved to another block in a reorganisation before it was final; "
                            "the anchoring worker records its new block", k)  # fmt: skip
                self._read_root(b)
                return
            self.report("chain_reset", f"the block that anchored batch {k} ({b.block_number}) is no longer on the "
                        "chain (a fork or a reset)", k, expected=b.block_hash,
                        found=self.chain.block_hash_at(b.block_number))  # fmt: skip
            return
        self._read_root(b)
        if b.superseded_at is not None:
            self.counts["superseded_batches"] += 1
            self.superseded.append(b)  # rolled back: its records were revoked and anchored again later

    def _read_root(self, b: AnchorBatch) -> None:
        assert self.chain is not None
        self.chain_roots[b.id] = self.chain.get_batch(b.chain_batch_id).root

    def check_records(self, outcomes: Iterable[recompute.BatchOutcome]) -> None:
        """tampered_record / missing_record / tampered_batch / manifest_mismatch: each batch's records
        recomputed from the rows, against the chain's root (``reconciliation.recompute``)."""
        rolled_back = {b.id for b in self.superseded}
        for outcome in outcomes:
            t = outcome.task
            if t.id not in self.chain_roots:
                continue  # reported above (lost, reset, not yet sent): what its rows say does not matter
            prior = (
                self.chain_roots.get(self.replaces.get(t.id, -1), t.prior_root) if t.prior_root is not None else None
            )
            truth = replace(t, root=self.chain_roots[t.id], prior_root=prior)
            if truth != t:  # the database's roots are not the chain's: check against the chain's
                (outcome,) = recompute.check_group((_dir(self.manifest_dir), [truth]), self.db)
            if outcome.manifest_audit is not None:
                self.manifest_audit[t.id] = outcome.manifest_audit
            if outcome.marker_ok and self.replaces[t.id] != t.id:
                self.proven.add(self.replaces[t.id])
            if t.id in rolled_back:
                continue  # checked only for its marker: its records are checked in the batch that replaced it
            self.counts["records_checked"] += outcome.records
            self.counts["verified"] += outcome.verified
            self.verified_by_batch[t.id] = outcome.verified
            self.result.discrepancies.extend(outcome.discrepancies)

    def check_lost_tail(self) -> None:
        """A node that lost state lost its newest batches; lost batches with later ones still there
        are a replaced chain (chain_reset), never healed."""
        if self.lost and not _is_suffix(self.lost, self.batches, self.on_chain_count):
            for d in self.result.discrepancies:
                if d.kind == "missing_on_chain":
                    d.kind = "chain_reset"
                    d.message += " (but later batches are there: not a lost tail, a replaced chain)"
            self.lost = []

    def check_audit_log(self) -> None:
        """audit_log_altered / audit_log_truncated (``reconciliation.audit_log``)."""
        on_chain = {b.id: (b.chain_batch_id, self.chain_roots[b.id]) for b in self.batches if b.id in self.chain_roots}
        self.say("checking the audit log's hash chain")
        audit = audit_log.check(self.db, self.audit_points, on_chain, self.manifest_audit)
        self.counts.update(audit_entries=audit.entries, audit_anchored=audit.anchored, audit_pending=audit.pending)
        self.result.discrepancies.extend(audit.discrepancies)

    def check_title_state(self) -> None:
        """title_state_altered (``reconciliation.title_state``): the newest anchored state only."""
        on_chain = {b.id: (b.chain_batch_id, self.chain_roots[b.id]) for b in self.batches if b.id in self.chain_roots}
        self.say("checking the title state")
        sound = not any(d.kind in _RECORD_KINDS for d in self.result.discrepancies)
        title = title_state.check(self.db, on_chain, records_sound=sound)
        self.counts.update(title_states_checked=title.checked, title_recomputed=title.recomputed,
                           title_parcels=title.parcels, title_nodes=title.nodes)  # fmt: skip
        self.result.discrepancies.extend(title.discrepancies)

    # --- the end -------------------------------------------------------------------------------------------
    def finish(self, actor: str, heal: bool) -> ReconcileResult:
        result = self.result
        result.counts = dict(self.counts)
        result.stages = _stage_lines(self.db, self.batches, self.sizes, self.verified_by_batch, result)
        result.timeline = _timeline(self.batches)
        if heal and self.lost:
            self.say(f"re-queueing the {sum(self.sizes.get(b.id, 0) for b in self.lost)} records of "
                     f"{len(self.lost)} lost batches")  # fmt: skip
            result.healed = _heal(self.db, self.lost)
        result.seconds = time.perf_counter() - self.started
        _record(self.db, result, actor, self.stage_id, self.batches)
        return result


def _batch_sizes(s: Session, batch_ids: list[int]) -> dict[int, int]:
    """Records per batch, as the database lists them."""
    if not batch_ids:
        return {}
    conn = s.connection()
    sql = ("SELECT batch_id, count(*) FROM batch_records WHERE " + ids_clause(conn)("batch_id")
           + " GROUP BY batch_id")  # fmt: skip
    return dict(conn.exec_driver_sql(sql, ids_param(conn, batch_ids)).fetchall())


def _dir(manifest_dir: Path | None) -> str | None:
    return str(manifest_dir) if manifest_dir is not None else None


def _check_async(
    db: Database, tasks: list[recompute.BatchTask], manifest_dir: Path | None, pool: Pool | None
) -> Callable[[], Iterator[recompute.BatchOutcome]]:
    """Start checking ``tasks`` (in ``pool``'s processes, if any); the returned call yields the
    outcomes in task order, each as soon as it is ready, so only a few batches are in memory."""
    work = [(_dir(manifest_dir), g) for g in recompute.group(tasks)]
    if pool is None or len(work) < 2:
        return lambda: (o for w in work for o in recompute.check_group(w, db))
    running = pool.imap(recompute.check_group, work, chunksize=1)
    return lambda: (o for part in running for o in part)


def _chain_identity(chain: RegistryChain, deployment: ChainDeployment, result: ReconcileResult) -> bool:
    from hybrid_store.deployment import identity_problems  # with the chain libraries, once hashing is under way

    facts = {"chainId": deployment.chain_id, "contract": deployment.contract_address, "node": chain.description}
    result.chain = facts
    try:
        problems = identity_problems(chain, deployment)
    except ChainUnavailable:
        raise  # unreachable is not reset: nothing can be concluded, and the caller says so
    except Exception as exc:
        raise ChainUnavailable(f"cannot read the chain from {chain.description}: {exc}") from None
    for p in problems:
        result.discrepancies.append(Discrepancy("chain_reset", p))
    if not problems:
        chain.address = deployment.contract_address
        facts["batchesOnChain"] = chain.batch_count()
        facts["head"] = chain.head()
    return not problems


def _check_superseded(
    superseded: list[AnchorBatch], proven: set[int], batches: Sequence[AnchorBatch], chain_roots: dict[int, bytes],
    result: ReconcileResult,
) -> None:  # fmt: skip
    """A batch the database calls rolled back is not checked itself: another batch must re-anchor it,
    with a marker leaf naming its root, anchored on chain (else a database administrator could hide
    any batch by marking it rolled back)."""
    waiting = {b.supersedes_batch_id for b in batches if b.supersedes_batch_id is not None and b.id not in chain_roots}
    for b in superseded:
        if b.id in proven:
            continue
        if b.id in waiting:
            result.discrepancies.append(Discrepancy(
                "pending", f"batch {b.chain_batch_id} was rolled back; the batch re-anchoring it is not on chain yet",
                b.chain_batch_id))  # fmt: skip
            continue
        result.discrepancies.append(Discrepancy(
            "tampered_batch", f"batch {b.chain_batch_id} is marked rolled back in the database, but no batch on chain "
            "re-anchors it, so its records were not checked", b.chain_batch_id))  # fmt: skip


def _check_coverage(db: Database, deployment: ChainDeployment, on_chain: int, result: ReconcileResult) -> None:
    """Every batch on chain must be a live batch of the database (else a database administrator
    could hide one by marking it failed, or deleting it). Read after the chain's count: a batch is
    stored before it is sent, so none on chain can be missing from this read."""
    with db.read() as s:
        live = set(s.scalars(select(AnchorBatch.chain_batch_id).where(
            AnchorBatch.deployment_id == deployment.id, AnchorBatch.state != BatchState.FAILED,
            AnchorBatch.chain_batch_id < on_chain)))  # fmt: skip
    for k in sorted(set(range(on_chain)) - live):
        result.discrepancies.append(Discrepancy(
            "tampered_batch", f"batch {k} is on chain, but the database holds no live batch for it (marked failed "
            "or deleted), so its records were not checked", k))  # fmt: skip


def _is_suffix(lost: list[AnchorBatch], batches: Sequence[AnchorBatch], on_chain: int) -> bool:
    """A node that lost state lost its newest batches: every lost id is at or above the chain's count."""
    return all(b.chain_batch_id >= on_chain for b in lost)


def _stage_lines(db, batches, sizes, verified, result) -> list[StageLine]:
    with db.read() as s:
        stages = {st.id: st for st in s.scalars(select(MigrationStage))}
    lines: dict[Any, StageLine] = {}
    bad_batches = Tally(
        d.batch_id for d in result.discrepancies if d.kind not in CLEAN_KINDS and d.batch_id is not None
    )
    for b in batches:
        st = stages.get(b.stage_id)
        key = st.name if st else "(filings)"
        line = lines.setdefault(key, StageLine(key, st.state if st else "live"))
        line.batches += 1
        line.records += sizes.get(b.id, 0)
        line.verified += verified.get(b.id, 0)
        line.discrepancies += bad_batches.get(b.chain_batch_id, 0)
    return list(lines.values())


def _timeline(batches: Sequence[AnchorBatch]) -> list[tuple[str, int]]:
    """Records anchored per minute, hour or day, whichever suits the span of the run."""
    done = [(b.confirmed_at, b.record_count) for b in batches if b.state == BatchState.CONFIRMED and b.confirmed_at]
    if not done:
        return []
    span = max(at for at, _ in done) - min(at for at, _ in done)
    fmt = "%Y-%m-%d %H:%M" if span.total_seconds() <= 6 * 3600 else "%Y-%m-%d %H:00" if span.days <= 10 else "%Y-%m-%d"
    buckets: Tally = Tally()
    for at, records in done:
        buckets[at.strftime(fmt)] += records
    return sorted(buckets.items())


def _heal(db: Database, lost: list[AnchorBatch]) -> dict[str, int]:
    """Give the records of batches the chain lost back to the anchoring queue (their commitments are
    unchanged); the batches stay in the history as failed, with the reason."""
    requeued = 0
    with db.write() as s:
        for b in lost:
            requeued += requeue_batch(s, b.id, "lost: absent on chain (the node lost state); re-queued by reconcile "
                                      "--heal", FailureKind.LOST)  # fmt: skip
    return {"batches": len(lost), "records": requeued}


def _record(
    db: Database, result: ReconcileResult, actor: str, stage_id: int | None, batches: Sequence[AnchorBatch]
) -> None:
    """Store the run and mark the stages it covered (sign-off needs a clean one)."""
    bad = {d.batch_id for d in result.discrepancies if d.kind not in CLEAN_KINDS}
    global_problem = any(d.batch_id is None and d.kind not in CLEAN_KINDS for d in result.discrepancies)
    now = datetime.now(UTC)
    with db.write() as s:
        s.add(Reconciliation(started_at=datetime.fromisoformat(result.started_at), finished_at=now, actor=actor,
                             stage_id=stage_id, clean=result.clean,
                             summary={"counts": result.counts, "kinds": result.kinds()}))  # fmt: skip
        by_stage: dict[int, bool] = {}
        for b in batches:
            if b.stage_id is not None:
                clean = by_stage.get(b.stage_id, True) and b.chain_batch_id not in bad and not global_problem
                clean = clean and b.state == BatchState.CONFIRMED
                by_stage[b.stage_id] = clean
        for sid, clean in by_stage.items():
            s.execute(
                update(MigrationStage).where(MigrationStage.id == sid).values(reconciled_at=now, reconciled_clean=clean)
            )
