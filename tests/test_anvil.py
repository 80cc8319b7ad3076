"""The managed anvil node: the CLI, state that survives a clean restart (receipts included), and
a crash that loses at most the last few seconds."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from sqlalchemy import select

from hybrid_store.anchoring import Anchorer
from hybrid_store.chain.anvil import ManagedAnvil
from hybrid_store.chain.connect import open_chain
from hybrid_store.db.engine import Database
from hybrid_store.db.models import AnchorBatch
from hybrid_store.deployment import attach
from hybrid_store.filing import record_instruments
from hybrid_store.intake import validate
from hybrid_store.proofs import export_bundle
from hybrid_store.verifier.verdicts import verify_document
from tests.conftest import NOW, deed, trust_of
from tests.processes import landreg

pytestmark = pytest.mark.anvil


def test_chain_start_status_stop(landreg_env):
    started = landreg(landreg_env, "chain", "start")
    try:
        assert started.returncode == 0, started.stderr
        assert "anvil running" in started.stdout and "DeedRegistry at 0x" in started.stdout
        status = landreg(landreg_env, "chain", "status")
        assert status.returncode == 0 and "0 batches anchored" in status.stdout
        again = landreg(landreg_env, "chain", "start")  # idempotent: finds the running node and contract
        assert again.stdout.split("DeedRegistry at ")[1] == started.stdout.split("DeedRegistry at ")[1]
    finally:
        stopped = landreg(landreg_env, "chain", "stop")
    assert "state is saved" in stopped.stdout
    down = landreg(landreg_env, "chain", "status")
    assert down.returncode == 1 and "stopped" in down.stdout


def anchor_some(db, chain, dep, lot: str):
    with db.write() as s:
        made = record_instruments(s, [validate(deed(parcels=[{"municipality_code": "0223", "block": "1", "lot": lot}]),
                                               now=NOW)], now=NOW)  # fmt: skip
    Anchorer(db, chain, dep).drain()
    return made[0]


def test_chain_and_receipts_survive_a_clean_restart(anvil, anvil_settings):
    db = Database(anvil_settings.db_url)
    db.migrate()
    chain = open_chain(anvil_settings)
    dep = attach(db, chain)
    made = anchor_some(db, chain, dep, "1")
    with db.read() as s:
        bundle = export_bundle(s, made.instrument_number).to_json()
    tx = bundle["anchor"]["txHash"]
    genesis = chain.genesis_hash()

    for _ in range(4):  # anvil adds a genesis block at each start; only the chain's own must stay block 0
        anvil.stop()
        assert anvil.state_file.exists()
        anvil.start()
        chain = open_chain(anvil_settings)
        assert chain.genesis_hash() == genesis
    assert attach(db, chain).id == dep.id  # same genesis, same contract
    assert chain.receipt(tx).status == 1
    verdict = verify_document(bundle, chain=chain, trust=trust_of(db))
    assert verdict.valid and verdict.checked_on_chain, verdict.reason
    anchor_some(db, chain, dep, "2")  # and anchoring carries on
    assert chain.batch_count() == 2


def test_a_killed_node_loses_at_most_its_dump_interval(anvil, anvil_settings):
    db = Database(anvil_settings.db_url)
    db.migrate()
    chain = open_chain(anvil_settings)
    dep = attach(db, chain)
    anchor_some(db, chain, dep, "1")
    time.sleep(anvil_settings.chain.anvil_state_interval_s * 2.5)  # a dump has happened since
    anchor_some(db, chain, dep, "2")
    os.kill(anvil.pid(), signal.SIGKILL)  # no chance to dump on exit
    time.sleep(0.3)
    ManagedAnvil(anvil_settings).start()
    chain = open_chain(anvil_settings)
    attach(db, chain)  # genesis and contract survived
    survived = chain.batch_count()
    assert survived >= 1  # the batch older than the dump interval is there
    with db.read() as s:
        stored = {b.chain_batch_id: (b.root, b.tx_hash) for b in s.scalars(select(AnchorBatch))}
    # a batch lost with the node's last seconds was not final (anvil's finality depth): the worker
    # sends its very transaction again, as after a reorganisation; nothing is anchored twice
    Anchorer(db, chain, dep).drain()
    assert chain.batch_count() == 2
    with db.read() as s:
        after = {b.chain_batch_id: (b.root, b.tx_hash, b.state) for b in s.scalars(select(AnchorBatch))}
    assert after == {k: (*v, "confirmed") for k, v in stored.items()}
    assert [chain.get_batch(k).root for k in (0, 1)] == [stored[0][0], stored[1][0]]


# --- a node landreg did not start, on the registry's port -------------------------------------------------
REGISTRAR_0 = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"  # anvil's first development account


@pytest.fixture
def foreign_node(anvil_settings):
    """A fresh anvil node on the registry's port that landreg did not start (another tool's chain)."""
    from hybrid_store.chain.connect import http_web3
    from tests.processes import wait_until

    port = str(anvil_settings.chain.anvil_port)
    binary = ManagedAnvil(anvil_settings).binary()

    def start() -> subprocess.Popen:
        proc = subprocess.Popen([str(binary), "--port", port], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        w3 = http_web3(f"http://127.0.0.1:{port}", timeout_s=2)
        assert wait_until(lambda: _answers(w3), 30, 0.1)
        return proc

    procs: list[subprocess.Popen] = []
    yield lambda: procs.append(start()) or http_web3(f"http://127.0.0.1:{port}")
    for proc in procs:
        proc.terminate()
        proc.wait(30)


def _answers(w3) -> bool:
    try:
        return w3.eth.block_number >= 0
    except Exception:
        return False


def test_chain_start_refuses_a_node_it_did_not_start_unless_told_to_attach(landreg_env, foreign_node):
    w3 = foreign_node()
    refused = landreg(landreg_env, "chain", "start")
    assert refused.returncode != 0 and "did not start" in refused.stderr and "--attach" in refused.stderr
    assert w3.eth.get_transaction_count(REGISTRAR_0) == 0  # nothing deployed there
    worker = landreg(landreg_env, "worker", "--drain")  # every command that starts the node refuses it too
    assert worker.returncode != 0 and "--attach" in worker.stderr
    assert w3.eth.get_transaction_count(REGISTRAR_0) == 0
    attached = landreg(landreg_env, "chain", "start", "--attach")
    assert attached.returncode == 0, attached.stderr
    assert "attached to the node" in attached.stdout and "DeedRegistry at 0x" in attached.stdout
    assert w3.eth.get_transaction_count(REGISTRAR_0) == 1  # a registry with no chain yet deploys there, on purpose
    landreg(landreg_env, "worker", "--drain", check=True)  # later commands take the attached node


def test_chain_start_never_attaches_to_another_chain_than_the_registry_s(landreg_env, foreign_node):
    landreg(landreg_env, "chain", "start", check=True)  # the registry's own chain, its contract deployed
    landreg(landreg_env, "chain", "stop", check=True)
    w3 = foreign_node()  # another chain on the port: its own genesis
    for args in (("chain", "start"), ("chain", "start", "--attach")):
        refused = landreg(landreg_env, *args)
        assert refused.returncode != 0, refused.stdout
        assert "did not start" in refused.stderr or "another chain" in refused.stderr
    assert "another chain" in refused.stderr and "genesis" in refused.stderr
    assert w3.eth.get_transaction_count(REGISTRAR_0) == 0  # nothing deployed onto it
