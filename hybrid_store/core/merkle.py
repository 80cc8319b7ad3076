"""Merkle trees in OpenZeppelin's ``StandardMerkleTree`` format (``standard-v1``).

Leaves are ``keccak256(keccak256(abi.encode(values)))`` (the double hash keeps a leaf from ever
being mistaken for an inner node), inner nodes hash their two children in sorted order, and leaves
are sorted by hash and laid out in an array exactly as ``@openzeppelin/merkle-tree`` does. So
OpenZeppelin's Solidity ``MerkleProof`` verifies our proofs on chain and the npm library loads and
verifies our trees; the test suite checks both.

Array layout (n leaves, 2n-1 nodes): node ``i`` has children ``2i+1`` and ``2i+2``; the root is
node 0; the leaf of sorted position ``k`` is node ``2n-2-k``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hybrid_store.core.hashing import from_hex32, keccak256, to_hex

FORMAT = "standard-v1"
NODE_SIZE = 32
COMMITMENT_ENCODING: tuple[str, ...] = ("bytes32",)
PARCEL_TOKEN_ENCODING: tuple[str, ...] = ("uint256", "string")


def abi_encode(leaf_encoding: Sequence[str], value: Sequence[Any]) -> bytes:
    """``abi.encode`` of a leaf value. The two encodings landreg uses have hand-written fast paths;
    anything else goes through eth-abi (the fast paths are checked against it in the tests)."""
    encoding = tuple(leaf_encoding)
    if len(value) != len(encoding):
        raise ValueError(f"leaf value has {len(value)} members, leafEncoding {len(encoding)}")
    if encoding == COMMITMENT_ENCODING:
        word = value[0]
        data = from_hex32(word) if isinstance(word, str) else bytes(word)
        if len(data) != 32:
            raise ValueError("bytes32 value must be 32 bytes")
        return data
    if encoding == PARCEL_TOKEN_ENCODING:
        token_id, text = value
        if not isinstance(token_id, int) or isinstance(token_id, bool) or not 0 <= token_id < 2**256:
            raise ValueError("uint256 value out of range")
        raw: bytes = text.encode("utf-8")
        padded = raw + b"\x00" * (-len(raw) % 32)
        return token_id.to_bytes(32, "big") + (64).to_bytes(32, "big") + len(raw).to_bytes(32, "big") + padded
    from eth_abi import encode  # generic path, rarely used

    encoded: bytes = encode(
        list(encoding),
        [from_hex32(v) if t == "bytes32" and isinstance(v, str) else v for t, v in zip(encoding, value, strict=True)],
    )
    return encoded


def leaf_hash(leaf_encoding: Sequence[str], value: Sequence[Any]) -> bytes:
    return keccak256(keccak256(abi_encode(leaf_encoding, value)))


def commitment_leaf(commitment: bytes) -> bytes:
    """The standard-v1 leaf of a record commitment (leafEncoding ``["bytes32"]``)."""
    return keccak256(keccak256(commitment))


def hash_pair(a: bytes, b: bytes) -> bytes:
    return keccak256(a + b if a < b else b + a)


def build(sorted_leaves: Sequence[bytes]) -> list[bytes]:
    """The node array of a tree over leaf hashes already in ascending order."""
    n = len(sorted_leaves)
    if n == 0:
        raise ValueError("a Merkle tree needs at least one leaf")
    tree: list[bytes] = [b""] * (n - 1) + list(reversed(sorted_leaves))
    for i in range(n - 2, -1, -1):
        a, b = tree[2 * i + 1], tree[2 * i + 2]
        tree[i] = keccak256(a + b if a < b else b + a)
    return tree


def sibling_indices(tree_index: int) -> list[int]:
    """Node indexes of the proof of the node at ``tree_index``: its sibling, then its parent's, up to the root."""
    out, i = [], tree_index
    while i > 0:
        out.append(i + 1 if i % 2 else i - 1)
        i = (i - 1) // 2
    return out


