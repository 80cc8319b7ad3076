"""Staged migration on SQLite and PostgreSQL with an in-process chain: plans, gates, sign-off,
batches and proofs, filings during a migration, rollback."""

from __future__ import annotations

import json
import re
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from hybrid_store import manifests
from hybrid_store.anchoring import Anchorer
from hybrid_store.db.models import (
    AnchorBatch,
    BatchRecord,
    BatchState,
    Commitment,
    Instrument,
    MigrationStage,
    TxAttempt,
)
from hybrid_store.filing import record_instruments
from hybrid_store.intake import validate
from hybrid_store.proofs import export_bundle
from hybrid_store.verifier.verdicts import verify_document
from migration_tools.legacy.importer import import_records, synthetic_source
from migration_tools.reconciliation.run import reconcile
from migration_tools.stages import Selector, StageError, StageRunner, plan_stage, rollback_stage, sign_off, stage_status
from tests.conftest import deed, trust_of

BOOK, SEED = 600, 12


@pytest.fixture
def legacy(deployed, tmp_path):
    """A deed database holding a legacy book (no commitments yet), and a deployed contract."""
    db, chain, dep = deployed
    report = import_records(db, synthetic_source(BOOK, SEED), name="book", quarantine=tmp_path / "q.csv")
    assert report.loaded == BOOK
    return db, chain, dep, tmp_path / "manifests"


def runner(legacy, **kw) -> StageRunner:
    db, chain, dep, manifest_dir = legacy
    return StageRunner(db, chain, dep, manifest_dir=manifest_dir, workers=kw.pop("workers", 1), **kw)


def top_municipalities(db, n: int = 2) -> tuple[str, ...]:
    from hybrid_store.db.models import InstrumentParcel, Parcel

    with db.read() as s:
        rows = s.execute(
            select(Parcel.municipality_code, func.count(InstrumentParcel.instrument_id))
            .join(InstrumentParcel, InstrumentParcel.parcel_id == Parcel.id)
            .group_by(Parcel.municipality_code).order_by(func.count(InstrumentParcel.instrument_id).desc()).limit(n)
        ).all()  # fmt: skip
    return tuple(code for code, _ in rows)


def live_placements(db) -> dict[int, int]:
    """instrument id -> number of live (not failed, not superseded) batches holding it."""
    with db.read() as s:
        rows = s.execute(
            select(BatchRecord.instrument_id, func.count())
            .join(AnchorBatch, AnchorBatch.id == BatchRecord.batch_id)
            .where(AnchorBatch.state != BatchState.FAILED, AnchorBatch.superseded_at.is_(None))
            .group_by(BatchRecord.instrument_id)
        ).all()
    return dict(rows)


