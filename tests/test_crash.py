"""A real SIGKILL of the anchoring worker at each step, against a real anvil node, then a restart:
nothing is lost and nothing is anchored twice."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from hybrid_store.chain.connect import open_chain
from hybrid_store.db.engine import Database
from hybrid_store.db.models import AnchorBatch, BatchRecord, BatchState, OutboxEntry
from hybrid_store.deployment import attach
from hybrid_store.filing import record_instruments
from hybrid_store.intake import validate
from hybrid_store.proofs import export_bundle
from hybrid_store.verifier.verdicts import verify_document
from tests.conftest import NOW, deed, trust_of
from tests.processes import landreg

pytestmark = [pytest.mark.anvil, pytest.mark.slow]

CRASHPOINTS = ["anchor:building", "anchor:signed", "anchor:sent", "anchor:mined"]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request, anvil, anvil_settings, landreg_env):
    """A deed database with pending filings, a deployed contract on anvil, and the env to reach both."""
    env = dict(landreg_env)
    if request.param == "postgres":
        db = request.getfixturevalue("pg_db")
        env["DATABASE_URL"] = db.url
        env["LANDREG_SERVICE__ALLOW_PRIVILEGED_DB_ROLE"] = "true"  # the test server's superuser, on one machine
    else:
        db = Database(anvil_settings.db_url)
        db.migrate()
    chain = open_chain(anvil_settings)
    attach(db, chain)
    items = [validate(deed(parcels=[{"municipality_code": "0223", "block": "4", "lot": str(i % 5 + 1)}]), now=NOW)
             for i in range(12)]  # fmt: skip
    with db.write() as s:
        made = record_instruments(s, items, now=NOW)
    return db, chain, env, made


@pytest.mark.parametrize("crash", CRASHPOINTS)
def test_kill_at_each_step_then_restart(store, crash):
    db, chain, env, made = store
    env["LANDREG_ANCHORING__BATCH_MAX_RECORDS"] = "5"
    killed = landreg(env, "worker", "--drain", crash=crash)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    with db.read() as s:
        in_flight = s.execute(select(AnchorBatch.tx_hash, AnchorBatch.state)).all()
    if crash == "anchor:building":
        assert in_flight == []  # the transaction died with the process: nothing half-written
    else:
        assert len(in_flight) == 1  # exactly the batch in hand, with its signed transaction stored

    done = landreg(env, "worker", "--drain")
    assert done.returncode == 0, done.stderr
    assert "anchored" in done.stdout

    with db.read() as s:
        live = s.scalars(
            select(AnchorBatch).where(AnchorBatch.state != BatchState.FAILED).order_by(AnchorBatch.id)
        ).all()
        assert all(b.state == BatchState.CONFIRMED for b in live)
        assert [b.record_count for b in live] == [6, 6, 3]  # the records and the title state's marker
        assert s.scalar(select(func.count()).select_from(OutboxEntry).where(OutboxEntry.batch_id.is_(None))) == 0
        per_record = s.execute(
            select(BatchRecord.instrument_id, func.count()).group_by(BatchRecord.instrument_id)
        ).all()
        assert len(per_record) == 12 and all(n == 1 for _, n in per_record)
        if in_flight:  # the transaction signed before the crash is the one that anchored the batch
            assert live[0].tx_hash == in_flight[0][0]
        roots = [b.root for b in live]
    assert chain.batch_count() == 3  # not 4: nothing anchored twice
    assert [chain.get_batch(i).root for i in range(3)] == roots
    trust = trust_of(db, Path(env["LANDREG_HOME"]))  # the worker published it at deployment
    with db.read() as s:
        for r in made[::5]:
            verdict = verify_document(export_bundle(s, r.instrument_number).to_json(), chain=chain, trust=trust)
            assert verdict.valid, verdict.reason