def proof_from_nodes(nodes: Sequence[bytes], tree_index: int) -> list[bytes]:
    """Sibling hashes from the leaf at ``tree_index`` up to the root."""
    if not len(nodes) // 2 <= tree_index < len(nodes):
        raise IndexError(f"tree index {tree_index} is not a leaf of a {len(nodes)}-node tree")
    return [nodes[i] for i in sibling_indices(tree_index)]


#: a bulk verification's inner nodes already hashed: the 64 bytes of a sorted pair -> their parent
PairMemo = dict[bytes, bytes]
#: pairs a memo keeps before it starts afresh (about 50 MB): a batch's inner nodes, and room to spare
MAX_MEMO_PAIRS = 250_000


def process_proof(leaf: bytes, proof: Sequence[bytes], memo: PairMemo | None = None) -> bytes:
    """The root implied by ``leaf`` and ``proof`` (OpenZeppelin ``MerkleProof.processProof``).

    ``memo``: the parents of the pairs hashed before, kept across calls. The bundles of one batch
    share the upper part of their paths (a batch of n leaves has n - 1 inner nodes, its bundles'
    proofs n·log2(n) steps between them), so a verification of many bundles finds most parents
    there; each step still hashes or looks up exactly the bytes of its own pair, so the root is the
    one the fold without a memo gives (a test holds them together)."""
    node = leaf
    if memo is None:
        for sibling in proof:  # hash_pair, inlined: every bundle's proof is folded here
            node = keccak256(node + sibling if node < sibling else sibling + node)
        return node
    if len(memo) > MAX_MEMO_PAIRS:
        memo.clear()
    for sibling in proof:
        pair = node + sibling if node < sibling else sibling + node
        parent = memo.get(pair)
        if parent is None:
            parent = memo[pair] = keccak256(pair)
        node = parent
    return node


def verify(root: bytes, leaf: bytes, proof: Sequence[bytes]) -> bool:
    return process_proof(leaf, proof) == root


@dataclass(frozen=True)
class StandardTree:
    """A ``StandardMerkleTree`` with its values, as ``@openzeppelin/merkle-tree`` builds it."""

    leaf_encoding: tuple[str, ...]
    nodes: tuple[bytes, ...]
    values: tuple[tuple[Any, ...], ...]  # in input order
    tree_indices: tuple[int, ...]  # node index of each value's leaf

    @classmethod
    def of(cls, values: Sequence[Sequence[Any]], leaf_encoding: Sequence[str]) -> StandardTree:
        encoding = tuple(leaf_encoding)
        hashed = sorted((leaf_hash(encoding, v), i) for i, v in enumerate(values))
        nodes = build([h for h, _ in hashed])
        indices = [0] * len(values)
        for position, (_, value_index) in enumerate(hashed):
            indices[value_index] = len(nodes) - 1 - position
        return cls(encoding, tuple(nodes), tuple(tuple(v) for v in values), tuple(indices))

    @property
    def root(self) -> bytes:
        return self.nodes[0]

    def proof(self, value_index: int) -> list[bytes]:
        return proof_from_nodes(self.nodes, self.tree_indices[value_index])

    def dump(self) -> dict[str, Any]:
        """The JSON object ``StandardMerkleTree.load`` accepts."""
        return {
            "format": FORMAT,
            "leafEncoding": list(self.leaf_encoding),
            "tree": [to_hex(n) for n in self.nodes],
            "values": [{"value": list(v), "treeIndex": t} for v, t in zip(self.values, self.tree_indices, strict=True)],
        }


def nodes_to_bytes(nodes: Sequence[bytes]) -> bytes:
    """Compact storage form of a node array (32 bytes per node)."""
    return b"".join(nodes)


def nodes_from_bytes(blob: bytes) -> list[bytes]:
    if len(blob) % NODE_SIZE or not blob:
        raise ValueError("a stored tree is a non-empty multiple of 32 bytes")
    return [blob[i : i + NODE_SIZE] for i in range(0, len(blob), NODE_SIZE)]
