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

The work is streamed: the hashing processes check a few batches per task (``batch_check``)
against the roots the database holds, while this process asks the chain for its own; an outcome
counts only where the two roots are the same, and a batch whose database root differs is checked
again against the chain's. Memory grows with the batch size, not with the book.

Discrepancy kinds: ``pending`` (not yet anchored or confirmed: never called tampering),
``missing_on_chain`` (the chain lacks a final batch the database says was anchored: a node that
lost state; a batch not yet final that a reorganisation took is pending: the worker re-sends it), ``tampered_record`` / ``tampered_batch`` / ``missing_record``, ``chain_reset`` (other
chain id or genesis, no contract code, an anchoring block gone from the chain) and
``manifest_mismatch``; for the audit log, ``audit_log_altered`` and ``audit_log_truncated``
(``audit_check``). Only ``pending`` leaves a run clean.
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from multiprocessing.pool import Pool
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, defer

from hybrid_store import hashing_pool
from hybrid_store.batches import requeue_batch
from hybrid_store.committing import ids_clause, ids_param
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
)
from hybrid_store.errors import ChainUnavailable
from migration_tools import audit_check, batch_check
from migration_tools.batch_check import Discrepancy

if TYPE_CHECKING:  # the chain libraries load only once the hashing processes are at work
    from hybrid_store.chain.client import RegistryChain

__all__ = ["CLEAN_KINDS", "Discrepancy", "ReconcileResult", "StageLine", "reconcile"]

