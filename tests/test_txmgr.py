"""The transaction manager and the anchoring worker's answer to each kind of revert, on the
in-process chain (both databases); the fee market is faked nowhere: where eth-tester cannot raise a
base fee, the anvil tests (tests/test_chain_faults.py) do it for real.

Reverts are caused for real: the pauser pauses the contract, the admin revokes the registrar's
role, a second registrar anchors a batch first, and a transaction is sent with too little gas."""

from __future__ import annotations

import pytest
from hexbytes import HexBytes
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select, update

from hybrid_store.anchoring import Anchorer, AnchoringHeld, classify_revert
from hybrid_store.batches import clear_hold, open_holds, pending_count
from hybrid_store.chain.client import account_from_key
from hybrid_store.chain.connect import eth_tester_role_key
from hybrid_store.chain.types import FeeQuote, Fees
from hybrid_store.db.models import (
    AnchorBatch,
    BatchState,
    FailureKind,
    Instrument,
    LegacyDocument,
    LegacySource,
    MirrorFlag,
    TxAttempt,
)
from hybrid_store.errors import ChainMismatch
from hybrid_store.filing import record_instruments
from hybrid_store.intake import validate
from hybrid_store.txmgr import GWEI, NODE_MIN_BUMP_PERCENT, FeePolicy
from migration_tools.reconciliation.run import reconcile
from tests.conftest import NOW, bypass_append_only, deed


def file_some(db, n: int = 3) -> None:
    with db.write() as s:
        record_instruments(s, [validate(deed(), now=NOW) for _ in range(n)], now=NOW)


def batches(db) -> list[AnchorBatch]:
    with db.read() as s:
        return list(s.scalars(select(AnchorBatch).order_by(AnchorBatch.id)))


def holds(db) -> dict[str, str]:
    with db.read() as s:
        return {h.kind: h.reason for h in open_holds(s)}


def signer(chain, role: str):
    return chain.with_signer(account_from_key(eth_tester_role_key(chain, role)))


# --- fees ---------------------------------------------------------------------------------------------
fees = st.builds(Fees, st.integers(1, 10_000 * GWEI), st.integers(0, 100 * GWEI)).filter(
    lambda f: f.max_priority_fee_per_gas <= f.max_fee_per_gas
)
quotes = st.builds(FeeQuote, st.integers(0, 5_000 * GWEI), st.integers(0, 50 * GWEI))
policies = st.builds(FeePolicy, st.integers(10, 100), st.integers(1 * GWEI, 20_000 * GWEI), st.integers(1, 20))


