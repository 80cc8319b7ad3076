"""DeedRegistry on an in-process chain: anchoring rules, tokens, revocation, roles, pause, views."""

from __future__ import annotations

import random

import pytest
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st
from web3.logs import DISCARD

from hybrid_store.chain.client import ZERO32, RegistryChain
from hybrid_store.chain.connect import eth_tester_chain, eth_tester_role_key
from hybrid_store.chain.releases import release_artifact
from hybrid_store.chain.reverts import artifact, decode_revert, error_selectors, revert_data
from hybrid_store.core import merkle
from hybrid_store.core.hashing import keccak256, to_hex
from hybrid_store.errors import ChainError, TransactionReverted


@pytest.fixture
def reg() -> RegistryChain:
    chain = eth_tester_chain()
    chain.deploy()
    return chain


def anchor(chain: RegistryChain, root: bytes, count: int = 3, parcel_root: bytes | None = None, tokens: int = 0,
           expected: int | None = None):  # fmt: skip
    batch_id = chain.batch_count() if expected is None else expected
    signed = chain.sign_anchor(batch_id, root, count, parcel_root, tokens, nonce=chain.pending_nonce())
    return chain.wait(chain.broadcast(signed))


def call_error(fn) -> str:
    """The decoded custom error of a view call that reverts."""
    with pytest.raises(Exception) as exc:
        fn.call()
    return decode_revert(revert_data(exc.value))


def stranger(chain: RegistryChain) -> RegistryChain:
    """The same contract seen by an account without any role (funded by the registrar)."""
    other = Account.create()
    chain.wait(chain.broadcast(chain.sign_transaction({**chain.base_transaction(chain.pending_nonce()), "to": other.address,
                                            "value": 10**18, "gas": 21000})))  # fmt: skip
    return RegistryChain(chain.w3, other, chain.address)


def test_batches_append_and_chain_to_each_other(reg):
    roots = [keccak256(bytes([i])) for i in range(3)]
    for root in roots:
        anchor(reg, root)
    assert reg.batch_count() == 3
    previous = ZERO32
    from eth_abi import encode

    for i, root in enumerate(roots):
        b = reg.get_batch(i)
        assert b.root == root and b.record_count == 3 and b.token_count == 0
        expected = keccak256(encode(["bytes32", "uint256", "bytes32", "uint64", "bytes32", "uint64", "uint64"],
                                    [previous, i, root, 3, ZERO32, 0, 0]))  # fmt: skip
        assert b.chain_hash == expected
        previous = b.chain_hash
        assert reg.batch_of_root(root) == i
    assert reg.chain_head_hash() == previous
    assert reg.batch_of_root(keccak256(b"never")) is None


@pytest.mark.parametrize(
    ("case", "error"),
    [
        ("same-root-twice", "DeedRegistryRootAlreadyAnchored"),
        ("stale-batch-id", "DeedRegistryUnexpectedBatchId"),
        ("future-batch-id", "DeedRegistryUnexpectedBatchId"),
        ("zero-root", "DeedRegistryEmptyBatch"),
        ("zero-records", "DeedRegistryEmptyBatch"),
        ("tokens-without-parcel-root", "DeedRegistryInvalidParcelRoot"),
        ("parcel-root-without-tokens", "DeedRegistryInvalidParcelRoot"),
    ],
)
def test_nothing_is_overwritten_or_anchored_twice(reg, case, error):
    root = keccak256(b"root")
    anchor(reg, root)
    with pytest.raises(TransactionReverted, match=error):
        match case:
            case "same-root-twice":
                anchor(reg, root)
            case "stale-batch-id":
                anchor(reg, keccak256(b"other"), expected=0)
            case "future-batch-id":
                anchor(reg, keccak256(b"other"), expected=5)
            case "zero-root":
                anchor(reg, ZERO32)
            case "zero-records":
                anchor(reg, keccak256(b"other"), count=0)
            case "tokens-without-parcel-root":
                anchor(reg, keccak256(b"other"), tokens=3)
            case "parcel-root-without-tokens":
                anchor(reg, keccak256(b"other"), parcel_root=keccak256(b"p"))
    assert reg.batch_count() == 1 and reg.get_batch(0).root == root


