"""The title state (hybrid_store/core/title_state.py, spec docs/title-state.md).

The fast tree is checked against a naive one written here from the spec alone (its own keccak, bit
strings, the compaction rule applied by counting keys under each prefix), on random key sets and
update sequences, re-applying from old versions included; against frozen vectors; and for the
verifier's verdicts: exactly the true head for every key, an error for any altered value or proof.
"""

from __future__ import annotations

import copy
import hashlib
import json
import struct
from pathlib import Path
from typing import Any

import pytest
from Crypto.Hash import keccak as pycryptodome_keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hybrid_store.core import audit, commitment
from hybrid_store.core import title_state as ts

VECTORS = Path(__file__).parent / "data" / "title_state_vectors.json"

# --- the independent implementation, from docs/title-state.md -----------------------------------------

ZERO = bytes(32)
TAG = b"landreg-title-state/v1"


def k256(data: bytes) -> bytes:
    return pycryptodome_keccak.new(digest_bits=256, data=data).digest()


def n_path(key: str) -> bytes:
    return k256(TAG + b"/path\x00" + key.encode())


def n_value_hash(key: str, c: bytes, length: int) -> bytes:
    raw = key.encode()
    return k256(TAG + b"/head\x00" + struct.pack(">H", len(raw)) + raw + c + struct.pack(">Q", length))


def n_leaf(path: bytes, vh: bytes) -> bytes:
    return k256(b"\x00" + path + vh)


def n_inner(left: bytes, right: bytes) -> bytes:
    return k256(b"\x01" + left + right)


def bits(data: bytes) -> str:
    return "".join(f"{b:08b}" for b in data)


def n_leaves(state: dict[str, tuple[bytes, int]]) -> dict[str, tuple[bytes, bytes]]:
    """bit string of each key's path -> (path, value hash)"""
    return {bits(n_path(k)): (n_path(k), n_value_hash(k, c, n)) for k, (c, n) in state.items()}


def n_node(leaves: dict[str, tuple[bytes, bytes]], prefix: str) -> bytes:
    under = [v for b, v in leaves.items() if b.startswith(prefix)]
    if not under:
        return ZERO
    if len(under) == 1:
        return n_leaf(*under[0])
    return n_inner(n_node(leaves, prefix + "0"), n_node(leaves, prefix + "1"))


def n_root(state: dict[str, tuple[bytes, int]]) -> bytes:
    return n_node(n_leaves(state), "")


