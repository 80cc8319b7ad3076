"""Faults of a real chain, caused for real on a real anvil node: a transaction stuck below a risen
base fee, a fee ceiling, and a node that is slow, drops connections or goes away for a while."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from hybrid_store.anchoring import Anchorer, AnchoringHeld
from hybrid_store.batches import open_holds, pending_count
from hybrid_store.chain.client import RegistryChain, role_id
from hybrid_store.chain.connect import http_web3, open_chain, role_signer
from hybrid_store.chain.types import Fees, SendOutcome
from hybrid_store.db.engine import Database
from hybrid_store.db.models import (
    AnchorBatch,
    BatchRecord,
    BatchState,
    FailureKind,
    Instrument,
    MirrorFlag,
    OutboxEntry,
    TxAttempt,
)
from hybrid_store.deployment import attach
from hybrid_store.errors import ChainUnavailable
from hybrid_store.filing import record_instruments
from hybrid_store.intake import validate
from hybrid_store.settings import Settings
from hybrid_store.txmgr import GWEI, FeePolicy
from registry_service.app import create_app
from tests.conftest import NOW, deed, filing
from tests.faultproxy import FaultProxy
from tests.processes import Server, landreg, wait_until
from tests.test_txmgr import replaced_version, revocation_attempts

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


# --- a pause or a role revocation mined in the same block as the batch --------------------------------------
def _queue(signer, fn, tip_wei: int) -> str:
    """Send ``fn`` from ``signer`` without waiting (the node mines nothing yet), with ``tip_wei`` as its
    tip so the node orders it before the batch's transaction in the next block."""
    fees = Fees(4 * signer.fee_quote().next_base_fee + tip_wei, tip_wei)
    return signer.broadcast(signer.sign_transaction(signer.build_call(fn, signer.pending_nonce(), fees)))


class WithoutDebugApi(RegistryChain):
    """A node whose debug API is off (most hosted providers): the one fault here not caused for real,
    since anvil always traces."""

    def rpc(self, method, params):
        if method.startswith("debug_"):
            raise ValueError({"code": -32601, "message": f"the method {method} does not exist/is not available"})
        return super().rpc(method, params)


@pytest.mark.parametrize("tracing", [True, False], ids=["traced", "replayed"])
@pytest.mark.parametrize("cause", ["pause", "revoke_role"])
def test_a_pause_or_revocation_in_the_batch_s_block_holds_until_undone_then_anchoring_resumes(
    node, anvil_settings, cause, tracing
):
    """eth-tester mines one transaction per block, so only a node that is told when to mine can put
    the pause (or the revocation) and the batch in one block, the pause first."""
    db, chain, dep = node
    if not tracing:
        chain = WithoutDebugApi(chain.w3, chain.account, chain.address, poll_interval_s=chain.poll_interval_s,
                                description=chain.description, role_addresses=chain.role_addresses)  # fmt: skip
    file_some(db)
    a = Anchorer(db, chain, dep)
    rpc(chain, "evm_setAutomine", False)
    batch = a.build(force=True)
    [attempt] = attempts(db, batch.id)
    if cause == "pause":
        who = role_signer(anvil_settings, chain, "pauser")
        fn = who.contract.functions.pause()
    else:
        who = role_signer(anvil_settings, chain, "admin")
        fn = who.contract.functions.revokeRole(role_id("registrar"), chain.signer_address)
    first = _queue(who, fn, 10 * attempt.max_priority_fee_per_gas + 10 * GWEI)
    a.settle()  # the batch's transaction is sent, behind the pause in the node's pool
    rpc(chain, "evm_mine")  # one block: the pause (or revocation) first, then the batch
    assert chain.receipt(first).block_number == chain.receipt(attempt.tx_hash).block_number
    assert chain.receipt(attempt.tx_hash).status == 0
    a.settle()
    kind = FailureKind.PAUSED if cause == "pause" else FailureKind.MISSING_ROLE
    with db.read() as s:
        failed = s.get_one(AnchorBatch, batch.id)
        held = {h.kind: h.reason for h in open_holds(s)}
    assert failed.state == BatchState.FAILED and failed.error_kind == kind, failed.error
    assert set(held) == {kind}  # never "permanent": it clears when the cause goes
    rpc(chain, "evm_setAutomine", True)
    if cause == "pause":
        who.unpause()
    else:
        who.grant_role("registrar", chain.signer_address)
    again = a.step(force=True)
    assert again is not None and again.state == BatchState.CONFIRMED and again.records == 3
    with db.read() as s:
        assert open_holds(s) == []