def test_a_mined_revert_is_an_error_never_success(reg):
    root = keccak256(b"root")
    first = reg.sign_anchor(0, root, 1, None, 0, nonce=reg.pending_nonce())
    # sign a second anchor for the same id before the first is mined: estimation passes, mining reverts
    second = reg.sign_anchor(0, keccak256(b"other"), 1, None, 0, nonce=first.nonce + 1)
    reg.wait(reg.broadcast(first))
    with pytest.raises(TransactionReverted, match=r"DeedRegistryUnexpectedBatchId\(0, 1\)"):
        reg.wait(reg.broadcast(second))
    assert reg.receipt(second.tx_hash).status == 0


def test_consecutive_mint_costs_no_write_per_token(reg):
    tree = merkle.StandardTree.of([(1 + i, f"0223_100_{i}") for i in range(500)], merkle.PARCEL_TOKEN_ENCODING)
    small = anchor(reg, keccak256(b"a"), parcel_root=tree.root, tokens=1)
    big = anchor(reg, keccak256(b"b"), parcel_root=tree.root, tokens=5000)
    assert big.gas_used - small.gas_used < 5_000  # 5000 tokens cost about what one does
    events = reg.contract.events.ConsecutiveTransfer().process_receipt(
        reg.w3.eth.get_transaction_receipt(big.tx_hash), errors=DISCARD
    )
    assert len(events) == 1
    args = events[0]["args"]
    assert (args["fromTokenId"], args["toTokenId"], args["fromAddress"], args["toAddress"]) == (
        2,
        5001,
        "0x" + "00" * 20,
        reg.address,
    )
    c = reg.contract.functions
    assert c.balanceOf(reg.address).call() == 5001
    assert c.ownerOf(1).call() == reg.address and c.ownerOf(5001).call() == reg.address
    assert c.locked(2500).call() is True
    assert call_error(c.ownerOf(5002)) == "ERC721NonexistentToken(5002)"
    assert call_error(c.ownerOf(0)) == "ERC721NonexistentToken(0)"
    assert reg.next_token_id() == 5002


def test_parcel_tokens_are_locked_and_only_the_registrar_moves_them(reg):
    tree = merkle.StandardTree.of([(1, "0223_1_1"), (2, "0223_1_2")], merkle.PARCEL_TOKEN_ENCODING)
    anchor(reg, keccak256(b"a"), parcel_root=tree.root, tokens=2)
    other = stranger(reg)
    with pytest.raises(TransactionReverted, match="ERC721InsufficientApproval|DeedRegistryTokenLocked"):
        other.transact(other.contract.functions.transferFrom(reg.address, other.registrar.address, 1))
    with pytest.raises(TransactionReverted, match="AccessControlUnauthorizedAccount"):
        other.transact(other.contract.functions.registrarTransfer(1, other.registrar.address))
    # the registrar moves token 1 out of custody; the holder still cannot move it on
    reg.transact(reg.contract.functions.registrarTransfer(1, other.registrar.address))
    assert reg.owner_of(1) == other.registrar.address
    assert reg.contract.functions.balanceOf(reg.address).call() == 1
    with pytest.raises(TransactionReverted, match="DeedRegistryTokenLocked"):
        other.transact(other.contract.functions.transferFrom(other.registrar.address, reg.address, 1))
    with pytest.raises(TransactionReverted, match="DeedRegistryTokenNotBurnable"):
        reg.transact(reg.contract.functions.registrarTransfer(2, "0x" + "00" * 20))


def test_parcel_token_mapping_is_provable(reg):
    entries = [(1 + i, f"0223_{100 + i}_{i % 7 + 1}") for i in range(40)]
    tree = merkle.StandardTree.of(entries, merkle.PARCEL_TOKEN_ENCODING)
    anchor(reg, keccak256(b"a"), parcel_root=tree.root, tokens=len(entries))
    f = reg.contract.functions.verifyParcelToken
    for i in (0, 17, 39):
        assert f(0, tree.proof(i), *entries[i]).call() is True
    assert f(0, tree.proof(3), entries[3][0], "0223_999_1").call() is False
    assert f(0, tree.proof(3), 41, entries[3][1]).call() is False  # outside the batch's range
    assert f(7, tree.proof(3), *entries[3]).call() is False


@settings(max_examples=15, deadline=None)
@given(st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=40, unique=True), st.randoms())
def test_openzeppelin_merkle_proof_accepts_our_proofs_on_chain(commitments, rnd):
    chain = eth_tester_chain()
    chain.deploy()
    tree = merkle.StandardTree.of([[to_hex(c)] for c in commitments], merkle.COMMITMENT_ENCODING)
    anchor(chain, tree.root, count=len(commitments))
    i = rnd.randrange(len(commitments))
    assert chain.verify_commitment(0, tree.proof(i), commitments[i])
    assert not chain.verify_commitment(0, tree.proof(i), keccak256(commitments[i]))
    assert not chain.verify_commitment(0, [], tree.root)  # the root is no record
    assert not chain.verify_commitment(1, tree.proof(i), commitments[i])  # no such batch


