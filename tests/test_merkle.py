"""standard-v1 Merkle trees: a naive reference, OpenZeppelin's npm library, eth-abi."""

from __future__ import annotations

import json
import random
import subprocess

import pytest
from eth_abi import encode
from hypothesis import given
from hypothesis import strategies as st

from hybrid_store.core import merkle
from hybrid_store.core.hashing import keccak256, to_hex
from tests.conftest import REPO

hashes32 = st.binary(min_size=32, max_size=32)


def naive_root(leaves: list[bytes]) -> bytes:
    """OpenZeppelin's layout written the slow, obvious way: a heap-ordered array, children 2i+1, 2i+2."""
    n = len(leaves)
    tree: dict[int, bytes] = {2 * n - 2 - k: leaf for k, leaf in enumerate(sorted(leaves))}

    def node(i: int) -> bytes:
        if i not in tree:
            a, b = node(2 * i + 1), node(2 * i + 2)
            tree[i] = keccak256(min(a, b) + max(a, b))
        return tree[i]

    return node(0)


@given(st.lists(hashes32, min_size=1, max_size=70, unique=True))
def test_tree_matches_the_naive_reference(leaves):
    nodes = merkle.build(sorted(leaves))
    assert nodes[0] == naive_root(leaves)
    assert len(nodes) == 2 * len(leaves) - 1


@given(st.lists(hashes32, min_size=1, max_size=70, unique=True), st.data())
def test_every_proof_verifies_and_every_altered_proof_fails(leaves, data):
    tree = merkle.StandardTree.of([[to_hex(x)] for x in leaves], merkle.COMMITMENT_ENCODING)
    i = data.draw(st.integers(0, len(leaves) - 1))
    leaf = merkle.commitment_leaf(leaves[i])
    proof = tree.proof(i)
    assert merkle.verify(tree.root, leaf, proof)
    blob = merkle.nodes_to_bytes(tree.nodes)  # what the database stores; proofs are read out of it by offset
    assert proof == [blob[j * 32 : j * 32 + 32] for j in merkle.sibling_indices(tree.tree_indices[i])]
    if proof:
        j = data.draw(st.integers(0, len(proof) - 1))
        bit = data.draw(st.integers(0, 255))
        bad = bytearray(proof[j])
        bad[bit // 8] ^= 1 << (bit % 8)
        assert not merkle.verify(tree.root, leaf, proof[:j] + [bytes(bad)] + proof[j + 1 :])
        assert not merkle.verify(tree.root, leaf, proof[:-1])
    assert not merkle.verify(tree.root, keccak256(leaf), proof)


@given(st.integers(0, 2**256 - 1), st.text(max_size=80))
def test_parcel_token_fast_path_is_abi_encode(token_id, key):
    assert merkle.abi_encode(merkle.PARCEL_TOKEN_ENCODING, [token_id, key]) == encode(
        ["uint256", "string"], [token_id, key]
    )


@given(hashes32)
def test_bytes32_fast_path_is_abi_encode(value):
    assert merkle.abi_encode(merkle.COMMITMENT_ENCODING, [to_hex(value)]) == encode(["bytes32"], [value])


def test_generic_encodings_go_through_eth_abi():
    value = [7, "0x" + "11" * 20]
    leaf = merkle.leaf_hash(["uint256", "address"], value)
    assert leaf == keccak256(keccak256(encode(["uint256", "address"], value)))


def test_an_empty_tree_is_refused():
    with pytest.raises(ValueError, match="at least one leaf"):
        merkle.build([])


def run_oz(cases: list[dict]) -> list[dict]:
    out = subprocess.run(
        ["node", str(REPO / "tests" / "js" / "oz_merkle.mjs")],
        input=json.dumps({"cases": cases}), capture_output=True, text=True, check=True, cwd=REPO,
    )  # fmt: skip
    return json.loads(out.stdout)["results"]


@pytest.mark.subprocess
def test_trees_and_proofs_match_openzeppelin_merkle_tree():
    rng = random.Random(20261122)
    cases, ours = [], []
    for size in [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31, 64, 100, 257]:
        if rng.random() < 0.5:
            encoding = list(merkle.COMMITMENT_ENCODING)
            values = [[to_hex(rng.randbytes(32))] for _ in range(size)]
        else:
            encoding = list(merkle.PARCEL_TOKEN_ENCODING)
            values = [[rng.randrange(1, 10**6), f"02{rng.randrange(1, 71):02d}_{rng.randrange(1, 900)}_{i}"]
                      for i in range(size)]  # fmt: skip
        tree = merkle.StandardTree.of(values, encoding)
        ours.append(tree)
        cases.append({"leafEncoding": encoding, "values": values, "ours": tree.dump()})
    for tree, case, oz in zip(ours, cases, run_oz(cases), strict=True):
        assert to_hex(tree.root) == oz["root"]
        assert tree.dump() == oz["dump"]  # identical node array and leaf positions
        assert [[to_hex(p) for p in tree.proof(i)] for i in range(len(case["values"]))] == oz["proofs"]
        assert oz["oursValid"] and all(oz["oursProofsVerify"])


def test_node_blob_round_trip():
    nodes = merkle.build(sorted(keccak256(bytes([i])) for i in range(9)))
    assert merkle.nodes_from_bytes(merkle.nodes_to_bytes(nodes)) == nodes
    with pytest.raises(ValueError):
        merkle.nodes_from_bytes(b"\x00" * 33)


@given(st.lists(hashes32, min_size=1, max_size=40, unique=True), st.lists(st.integers(0, 39), max_size=60),
       st.integers(0, 2))  # fmt: skip
def test_a_memo_of_pairs_gives_the_root_the_fold_without_one_gives(leaves, order, cap):
    """A bulk verification folds each bundle's proof with the pairs it has hashed before at hand
    (``memo``): every proof of a tree, forged ones among them, in any order, and a memo that starts
    afresh when full, give exactly the roots the plain fold gives."""
    tree = merkle.StandardTree.of([[to_hex(x)] for x in leaves], merkle.COMMITMENT_ENCODING)
    memo: merkle.PairMemo = {}
    for k in order:
        i = k % len(leaves)
        proof = tree.proof(i)
        for leaf in (merkle.commitment_leaf(leaves[i]), keccak256(leaves[i])):  # the leaf, and one that is not
            with_memo = merkle.process_proof(leaf, proof, memo)
            assert with_memo == merkle.process_proof(leaf, proof)
        if len(memo) > cap:
            memo.clear()
    assert all(keccak256(pair) == parent for pair, parent in memo.items())
