"""Where each stage stands, and an operator's sign-off after a clean reconciliation."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from hybrid_store.db.engine import Database
from hybrid_store.db.models import (
    MigrationStage,
)
from migration_tools.stages.selection import AuditHook, Selector, StageError, count_candidates, gate_of, stage_row

log = logging.getLogger(__name__)


# --- status, sign-off -------------------------------------------------------------------------------
@dataclass(frozen=True)
class StageStatus:
    name: str
    state: str
    selector: str
    batch_size: int
    records_done: int
    batches_done: int
    remaining: int
    reconciled_at: datetime | None
    reconciled_clean: bool | None
    signed_off_by: str | None
    signed_off_at: datetime | None
    gate: str

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("reconciled_at", "signed_off_at"):
            d[k] = d[k].isoformat() if d[k] else None
        return d


def stage_status(db: Database) -> list[StageStatus]:
    with db.read() as s:
        stages = s.scalars(select(MigrationStage).order_by(MigrationStage.id)).all()
        out = []
        for st in stages:
            selector = Selector.from_json(st.selector)
            remaining = 0 if st.state in ("signed_off", "rolled_back") else count_candidates(s, selector)
            out.append(StageStatus(
                st.name, st.state, selector.describe(), st.batch_size, st.records_done, st.batches_done, remaining,
                st.reconciled_at, st.reconciled_clean, st.signed_off_by, st.signed_off_at,
                gate_of(s, st) if st.state in ("planned", "running") else "-",
            ))  # fmt: skip
    return out


def sign_off(db: Database, name: str, actor: str, audit: AuditHook | None = None) -> None:
    """An operator accepts a stage: it must be fully anchored and its last reconciliation clean."""
    with db.write() as s:
        stage = stage_row(s, name)
        if stage.state != "anchored":
            raise StageError(f"stage {name!r} is {stage.state}; only a fully anchored stage can be signed off")
        if (
            not stage.reconciled_clean
            or stage.reconciled_at is None
            or (stage.finished_at and stage.reconciled_at < stage.finished_at)
        ):
            raise StageError(
                f"stage {name!r} has no clean reconciliation since it finished: run `landreg reconcile --stage {name}`"
            )
        stage.state = "signed_off"
        stage.signed_off_by = actor
        stage.signed_off_at = datetime.now(UTC)
        if audit is not None:
            audit(s, "migration.signoff", {"target": f"stage {name}", "operator": actor,
                                           "records": stage.records_done, "batches": stage.batches_done})  # fmt: skip