CLEAN_KINDS = frozenset({"pending"})


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
) -> ReconcileResult:
    """Reconcile the anchored batches (of ``stage``, or all) with ``chain`` (or a call that opens it,
    made once the records are being recomputed); ``pool`` is a ``hashing_pool`` the caller started
    early (else one of ``workers`` processes is started here)."""
    # the hashing processes start up while this one reads the database and asks the chain
    own = pool is None and workers > 1
    if own:
        pool = hashing_pool.start(db.url, workers)
    try:
        return _reconcile(db, chain, manifest_dir=manifest_dir, stage=stage, actor=actor, heal=heal,
                          progress=progress, pool=pool)  # fmt: skip
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
) -> ReconcileResult:
    started = time.perf_counter()
    result = ReconcileResult(started_at=datetime.now(UTC).isoformat(timespec="seconds"))
    say = progress or (lambda _msg: None)
    with db.read() as s:
        deployment = s.scalar(select(ChainDeployment).order_by(ChainDeployment.id.desc()).limit(1))
        stage_row = s.scalar(select(MigrationStage).where(MigrationStage.name == stage)) if stage else None
        if stage and stage_row is None:
            from hybrid_store.errors import NotFound

            raise NotFound(f"no migration stage {stage!r}")
        stage_id = stage_row.id if stage_row else None
        batch_stmt = (
            select(AnchorBatch).where(AnchorBatch.state != BatchState.FAILED).order_by(AnchorBatch.chain_batch_id)
        )
        if stage_id is not None:
            batch_stmt = batch_stmt.where(AnchorBatch.stage_id == stage_id)
        # the node arrays are not needed here (the chain's root is the authority)
        batches = s.scalars(batch_stmt.options(defer(AnchorBatch.nodes), defer(AnchorBatch.parcel_nodes))).all()
        sizes = _batch_sizes(s, [b.id for b in batches])
    audit_points = audit_check.checkpoints(db)
    audit_markers = {p.batch_id: p.marker for p in audit_points}
    if deployment is None:
        result.chain = {"deployment": None}
        result.counts = {"batches": 0}
        result.seconds = time.perf_counter() - started
        return result
    # the hashing processes check the batches against the roots the database holds while this one
    # asks the chain for its roots; an outcome counts only where the two roots are the same
    roots = {b.id: b.root for b in batches}
    # every batch the chain may hold is checked, whatever the database's state column says; a rolled
    # back batch only if it re-anchored another (what it anchored proves that one's rollback)
    tasks = [batch_check.BatchTask(b.id, b.chain_batch_id, sizes.get(b.id, 0), b.root, roots.get(b.supersedes_batch_id),
                                   audit_markers.get(b.id))
             for b in batches if b.superseded_at is None or b.supersedes_batch_id is not None]  # fmt: skip
    say(f"recomputing the {sum(t.records for t in tasks):,} records of {len(tasks)} batches from the database")
    checking = _check_async(db, tasks, manifest_dir, pool)
    with db.read() as s:
        pending_outbox = (
            s.scalar(select(func.count()).select_from(OutboxEntry).where(OutboxEntry.batch_id.is_(None))) or 0
        )
        not_migrated = s.scalar(
            select(func.count()).select_from(Instrument).where(
                ~select(Commitment.instrument_id).where(Commitment.instrument_id == Instrument.id).exists()
            )
        ) or 0  # fmt: skip

    say("checking the chain")
    if callable(chain):
        chain = chain()
    identity = _chain_identity(chain, deployment, result)
    on_chain_count = chain.batch_count() if identity else 0

    counts: Tally = Tally(records_checked=0, verified=0, batches=len(batches), pending_outbox=pending_outbox,
                          not_yet_migrated=not_migrated)  # fmt: skip
    if pending_outbox:
        result.discrepancies.append(Discrepancy("pending", f"{pending_outbox} records wait for their batch"))
    lost: list[AnchorBatch] = []
    superseded: list[AnchorBatch] = []
    chain_roots: dict[int, bytes] = {}  # the chain's root of each batch it holds

    def from_chain(b: AnchorBatch) -> None:
        chain_roots[b.id] = chain.get_batch(b.chain_batch_id).root  # type: ignore[union-attr]

    say(f"checking {len(batches)} batches")
    for b in batches:
        on_chain = identity and b.chain_batch_id < on_chain_count
        if b.state != BatchState.CONFIRMED:
            result.discrepancies.append(Discrepancy(
                "pending", f"batch {b.chain_batch_id} is {b.state}: not yet at the confirmation depth",
                b.chain_batch_id))  # fmt: skip
            if on_chain:  # its records are checked all the same: the chain decides, not the state column
                from_chain(b)
            continue
        if not identity:
            result.discrepancies.append(Discrepancy(
                "chain_reset", f"batch {b.chain_batch_id} cannot be found: the chain was reset or replaced",
                b.chain_batch_id))  # fmt: skip
            continue
        if not on_chain and b.finalized_at is None:  # a reorganisation took it before it was final
            result.discrepancies.append(Discrepancy(
                "pending", f"batch {b.chain_batch_id} is not on chain: its block was reorganised away before it was "
                "final; the anchoring worker sends its transaction again", b.chain_batch_id))  # fmt: skip
            continue
        if not on_chain:
            lost.append(b)
            result.discrepancies.append(Discrepancy(
                "missing_on_chain",
                f"batch {b.chain_batch_id} ({sizes.get(b.id, 0)} records) is not on chain: the node lost it (restart "
                "it from its saved state, then `landreg reconcile --heal` re-anchors them)", b.chain_batch_id))  # fmt: skip
            continue
        if b.block_number is not None and b.block_hash and chain.block_hash_at(b.block_number) != b.block_hash:
            if b.finalized_at is None:  # not final: the batch is on chain, in another block than recorded
                result.discrepancies.append(Discrepancy(
                    "pending", f"batch {b.chain_batch_id} moved to another block in a reorganisation before it was "
                    "final; the anchoring worker records its new block", b.chain_batch_id))  # fmt: skip
                from_chain(b)
                continue
            result.discrepancies.append(Discrepancy(
                "chain_reset", f"the block that anchored batch {b.chain_batch_id} ({b.block_number}) is no longer on "
                "the chain (a fork or a reset)", b.chain_batch_id, expected=b.block_hash,
                found=chain.block_hash_at(b.block_number)))  # fmt: skip
            continue
        from_chain(b)
        if b.superseded_at is not None:
            counts["superseded_batches"] += 1
            superseded.append(b)  # rolled back: its records were revoked and anchored again in a later batch
    if identity and stage_id is None:
        _check_coverage(db, deployment, on_chain_count, result)
    verified_by_batch: dict[int, int] = {}
    replaces = {b.id: b.supersedes_batch_id for b in batches if b.supersedes_batch_id is not None}
    rolled_back = {b.id for b in superseded}
    proven: set[int] = set()  # rolled-back batches whose re-anchoring batch's anchored marker names them
    manifest_audit: dict[int, list[tuple[int, bytes]]] = {}  # audit heads each batch's manifest lists
    for outcome in checking():
        t = outcome.task
        if t.id not in chain_roots:
            continue  # reported above (lost, reset, not yet sent): what its rows say does not matter
        prior = chain_roots.get(replaces.get(t.id), t.prior_root) if t.prior_root is not None else None
        truth = replace(t, root=chain_roots[t.id], prior_root=prior)
        if truth != t:  # the database's roots are not the chain's: check against the chain's
            (outcome,) = batch_check.check_group((_dir(manifest_dir), [truth]), db)
        if outcome.manifest_audit is not None:
            manifest_audit[t.id] = outcome.manifest_audit
        if outcome.marker_ok and replaces[t.id] != t.id:
            proven.add(replaces[t.id])
        if t.id in rolled_back:
            continue  # checked only for its marker: its records are checked in the batch that replaced it
        counts["records_checked"] += outcome.records
        counts["verified"] += outcome.verified
        verified_by_batch[t.id] = outcome.verified
        result.discrepancies.extend(outcome.discrepancies)
    _check_superseded(superseded, proven, batches, chain_roots, result)
    if lost and not _is_suffix(lost, batches, on_chain_count):
        for d in result.discrepancies:
            if d.kind == "missing_on_chain":
                d.kind = "chain_reset"
                d.message += " (but later batches are there: not a lost tail, a replaced chain)"
        lost = []

    if stage_id is None:
        on_chain_batches = {b.id: (b.chain_batch_id, chain_roots[b.id]) for b in batches if b.id in chain_roots}
        say("checking the audit log's hash chain")
        audit = audit_check.check(db, audit_points, on_chain_batches, manifest_audit)
        counts.update(audit_entries=audit.entries, audit_anchored=audit.anchored, audit_pending=audit.pending)
        result.discrepancies.extend(audit.discrepancies)
    result.counts = dict(counts)
    result.stages = _stage_lines(db, batches, sizes, verified_by_batch, result)
    result.timeline = _timeline(batches)
    if heal and lost:
        say(f"re-queueing the {sum(sizes.get(b.id, 0) for b in lost)} records of {len(lost)} lost batches")
        result.healed = _heal(db, lost)
    result.seconds = time.perf_counter() - started
    _record(db, result, actor, stage_id, batches)
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
    db: Database, tasks: list[batch_check.BatchTask], manifest_dir: Path | None, pool: Pool | None
) -> Callable[[], Iterator[batch_check.BatchOutcome]]:
    """Start checking ``tasks`` (in ``pool``'s processes, if any); the returned call yields the
    outcomes in task order, each as soon as it is ready, so only a few batches are in memory."""
    work = [(_dir(manifest_dir), g) for g in batch_check.group(tasks)]
    if pool is None or len(work) < 2:
        return lambda: (o for w in work for o in batch_check.check_group(w, db))
    running = pool.imap(batch_check.check_group, work, chunksize=1)
    return lambda: (o for part in running for o in part)


