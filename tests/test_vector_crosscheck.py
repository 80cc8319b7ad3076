"""Every commitment and bundle vector of every scheme, checked by OpenZeppelin's own code: the leaf
and the proof with @openzeppelin/merkle-tree (node), and the proof on chain with DeedRegistry's
``MerkleProof`` (eth-tester), so a scheme's vectors are tied to what the contract accepts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hybrid_store.chain.connect import eth_tester_chain
from hybrid_store.core import merkle
from hybrid_store.core.hashing import from_hex32, to_hex
from tests.test_merkle import run_oz

HERE = Path(__file__).parent / "vectors"
COMMITMENTS = sorted([*HERE.glob("commitment/*.json"), *HERE.glob("commitment-v2/*.json")])
VALID_BUNDLES = sorted(p for d in ("bundle", "bundle-v2") for p in (HERE / d).glob("valid-*.json"))


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_every_scheme_has_vectors_here():
    schemes = {_load(p)["scheme"] for p in COMMITMENTS}
    assert schemes == {"landreg-commitment/v1", "landreg-commitment/v2"}
    assert {_load(p)["bundle"]["record"]["scheme"] for p in VALID_BUNDLES} == schemes


@pytest.mark.subprocess
def test_leaves_and_bundle_proofs_match_openzeppelin_merkle_tree():
    cases = []
    for path in COMMITMENTS:  # a one-leaf tree's root is its leaf
        v = _load(path)
        cases.append({"leafEncoding": list(merkle.COMMITMENT_ENCODING), "values": [[v["expected"]["commitment"]]]})
    bundles = [_load(p)["bundle"] for p in VALID_BUNDLES]
    for b in bundles:  # make_vectors.py's tree: the record and four fixed others
        values = [[b["record"]["commitment"]]] + [["0x" + f"{i:02x}" * 32] for i in range(1, 5)]
        ours = merkle.StandardTree.of(values, merkle.COMMITMENT_ENCODING)
        cases.append({"leafEncoding": list(merkle.COMMITMENT_ENCODING), "values": values, "ours": ours.dump()})
    results = run_oz(cases)
    for path, oz in zip(COMMITMENTS, results, strict=False):
        assert oz["root"] == _load(path)["expected"]["leaf"], path.name
    for b, oz in zip(bundles, results[len(COMMITMENTS) :], strict=True):
        assert oz["root"] == b["tree"]["root"]
        assert oz["proofs"][0] == b["tree"]["proof"]  # the bundle's proof is OpenZeppelin's proof of its leaf
        assert oz["oursValid"] and all(oz["oursProofsVerify"])


def test_bundle_proofs_verify_with_the_contracts_merkle_proof():
    chain = eth_tester_chain()
    chain.deploy()
    batches: dict[str, int] = {}  # a redacted bundle proves the same record, so the same root
    for path in VALID_BUNDLES:
        b = _load(path)["bundle"]
        if b["tree"]["root"] not in batches:
            batches[b["tree"]["root"]] = len(batches)
            root = from_hex32(b["tree"]["root"])
            chain.wait(
                chain.broadcast(chain.sign_anchor(len(batches) - 1, root, 5, None, 0, nonce=chain.pending_nonce()))
            )
        batch = batches[b["tree"]["root"]]
        proof = [from_hex32(p) for p in b["tree"]["proof"]]
        commitment = from_hex32(b["record"]["commitment"])
        assert chain.verify_commitment(batch, proof, commitment), path.name
        assert not chain.verify_commitment(batch, proof, from_hex32(to_hex(bytes(32)))), path.name