# --- every transaction through the transaction manager: revocations, refusals, nonces, age -------------------
def revocable(db, chain, dep, **kw) -> tuple[Anchorer, int]:
    """An anchorer with two anchored records, the older replaced in the legacy database (its flag's id)."""
    file_some(db, 2)
    a = Anchorer(db, chain, dep, **kw)
    a.drain()
    return a, replaced_version(db)


def test_a_stuck_revocation_is_replaced_with_bumped_fees_and_no_batch_queues_behind_it(node):
    db, chain, dep = node
    a, flag_id = revocable(db, chain, dep, fees=FeePolicy(bump_percent=20, ceiling_wei=5_000 * GWEI))
    rpc(chain, "evm_setAutomine", False)
    a.step()  # the revocation is stored, then sent; the node mines nothing yet
    [first] = revocation_attempts(db, flag_id)
    assert first.sent_at_block is not None and a.revoker.waiting
    file_some(db, 2)
    assert a.step(force=True) is None  # no batch behind the revocation's nonce
    rpc(chain, "anvil_setNextBlockBaseFeePerGas", hex(3 * first.max_fee_per_gas))
    rpc(chain, "evm_mine")  # a block it cannot enter
    rpc(chain, "anvil_setNextBlockBaseFeePerGas", hex(3 * first.max_fee_per_gas))
    a.step()
    made = revocation_attempts(db, flag_id)
    assert len(made) == 2 and {t.nonce for t in made} == {first.nonce}
    assert made[1].max_fee_per_gas >= 2 * 3 * first.max_fee_per_gas
    assert made[1].max_priority_fee_per_gas * 100 >= first.max_priority_fee_per_gas * 120
    rpc(chain, "evm_mine")
    rpc(chain, "evm_setAutomine", True)
    batch = a.step(force=True)
    with db.read() as s:
        flag = s.get_one(MirrorFlag, flag_id)
    assert flag.revoked_block is not None and flag.revoke_tx == made[1].tx_hash
    assert chain.receipt(made[1].tx_hash).status == 1 and chain.receipt(first.tx_hash) is None
    assert batch is not None and batch.state == BatchState.CONFIRMED and batch.records == 2


