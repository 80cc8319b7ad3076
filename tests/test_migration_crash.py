"""Real faults during a staged migration, against a real anvil node.

* ``landreg migrate run`` killed with SIGKILL at a point hypothesis chooses (an exact step of an
  exact batch, or simply after a random delay), then ``landreg migrate resume``: the end state is
  identical to an uninterrupted run's, field for field, on the database and on the chain.
* The anvil node killed with SIGKILL mid-migration and restarted from its periodic state dump:
  reconciliation reports the lost batches as missing on chain, ``--heal`` re-queues them, and the
  registry ends clean with every record anchored exactly once.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from hybrid_store.anchoring import Anchorer
from hybrid_store.chain.anvil import ManagedAnvil
from hybrid_store.chain.connect import open_chain
from hybrid_store.db.engine import Database
from hybrid_store.db.models import (
    AnchorBatch,
    BatchRecord,
    BatchState,
    Commitment,
    Instrument,
    MigrationStage,
    OutboxEntry,
    Parcel,
)
from hybrid_store.deployment import attach
from hybrid_store.settings import Settings
from tests.conftest import PASSPHRASE_ENV, free_port
from tests.processes import landreg as cli
from tests.processes import spawn

pytestmark = [pytest.mark.anvil, pytest.mark.slow]

BOOK, BATCH = 480, 60  # 8 batches
BATCHES = BOOK // BATCH


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def env_for(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LANDREG_") and k != "DATABASE_URL"}
    env.update({"LANDREG_HOME": str(home), "LANDREG_CHAIN__ANVIL_PORT": str(free_port()),
                "LANDREG_CHAIN__ANVIL_STATE_INTERVAL_S": "1", **PASSPHRASE_ENV})  # fmt: skip
    return env


def settings_for(env: dict[str, str]) -> Settings:
    return Settings(
        home=Path(env["LANDREG_HOME"]),
        chain={"backend": "anvil", "anvil_port": int(env["LANDREG_CHAIN__ANVIL_PORT"]), "anvil_state_interval_s": 1},
    )


def end_state(env: dict[str, str]) -> dict:
    """Everything a migration leaves behind that must not depend on when it was interrupted
    (transaction hashes, fees and timestamps may; roots, memberships and tokens may not)."""
    cfg = settings_for(env)
    db = Database(cfg.db_url)
    chain = open_chain(cfg)
    attach(db, chain, deploy_if_missing=False)
    try:
        with db.read() as s:
            batches = [tuple(r) for r in s.execute(
                select(AnchorBatch.chain_batch_id, AnchorBatch.state, AnchorBatch.root,
                       AnchorBatch.record_count, AnchorBatch.first_token_id, AnchorBatch.token_count,
                       AnchorBatch.parcel_root, AnchorBatch.source)
                .order_by(AnchorBatch.chain_batch_id, AnchorBatch.id))]  # fmt: skip
            members = [tuple(r) for r in s.execute(
                select(AnchorBatch.chain_batch_id, AnchorBatch.state, Instrument.instrument_number,
                       BatchRecord.tree_index)
                .join(BatchRecord, BatchRecord.batch_id == AnchorBatch.id)
                .join(Instrument, Instrument.id == BatchRecord.instrument_id)
                .order_by(AnchorBatch.chain_batch_id, BatchRecord.tree_index))]  # fmt: skip
            commitments = [(n, c.hex(), json.dumps(p)) for n, c, p in s.execute(
                select(Instrument.instrument_number, Commitment.commitment, Commitment.prev)
                .join(Commitment, Commitment.instrument_id == Instrument.id).order_by(Instrument.instrument_number))]  # fmt: skip
            tokens = [tuple(r) for r in s.execute(
                select(Parcel.parcel_key, Parcel.token_id).order_by(Parcel.parcel_key))]  # fmt: skip
            stage = tuple(s.execute(select(MigrationStage.state, MigrationStage.records_done,
                                           MigrationStage.batches_done)).one())  # fmt: skip
            queued = s.scalar(select(func.count()).select_from(OutboxEntry).where(OutboxEntry.batch_id.is_(None)))
        on_chain = [chain.get_batch(i).root.hex() for i in range(chain.batch_count())]
        files = sorted(
            (p.name, hashlib.sha256(p.read_bytes()).hexdigest()) for p in cfg.manifests_dir.glob("*.json")
        )  # fmt: skip
        return {"batches": [(b[0], b[1], b[2].hex(), *b[3:6], b[6].hex() if b[6] else None, b[7]) for b in batches],
                "members": members, "commitments": commitments, "tokens": tokens, "stage": stage, "queued": queued,
                "chain": on_chain, "next_token": chain.next_token_id(), "manifests": files}  # fmt: skip
    finally:
        db.dispose()


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    """A home holding an imported legacy book, a deployed contract (in anvil's saved state) and a
    planned stage; plus the end state of an uninterrupted run from it."""
    base = tmp_path_factory.mktemp("migration-crash")
    home = base / "golden"
    env = env_for(home)
    ok(cli(env, "legacy", "import", "synthetic", "--instruments", str(BOOK), "--seed", "9"))
    ok(cli(env, "chain", "start"))
    ok(cli(env, "migrate", "plan", "all", "--batch-size", str(BATCH)))
    # the plan is audit-logged, and an audit entry that waits a minute is anchored by the next worker
    # step in a batch of its own, wherever the stage then is: anchored now, so that no run below
    # depends on how long after the plan it starts
    ok(cli(env, "worker", "--drain"))
    ok(cli(env, "chain", "stop"))
    reference_env = copy_home(home, base / "reference")
    ok(cli(reference_env, "chain", "start"))
    try:
        ok(cli(reference_env, "migrate", "run", "all"))
        reference = end_state(reference_env)
    finally:
        cli(reference_env, "chain", "stop")
    assert len(reference["chain"]) == BATCHES + 1 and reference["stage"] == ("anchored", BOOK, BATCHES)
    return base, home, reference


def copy_home(home: Path, to: Path) -> dict[str, str]:
    shutil.copytree(home, to)
    (to / "chain" / "anvil.pid").unlink(missing_ok=True)
    return env_for(to)


Kill = st.one_of(
    st.tuples(st.sampled_from(["migrate:building", "migrate:stored", "migrate:sent"]), st.integers(1, BATCHES)),
    st.tuples(st.just("after"), st.floats(0.2, 4.0)),  # seconds after start: wherever the run happens to be
)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kill=Kill, workers=st.sampled_from([1, 2]))
def test_sigkill_migrate_run_anywhere_then_resume_gives_the_same_end_state(golden, kill, workers):
    base, home, reference = golden
    where, when = kill
    example = base / f"ex-{time.monotonic_ns()}"
    env = copy_home(home, example)
    ok(cli(env, "chain", "start"))
    try:
        if where == "after":
            proc = spawn(env, "migrate", "run", "all", "--workers", str(workers), stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)  # fmt: skip
            time.sleep(when)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        else:
            killed = cli(env, "migrate", "run", "all", "--workers", str(workers), crash=f"{where}@{when}")
            assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
        ok(cli(env, "migrate", "resume", "all", "--workers", str(workers)))
        assert end_state(env) == reference
        ok(cli(env, "reconcile", "--stage", "all", "--workers", "1"))
    finally:
        cli(env, "chain", "stop")
        shutil.rmtree(example, ignore_errors=True)


def test_node_killed_mid_migration_lost_batches_are_reported_and_healed(golden, tmp_path):
    """Final batches lost with the node's state (finality depth 1 makes every mined batch final at
    once): evidence of a lost chain, which only reconciliation may explain. A batch not yet final
    that a node loses is sent again by the worker, as after a reorganisation (tests/test_anvil.py)."""
    _base, home, reference = golden
    first = len(reference["chain"]) - BATCHES  # chain batches before the stage's (the plan's audit entry)
    end = first + 5  # the chain's batch count once the stage's first five batches are anchored
    env = dict(copy_home(home, tmp_path / "home"), LANDREG_CHAIN__FINALITY_DEPTH="1")
    cfg = settings_for(env)
    node = ManagedAnvil(cfg)
    node.start()
    db = Database(cfg.db_url)
    try:
        from migration_tools.stages import StageRunner

        chain = open_chain(cfg)
        dep = attach(db, chain, deploy_if_missing=False)
        dumps = node.state_file

        def progress(done: int, total: int) -> None:
            if done == 3 * BATCH:  # let a state dump cover the first three batches
                seen = dumps.stat().st_mtime_ns
                while dumps.stat().st_mtime_ns == seen:
                    time.sleep(0.05)
            if done == 5 * BATCH:  # two batches later, before the next dump: the node dies
                os.kill(node.pid(), signal.SIGKILL)

        anchorer = Anchorer(db, chain, dep, manifest_dir=cfg.manifests_dir, finality_depth=1)
        runner = StageRunner(db, chain, dep, workers=1, progress=progress, anchorer=anchorer)
        with pytest.raises(Exception):  # noqa: B017 - whatever the RPC layer raises for a dead node
            runner.run("all")
        node.start()  # from its last dump
        lost_at = chain.batch_count()
        assert first + 3 <= lost_at < end

        found = cli(env, "reconcile", "--json", str(tmp_path / "r.json"), "--workers", "2")
        assert found.returncode == 1, found.stdout + found.stderr
        report = json.loads((tmp_path / "r.json").read_text())
        assert report["kinds"].get("missing_on_chain") == end - lost_at, report["discrepancies"]
        assert set(report["kinds"]) <= {"missing_on_chain", "pending"}  # never tampering, never verified
        missing = [d["batch_id"] for d in report["discrepancies"] if d["kind"] == "missing_on_chain"]
        assert missing == list(range(lost_at, end))

        refused = cli(env, "migrate", "resume", "all")
        assert refused.returncode != 0 and "reconcile" in refused.stderr + refused.stdout
        healed = cli(env, "reconcile", "--heal", "--workers", "1")  # reports what it found, then heals
        assert healed.returncode == 1 and f"healed: {(end - lost_at) * BATCH} records re-queued" in healed.stdout
        ok(cli(env, "migrate", "resume", "all"))
        ok(cli(env, "worker", "--drain"))
        final = ok(cli(env, "reconcile", "--json", str(tmp_path / "final.json"), "--workers", "2"))
        result = json.loads((tmp_path / "final.json").read_text())
        assert result["clean"] and result["kinds"] == {} and result["counts"]["verified"] == BOOK, final.stdout
        state = end_state(env)
        live = sorted(m[2] for m in state["members"] if m[1] != BatchState.FAILED)
        assert live == sorted(m[2] for m in reference["members"])  # every record, once
        assert state["commitments"] == reference["commitments"]  # healing re-anchors, never re-commits
        lost = [b for b in state["batches"] if b[1] == BatchState.FAILED]
        assert [b[0] for b in lost] == list(range(lost_at, end))  # kept in the history as failed
    finally:
        db.dispose()
        node.stop()