@given(policies, fees, quotes)
def test_a_replacement_is_one_every_node_accepts_or_none(policy, previous, quote):
    new = policy.replacement(previous, quote)
    if new is None:  # only a ceiling below the smallest replacement a node accepts forbids one
        assert policy.ceiling_wei < -(-previous.max_fee_per_gas * (100 + NODE_MIN_BUMP_PERCENT) // 100)
        return
    assert new.max_fee_per_gas <= policy.ceiling_wei and new.max_priority_fee_per_gas <= new.max_fee_per_gas
    # both fields raised by at least the nodes' minimum: a replacement is never refused as underpriced
    assert new.max_fee_per_gas * 100 >= previous.max_fee_per_gas * (100 + NODE_MIN_BUMP_PERCENT)
    assert new.max_priority_fee_per_gas * 100 >= previous.max_priority_fee_per_gas * (100 + NODE_MIN_BUMP_PERCENT)
    if 2 * quote.next_base_fee + new.max_priority_fee_per_gas <= policy.ceiling_wei:
        assert new.max_fee_per_gas >= quote.next_base_fee  # and it fits the next block, ceiling permitting


def test_the_first_fees_leave_room_for_the_base_fee_to_double_within_the_ceiling():
    policy = FeePolicy(ceiling_wei=50 * GWEI)
    assert policy.first(FeeQuote(10 * GWEI, 2 * GWEI)) == Fees(22 * GWEI, 2 * GWEI)
    assert policy.first(FeeQuote(40 * GWEI, 2 * GWEI)) == Fees(50 * GWEI, 2 * GWEI)


def test_reverts_are_classified_by_their_decoded_custom_error():
    assert classify_revert("EnforcedPause()") == FailureKind.PAUSED
    assert classify_revert("DeedRegistryUnexpectedBatchId(3, 4)") == FailureKind.REPLAN
    assert classify_revert("AccessControlUnauthorizedAccount(0xab, 0x01)") == FailureKind.MISSING_ROLE
    assert classify_revert("DeedRegistryRootAlreadyAnchored(0x12, 0)") == "adopt"
    assert classify_revert("reverted without data") == FailureKind.PERMANENT
    assert classify_revert("DeedRegistryEmptyBatch()") == FailureKind.PERMANENT


# --- each kind of revert, caused for real ---------------------------------------------------------------
def test_paused_waits_and_resumes_by_itself_after_unpause(deployed):
    db, chain, dep = deployed
    file_some(db)
    a = Anchorer(db, chain, dep)
    stored = a.build(force=True)  # signed and stored; the pauser pauses before it is mined
    signer(chain, "pauser").pause()
    a.settle()
    [failed] = batches(db)
    assert failed.id == stored.id and failed.state == BatchState.FAILED and failed.error_kind == FailureKind.PAUSED
    assert "EnforcedPause" in holds(db)[FailureKind.PAUSED]
    with db.read() as s:
        assert pending_count(s) == 3  # back in the queue, nothing lost
    assert a.step(force=True) is None and len(batches(db)) == 1  # held: no new batch, no endless retry
    file_some(db, 2)  # filing goes on meanwhile
    signer(chain, "pauser").unpause()
    again = a.step(force=True)
    assert again is not None and again.state == BatchState.CONFIRMED and again.records == 5
    assert holds(db) == {}


def test_a_batch_id_race_re_plans_and_a_foreign_batch_stops_anchoring(deployed):
    """A second registrar key (granted by the admin) anchors a batch first: ours reverts with
    DeedRegistryUnexpectedBatchId, its records go back to the queue, and the worker then refuses to
    build on a chain holding a batch it does not know."""
    db, chain, dep = deployed
    file_some(db)
    a = Anchorer(db, chain, dep)
    a.build(force=True)
    other = account_from_key(eth_tester_role_key(chain, "pauser"))  # any funded key will do
    signer(chain, "admin").grant_role("registrar", other.address)
    rival = chain.with_signer(other)
    rival.transact(rival.contract.functions.anchorBatch(0, b"\x42" * 32, 1, b"\x00" * 32, 0))
    a.settle()
    [ours] = batches(db)
    assert ours.state == BatchState.FAILED and ours.error_kind == FailureKind.REPLAN
    assert "DeedRegistryUnexpectedBatchId" in ours.error and holds(db) == {}
    with db.read() as s:
        assert pending_count(s) == 3
    with pytest.raises(ChainMismatch, match="reconcile"):  # never anchors on top of a batch it does not know
        a.step(force=True)
    found = reconcile(db, chain, manifest_dir=None, workers=1)
    assert "tampered_batch" in found.kinds()  # batch 0 is on chain and no batch of ours


def test_a_revoked_registrar_role_alerts_and_waits_for_the_operator(deployed):
    db, chain, dep = deployed
    file_some(db)
    a = Anchorer(db, chain, dep)
    a.build(force=True)
    admin = signer(chain, "admin")
    admin.revoke_role("registrar", chain.registrar.address)
    a.settle()
    [failed] = batches(db)
    assert failed.error_kind == FailureKind.MISSING_ROLE and "AccessControlUnauthorizedAccount" in failed.error
    assert FailureKind.MISSING_ROLE in holds(db)
    with pytest.raises(AnchoringHeld) as held:
        a.drain()
    assert held.value.kind == FailureKind.MISSING_ROLE and "grant-registrar" in held.value.hint
    admin.grant_role("registrar", chain.registrar.address)
    summary = a.drain()
    assert summary.records == 3 and holds(db) == {}


def test_a_new_batch_that_would_revert_holds_before_anything_is_stored(deployed):
    db, chain, dep = deployed
    file_some(db)
    signer(chain, "admin").revoke_role("registrar", chain.registrar.address)
    a = Anchorer(db, chain, dep)
    assert a.step(force=True) is None and batches(db) == []  # the node's gas estimate ran it: nothing signed
    assert "AccessControlUnauthorizedAccount" in holds(db)[FailureKind.MISSING_ROLE]


def test_an_unknown_revert_is_a_permanent_failure_never_retried_until_released(deployed):
    db, chain, dep = deployed
    file_some(db)
    a = Anchorer(db, chain, dep)
    batch = a.build(force=True)
    # the same call with too little gas: it reverts for a reason no rule knows (out of gas)
    from eth_account.typed_transactions import TypedTransaction

    tx = TypedTransaction.from_bytes(HexBytes(batch.raw_tx)).as_dict()
    for part in ("v", "r", "s", "type"):
        tx.pop(part)
    tx.update(gas=30_000, to=chain.contract.address)
    starved = chain.sign_transaction(tx)
    with db.write() as s:
        bypass_append_only(s)  # the attempt as stored is what is rewritten here: tx_attempts keeps it as sent
        s.execute(update(AnchorBatch).where(AnchorBatch.id == batch.id).values(tx_hash=starved.tx_hash,
                                                                               raw_tx=starved.raw))  # fmt: skip
        s.execute(update(TxAttempt).where(TxAttempt.batch_id == batch.id).values(tx_hash=starved.tx_hash,
                                                                                 raw_tx=starved.raw))  # fmt: skip
    a.settle()
    [failed] = batches(db)
    assert failed.state == BatchState.FAILED and failed.error_kind == FailureKind.PERMANENT
    assert FailureKind.PERMANENT in holds(db)
    for _ in range(3):  # never an endless retry
        assert a.step(force=True) is None
    assert len(batches(db)) == 1
    assert clear_hold(db, FailureKind.PERMANENT, "test operator: looked at it")
    assert a.drain().records == 3


def test_status_and_metrics_show_the_hold(deployed, tmp_path):
    from fastapi.testclient import TestClient

    from hybrid_store.settings import Settings
    from registry_service.app import create_app

    db, chain, dep = deployed
    file_some(db)
    a = Anchorer(db, chain, dep)
    a.build(force=True)
    signer(chain, "pauser").pause()
    a.settle()
    cfg = Settings(home=tmp_path / "home", chain={"backend": "eth-tester"})
    cfg.ensure_home()
    with TestClient(create_app(cfg, db=db, chain_factory=lambda: chain, run_worker=False)) as client:
        metrics = client.get("/metrics").text
        assert 'landreg_anchoring_held{kind="paused"} 1.0' in metrics
        assert 'landreg_failed_batches{kind="paused"} 1.0' in metrics


def test_a_refused_attempt_is_replaced_with_the_same_nonce_and_no_gap(deployed):
    """eth-tester mines every transaction at once, so stuckness is simulated the only honest way
    here: an attempt whose fee cap is below the next base fee (a cap of 1 wei)."""
    db, chain, dep = deployed
    file_some(db)
    a = Anchorer(db, chain, dep, fees=FeePolicy(bump_percent=20))
    batch = a.build(force=True)
    cheap = chain.resign(batch.raw_tx, Fees(1, 1))  # refused by the node: below the base fee
    with db.write() as s:
        bypass_append_only(s)  # the attempt as stored is what is rewritten here: tx_attempts keeps it as sent
        s.execute(update(TxAttempt).where(TxAttempt.batch_id == batch.id).values(
            tx_hash=cheap.tx_hash, raw_tx=cheap.raw, max_fee_per_gas=1, max_priority_fee_per_gas=1))  # fmt: skip
    a.settle()  # refused as underpriced: replaced at once, with the same nonce
    with db.read() as s:
        attempts = s.scalars(select(TxAttempt).where(TxAttempt.batch_id == batch.id).order_by(TxAttempt.id)).all()
        state = s.get_one(AnchorBatch, batch.id).state
    assert len(attempts) == 2 and {t.nonce for t in attempts} == {batch.nonce}
    assert attempts[1].max_fee_per_gas > 1 and state == BatchState.CONFIRMED
    assert chain.mined_nonce() == batch.nonce + 1  # no gap, no second nonce
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(TxAttempt)) == 2