@pytest.mark.parametrize("cause", ["insufficient funds", "intrinsic gas too high"])
def test_a_transaction_the_node_refuses_outright_holds_after_n_tries_and_resumes_when_it_is_taken(
    node, anvil_settings, cause
):
    db, chain, dep = node
    file_some(db)
    # (the retry period is long beside the steps between the third refusal and the drain below, so a
    # busy machine cannot make one of them a fourth try)
    a = Anchorer(db, chain, dep, fees=FeePolicy(refusals_before_hold=3, refused_retry_s=3.0))
    batch = a.build(force=True)  # signed and stored; then the registrar's account is emptied, or blocks shrink
    balance = rpc(chain, "eth_getBalance", chain.signer_address, "latest")
    gas_limit = rpc(chain, "eth_getBlockByNumber", "latest", False)["gasLimit"]
    if cause == "insufficient funds":
        rpc(chain, "anvil_setBalance", chain.signer_address, "0x0")
    else:
        rpc(chain, "evm_setBlockGasLimit", hex(100_000))
    for _ in range(2):
        a.settle()  # refused ("insufficient funds"): counted, no hold yet, no exception
        assert holds_of(db) == {}
    a.settle()
    reason = holds_of(db)[FailureKind.REFUSED]
    assert "refused transaction" in reason and "3 times" in reason and cause in reason.lower()
    assert "registrar's account balance" in reason  # what to do next
    [attempt] = attempts(db, batch.id)
    assert attempt.refusals == 3
    for _ in range(5):  # held: sent again only every refused_retry_s, not at every step
        a.settle()
    assert attempts(db, batch.id)[0].refusals == 3
    assert a.build(force=True) is None  # nothing new while it holds
    with pytest.raises(AnchoringHeld, match="refused") as held:
        a.drain()  # at once: no wait for a block that cannot bring the transaction
    assert "registrar" in held.value.hint
    cfg = Settings(home=anvil_settings.home, chain={"backend": "eth-tester"})
    with TestClient(create_app(cfg, db=db, chain_factory=lambda: chain, run_worker=False)) as client:
        assert 'landreg_anchoring_held{kind="refused"} 1.0' in client.get("/metrics").text
    rpc(chain, "anvil_setBalance", chain.signer_address, balance)
    rpc(chain, "evm_setBlockGasLimit", gas_limit)
    time.sleep(3.1)
    assert wait_until(lambda: settled(a, batch.id) == BatchState.CONFIRMED, 30, 0.1)  # the node takes it now
    assert holds_of(db) == {} and attempts(db, batch.id)[0].refusals == 3


def settled(a: Anchorer, batch_id: int) -> str:
    a.settle()
    with a.db.read() as s:
        return s.get_one(AnchorBatch, batch_id).state


def holds_of(db) -> dict[str, str]:
    with db.read() as s:
        return {h.kind: h.reason for h in open_holds(s)}


def test_nonce_too_low_a_batch_whose_nonce_another_transaction_took_is_planned_again(node):
    db, chain, dep = node
    file_some(db)
    a = Anchorer(db, chain, dep)
    batch = a.build(force=True)  # stored; the worker dies before sending it
    other = chain.sign_transaction({**chain.base_transaction(batch.nonce), "to": DEV_ADDRESS_1, "value": 1,
                                    "gas": 21_000})  # fmt: skip
    chain.wait(chain.broadcast(other))  # another transaction of the registrar's key takes the nonce
    assert chain.send(_stored(a, batch.id)) is SendOutcome.NONCE_USED  # the node: "nonce too low"
    a.settle()
    with db.read() as s:
        failed = s.get_one(AnchorBatch, batch.id)
        assert failed.state == BatchState.FAILED and failed.error_kind == FailureKind.NONCE_TAKEN
        assert pending_count(s) == 3
    again = a.step(force=True)
    assert again is not None and again.state == BatchState.CONFIRMED and again.records == 3
    assert chain.batch_count() == 1


def test_nonce_too_low_a_revocation_whose_nonce_another_transaction_took_is_sent_again(node):
    db, chain, dep = node
    a, flag_id = revocable(db, chain, dep)
    rpc(chain, "evm_setAutomine", False)
    a.step()
    [lost] = revocation_attempts(db, flag_id)
    rpc(chain, "anvil_dropTransaction", lost.tx_hash)  # it never made it, and the nonce went elsewhere
    other = chain.sign_transaction({**chain.base_transaction(lost.nonce), "to": DEV_ADDRESS_1, "value": 1,
                                    "gas": 21_000})  # fmt: skip
    chain.broadcast(other)
    rpc(chain, "evm_mine")
    rpc(chain, "evm_setAutomine", True)
    a.step()
    made = revocation_attempts(db, flag_id)
    assert len(made) == 2 and made[1].nonce == lost.nonce + 1
    with db.read() as s:
        assert s.get_one(MirrorFlag, flag_id).revoked_block == chain.receipt(made[1].tx_hash).block_number