def n_prove(state: dict[str, tuple[bytes, int]], key: str) -> dict[str, Any]:
    """The JSON proof, built by walking prefixes of the key's path until at most one key is under it."""
    leaves, path = n_leaves(state), bits(n_path(key))
    depth, full = 0, []
    while len([b for b in leaves if b.startswith(path[:depth])]) > 1:
        full.append(n_node(leaves, path[:depth] + ("1" if path[depth] == "0" else "0")))
        depth += 1
    bitmap = "".join("0" if s == ZERO else "1" for s in full).ljust(-(-depth // 8) * 8, "0")
    out: dict[str, Any] = {
        "scheme": "landreg-title-state/v1",
        "depth": depth,
        "bitmap": "0x" + (int(bitmap, 2).to_bytes(len(bitmap) // 8, "big").hex() if bitmap else ""),
        "siblings": ["0x" + s.hex() for s in full if s != ZERO],
    }
    here = [b for b in leaves if b.startswith(path[:depth])]
    if not here:
        out["kind"] = "absent-empty"
    elif here[0] == path:
        c, n = state[key]
        out.update(kind="member", head={"commitment": "0x" + c.hex(), "historyLength": n})
    else:
        p, vh = leaves[here[0]]
        out.update(kind="absent-leaf", leaf={"path": "0x" + p.hex(), "valueHash": "0x" + vh.hex()})
    return out


class NaiveError(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def n_hex32(text: object) -> bytes:
    if not isinstance(text, str) or len(text) != 66 or text[:2] != "0x" or text[2:] != text[2:].lower():
        raise NaiveError("malformed-proof")
    try:
        return bytes.fromhex(text[2:])
    except ValueError:
        raise NaiveError("malformed-proof") from None


def n_siblings(proof: Any) -> list[bytes]:
    """The full sibling list of a JSON proof, after the spec's format checks."""
    members = {"scheme", "kind", "depth", "bitmap", "siblings"}
    extra = {"member": {"head"}, "absent-leaf": {"leaf"}, "absent-empty": set()}
    if not isinstance(proof, dict) or proof.get("kind") not in extra or set(proof) != members | extra[proof["kind"]]:
        raise NaiveError("malformed-proof")
    depth = proof["depth"]
    if proof["scheme"] != "landreg-title-state/v1" or type(depth) is not int or not 0 <= depth <= 256:
        raise NaiveError("malformed-proof")
    bm = proof["bitmap"]
    if not isinstance(bm, str) or len(bm) != 2 + 2 * -(-depth // 8) or bm[2:] != bm[2:].lower():
        raise NaiveError("malformed-proof")
    try:
        flags = bits(bytes.fromhex(bm[2:]))
    except ValueError:
        raise NaiveError("malformed-proof") from None
    if "1" in flags[depth:] or (depth and flags[depth - 1] == "0") or not isinstance(proof["siblings"], list):
        raise NaiveError("malformed-proof")
    given_ = [n_hex32(s) for s in proof["siblings"]]
    if flags.count("1") != len(given_):
        raise NaiveError("malformed-proof")
    it = iter(given_)
    return [next(it) if f == "1" else ZERO for f in flags[:depth]]


def n_terminal(key: str, proof: dict[str, Any]) -> tuple[bytes, tuple[bytes, int] | None]:
    """The node where the walk ends, and the head it shows."""
    path, depth = n_path(key), proof["depth"]
    if proof["kind"] == "member":
        h = proof["head"]
        if not isinstance(h, dict) or set(h) != {"commitment", "historyLength"}:
            raise NaiveError("malformed-proof")
        c, n = n_hex32(h["commitment"]), h["historyLength"]
        if type(n) is not int or not 1 <= n < 2**64:
            raise NaiveError("malformed-proof")
        return n_leaf(path, n_value_hash(key, c, n)), (c, n)
    if proof["kind"] == "absent-leaf":
        leaf = proof["leaf"]
        if not isinstance(leaf, dict) or set(leaf) != {"path", "valueHash"}:
            raise NaiveError("malformed-proof")
        p, vh = n_hex32(leaf["path"]), n_hex32(leaf["valueHash"])
        if p == path or bits(p)[:depth] != bits(path)[:depth]:
            raise NaiveError("wrong-path")
        return n_leaf(p, vh), None
    return ZERO, None


def n_verify(root: bytes, key: str, proof: Any) -> tuple[bytes, int] | None:
    """The spec's verification algorithm, step by step."""
    siblings = n_siblings(proof)
    node, result = n_terminal(key, proof)
    path = bits(n_path(key))
    for level in reversed(range(len(siblings))):
        node = n_inner(siblings[level], node) if path[level] == "1" else n_inner(node, siblings[level])
    if node != root:
        raise NaiveError("root-mismatch")
    return result


# --- strategies ---------------------------------------------------------------------------------------

KEYS = st.text(alphabet="0123456789_.-ABÉ", min_size=1, max_size=6)
COMMITMENTS = st.binary(min_size=32, max_size=32)
HEADS = st.dictionaries(KEYS, st.tuples(COMMITMENTS, st.integers(1, 2**64 - 1)), max_size=12)


def to_heads(state: dict[str, tuple[bytes, int]]) -> list[ts.Head]:
    return [ts.Head(k, c, n) for k, (c, n) in state.items()]


def flip(hex_text: str) -> str:
    return hex_text[:-1] + ("1" if hex_text[-1] == "0" else "0")


# --- the fast tree agrees with the naive one ----------------------------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    batches=st.lists(st.tuples(HEADS, st.integers(0, 100)), min_size=1, max_size=5), probes=st.lists(KEYS, max_size=4)
)
def test_roots_and_proofs_agree_with_the_naive_tree_on_every_branch(
    batches: list[tuple[dict[str, tuple[bytes, int]], int]], probes: list[str]
) -> None:
    """Each batch goes onto a random earlier version (or the empty state): a new branch. Every version
    ever written keeps the root and proofs of its own state."""
    store = ts.MemoryNodeStore()
    states: dict[int | None, dict[str, tuple[bytes, int]]] = {None: {}}
    for version, (batch, pick) in enumerate(batches, start=1):
        bases = list(states)
        base = bases[pick % len(bases)]
        assert ts.apply(store, base, to_heads(batch), version=version) == (version, n_root({**states[base], **batch}))
        states[version] = {**states[base], **batch}
    for version, state in states.items():
        if version is None:
            continue
        root = store.root_of(version)
        assert root == n_root(state)
        assert ts.heads_of(store, version) == {h.parcel_key: h for h in to_heads(state)}
        for key in [*state, *probes]:
            proof = ts.prove(store, version, key)
            assert proof.to_json() == n_prove(state, key)
            expected = ts.Head(key, *state[key]) if key in state else None
            assert ts.verify_head(root, key, proof) == expected
            assert n_verify(root, key, proof.to_json()) == state.get(key)


def test_the_root_depends_on_the_heads_not_on_the_order_or_batching() -> None:
    heads = [ts.Head(f"0223_{i}_1", hashlib.sha256(bytes([i])).digest(), 1) for i in range(50)]
    one, two = ts.MemoryNodeStore(), ts.MemoryNodeStore()
    _, whole = ts.apply(one, None, heads, version=1)
    ts.apply(two, None, heads[30:], version=1)
    ts.apply(two, 1, reversed(heads[:30]), version=2)
    assert two.root_of(2) == whole == n_root({h.parcel_key: (h.commitment, 1) for h in heads})


# --- versions -----------------------------------------------------------------------------------------


class CountingStore(ts.MemoryNodeStore):
    def __init__(self) -> None:
        super().__init__()
        self.reads: list[bytes] = []
        self.writes: list[bytes] = []

    def get_node(self, node_hash: bytes) -> ts.Node:
        self.reads.append(node_hash)
        return super().get_node(node_hash)

    def put_node(self, node_hash: bytes, node: ts.Node) -> None:
        self.writes.append(node_hash)
        super().put_node(node_hash, node)


def book(n: int, tag: str = "") -> list[ts.Head]:
    return [ts.Head(f"0223_{i // 9}_{i % 9}", hashlib.sha256(f"{i}{tag}".encode()).digest(), 1) for i in range(n)]


def test_an_update_reads_and_writes_only_the_paths_of_the_parcels_it_touches() -> None:
    store = CountingStore()
    heads = book(2000)
    ts.apply(store, None, heads, version=1)
    touched = [ts.Head(h.parcel_key, bytes(32), 2) for h in heads[::400]]  # five parcels of 2,000
    path_nodes = sum(ts.prove(store, 1, h.parcel_key).depth + 1 for h in touched)  # each walk's nodes
    store.reads.clear(), store.writes.clear()
    ts.apply(store, 1, touched, version=2)
    assert 0 < len(store.reads) <= path_nodes
    assert 0 < len(store.writes) <= path_nodes
    # and a new parcel costs its walk plus the few levels where it parts from its neighbour
    newcomer = ts.Head("9999_1_1", bytes(32), 1)
    walk = ts.prove(store, 2, newcomer.parcel_key).depth + 1
    store.reads.clear(), store.writes.clear()
    ts.apply(store, 2, [newcomer], version=3)
    assert len(store.reads) <= walk
    assert len(store.writes) <= ts.prove(store, 3, newcomer.parcel_key).depth + 2


def test_applying_onto_an_old_version_reads_nothing_written_after_it() -> None:
    store = CountingStore()
    ts.apply(store, None, book(300), version=1)
    known_at_1 = set(store.nodes)
    ts.apply(store, 1, book(300, "second"), version=2)  # every head changes
    ts.apply(store, 2, book(400, "third"), version=3)
    store.reads.clear()
    _, rebuilt = ts.apply(store, 1, book(50, "requeued"), version=4)  # the batch of 2 requeued
    assert store.reads and set(store.reads) <= known_at_1
    state = {h.parcel_key: (h.commitment, 1) for h in [*book(300), *book(50, "requeued")]}
    assert rebuilt == n_root(state)
    # the abandoned branch keeps proving what it proved
    for version in (2, 3):
        head = book(300, "second" if version == 2 else "third")[7]
        assert (
            ts.verify_head(store.root_of(version), head.parcel_key, ts.prove(store, version, head.parcel_key)) == head
        )


def test_a_version_names_one_state_forever() -> None:
    store = ts.MemoryNodeStore()
    ts.apply(store, None, book(3), version=1)
    with pytest.raises(ts.VersionExistsError, match="takes a new version number"):
        ts.apply(store, None, book(3, "x"), version=1)
    with pytest.raises(ts.UnknownVersionError, match="no title state version 7"):
        ts.apply(store, 7, book(1), version=8)
    with pytest.raises(ts.UnknownVersionError):
        ts.prove(store, 7, "0223_0_0")
    assert store.roots == {1: n_root({h.parcel_key: (h.commitment, 1) for h in book(3)})}


def test_a_parcel_appears_once_per_update() -> None:
    a, b = ts.Head("0223_1_1", bytes(32), 1), ts.Head("0223_1_1", bytes(31) + b"\x01", 2)
    with pytest.raises(ts.TitleStateError, match="appears twice in one update; give only its latest head"):
        ts.apply(ts.MemoryNodeStore(), None, [a, b], version=1)


@pytest.mark.parametrize(
    ("key", "c", "n", "message"),
    [
        ("", bytes(32), 1, "1 to 256 bytes"),
        ("x" * 257, bytes(32), 1, "1 to 256 bytes"),
        ("E\u0301", bytes(32), 1, "not in NFC form"),
        ("0223_1_1", bytes(31), 1, "32 bytes"),
        ("0223_1_1", bytes(32), 0, "from 1 to 2\\^64-1"),
        ("0223_1_1", bytes(32), 2**64, "from 1 to 2\\^64-1"),
        ("0223_1_1", bytes(32), True, "from 1 to 2\\^64-1"),
    ],
)
def test_a_head_is_validated_when_made(key: str, c: bytes, n: int, message: str) -> None:
    with pytest.raises(ts.TitleStateError, match=message):
        ts.Head(key, c, n)


# --- the verifier's verdicts --------------------------------------------------------------------------

STATE_AND_OUTSIDERS = st.tuples(HEADS.filter(bool), st.lists(KEYS, min_size=1, max_size=4))


@settings(max_examples=60, deadline=None)
@given(data=STATE_AND_OUTSIDERS, forged=COMMITMENTS)
def test_verify_accepts_exactly_the_true_head(
    data: tuple[dict[str, tuple[bytes, int]], list[str]], forged: bytes
) -> None:
    state, outsiders = data
    store = ts.MemoryNodeStore()
    _, root = ts.apply(store, None, to_heads(state), version=1)
    for key, (c, n) in state.items():
        proof = ts.prove(store, 1, key)
        assert ts.verify_head(root, key, proof) == ts.Head(key, c, n)
        for altered in ({**proof.to_json(), "head": {"commitment": "0x" + forged.hex(), "historyLength": n}},
                        {**proof.to_json(), "head": {"commitment": "0x" + c.hex(), "historyLength": n % (2**64 - 1) + 1}}):  # fmt: skip
            if altered["head"] != proof.to_json()["head"]:
                with pytest.raises(ts.RootMismatchError) as caught:
                    ts.verify_head(root, key, ts.proof_from_json(altered))
                assert caught.value.expected == root and caught.value.computed != root
        for i in range(len(proof.to_json()["siblings"])):
            doc = copy.deepcopy(proof.to_json())
            doc["siblings"][i] = flip(doc["siblings"][i])
            with pytest.raises(ts.RootMismatchError):
                ts.verify_head(root, key, ts.proof_from_json(doc))
        for other in state.keys() - {key}:  # a head proof is no other parcel's
            with pytest.raises(ts.TitleStateError):
                ts.verify_head(root, other, proof)
    for key in set(outsiders) - set(state):
        assert ts.verify_head(root, key, ts.prove(store, 1, key)) is None


@settings(max_examples=60, deadline=None)
@given(data=STATE_AND_OUTSIDERS, forged=COMMITMENTS, length=st.integers(1, 2**64 - 1))
def test_a_forged_head_for_a_parcel_never_recorded_fails(
    data: tuple[dict[str, tuple[bytes, int]], list[str]], forged: bytes, length: int
) -> None:
    state, outsiders = data
    store = ts.MemoryNodeStore()
    _, root = ts.apply(store, None, to_heads(state), version=1)
    for key in set(outsiders) - set(state):
        absence = ts.prove(store, 1, key)
        with_forgery = ts.MemoryNodeStore()
        ts.apply(with_forgery, None, [*to_heads(state), ts.Head(key, forged, length)], version=1)
        attempts = [
            ts.HeadProof(absence.siblings, head=ts.ProvenHead(forged, length)),  # a head where the walk ends
            ts.prove(with_forgery, 1, key),  # a real proof, of the registry's heads plus the forged one
        ]
        for attempt in attempts:
            with pytest.raises(ts.RootMismatchError):
                ts.verify_head(root, key, attempt)
            with pytest.raises(NaiveError):
                n_verify(root, key, attempt.to_json())


def test_an_absence_proof_cannot_hide_a_recorded_parcel() -> None:
    store = ts.MemoryNodeStore()
    heads = book(20)
    _, root = ts.apply(store, None, heads, version=1)
    target = heads[4]
    proof = ts.prove(store, 1, target.parcel_key)
    own = ts.OtherLeaf(ts.path_of(target.parcel_key), ts.value_hash(target))
    with pytest.raises(ts.PathMismatchError, match="own leaf: it proves the parcel has a head"):
        ts.verify_head(root, target.parcel_key, ts.HeadProof(proof.siblings, leaf=own))
    with pytest.raises(ts.RootMismatchError):  # nor an empty subtree where its leaf is
        ts.verify_head(root, target.parcel_key, ts.HeadProof(proof.siblings))
    # nor another parcel's leaf that does not stand on its path
    first_bit = ts.path_of(target.parcel_key)[0] >> 7
    stranger = next(h for h in heads if ts.path_of(h.parcel_key)[0] >> 7 != first_bit)
    off_path = ts.OtherLeaf(ts.path_of(stranger.parcel_key), ts.value_hash(stranger))
    assert proof.depth >= 1
    with pytest.raises(ts.PathMismatchError, match="not on parcel"):
        ts.verify_head(root, target.parcel_key, ts.HeadProof(proof.siblings, leaf=off_path))


# --- encodings ----------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(data=STATE_AND_OUTSIDERS)
def test_proofs_round_trip_through_json_and_bytes(data: tuple[dict[str, tuple[bytes, int]], list[str]]) -> None:
    state, outsiders = data
    store = ts.MemoryNodeStore()
    ts.apply(store, None, to_heads(state), version=1)
    for key in [*state, *outsiders]:
        proof = ts.prove(store, 1, key)
        assert ts.proof_from_json(json.loads(json.dumps(proof.to_json()))) == proof
        raw = proof.to_bytes()
        assert ts.proof_from_bytes(raw) == proof
        for bad in (raw + b"\x00", raw[:-1]):
            with pytest.raises(ts.MalformedProofError):
                ts.proof_from_bytes(bad)


def member_proof() -> tuple[bytes, str, dict[str, Any]]:
    store = ts.MemoryNodeStore()
    heads = book(64)
    _, root = ts.apply(store, None, heads, version=1)
    key = max((h.parcel_key for h in heads), key=lambda k: ts.prove(store, 1, k).depth)
    return root, key, ts.prove(store, 1, key).to_json()


MUTATIONS = {
    "extra member": lambda p: p.update(extra=1),
    "missing member": lambda p: p.pop("scheme"),
    "other scheme": lambda p: p.update(scheme="landreg-title-state/v2"),
    "unknown kind": lambda p: p.update(kind="inner"),
    "member without head": lambda p: p.pop("head"),
    "member proof with a leaf": lambda p: p.update(leaf={"path": "0x" + "00" * 32, "valueHash": "0x" + "00" * 32}),
    "absent-leaf without leaf": lambda p: p.update(kind="absent-leaf"),
    "head with extra member": lambda p: p["head"].update(parcelKey="0223_1_1"),
    "history length as text": lambda p: p["head"].update(historyLength="1"),
    "history length zero": lambda p: p["head"].update(historyLength=0),
    "short commitment": lambda p: p["head"].update(commitment="0x" + "00" * 31),
    "short sibling": lambda p: p["siblings"].__setitem__(0, p["siblings"][0][:-2]),
    "sibling not text": lambda p: p["siblings"].__setitem__(0, 7),
    "extra sibling": lambda p: p["siblings"].append(p["siblings"][0]),
    "siblings not a list": lambda p: p.update(siblings={}),
    "depth 257": lambda p: p.update(depth=257),
    "depth as bool": lambda p: p.update(depth=True),
    "depth negative": lambda p: p.update(depth=-1),
    "bitmap one byte long": lambda p: p.update(bitmap=p["bitmap"] + "00"),
    "bitmap upper case": lambda p: p.update(bitmap=p["bitmap"].upper().replace("0X", "0x")),
    "bitmap not hex": lambda p: p.update(bitmap="0x" + "zz" * (len(p["bitmap"]) // 2 - 1)),
    "bitmap padding set": lambda p: p.update(bitmap=p["bitmap"][:-2] + f"{int(p['bitmap'][-2:], 16) | 1:02x}"),
}


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_parsing_is_strict(name: str) -> None:
    root, key, doc = member_proof()
    assert doc["depth"] % 8, "the padding mutation needs spare bits in the bitmap"
    assert ts.verify_head(root, key, ts.proof_from_json(copy.deepcopy(doc))) is not None
    MUTATIONS[name](doc)
    with pytest.raises(ts.MalformedProofError):
        ts.proof_from_json(doc)
    with pytest.raises(NaiveError, match="malformed-proof"):
        n_verify(root, key, doc)


def test_a_proof_is_not_made_with_a_bad_shape() -> None:
    with pytest.raises(ts.MalformedProofError, match="at most 256 levels"):
        ts.HeadProof((b"\x01" * 32,) * 257)
    with pytest.raises(ts.MalformedProofError, match="never empty"):
        ts.HeadProof((b"\x01" * 32, ts.EMPTY))
    with pytest.raises(ts.MalformedProofError, match="not both"):
        ts.HeadProof((), head=ts.ProvenHead(bytes(32), 1), leaf=ts.OtherLeaf(bytes(32), bytes(32)))


# --- the marker leaf ----------------------------------------------------------------------------------


def test_the_state_marker_is_tagged_apart_from_every_other_leaf_value() -> None:
    root = n_root({"0223_1_1": (bytes(32), 1)})
    marker = ts.state_marker(root)
    assert marker == hashlib.sha256(b"landreg-title-state/v1/marker\x00" + root).digest()
    assert marker not in {audit.head_marker(root, 1), commitment.rollback_marker(root), root}
    with pytest.raises(ts.TitleStateError):
        ts.state_marker(root[:31])


# --- frozen vectors -----------------------------------------------------------------------------------


def vectors() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(VECTORS.read_text())
    return loaded


def test_the_vectors_are_what_the_code_computes() -> None:
    """Frozen: a change to the hashing, the encodings or the tree moves a root or a proof here."""
    doc = vectors()
    assert doc["scheme"] == ts.SCHEME
    store = ts.MemoryNodeStore()
    naive: dict[int, dict[str, tuple[bytes, int]]] = {}
    for s in doc["states"]:
        heads = [ts.Head(h["parcelKey"], bytes.fromhex(h["commitment"][2:]), h["historyLength"]) for h in s["applied"]]
        _, root = ts.apply(store, s["base"], heads, version=s["version"])
        naive[s["version"]] = {
            **naive.get(s["base"], {}),
            **{h.parcel_key: (h.commitment, h.history_length) for h in heads},
        }
        assert "0x" + root.hex() == s["root"] == "0x" + n_root(naive[s["version"]]).hex(), s["name"]
        assert "0x" + ts.state_marker(root).hex() == s["marker"]
        for p in s["proofs"]:
            assert (
                ts.prove(store, s["version"], p["parcelKey"]).to_json()
                == p["proof"]
                == n_prove(naive[s["version"]], p["parcelKey"])
            )
            got = ts.verify_head(root, p["parcelKey"], ts.proof_from_json(p["proof"]))
            want = p["head"] and ts.Head(
                p["parcelKey"], bytes.fromhex(p["head"]["commitment"][2:]), p["head"]["historyLength"]
            )
            assert got == (want or None)
    kinds = {p["proof"]["kind"] for s in doc["states"] for p in s["proofs"]}
    assert kinds == {"member", "absent-empty", "absent-leaf"}


@pytest.mark.parametrize("case", vectors()["negatives"], ids=lambda c: c["name"])
def test_each_negative_vector_fails_with_its_error(case: dict[str, Any]) -> None:
    root = bytes.fromhex(case["root"][2:])
    with pytest.raises(ts.TitleStateError) as caught:
        ts.verify_head(root, case["parcelKey"], ts.proof_from_json(case["proof"]))
    assert caught.value.code == case["error"]
    with pytest.raises(NaiveError) as naive:
        n_verify(root, case["parcelKey"], case["proof"])
    assert naive.value.code == case["error"]


def test_the_negative_vectors_name_the_mutations_the_issue_asks_for() -> None:
    names = {c["name"] for c in vectors()["negatives"]}
    assert {"wrong-key", "modified-sibling@3", "extra-sibling", "leaf-as-inner", "truncated-bitmap"} <= names


def test_the_generator_still_makes_the_frozen_file() -> None:
    from tests.data.make_title_state_vectors import render

    assert render() == VECTORS.read_text()


def test_a_proof_deeper_than_a_path_is_refused_before_anything_else() -> None:
    """Even with a bitmap and siblings that fit 257 levels, and in the binary form."""
    doc = {"scheme": ts.SCHEME, "kind": "absent-empty", "depth": 257, "bitmap": "0x" + "ff" * 32 + "80",
           "siblings": ["0x" + "11" * 32] * 257}  # fmt: skip
    with pytest.raises(ts.MalformedProofError, match="depth is a whole number from 0 to 256, not 257"):
        ts.proof_from_json(doc)
    with pytest.raises(ts.MalformedProofError, match="depth is a whole number from 0 to 256, not 257"):
        ts.proof_from_bytes(b"\x01\x01\x01" + b"\xff" * 32 + b"\x80" + b"\x11" * 32 * 257)
