"""Status: how far anchoring is, why it waits, and the staged migration, for the status page,
the API and operators."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select

from hybrid_store.batches import confirmed_records, open_holds, records_of_batches
from hybrid_store.db.engine import Database
from hybrid_store.db.models import AnchorBatch, BatchState, Instrument, MigrationStage, OutboxEntry, Reconciliation
from hybrid_store.deployment import active_deployment
from hybrid_store.settings import Settings
from registry_service import schemas
from registry_service.chain_probe import ChainProbe, ChainSeen


class Status:
    def __init__(self, settings: Settings, db: Database, probe: ChainProbe | None = None):
        self.settings = settings
        self.db = db
        self.probe = probe

    def chain(self) -> ChainSeen | None:
        """The chain's node as last seen (answers within about a second, whatever the node does)."""
        return self.probe.seen() if self.probe is not None else None

    def anchoring(self, recent: int = 10, *, chain: ChainSeen | None = None) -> schemas.StatusView:
        """``chain``: what the node said lately, if the caller has asked (``chain``)."""
        with self.db.read() as s:
            pending = s.scalar(select(func.count()).select_from(OutboxEntry).where(OutboxEntry.batch_id.is_(None))) or 0
            oldest = s.scalar(select(func.min(OutboxEntry.enqueued_at)).where(OutboxEntry.batch_id.is_(None)))
            anchored = sum(n for n, _ in confirmed_records(s))
            total = s.scalar(select(func.count()).select_from(Instrument)) or 0
            deployment = active_deployment(s)
            batches = s.scalars(select(AnchorBatch).order_by(AnchorBatch.id.desc()).limit(recent)).all()
            records = records_of_batches(s, [b.id for b in batches])
            return schemas.StatusView(
                pending_records=pending,
                oldest_pending_age_s=(datetime.now(UTC) - oldest).total_seconds() if oldest else None,
                anchored_records=int(anchored or 0),
                instruments=total,
                chain_id=deployment.chain_id if deployment else None,
                contract=deployment.contract_address if deployment else None,
                confirmations_required=self.settings.chain.confirmations,
                holds=[schemas.HoldView(kind=h.kind, reason=h.reason, since=h.since) for h in open_holds(s)],
                failed_batches=s.scalar(
                    select(func.count()).select_from(AnchorBatch).where(AnchorBatch.state == BatchState.FAILED)
                )
                or 0,  # fmt: skip
                chain_available=chain.ok if chain is not None else None,
                chain_block=chain.block if chain is not None else None,
                recent_batches=[
                    schemas.BatchView(
                        chain_batch_id=b.chain_batch_id,
                        state=b.state,
                        records=records.get(b.id, 0),
                        tokens=b.token_count,
                        tx_hash=b.tx_hash,
                        block_number=b.block_number,
                        gas_used=b.gas_used,
                        created_at=b.created_at,
                        confirmed_at=b.confirmed_at,
                        final=b.finalized_at is not None,
                        error=b.error,
                    )  # fmt: skip
                    for b in batches
                ],
            )

    def migration(self, recent: int = 10) -> schemas.MigrationView:
        """Stages of the bulk migration and the latest reconciliations (read-only)."""
        from migration_tools.stages import count_candidates, stage_status

        stages = [schemas.StageView(**vars(st)) for st in stage_status(self.db)]
        with self.db.read() as s:
            legacy = s.scalar(select(func.count()).select_from(Instrument).where(Instrument.source == "legacy")) or 0
            unmigrated = count_candidates(s)
            runs = s.execute(
                select(Reconciliation, MigrationStage.name)
                .outerjoin(MigrationStage, MigrationStage.id == Reconciliation.stage_id)
                .order_by(Reconciliation.id.desc())
                .limit(recent)
            ).all()
            reconciliations = [
                schemas.ReconciliationView(
                    started_at=r.started_at,
                    finished_at=r.finished_at,
                    actor=r.actor,
                    stage=name,
                    clean=r.clean,
                    counts=(r.summary or {}).get("counts", {}),
                    discrepancies=(r.summary or {}).get("kinds", {}),
                )  # fmt: skip
                for r, name in runs
            ]
        return schemas.MigrationView(
            legacy_records=legacy, legacy_unmigrated=unmigrated, stages=stages, reconciliations=reconciliations
        )