def test_an_attempt_unmined_for_n_blocks_is_replaced_even_when_its_fees_cover_the_base_fee(node):
    """Blocks go by without the transaction (the node lost it from its pool, as peers drop
    transactions): it is sent again as it was, and replaced once it is ``stuck_after_blocks`` old."""
    db, chain, dep = node
    file_some(db)
    a = Anchorer(db, chain, dep, fees=FeePolicy(stuck_after_blocks=3))
    rpc(chain, "evm_setAutomine", False)
    batch = a.build_and_send(force=True)
    [first] = attempts(db, batch.id)
    for blocks in range(1, 3):
        rpc(chain, "anvil_dropTransaction", first.tx_hash)
        rpc(chain, "evm_mine")
        a.settle()  # the same bytes again: fees still cover the base fee, not stuck yet
        assert len(attempts(db, batch.id)) == 1 and chain.transaction_known(first.tx_hash), blocks
    rpc(chain, "anvil_dropTransaction", first.tx_hash)
    rpc(chain, "evm_mine")
    a.settle()  # 3 blocks without it: replaced, same nonce, fees raised
    made = attempts(db, batch.id)
    assert len(made) == 2 and made[1].nonce == first.nonce and made[1].max_fee_per_gas > first.max_fee_per_gas
    assert chain.fee_quote().next_base_fee <= first.max_fee_per_gas  # replaced for its age, not its fee
    rpc(chain, "evm_mine")
    a.settle()
    with db.read() as s:
        b = s.get_one(AnchorBatch, batch.id)
    assert b.state == BatchState.CONFIRMED and b.tx_hash == made[1].tx_hash


def test_a_node_that_accepts_and_never_answers_is_unavailable_within_the_timeout(node, anvil_settings):
    """A half-open connection: the worker's step gives up with ChainUnavailable (the run loop
    reports it and tries again), never waits forever, and anchors once the node answers again."""
    db, chain, dep = node
    proxy = FaultProxy(anvil_settings.chain.anvil_port).start()
    try:
        via = RegistryChain(http_web3(proxy.url, timeout_s=1), chain.account, chain.address,
                            description="the node behind the proxy")  # fmt: skip
        file_some(db)
        a = Anchorer(db, via, dep)
        proxy.set("half_open")
        started = time.monotonic()
        with pytest.raises(ChainUnavailable, match="did not answer"):
            a.step(force=True)
        assert time.monotonic() - started < 60  # a few tries of a 1 s timeout, not a hang
        with db.read() as s:
            assert pending_count(s) == 3 and s.scalar(select(func.count()).select_from(AnchorBatch)) == 0
        proxy.set("pass")
        done = a.step(force=True)
        assert done is not None and done.state == BatchState.CONFIRMED and done.records == 3
    finally:
        proxy.stop()


# --- a node that is down, hung, failing or reset is never evidence about the chain ------------------------
def _through(proxy: FaultProxy, anvil_settings, **chain: object):
    """anvil_settings' registry, reached through ``proxy`` as a JSON-RPC node (short waits: tests)."""
    from hybrid_store.settings import Settings

    return Settings(home=anvil_settings.home, chain={
        "backend": "rpc", "rpc_url": proxy.url, "registrar_key": DEV_KEY_0, "rpc_timeout_s": 1.5,
        "rpc_attempts": 1, "confirmations": 1, **chain})  # fmt: skip


def _states(db) -> list[str]:
    with db.read() as s:
        return list(s.scalars(select(AnchorBatch.state).order_by(AnchorBatch.id)))