def _chain_identity(chain: RegistryChain, deployment: ChainDeployment, result: ReconcileResult) -> bool:
    facts = {"chainId": deployment.chain_id, "contract": deployment.contract_address, "node": chain.description}
    result.chain = facts
    try:
        chain_id = chain.chain_id
        genesis = chain.genesis_hash()
    except ChainUnavailable:
        raise  # unreachable is not reset: nothing can be concluded, and the caller says so
    except Exception as exc:
        raise ChainUnavailable(f"cannot read the chain from {chain.description}: {exc}") from None
    problems = []
    if chain_id != deployment.chain_id:
        problems.append(f"the node is chain {chain_id}, the registry anchored to chain {deployment.chain_id}")
    if genesis != deployment.genesis_hash:
        problems.append(f"the chain's genesis is {genesis}, not {deployment.genesis_hash} (the chain was reset)")
    if not problems and not chain.has_code(deployment.contract_address):
        problems.append(f"no contract code at {deployment.contract_address} (the chain lost its state)")
    for p in problems:
        result.discrepancies.append(Discrepancy("chain_reset", p))
    if not problems:
        chain.address = deployment.contract_address
        facts["batchesOnChain"] = chain.batch_count()
        facts["head"] = chain.head()
    return not problems


def _check_superseded(
    superseded: list[AnchorBatch], proven: set[int], batches: list[AnchorBatch], chain_roots: dict[int, bytes],
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


def _is_suffix(lost: list[AnchorBatch], batches: list[AnchorBatch], on_chain: int) -> bool:
    """A node that lost state lost its newest batches: every lost id is at or above the chain's count."""
    return all(b.chain_batch_id >= on_chain for b in lost)


def _stage_lines(db, batches, sizes, verified, result) -> list[StageLine]:  # noqa: ANN001
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


def _timeline(batches: list[AnchorBatch]) -> list[tuple[str, int]]:
    """Records anchored per minute, hour or day, whichever suits the span of the run."""
    done = [b for b in batches if b.state == BatchState.CONFIRMED and b.confirmed_at]
    if not done:
        return []
    span = max(b.confirmed_at for b in done) - min(b.confirmed_at for b in done)
    fmt = "%Y-%m-%d %H:%M" if span.total_seconds() <= 6 * 3600 else "%Y-%m-%d %H:00" if span.days <= 10 else "%Y-%m-%d"
    buckets: Tally = Tally()
    for b in done:
        buckets[b.confirmed_at.strftime(fmt)] += b.record_count
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
    db: Database, result: ReconcileResult, actor: str, stage_id: int | None, batches: list[AnchorBatch]
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