# --- revocations go through the transaction manager ---------------------------------------------------
def replaced_version(db) -> int:
    """A flag on an anchored record that the legacy database deleted (as the legacy mirror raises
    one): its leaf is due to be revoked. The record was filed here, so the database administrator's
    power stands in for a legacy import (the worker revokes only a legacy record landreg saw
    deleted; which flags qualify is tested in test_legacy_follow and test_forgery). Returns the
    flag's id."""
    from sqlalchemy import text

    from tests.conftest import bypass_append_only

    with db.read() as s:
        old = s.scalars(select(Instrument.id).order_by(Instrument.id.desc()).limit(1)).one()
    with db.write() as s:
        bypass_append_only(s)
        s.execute(text("UPDATE instruments SET source = 'legacy' WHERE id = :id"), {"id": old})
        source = LegacySource(name=f"county-{old}", layout_name="acris", layout_text="", layout_sha256="0" * 64,
                              dialect="mysql", jurisdiction="bergen", attached_by="test")  # fmt: skip
        s.add(source)
        s.flush()
        s.add(LegacyDocument(source_id=source.id, legacy_key=f"DOC-{old}", fingerprint=bytes(32), state="deleted",
                             instrument_id=old))  # fmt: skip
        flag = MirrorFlag(source_id=source.id, legacy_key=f"DOC-{old}", instrument_id=old, kind="deleted_in_legacy")
        s.add(flag)
        s.flush()
        return flag.id