def test_a_node_that_fails_refuses_or_hangs_under_the_worker_is_no_reorganisation(node, anvil_settings):
    db, _direct, _ = node
    proxy = FaultProxy(anvil_settings.chain.anvil_port).start()
    try:
        chain = open_chain(_through(proxy, anvil_settings))
        dep = attach(db, chain, deploy_if_missing=False)
        a = Anchorer(db, chain, dep, finality_depth=1000)  # nothing final: every batch is re-checked
        for _ in range(3):
            file_some(db, 2)
            assert a.step(force=True) is not None
        assert _states(db) == [BatchState.CONFIRMED] * 3
        for mode in ("error", "down", "hang", "drop"):
            proxy.set(mode)
            started = time.monotonic()
            with pytest.raises(ChainUnavailable):
                a.settle()
            assert time.monotonic() - started < 10, mode  # one bounded wait (1.5 s a call), not minutes
            assert _states(db) == [BatchState.CONFIRMED] * 3, mode  # silence and errors demote nothing
            proxy.set("pass")
        a.settle()
        assert _states(db) == [BatchState.CONFIRMED] * 3
    finally:
        proxy.stop()


def test_a_node_that_fails_while_a_bundle_is_checked_gives_no_verdict_on_the_record(node, anvil_settings):
    from hybrid_store.proofs import export_bundle
    from hybrid_store.verifier.verdicts import verify_document
    from tests.conftest import trust_of

    db, direct, dep = node
    file_some(db, 1)
    Anchorer(db, direct, dep).drain()
    with db.read() as s:
        number = s.scalar(select(func.min(OutboxEntry.instrument_id)))
        bundle = export_bundle(s, s.get_one(Instrument, number).instrument_number).to_json()
    proxy = FaultProxy(anvil_settings.chain.anvil_port).start()
    try:
        chain = open_chain(_through(proxy, anvil_settings))
        assert verify_document(bundle, chain=chain, trust=trust_of(db)).valid
        proxy.switch_after(0, "error", "eth_call")  # the contract's batch is read with the first call
        verdict = verify_document(bundle, chain=chain, trust=trust_of(db))
    finally:
        proxy.stop()
    assert verdict.unavailable and not verdict.valid, verdict.reason
    assert "no batch" not in verdict.reason and verdict.reason.startswith("UNAVAILABLE"), verdict.reason


def test_a_node_that_fails_halfway_through_reconcile_is_unavailable_not_a_reset(node, anvil_settings, landreg_env,
                                                                                  tmp_path):  # fmt: skip
    db, chain, dep = node
    a = Anchorer(db, chain, dep, finality_depth=1)
    for _ in range(12):
        file_some(db, 1)
        assert a.step(force=True) is not None
    a.settle()  # the last one final too: a final batch whose block is gone would be a chain_reset
    proxy = FaultProxy(anvil_settings.chain.anvil_port).start()
    env = {**landreg_env, "LANDREG_CHAIN__BACKEND": "rpc", "LANDREG_CHAIN__RPC_URL": proxy.url,
           "LANDREG_CHAIN__REGISTRAR_KEY": DEV_KEY_0}  # fmt: skip
    try:
        clean = landreg(env, "reconcile", "--json", str(tmp_path / "clean.json"), "--workers", "1", timeout=120)
        assert clean.returncode == 0, clean.stdout + clean.stderr
        # the last block lookups are the batches' (each batch's block is looked up once): the node
        # starts answering 502 after half of them
        blocks = proxy.calls["eth_getBlockByNumber"]
        assert blocks > 12, proxy.calls
        proxy.calls.clear()
        proxy.switch_after(blocks - 6, "error", "eth_getBlockByNumber")
        failing = landreg(env, "reconcile", "--json", str(tmp_path / "failing.json"), "--workers", "1", timeout=120)
    finally:
        proxy.stop()
    out = failing.stdout + failing.stderr
    assert failing.returncode == 4, out
    assert "chain_reset" not in out and "unavailable" in failing.stderr and "HTTP 502" in failing.stderr, out
    assert not (tmp_path / "failing.json").exists()