def test_revocation_marks_single_records_and_is_idempotent(reg):
    commitments = [keccak256(bytes([i])) for i in range(8)]
    tree = merkle.StandardTree.of([[to_hex(c)] for c in commitments], merkle.COMMITMENT_ENCODING)
    anchor(reg, tree.root, count=8)
    leaf = merkle.commitment_leaf(commitments[2])
    signed = reg.sign_revoke(0, [leaf], b"ROLLBACK".ljust(32, b"\x00"), reg.pending_nonce())
    receipt = reg.wait(reg.broadcast(signed))
    assert reg.revoked_at(0, leaf) == receipt.block_number
    assert not reg.verify_commitment(0, tree.proof(2), commitments[2])
    assert reg.verify_commitment(0, tree.proof(3), commitments[3])  # the rest of the batch stands
    again = reg.wait(reg.broadcast(reg.sign_revoke(0, [leaf], b"\x00" * 32, reg.pending_nonce())))
    assert reg.revoked_at(0, leaf) == receipt.block_number  # unchanged
    assert not reg.contract.events.RecordRevoked().process_receipt(
        reg.w3.eth.get_transaction_receipt(again.tx_hash), errors=DISCARD
    )
    with pytest.raises(TransactionReverted, match="DeedRegistryUnknownBatch"):
        reg.sign_revoke(5, [leaf], b"\x00" * 32, reg.pending_nonce())


def as_role(chain: RegistryChain, role: str) -> RegistryChain:
    return chain.with_signer(Account.from_key(eth_tester_role_key(chain, role)))


def test_roles_are_enforced_and_separated(reg):
    other = stranger(reg)
    with pytest.raises(TransactionReverted, match="AccessControlUnauthorizedAccount"):
        anchor(other, keccak256(b"x"))
    with pytest.raises(TransactionReverted, match="AccessControlUnauthorizedAccount"):
        other.pause()
    with pytest.raises(TransactionReverted, match="AccessControlUnauthorizedAccount"):
        other.sign_revoke(0, [], b"\x00" * 32, other.pending_nonce())
    # the hot registrar key can neither grant roles nor pause: those are the admin's and the pauser's
    with pytest.raises(TransactionReverted, match="AccessControlUnauthorizedAccount"):
        reg.grant_role("registrar", other.registrar.address)
    with pytest.raises(TransactionReverted, match="AccessControlUnauthorizedAccount"):
        reg.pause()
    admin = as_role(reg, "admin")
    assert reg.has_role("admin", admin.registrar.address) and not reg.has_role("admin", reg.registrar.address)
    assert not reg.has_role("registrar", admin.registrar.address)
    admin.grant_role("registrar", other.registrar.address)
    anchor(other, keccak256(b"x"))
    assert other.batch_count() == 1
    admin.revoke_role("registrar", other.registrar.address)  # a retired registrar anchors nothing more
    with pytest.raises(TransactionReverted, match="AccessControlUnauthorizedAccount"):
        anchor(other, keccak256(b"y"))


def test_deployment_refuses_a_registrar_that_is_also_admin():
    chain = eth_tester_chain()
    with pytest.raises(ChainError, match="must not be the registrar"):
        chain.deploy(admin=chain.registrar.address)
    # the contract itself refuses it too, whoever deploys it
    factory = chain.w3.eth.contract(abi=artifact()["abi"], bytecode=artifact()["bytecode"])
    me = chain.registrar.address
    with pytest.raises(Exception) as exc:
        factory.constructor("x", "X", me, me, me, 0).estimate_gas({"from": me})
    assert "DeedRegistryRolesNotSeparated" in decode_revert(revert_data(exc.value))


def test_a_new_deployment_continues_token_numbering():
    chain = eth_tester_chain()
    chain.deploy(first_token_id=41)
    assert chain.next_token_id() == 41
    tree = merkle.StandardTree.of([(41, "0223_1_1"), (42, "0223_1_2")], merkle.PARCEL_TOKEN_ENCODING)
    anchor(chain, keccak256(b"a"), parcel_root=tree.root, tokens=2)
    assert chain.owner_of(41) == chain.address and chain.next_token_id() == 43