def test_plan_counts_skips_and_gates(legacy):
    db, chain, _dep, _ = legacy
    pilot = Selector(municipalities=top_municipalities(db))
    report = plan_stage(db, chain, "pilot", pilot, batch_size=50, actor="it")
    assert 0 < report.to_migrate == report.matching < BOOK
    assert report.batches == -(-report.to_migrate // 50) and report.gate == "ready"
    assert report.gas_per_batch > 100_000 and report.gas_total == report.gas_per_batch * report.batches
    rest = plan_stage(db, chain, "rest", Selector(), batch_size=100, actor="it")
    assert rest.to_migrate == BOOK and "waits for 'pilot'" in rest.gate
    with pytest.raises(StageError, match="waits for 'pilot'"):
        runner(legacy).run("rest")
    dry = plan_stage(
        db, chain, "other", Selector(date_to=__import__("datetime").date(1995, 1, 1)), actor="it", save=False
    )
    assert dry.to_migrate > 0
    assert [s.name for s in stage_status(db)] == ["pilot", "rest"]  # a dry run records nothing


def test_pilot_then_rest_each_reconciled_and_signed_off(legacy):
    db, chain, dep, manifest_dir = legacy
    pilot = Selector(municipalities=top_municipalities(db))
    plan_stage(db, chain, "pilot", pilot, batch_size=40, actor="it")
    plan_stage(db, chain, "rest", Selector(), batch_size=100, actor="it")
    report = runner(legacy).run("pilot")
    assert report.batches == -(-report.records // 40) and report.gas_used > 0
    with pytest.raises(StageError, match="no clean reconciliation"):
        sign_off(db, "pilot", "Jo IT")
    assert reconcile(db, chain, manifest_dir=manifest_dir, stage="pilot", workers=1).clean
    sign_off(db, "pilot", "Jo IT")
    rest = runner(legacy).run("rest")
    assert report.records + rest.records == BOOK
    result = reconcile(db, chain, manifest_dir=manifest_dir, workers=1)
    assert result.clean and result.counts["verified"] == BOOK, result.kinds()
    with db.read() as s:
        stages = {st.name: st for st in s.scalars(select(MigrationStage))}
        assert stages["pilot"].signed_off_by == "Jo IT" and stages["rest"].state == "anchored"
        assert s.scalar(select(func.count()).select_from(Commitment)) == BOOK
    assert set(live_placements(db).values()) == {1} and len(live_placements(db)) == BOOK
    with db.read() as s:  # every record's bundle verifies against the chain; manifests rebuild the roots
        numbers = s.scalars(select(Instrument.instrument_number).order_by(Instrument.id).limit(600)).all()
        for number in numbers[::97]:
            verdict = verify_document(export_bundle(s, number).to_json(), chain=chain, trust=trust_of(db))
            assert verdict.valid, verdict.reason
        for b in s.scalars(select(AnchorBatch)):
            assert manifests.read(manifest_dir, b.root).batch_id == b.chain_batch_id
    # auditors follow all of it, read-only, over the API
    view = migration_over_http(legacy)
    assert [(st["name"], st["state"], st["records_done"], st["remaining"]) for st in view["stages"]] == [
        ("pilot", "signed_off", report.records, 0), ("rest", "anchored", rest.records, 0),
    ]  # fmt: skip
    assert view["stages"][0]["signed_off_by"] == "Jo IT" and view["stages"][1]["reconciled_clean"] is True
    assert view["legacy_records"] == BOOK and view["legacy_unmigrated"] == 0
    latest, pilot_run = view["reconciliations"][0], view["reconciliations"][1]
    assert latest["clean"] and latest["stage"] is None and latest["counts"]["verified"] == BOOK
    assert pilot_run["stage"] == "pilot" and pilot_run["counts"]["verified"] == report.records
    page = view["desk_status_page"]  # and the web desk's status page shows the same, once
    assert page.count('id="stages"') == page.count('id="reconciliations"') == 1
    assert "<title>Anchoring status" in page and "Legacy migration" not in page.split("</title>")[0]
    stages_table = page.split('id="stages"')[1].split("</table>")[0]
    assert "pilot" in stages_table and "signed off" in stages_table and "Jo IT" in stages_table
    assert f"{rest.records:,} in {rest.batches} batches" in stages_table
    runs_table = page.split('id="reconciliations"')[1].split("</table>")[0]
    assert runs_table.count(">clean<") == 2 and f"{BOOK:,}" in runs_table


def migration_over_http(legacy) -> dict:
    from fastapi.testclient import TestClient

    from hybrid_store.settings import Settings
    from registry_service.app import create_app
    from registry_service.auth import Actor, Role, create_key

    db, chain, _dep, manifest_dir = legacy
    cfg = Settings(home=manifest_dir.parent / "home", chain={"backend": "eth-tester"}, service={"key_cache_s": 0})
    cfg.ensure_home()
    key = create_key(db, role=Role.AUDITOR, name="county auditor", by=Actor("test-suite", Role.ADMIN))[0]
    client = TestClient(create_app(cfg, db=db, chain_factory=lambda: chain, run_worker=False))
    r = client.get("/api/v1/migration", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200, r.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/desk/login").text).group(1)
    client.post("/desk/login", data={"api_key": key, "csrf": csrf, "next": "/desk/status"})
    page = client.get("/desk/status")
    assert page.status_code == 200 and "Legacy migration" in page.text, page.text[:500]
    return {**r.json(), "desk_status_page": page.text}


def test_history_links_follow_recording_order_across_stages(legacy):
    db, chain, _dep, _ = legacy
    plan_stage(db, chain, "all", Selector(), batch_size=250, actor="it")
    runner(legacy).run("all")
    with db.read() as s:
        rows = s.execute(
            select(Instrument.instrument_number, Instrument.recorded_at, Commitment.commitment, Commitment.prev)
            .join(Commitment, Commitment.instrument_id == Instrument.id).order_by(Instrument.recorded_at, Instrument.id)
        ).all()  # fmt: skip
    head: dict[str, str] = {}
    for number, _, value, prev in rows:
        for key, prev_number, prev_commitment in prev:
            assert (prev_number, prev_commitment) == (head.get(key, (None, None)) if key in head else (None, None))
        for key, _, _ in prev:
            head[key] = (number, "0x" + value.hex())


def test_filings_during_a_migration_are_anchored_once_by_exactly_one_path(legacy):
    db, chain, _dep, manifest_dir = legacy
    plan_stage(db, chain, "all", Selector(), batch_size=60, actor="it")
    with db.read() as s:  # a parcel with unmigrated history that a clerk files against meanwhile
        busy = s.execute(
            select(Instrument.id).order_by(Instrument.recorded_at.desc()).limit(1)
        ).scalar()  # fmt: skip
        inst = s.get(Instrument, busy)
        parcel = inst.parcel_links[0].parcel
    filed = []
    stop = threading.Event()

    def clerk() -> None:
        i = 0
        while not stop.is_set() and i < 15:
            target = {"municipality_code": parcel.municipality_code, "block": parcel.block, "lot": parcel.lot,
                      "qualifier": parcel.qualifier}  # fmt: skip
            other = {"municipality_code": "0201", "block": "999", "lot": str(i + 1)}
            with db.write() as s:
                filed.extend(record_instruments(s, [validate(deed(parcels=[target if i % 2 else other]))]))
            i += 1

    t = threading.Thread(target=clerk)
    t.start()
    report = runner(legacy, outbox_max_age_s=0.0).run("all")
    stop.set()
    t.join()
    Anchorer(db, chain, _dep).drain()  # what was filed after the last migration batch
    placements = live_placements(db)
    with db.read() as s:
        total = s.scalar(select(func.count()).select_from(Instrument))
    assert total == BOOK + len(filed)
    assert len(placements) == total and set(placements.values()) == {1}  # every record, exactly once
    with db.read() as s:
        caught_up = s.scalar(select(func.count()).select_from(Instrument).where(
            Instrument.source == "legacy", Instrument.id.in_(select(BatchRecord.instrument_id).join(
                AnchorBatch, AnchorBatch.id == BatchRecord.batch_id).where(AnchorBatch.source == "outbox"))))  # fmt: skip
    assert report.records + caught_up == BOOK  # legacy records: the stage's, or a filing's catch-up
    assert reconcile(db, chain, manifest_dir=manifest_dir, workers=1).clean


def test_rollback_revokes_supersedes_and_reanchors(legacy):
    db, chain, dep, manifest_dir = legacy
    plan_stage(db, chain, "all", Selector(), batch_size=300, actor="it")
    runner(legacy).run("all")
    with db.read() as s:
        number = s.scalar(select(Instrument.instrument_number).order_by(Instrument.id).limit(1))
        old_bundle = export_bundle(s, number).to_json()
        first_batch = old_bundle["anchor"]["batchId"]
    report = rollback_stage(db, chain, dep, "all", manifest_dir=manifest_dir, batch_ids=[first_batch])
    assert report.batches == [first_batch] and report.records == 300
    old = verify_document(old_bundle, chain=chain, trust=trust_of(db))
    assert not old.valid and "revoked" in old.reason  # the superseded anchoring no longer stands
    with db.read() as s:
        new_bundle = export_bundle(s, number).to_json()
        batches = s.scalars(select(AnchorBatch).order_by(AnchorBatch.id)).all()
    assert new_bundle["anchor"]["batchId"] == report.replacements[0] != first_batch
    assert verify_document(new_bundle, chain=chain, trust=trust_of(db)).valid
    superseded = [b for b in batches if b.superseded_at is not None]
    assert [b.chain_batch_id for b in superseded] == [first_batch]  # kept in the history, not deleted
    replacement = next(b for b in batches if b.supersedes_batch_id == superseded[0].id)
    assert replacement.record_count == 302  # the records, the marker naming what it supersedes, the title state
    with db.read() as s:  # the revocation went through the transaction manager: stored, then mined
        [revocation] = s.scalars(select(TxAttempt).where(TxAttempt.revokes_batch_id == superseded[0].id)).all()
    assert revocation.batch_id is None and chain.receipt(revocation.tx_hash).status == 1
    assert set(live_placements(db).values()) == {1}
    result = reconcile(db, chain, manifest_dir=manifest_dir, workers=1)
    assert result.clean and result.counts["superseded_batches"] == 1, result.kinds()
    # and without manifests the replacement still rebuilds its root (the marker is derivable)
    assert reconcile(db, chain, manifest_dir=Path("/nonexistent"), workers=1).clean
    # the replacement rolled back in turn: each rolled-back batch is proven by the one that replaced it
    again = rollback_stage(db, chain, dep, "all", manifest_dir=manifest_dir, batch_ids=report.replacements)
    for manifests_at in (manifest_dir, Path("/nonexistent")):
        twice = reconcile(db, chain, manifest_dir=manifests_at, workers=1)
        assert twice.clean and twice.counts["superseded_batches"] == 2, twice.discrepancies
        assert twice.counts["verified"] == BOOK
    assert again.records == 300
    with db.read() as s:
        latest = s.scalar(select(AnchorBatch).where(AnchorBatch.chain_batch_id == again.replacements[0]))

    # a database administrator cannot hide a batch from reconciliation by marking it rolled back...
    other = next(b for b in batches if b.superseded_at is None and b.supersedes_batch_id is None)
    with db.write() as s:
        s.execute(update(AnchorBatch).where(AnchorBatch.id == other.id).values(superseded_at=datetime.now(UTC)))
    for manifests_at in (manifest_dir, None):
        hidden = reconcile(db, chain, manifest_dir=manifests_at, workers=1)
        assert flagged(hidden) == [("tampered_batch", other.chain_batch_id)], hidden.discrepancies
    # ...nor by pointing the re-anchoring batch at it: what the replacement anchored names another root
    with db.write() as s:
        s.execute(update(AnchorBatch).where(AnchorBatch.id == latest.id).values(supersedes_batch_id=other.id))
    for manifests_at in (manifest_dir, None):
        moved = reconcile(db, chain, manifest_dir=manifests_at, workers=1)
        assert flagged(moved) == sorted(
            [("tampered_batch", b) for b in (report.replacements[0], other.chain_batch_id, latest.chain_batch_id)]
        )


def flagged(result) -> list[tuple[str, int | None]]:
    return sorted((d.kind, d.batch_id) for d in result.discrepancies if d.kind != "pending")


@pytest.mark.subprocess
def test_parallel_hashing_gives_the_same_commitments(legacy, tmp_path):
    db, chain, _dep, _ = legacy
    plan_stage(db, chain, "all", Selector(), batch_size=150, actor="it")
    report = runner(legacy, workers=2).run("all")
    assert report.records == BOOK
    with db.read() as s:
        rows = s.execute(
            select(Instrument, Commitment).join(Commitment, Commitment.instrument_id == Instrument.id)
        ).all()
        from hybrid_store.core.commitment import commit
        from hybrid_store.db.records import load_records

        for inst, c in rows[::37]:
            [stored] = load_records(s.connection(), [inst.id])
            assert commit(stored.record, stored.seed, stored.commit_scheme) == c.commitment and c.source == "migration"
            assert c.created_at is not None and c.created_at.tzinfo is not None  # bulk-written timestamps read back
    assert json.loads(json.dumps(stage_status(db)[0].to_json()))["records_done"] == BOOK
