"""The outbox worker on an in-process chain, with both databases: batching, proofs, confirmations,
reverts, reorgs and every recovery path a crash can leave behind."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from hybrid_store.anchoring import Anchorer
from hybrid_store.batches import pending_count
from hybrid_store.chain.connect import eth_tester_chain
from hybrid_store.db.models import AnchorBatch, BatchRecord, BatchState, OutboxEntry, Parcel
from hybrid_store.deployment import attach, check_deployment
from hybrid_store.errors import ChainMismatch
from hybrid_store.filing import record_instruments
from hybrid_store.intake import validate
from hybrid_store.proofs import export_bundle
from hybrid_store.verifier.verdicts import verify_document
from tests.conftest import NOW, deed, trust_of


def file_many(db, n: int, lots: int = 4):
    items = [validate(deed(parcels=[{"municipality_code": "0223", "block": "9", "lot": str(i % lots + 1)}]), now=NOW)
             for i in range(n)]  # fmt: skip
    with db.write() as s:
        return record_instruments(s, items, now=NOW)


def batches(db) -> list[AnchorBatch]:
    with db.read() as s:
        return list(s.scalars(select(AnchorBatch).order_by(AnchorBatch.id)))


def assert_each_record_anchored_once(db, chain):
    with db.read() as s:
        assert pending_count(s) == 0
        live = s.execute(
            select(BatchRecord.instrument_id, func.count()).join(AnchorBatch, AnchorBatch.id == BatchRecord.batch_id)
            .where(AnchorBatch.state == BatchState.CONFIRMED).group_by(BatchRecord.instrument_id)
        ).all()  # fmt: skip
        assert all(n == 1 for _, n in live)
        assert len(live) == s.scalar(select(func.count()).select_from(OutboxEntry))
        confirmed = [b for b in batches(db) if b.state == BatchState.CONFIRMED]
    assert chain.batch_count() == len(confirmed)
    for b in confirmed:
        assert chain.get_batch(b.chain_batch_id).root == b.root


def test_drain_anchors_everything_and_every_proof_verifies(deployed):
    db, chain, dep = deployed
    made = file_many(db, 23)
    summary = Anchorer(db, chain, dep, batch_max_records=10).drain()
    assert [b.records for b in summary.batches] == [10, 10, 3]
    assert summary.tokens == 4  # four distinct parcels, each tokenized once
    assert_each_record_anchored_once(db, chain)
    with db.read() as s:
        tokens = dict(s.execute(select(Parcel.parcel_key, Parcel.token_id)).all())
        for r in made:
            verdict = verify_document(export_bundle(s, r.instrument_number).to_json(), chain=chain, trust=trust_of(db))
            assert verdict.valid and verdict.checked_on_chain, verdict.reason
    assert sorted(tokens.values()) == [1, 2, 3, 4]
    assert all(chain.owner_of(t) == chain.address for t in tokens.values())


def test_a_batch_closes_on_size_or_age_whichever_comes_first(deployed):
    db, chain, dep = deployed
    now = [NOW]
    anchorer = Anchorer(db, chain, dep, batch_max_records=5, batch_max_age_s=2.0, clock=lambda: now[0])
    with db.write() as s:
        record_instruments(s, [validate(deed(), now=NOW)] * 3, now=NOW)
    assert anchorer.step() is None  # 3 < 5 records and 0 s old
    now[0] = NOW + timedelta(seconds=1.9)
    assert anchorer.step() is None
    now[0] = NOW + timedelta(seconds=2.0)
    assert anchorer.step().records == 3  # closed by age
    with db.write() as s:
        record_instruments(s, [validate(deed(), now=NOW)] * 7, now=now[0])
    assert anchorer.step().records == 5  # closed by size, at once
    assert anchorer.step() is None  # the remaining 2 wait for their age
    assert anchorer.step(force=True).records == 2


def test_a_batch_counts_only_at_the_confirmation_depth(deployed):
    db, chain, dep = deployed
    [made] = file_many(db, 1)
    anchorer = Anchorer(db, chain, dep, confirmations=3)
    batch = anchorer.step(force=True)
    assert batch.state == BatchState.MINED
    with db.read() as s:
        assert not export_bundle(s, made.instrument_number).is_anchored  # pending until confirmed
    chain.w3.provider.ethereum_tester.mine_blocks(1)
    anchorer.settle()
    assert batches(db)[0].state == BatchState.MINED
    chain.w3.provider.ethereum_tester.mine_blocks(1)
    anchorer.settle()
    assert batches(db)[0].state == BatchState.CONFIRMED
    with db.read() as s:
        assert export_bundle(s, made.instrument_number).is_anchored


def test_a_reverted_batch_fails_and_its_records_are_anchored_again(deployed):
    db, chain, dep = deployed
    file_many(db, 4)
    pauser = second_account(chain)
    anchorer = Anchorer(db, chain, dep)
    signed = anchorer.build(force=True)  # signed and stored: the worker would send it now
    pauser.transact(pauser.contract.functions.pause())  # ...but the contract is paused first
    chain.broadcast(anchorer_tx(signed))
    anchorer.settle()
    [failed] = batches(db)
    assert failed.state == BatchState.FAILED and "EnforcedPause" in failed.error
    with db.read() as s:
        assert pending_count(s) == 4  # back in the queue
        assert s.scalar(select(func.count()).select_from(Parcel).where(Parcel.token_id.is_not(None))) == 0
    pauser.transact(pauser.contract.functions.unpause())
    again = anchorer.step(force=True)
    assert again.state == BatchState.CONFIRMED and again.chain_batch_id == 0
    assert_each_record_anchored_once(db, chain)


def second_account(chain):
    """The pauser: an operator with a key of its own (eth-tester's third funded account)."""
    from hybrid_store.chain.client import account_from_key
    from hybrid_store.chain.connect import eth_tester_role_key

    return chain.with_signer(account_from_key(eth_tester_role_key(chain, "pauser")))


def anchorer_tx(batch: AnchorBatch):
    from hybrid_store.anchoring import stored_tx

    return stored_tx(batch)


def test_recovery_signed_but_never_sent(deployed):
    db, chain, dep = deployed
    file_many(db, 3)
    anchorer = Anchorer(db, chain, dep)
    anchorer.build(force=True)  # crash before broadcast
    assert not chain.transaction_known(batches(db)[0].tx_hash)
    Anchorer(db, chain, dep).settle()  # a new worker after the restart
    assert [b.state for b in batches(db)] == [BatchState.CONFIRMED]
    assert_each_record_anchored_once(db, chain)


def test_recovery_sent_but_not_recorded(deployed):
    db, chain, dep = deployed
    file_many(db, 3)
    anchorer = Anchorer(db, chain, dep)
    batch = anchorer.build(force=True)
    chain.wait(chain.broadcast(anchorer_tx(batch)))  # mined; the crash lost the receipt
    Anchorer(db, chain, dep).settle()
    [b] = batches(db)
    assert b.state == BatchState.CONFIRMED and b.block_number is not None
    assert chain.batch_count() == 1
    assert_each_record_anchored_once(db, chain)


def test_recovery_when_another_transaction_took_the_nonce(deployed):
    db, chain, dep = deployed
    file_many(db, 3)
    anchorer = Anchorer(db, chain, dep)
    batch = anchorer.build(force=True)
    other = chain.sign_transaction(
        {**chain.base_transaction(batch.nonce), "to": chain.registrar.address, "value": 0, "gas": 21000}
    )
    chain.wait(chain.broadcast(other))  # e.g. an operator's transaction with the same key
    anchorer.settle()
    states = [b.state for b in batches(db)]
    assert states == [BatchState.FAILED]
    assert "nonce" in batches(db)[0].error
    anchorer.drain()
    assert_each_record_anchored_once(db, chain)


def test_recovery_finds_a_replacement_transaction_by_its_content(deployed):
    db, chain, dep = deployed
    file_many(db, 3)
    anchorer = Anchorer(db, chain, dep)
    batch = anchorer.build(force=True)
    # the same anchoring, re-signed with another fee (a "speed-up"): another hash, same content
    fn = chain.contract.functions.anchorBatch(batch.chain_batch_id, batch.root, batch.record_count,
                                              batch.parcel_root, batch.token_count)  # fmt: skip
    tx = fn.build_transaction({**chain.base_transaction(batch.nonce), "gas": 500_000})
    tx["maxPriorityFeePerGas"] += 1
    tx["maxFeePerGas"] += 1
    replacement = chain.sign_transaction(tx)
    assert replacement.tx_hash != batch.tx_hash
    chain.wait(chain.broadcast(replacement))
    anchorer.settle()
    [b] = batches(db)
    assert b.state == BatchState.CONFIRMED and b.tx_hash == replacement.tx_hash
    assert_each_record_anchored_once(db, chain)


def test_a_reorg_sends_the_batch_back_and_it_is_anchored_again(deployed):
    db, chain, dep = deployed
    file_many(db, 3)
    tester = chain.w3.provider.ethereum_tester
    snapshot = tester.take_snapshot()
    anchorer = Anchorer(db, chain, dep, confirmations=3)
    assert anchorer.step(force=True).state == BatchState.MINED
    mined_block = batches(db)[0].block_number
    tester.revert_to_snapshot(snapshot)  # the block with our transaction is gone
    tester.mine_blocks(3)  # ... and the chain grew past it
    assert chain.batch_count() == 0
    anchorer.settle()  # notices, re-sends the same signed transaction
    tester.mine_blocks(3)
    anchorer.settle()
    [b] = batches(db)
    assert b.state == BatchState.CONFIRMED and b.block_number != mined_block
    assert_each_record_anchored_once(db, chain)


def test_the_worker_anchors_filings_within_its_window(deployed):
    db, chain, dep = deployed
    anchorer = Anchorer(db, chain, dep, batch_max_records=50, batch_max_age_s=0.3)
    stop = threading.Event()
    worker = threading.Thread(target=anchorer.run, args=(stop, 0.02))
    worker.start()
    try:
        for _ in range(5):
            file_many(db, 4)
            time.sleep(0.05)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with db.read() as s:
                if pending_count(s) == 0 and all(b.state == BatchState.CONFIRMED for b in batches(db)):
                    break
            time.sleep(0.05)
    finally:
        stop.set()
        worker.join(timeout=10)
    assert not worker.is_alive()
    assert_each_record_anchored_once(db, chain)


def test_attaching_refuses_another_chain(deployed):
    db, chain, dep = deployed
    other = eth_tester_chain()  # another genesis
    with pytest.raises(ChainMismatch, match="genesis|chain"):
        check_deployment(other, dep)
    other.address = None
    with pytest.raises(ChainMismatch):
        attach(db, other)


def test_anchoring_stops_when_chain_and_database_disagree(deployed):
    db, chain, dep = deployed
    file_many(db, 2)
    # someone else anchors through the same contract: the database no longer knows every batch
    chain.wait(chain.broadcast(chain.sign_anchor(0, b"\x11" * 32, 1, None, 0, nonce=chain.pending_nonce())))
    with pytest.raises(ChainMismatch, match="holds 1 batches but the database knows 0"):
        Anchorer(db, chain, dep).step(force=True)
    with db.read() as s:
        assert pending_count(s) == 2  # nothing claimed


def test_bundles_serialise_to_plain_json(deployed):
    db, chain, dep = deployed
    [made] = file_many(db, 1)
    Anchorer(db, chain, dep).drain()
    with db.read() as s:
        text = json.dumps(export_bundle(s, made.instrument_number).to_json())
    assert json.loads(text)["anchor"]["contract"] == chain.address
    assert datetime.now(UTC) > NOW  # sanity: the test clock is in the past
