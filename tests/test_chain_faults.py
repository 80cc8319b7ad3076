"""Faults of a real chain, caused for real on a real anvil node: a transaction stuck below a risen
base fee, a fee ceiling, and a node that is slow, drops connections or goes away for a while."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest
from sqlalchemy import func, select

from hybrid_store.anchoring import Anchorer
from hybrid_store.batches import open_holds, pending_count
from hybrid_store.chain.connect import open_chain
from hybrid_store.chain.types import SendOutcome
from hybrid_store.db.engine import Database
from hybrid_store.db.models import AnchorBatch, BatchRecord, BatchState, FailureKind, OutboxEntry, TxAttempt
from hybrid_store.deployment import attach
from hybrid_store.filing import record_instruments
from hybrid_store.intake import validate
from hybrid_store.txmgr import GWEI, FeePolicy
from tests.conftest import NOW, deed, filing
from tests.faultproxy import FaultProxy
from tests.processes import Server, landreg, wait_until

pytestmark = [pytest.mark.anvil, pytest.mark.slow]

#: anvil's public development accounts (development only): registrar 0, admin 1, pauser 2
DEV_KEY_0 = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
DEV_ADDRESS_1 = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
DEV_ADDRESS_2 = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"


@pytest.fixture
def node(anvil, anvil_settings):
    db = Database(anvil_settings.db_url)
    db.migrate()
    chain = open_chain(anvil_settings)
    dep = attach(db, chain)
    yield db, chain, dep
    chain.w3.provider.make_request("evm_setAutomine", [True])
    db.dispose()


def rpc(chain, method: str, *params) -> object:
    return chain.w3.provider.make_request(method, list(params))["result"]


def file_some(db, n: int = 3) -> None:
    with db.write() as s:
        record_instruments(s, [validate(deed(), now=NOW) for _ in range(n)], now=NOW)


def attempts(db, batch_id: int) -> list[TxAttempt]:
    with db.read() as s:
        return list(s.scalars(select(TxAttempt).where(TxAttempt.batch_id == batch_id).order_by(TxAttempt.id)))


def test_a_transaction_stuck_below_the_base_fee_is_replaced_with_the_same_nonce(node):
    db, chain, dep = node
    file_some(db)
    a = Anchorer(db, chain, dep, fees=FeePolicy(bump_percent=20, ceiling_wei=5_000 * GWEI))
    rpc(chain, "evm_setAutomine", False)
    batch = a.build(force=True)  # signed and stored; the worker dies before sending it
    [first] = attempts(db, batch.id)
    rpc(chain, "anvil_setNextBlockBaseFeePerGas", hex(3 * first.max_fee_per_gas))
    stored = a.txm.attempts(batch.id)[0]
    assert chain.send(stored.signed()) is SendOutcome.UNDERPRICED  # the same bytes can no longer succeed
    a.settle()  # the restarted worker: refused, so replaced at once (same nonce, fees raised)
    for _ in range(5):  # the node mines nothing: no flood of replacements
        a.settle()
    made = attempts(db, batch.id)
    assert len(made) == 2 and {t.nonce for t in made} == {batch.nonce}
    assert made[1].max_fee_per_gas >= 2 * 3 * first.max_fee_per_gas
    assert made[1].max_priority_fee_per_gas * 100 >= first.max_priority_fee_per_gas * 120
    rpc(chain, "evm_mine")
    a.settle()
    with db.read() as s:
        b = s.get_one(AnchorBatch, batch.id)
    assert b.state == BatchState.CONFIRMED and b.tx_hash == made[1].tx_hash
    assert chain.batch_count() == 1 and chain.get_batch(0).root == batch.root
    assert chain.mined_nonce() == batch.nonce + 1  # one nonce used, no gap


def test_a_stuck_transaction_above_the_fee_ceiling_holds_until_fees_fall(node):
    db, chain, dep = node
    file_some(db)
    rpc(chain, "evm_setAutomine", False)
    quote = chain.fee_quote()
    ceiling = 3 * (2 * quote.next_base_fee + quote.tip)
    a = Anchorer(db, chain, dep, fees=FeePolicy(bump_percent=20, ceiling_wei=ceiling))
    batch = a.build(force=True)
    chain.send(_stored(a, batch.id))
    for _ in range(2):  # the base fee soars: one replacement up to the ceiling, then no more
        rpc(chain, "anvil_setNextBlockBaseFeePerGas", hex(10 * ceiling))
        rpc(chain, "evm_mine")  # a block the transaction could not enter
        rpc(chain, "anvil_setNextBlockBaseFeePerGas", hex(10 * ceiling))
        a.settle()
    made = attempts(db, batch.id)
    assert len(made) == 2 and made[1].max_fee_per_gas == ceiling
    with db.read() as s:
        held = {h.kind: h.reason for h in open_holds(s)}
    assert "fee ceiling" in held[FailureKind.FEE_CEILING]
    assert a.build(force=True) is None  # nothing new while it waits
    rpc(chain, "anvil_setNextBlockBaseFeePerGas", hex(quote.next_base_fee))  # fees fall again
    a.settle()  # the node takes the attempt at the ceiling now
    rpc(chain, "evm_mine")
    a.settle()
    with db.read() as s:
        assert s.get_one(AnchorBatch, batch.id).state == BatchState.CONFIRMED and open_holds(s) == []
    assert all(t.max_fee_per_gas <= ceiling for t in attempts(db, batch.id))


def _stored(a: Anchorer, batch_id: int):
    return a.txm.attempts(batch_id)[-1].signed()


# --- a node that is slow, drops connections, goes away ----------------------------------------------------
def test_rpc_faults_filing_goes_on_anchoring_lags_then_drains_in_order(anvil, anvil_settings, landreg_env, tmp_path):
    proxy = FaultProxy(anvil_settings.chain.anvil_port).start()
    env = {**landreg_env, "LANDREG_CHAIN__BACKEND": "rpc", "LANDREG_CHAIN__RPC_URL": proxy.url,
           "LANDREG_CHAIN__REGISTRAR_KEY": DEV_KEY_0, "LANDREG_CHAIN__ADMIN_ADDRESS": DEV_ADDRESS_1,
           "LANDREG_CHAIN__PAUSER_ADDRESS": DEV_ADDRESS_2, "LANDREG_CHAIN__CONFIRMATIONS": "1",
           "LANDREG_ANCHORING__BATCH_MAX_AGE_S": "0.5"}  # fmt: skip
    key = landreg(env, "keys", "create", "clerk", "--name", "Pat Clerk", check=True).stdout.split()[-1]
    assert key.startswith("lr_")
    server = Server(env, tmp_path)
    statuses: list[int] = []
    stop = threading.Event()

    def clerk() -> None:
        with httpx.Client(base_url=server.base, timeout=30) as client:
            while not stop.is_set():
                r = client.post("/api/v1/instruments", json=filing(), headers={"Authorization": f"Bearer {key}"})
                statuses.append(r.status_code)
                time.sleep(0.1)

    def status() -> dict:
        return httpx.get(server.base + "/api/v1/status", headers={"Authorization": f"Bearer {key}"}, timeout=10).json()

    def pending() -> int:
        return status()["pending_records"]

    server.start()
    filer = threading.Thread(target=clerk)
    filer.start()
    try:
        assert wait_until(lambda: len(statuses) >= 10 and status()["anchored_records"] >= 5, 60, 0.3), server.output()
        phases = []
        for mode, seconds, delay in (("delay", 6, 0.8), ("drop", 6, 0.0), ("down", 20, 0.0)):
            proxy.set(mode, delay)
            filed_before = len(statuses)
            time.sleep(seconds)
            phases.append((mode, len(statuses) - filed_before, pending()))
        ready = httpx.get(server.base + "/readyz", timeout=10)
        assert ready.status_code == 200 and ready.json().get("degraded") is True  # filing is not pulled out
        assert proxy.url not in ready.text and "127.0.0.1" not in ready.text
        proxy.set("pass")
        assert wait_until(lambda: pending() < 10, 120, 0.5), server.output()  # it catches up while filing goes on
        stop.set()
        filer.join(60)
        assert wait_until(lambda: pending() == 0, 60, 0.5), server.output()
    finally:
        stop.set()
        server.stop()
        proxy.stop()
    assert set(statuses) == {201}, sorted(set(statuses))  # filing never failed, whatever the node did
    down = [p for p in phases if p[0] == "down"][0]
    assert down[1] > 20 and down[2] > 0, phases  # clerks kept filing while nothing could be anchored
    db = Database(anvil_settings.db_url)
    with db.read() as s:
        assert pending_count(s) == 0
        live = s.execute(select(AnchorBatch.chain_batch_id, AnchorBatch.state, func.min(OutboxEntry.id),
                                func.max(OutboxEntry.id))
                         .join(BatchRecord, BatchRecord.batch_id == AnchorBatch.id)
                         .join(OutboxEntry, OutboxEntry.instrument_id == BatchRecord.instrument_id)
                         .where(AnchorBatch.state != BatchState.FAILED)
                         .group_by(AnchorBatch.id, AnchorBatch.chain_batch_id, AnchorBatch.state)
                         .order_by(AnchorBatch.chain_batch_id)).all()  # fmt: skip
        anchored = s.scalar(select(func.count()).select_from(BatchRecord).join(
            AnchorBatch, AnchorBatch.id == BatchRecord.batch_id).where(AnchorBatch.state == BatchState.CONFIRMED))  # fmt: skip
    assert anchored == len(statuses)  # every filing anchored, once
    assert [b[0] for b in live] == list(range(len(live))) and {b[1] for b in live} == {BatchState.CONFIRMED}
    assert all(prev[3] < nxt[2] for prev, nxt in zip(live, live[1:], strict=False))  # drained in filing order
    chain = open_chain(anvil_settings)
    attach(db, chain, deploy_if_missing=False)
    assert chain.batch_count() == len(live)  # and the chain holds exactly these, nothing twice
    report = tmp_path / "r.json"
    direct = {**env, "LANDREG_CHAIN__RPC_URL": f"http://127.0.0.1:{anvil_settings.chain.anvil_port}"}
    done = landreg(direct, "reconcile", "--json", str(report), "--workers", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(report.read_text())["counts"]["verified"] == len(statuses)


def test_an_unreachable_node_is_unavailable_never_a_reset_chain(landreg_env, tmp_path):
    env = dict(landreg_env)
    landreg(env, "chain", "start", check=True)
    landreg(env, "keys", "create", "clerk", "--name", "x", check=True)
    landreg(env, "worker", "--drain", check=True)
    landreg(env, "chain", "stop", check=True)
    try:
        # the managed node is started by the commands that need it, as `serve` does
        again = landreg(env, "reconcile", "--json", str(tmp_path / "managed.json"), "--workers", "1")
        assert again.returncode == 0, again.stdout + again.stderr
        assert json.loads((tmp_path / "managed.json").read_text())["kinds"] == {}
        # a node that does not answer: its own exit status and message, no report of a reset
        closed = {**env, "LANDREG_CHAIN__BACKEND": "rpc", "LANDREG_CHAIN__RPC_URL": "http://127.0.0.1:9/key-in-path",
                  "LANDREG_CHAIN__REGISTRAR_KEY": DEV_KEY_0}  # fmt: skip
        down = landreg(closed, "reconcile", "--json", str(tmp_path / "down.json"), "--workers", "1")
        assert down.returncode == 4, down.stdout + down.stderr
        assert "unavailable" in down.stderr and "chain_reset" not in down.stdout + down.stderr
        assert "key-in-path" not in down.stdout + down.stderr  # a hosted provider's key stays hidden
        assert not (tmp_path / "down.json").exists()
        worker = landreg(closed, "worker", "--drain")
        assert worker.returncode == 4 and "unavailable" in worker.stderr
    finally:
        landreg(env, "chain", "stop")