def _serve_env(landreg_env: dict[str, str], url: str, **more: str) -> dict[str, str]:
    """``landreg serve`` on the node at ``url``, with short waits and checks (tests)."""
    return {**landreg_env, "LANDREG_CHAIN__BACKEND": "rpc", "LANDREG_CHAIN__RPC_URL": url,
            "LANDREG_CHAIN__REGISTRAR_KEY": DEV_KEY_0, "LANDREG_CHAIN__ADMIN_ADDRESS": DEV_ADDRESS_1,
            "LANDREG_CHAIN__PAUSER_ADDRESS": DEV_ADDRESS_2, "LANDREG_CHAIN__CONFIRMATIONS": "1",
            "LANDREG_CHAIN__POLL_INTERVAL_S": "0.1", "LANDREG_CHAIN__FINALITY": "depth",
            "LANDREG_CHAIN__FINALITY_DEPTH": "1000", "LANDREG_CHAIN__RPC_TIMEOUT_S": "2",
            "LANDREG_CHAIN__RPC_ATTEMPTS": "1", "LANDREG_CHAIN__IDENTITY_CHECK_S": "1",
            "LANDREG_SERVICE__CHAIN_PROBE_S": "0.5", "LANDREG_ANCHORING__BATCH_MAX_AGE_S": "0.3", **more}  # fmt: skip


class _Clerk:
    def __init__(self, env: dict[str, str], server: Server):
        self.key = landreg(env, "keys", "create", "clerk", "--name", "Pat Clerk", check=True).stdout.split()[-1]
        self.server = server

    def file(self, n: int) -> None:
        with httpx.Client(base_url=self.server.base, timeout=30) as client:
            for _ in range(n):
                r = client.post("/api/v1/instruments", json=filing(), headers={"Authorization": f"Bearer {self.key}"})
                assert r.status_code == 201, r.text

    def status(self) -> dict:
        return httpx.get(self.server.base + "/api/v1/status", headers={"Authorization": f"Bearer {self.key}"},
                         timeout=10).json()  # fmt: skip

    def ready(self) -> dict:
        r = httpx.get(self.server.base + "/readyz", timeout=10)
        assert r.status_code == 200, r.text
        return r.json()

    def metrics(self) -> str:
        return httpx.get(self.server.base + "/metrics", timeout=10).text


def test_a_killed_node_demotes_nothing_and_a_reset_one_holds_anchoring_until_the_chain_is_back(
    anvil, anvil_settings, landreg_env, tmp_path
):
    import os
    import shutil
    import signal

    from hybrid_store.chain.anvil import ManagedAnvil
    from hybrid_store.chain.connect import http_web3

    env = _serve_env(landreg_env, anvil.url)
    server = Server(env, tmp_path)
    clerk = _Clerk(env, server)
    server.start()
    try:
        clerk.file(30)
        assert wait_until(lambda: clerk.status()["anchored_records"] == 30, 60, 0.3), server.output()
        time.sleep(2.5)  # the node dumps its state every second: the saved chain holds every batch
        # --- the node is killed: its silence is no reorganisation
        os.kill(anvil.pid(), signal.SIGKILL)
        assert wait_until(lambda: clerk.ready()["degraded"], 10, 0.2)
        time.sleep(4)  # the worker looks at its unfinal batches every second meanwhile
        assert clerk.status()["anchored_records"] == 30, server.output()
        assert "left the canonical chain" not in server.output()
        ready = clerk.ready()
        assert ready["checks"]["chain"]["ok"] is False and ready["checks"]["anchoring"]["holds"] == []
        # --- the node comes back empty on the same port: another chain, anchoring holds
        saved = tmp_path / "saved-state.json"
        shutil.move(anvil.state_file, saved)
        ManagedAnvil(anvil_settings).start()
        clerk.file(3)
        assert wait_until(lambda: "chain_reset" in clerk.ready()["checks"]["anchoring"]["holds"], 20, 0.3), (
            server.output()
        )
        ready = clerk.ready()
        assert ready["degraded"] is True and ready["checks"]["chain"] == {"ok": False, "block": 0, "reset": True}
        status = clerk.status()
        assert status["anchored_records"] == 30 and status["pending_records"] == 3
        assert [h["kind"] for h in status["holds"]] == ["chain_reset"] and "genesis" in status["holds"][0]["reason"]
        assert 'landreg_anchoring_held{kind="chain_reset"} 1.0' in clerk.metrics()
        time.sleep(3)  # several identity checks and worker steps later: still nothing sent to it
        fresh = http_web3(anvil.url)
        assert fresh.eth.block_number == 0 and fresh.eth.get_transaction_count(fresh.eth.accounts[0]) == 0
        assert clerk.status()["anchored_records"] == 30
        # --- the registry's chain is back: anchoring resumes where it stopped
        ManagedAnvil(anvil_settings).stop()
        shutil.copy(saved, anvil.state_file)
        ManagedAnvil(anvil_settings).start()
        assert wait_until(lambda: clerk.status()["anchored_records"] == 33, 60, 0.3), server.output()
        assert clerk.status()["holds"] == [] and clerk.ready()["degraded"] is False
    finally:
        server.stop()
    db = Database(anvil_settings.db_url)
    with db.read() as s:
        states = s.execute(select(AnchorBatch.state, func.count()).group_by(AnchorBatch.state)).all()
    assert dict(states) == {BatchState.CONFIRMED: len(_states(db))}  # none failed, none re-sent