def revocation_attempts(db, flag_id: int) -> list[TxAttempt]:
    with db.read() as s:
        return list(s.scalars(select(TxAttempt).where(TxAttempt.mirror_flag_id == flag_id).order_by(TxAttempt.id)))


def test_a_revocation_is_stored_as_an_attempt_before_it_is_sent(deployed):
    db, chain, dep = deployed
    file_some(db, 2)
    a = Anchorer(db, chain, dep)
    a.drain()
    flag_id = replaced_version(db)
    a.step()
    [attempt] = revocation_attempts(db, flag_id)
    with db.read() as s:
        flag = s.get_one(MirrorFlag, flag_id)
    assert attempt.batch_id is None and flag.revoke_tx == attempt.tx_hash and attempt.sent_at_block is not None
    receipt = chain.receipt(attempt.tx_hash)
    assert receipt is not None and receipt.status == 1 and flag.revoked_block == receipt.block_number
    assert chain.mined_nonce() == attempt.nonce + 1
    a.step()  # done: nothing sent again
    assert len(revocation_attempts(db, flag_id)) == 1 and chain.mined_nonce() == attempt.nonce + 1


def test_a_revocation_that_would_revert_holds_and_is_sent_after_unpause(deployed):
    db, chain, dep = deployed
    file_some(db, 2)
    a = Anchorer(db, chain, dep)
    a.drain()
    flag_id = replaced_version(db)
    signer(chain, "pauser").pause()
    a.step()
    assert revocation_attempts(db, flag_id) == [] and "EnforcedPause" in holds(db)[FailureKind.PAUSED]
    signer(chain, "pauser").unpause()
    a.step()
    with db.read() as s:
        assert s.get_one(MirrorFlag, flag_id).revoked_block is not None
    assert len(revocation_attempts(db, flag_id)) == 1 and holds(db) == {}