def test_only_real_records_verify_and_revocation_cannot_be_bypassed(reg):
    """Version 1 exposed verifyRecord(batchId, proof, leaf): the root and every inner node verified
    as records, and a revoked record's parent node still verified. Version 2 takes the commitment."""
    commitments = [keccak256(bytes([i])) for i in range(4)]
    tree = merkle.StandardTree.of([[to_hex(c)] for c in commitments], merkle.COMMITMENT_ENCODING)
    anchor(reg, tree.root, count=4)
    assert "verifyRecord" not in {f["name"] for f in artifact()["abi"] if f["type"] == "function"}
    proof = tree.proof(0)
    inner = merkle.process_proof(merkle.commitment_leaf(commitments[0]), proof[:1])  # parent of leaf 0
    assert not reg.verify_commitment(0, proof[1:], inner)  # an inner node posing as a record
    assert not reg.verify_commitment(0, [], tree.root)  # the root posing as a record
    leaf = merkle.commitment_leaf(commitments[0])
    reg.wait(reg.broadcast(reg.sign_revoke(0, [leaf], b"\x00" * 32, reg.pending_nonce())))
    assert not reg.verify_commitment(0, proof, commitments[0])
    assert not reg.verify_commitment(0, proof[1:], inner)  # revocation holds through the parent

    # the same attack on a version-1 deployment succeeds: that is why v1's public view was replaced
    old = legacy_v1(reg)
    anchor(old, tree.root, count=4)
    v1 = old.w3.eth.contract(address=old.address, abi=release_artifact(1)["abi"])
    assert v1.functions.verifyRecord(0, proof[1:], inner).call() is True


def legacy_v1(chain: RegistryChain) -> RegistryChain:
    """A DeedRegistry version 1 (the previous release's committed artifact) on the same chain."""
    v1 = release_artifact(1)
    factory = chain.w3.eth.contract(abi=v1["abi"], bytecode=v1["bytecode"])
    admin = chain.role_addresses["admin"]
    tx = factory.constructor("Old", "OLD", admin, chain.registrar.address).build_transaction(
        chain.base_transaction(chain.pending_nonce())
    )
    receipt = chain.wait(chain.broadcast(chain.sign_transaction(tx)))
    return RegistryChain(chain.w3, chain.account, receipt.contract_address, role_addresses=chain.role_addresses)


def test_pause_stops_every_state_change(reg):
    tree = merkle.StandardTree.of([(1, "0223_1_1")], merkle.PARCEL_TOKEN_ENCODING)
    anchor(reg, keccak256(b"a"), parcel_root=tree.root, tokens=1)
    with pytest.raises(TransactionReverted, match="AccessControlUnauthorizedAccount"):
        reg.pause()  # not the registrar's to do
    pauser = as_role(reg, "pauser")
    pauser.pause()
    assert reg.paused()
    for attempt in (
        lambda: anchor(reg, keccak256(b"b")),
        lambda: reg.sign_revoke(0, [keccak256(b"l")], b"\x00" * 32, reg.pending_nonce()),
        lambda: reg.transact(reg.contract.functions.registrarTransfer(1, "0x" + "11" * 20)),
    ):
        with pytest.raises(TransactionReverted, match="EnforcedPause"):
            attempt()
    pauser.unpause()
    anchor(reg, keccak256(b"b"))


def test_interfaces(reg):
    supports = reg.contract.functions.supportsInterface
    for interface in (
        "0x80ac58cd",
        "0x5b5e139f",
        "0xb45a3c0e",
        "0x7965db0b",
        "0x01ffc9a7",
    ):  # 721, metadata, 5192, AC, 165
        assert supports(interface).call(), interface
    assert not supports("0xffffffff").call()
    assert reg.contract.functions.name().call() == "Landreg Parcel"


def test_custom_errors_are_decoded():
    names = {name for name, _ in error_selectors().values()}
    assert {"DeedRegistryRootAlreadyAnchored", "DeedRegistryTokenLocked", "AccessControlUnauthorizedAccount"} <= names


def test_gas_per_batch_is_flat_in_the_number_of_records(reg):
    rng = random.Random(1)
    anchor(reg, rng.randbytes(32))  # the first batch also initialises storage
    small = anchor(reg, rng.randbytes(32), count=1)
    large = anchor(reg, rng.randbytes(32), count=100_000)
    assert abs(large.gas_used - small.gas_used) < 200  # the count is one word of calldata