def test_a_hung_node_hangs_neither_the_probes_nor_the_commands(anvil, anvil_settings, landreg_env, tmp_path):
    import os
    import signal

    env = _serve_env(landreg_env, anvil.url)
    server = Server(env, tmp_path)
    clerk = _Clerk(env, server)
    server.start()
    pid = anvil.pid()
    assert pid is not None
    try:
        clerk.file(5)
        assert wait_until(lambda: clerk.status()["anchored_records"] == 5, 60, 0.3), server.output()
        os.kill(pid, signal.SIGSTOP)  # the node accepts connections and never answers
        took = []
        for _ in range(5):
            started = time.monotonic()
            ready = clerk.ready()
            took.append(time.monotonic() - started)
            time.sleep(0.5)
        assert max(took) < 3.0, took  # about a second at most (it was minutes), with room for a loaded machine
        assert ready["degraded"] is True and ready["checks"]["chain"]["ok"] is False, ready
        assert "landreg_chain_available 0.0" in clerk.metrics()
        started = time.monotonic()
        status = clerk.status()  # what the status page shows
        assert time.monotonic() - started < 3.0 and status["chain_available"] is False, status
        clerk.file(2)  # filing goes on
        # commands give up after the configured wait (2 s a call here) and say so
        for what, args in (("chain status", ("chain", "status")),
                           ("reconcile", ("reconcile", "--json", str(tmp_path / "r.json"), "--workers", "1"))):  # fmt: skip
            started = time.monotonic()
            done = landreg(env, *args, timeout=60)
            took_s = time.monotonic() - started
            assert done.returncode == 4, (what, done.stdout + done.stderr)
            assert "did not answer" in done.stderr and "within 2 s" in done.stderr, (what, done.stderr)
            assert took_s < 30, (what, took_s)
        managed = {**landreg_env, "LANDREG_CHAIN__RPC_TIMEOUT_S": "2"}  # the managed node's own status
        started = time.monotonic()
        done = landreg(managed, "chain", "status", timeout=60)
        assert done.returncode == 1 and "starting or stuck" in done.stdout and time.monotonic() - started < 30
    finally:
        os.kill(pid, signal.SIGCONT)
    try:
        assert wait_until(lambda: not clerk.ready()["degraded"], 30, 0.3), server.output()
        assert wait_until(lambda: clerk.status()["anchored_records"] == 7, 60, 0.3), server.output()
    finally:
        server.stop()
