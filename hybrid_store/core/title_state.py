"""The title state (``landreg-title-state/v1``): every parcel's head, as a versioned sparse Merkle tree.

Spec: docs/title-state.md. In short (keccak256 throughout, ``‖`` concatenation):

    path(key)       = keccak256("landreg-title-state/v1/path" 0x00 ‖ utf8(key))
    value(head)     = uint16_be(len utf8(key)) ‖ utf8(key) ‖ commitment (32) ‖ uint64_be(history length)
    value_hash      = keccak256("landreg-title-state/v1/head" 0x00 ‖ value(head))
    leaf            = keccak256(0x00 ‖ path ‖ value_hash)
    inner           = keccak256(0x01 ‖ left ‖ right)
    empty subtree   = 32 zero bytes

A subtree holding no key is the empty constant, one holding a single key is that key's leaf (at the
depth where the key becomes unique: the Diem / celestia compaction), and one holding more is an
inner node over its two halves, split on the path bit of its depth (0 left, 1 right, most
significant bit first). The root therefore depends on the set of heads alone, never on the order
they were applied in, and an update touches only the paths of the keys it changes.

Nodes are stored by their hash, so a node is written once and never changed: every version's root
keeps every node under it, applying onto an old version reads nothing a later version wrote, and
re-applying from an earlier version (a requeued batch, a stage rolled back) is a new branch of
versions beside the old one, whose proofs stay valid.

The state's root reaches the chain as a marker leaf of a batch's tree (``state_marker``), beside the
audit log's head; OpenZeppelin's sorted-pair hashing binds no position, so it cannot serve as a map.
"""

from __future__ import annotations

import bisect
import hashlib
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from hybrid_store.core.hashing import from_hex32, keccak256, to_hex

SCHEME = "landreg-title-state/v1"
#: a path is 256 bits, so no walk from the root is longer than this many levels
MAX_DEPTH = 256
#: the longest parcel key (UTF-8 bytes) a head may carry; profiles' keys are far shorter
MAX_KEY_BYTES = 256
#: history lengths are written as uint64
MAX_HISTORY_LENGTH = 2**64 - 1
EMPTY = b"\x00" * 32

_PATH_TAG = SCHEME.encode() + b"/path\x00"
_HEAD_TAG = SCHEME.encode() + b"/head\x00"
_MARKER_TAG = SCHEME.encode() + b"/marker\x00"
_LEAF_PREFIX = b"\x00"
_INNER_PREFIX = b"\x01"
_TOP_BIT = MAX_DEPTH - 1

#: binary proof kinds (first byte of ``HeadProof.to_bytes``)
_KIND_CODES = {"member": 0, "absent-empty": 1, "absent-leaf": 2}
_PROOF_MEMBERS = {
    "member": {"scheme", "kind", "depth", "bitmap", "siblings", "head"},
    "absent-empty": {"scheme", "kind", "depth", "bitmap", "siblings"},
    "absent-leaf": {"scheme", "kind", "depth", "bitmap", "siblings", "leaf"},
}


class TitleStateError(ValueError):
    """Anything wrong with a title state, an update or a head proof."""

    code: ClassVar[str] = "title-state"


class MalformedProofError(TitleStateError):
    """The proof is not well formed (checked before any hashing)."""

    code = "malformed-proof"


class PathMismatchError(TitleStateError):
    """The proof's leaf cannot stand where the proof puts it on this parcel's path."""

    code = "wrong-path"


class RootMismatchError(TitleStateError):
    """The proof is well formed but leads to another root than the anchored one."""

    code = "root-mismatch"

    def __init__(self, expected: bytes, computed: bytes) -> None:
        self.expected = expected
        self.computed = computed
        super().__init__(
            f"this head proof leads to root {to_hex(computed)}, not to the anchored title-state root "
            f"{to_hex(expected)}: the proof, the head or the parcel key is not the registry's; ask the "
            "registry for a fresh proof of this parcel at this state"
        )


class UnknownVersionError(TitleStateError, KeyError):
    """No state of that version was ever applied to this store."""

    code = "unknown-version"


class VersionExistsError(TitleStateError):
    """A version number names one state forever; a rebuilt state takes a new number."""

    code = "version-exists"


def _check_key(parcel_key: object) -> bytes:
    if not isinstance(parcel_key, str):
        raise TitleStateError(f"a parcel key is text, not {type(parcel_key).__name__}")
    if not unicodedata.is_normalized("NFC", parcel_key):
        raise TitleStateError(f"parcel key {parcel_key!r} is not in NFC form; normalise it as the registry does")
    raw = parcel_key.encode("utf-8")
    if not 1 <= len(raw) <= MAX_KEY_BYTES:
        raise TitleStateError(f"a parcel key is 1 to {MAX_KEY_BYTES} bytes of UTF-8, {parcel_key!r} is {len(raw)}")
    return raw


def _check_record(commitment: object, history_length: object) -> None:
    if not isinstance(commitment, bytes) or len(commitment) != 32:
        raise TitleStateError("a head's commitment is 32 bytes")
    n = history_length
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_HISTORY_LENGTH:
        raise TitleStateError(f"a head's history length is a whole number from 1 to 2^64-1, not {n!r}")


@dataclass(frozen=True, slots=True)
class Head:
    """A parcel's latest record: the commitment at the head of its history and how many records it has."""

    parcel_key: str
    commitment: bytes
    history_length: int

    def __post_init__(self) -> None:
        _check_key(self.parcel_key)
        _check_record(self.commitment, self.history_length)

    def encode(self) -> bytes:
        """The canonical value bytes (spec: "Heads")."""
        raw = self.parcel_key.encode("utf-8")
        return len(raw).to_bytes(2, "big") + raw + self.commitment + self.history_length.to_bytes(8, "big")


@dataclass(frozen=True, slots=True)
class ProvenHead:
    """What a membership proof carries of a head; the parcel key is the verifier's own."""

    commitment: bytes
    history_length: int

    def __post_init__(self) -> None:
        try:
            _check_record(self.commitment, self.history_length)
        except TitleStateError as exc:
            raise MalformedProofError(str(exc)) from None


def path_of(parcel_key: str) -> bytes:
    """The 256-bit path of a parcel in the tree."""
    return keccak256(_PATH_TAG + _check_key(parcel_key))


def _path_of_checked(head: Head) -> bytes:
    """``path_of`` a head's key, which ``Head`` checked when it was made (an update's hot path)."""
    return keccak256(_PATH_TAG + head.parcel_key.encode("utf-8"))


def value_hash(head: Head) -> bytes:
    return keccak256(_HEAD_TAG + head.encode())


def leaf_hash(path: bytes, hashed_value: bytes) -> bytes:
    return keccak256(_LEAF_PREFIX + path + hashed_value)


def inner_hash(left: bytes, right: bytes) -> bytes:
    return keccak256(_INNER_PREFIX + left + right)


def state_marker(root: bytes) -> bytes:
    """The leaf value that anchors a title-state root in a batch's standard-v1 tree (as the audit head's
    marker does). SHA-256 under its own tag, like every other leaf value (record commitments, the
    audit and rollback markers): each message starts with a distinct NUL-terminated tag, so a marker
    never equals a record's commitment or another marker, short of a SHA-256 collision."""
    if len(root) != 32:
        raise TitleStateError("a title-state root is 32 bytes")
    return hashlib.sha256(_MARKER_TAG + root).digest()


# -- nodes and their store ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LeafNode:
    path: bytes
    value_hash: bytes
    head: Head


@dataclass(frozen=True, slots=True)
class InnerNode:
    left: bytes
    right: bytes


Node = LeafNode | InnerNode


class NodeStore(Protocol):
    """Where a title state keeps its nodes (by hash, written once) and its versions' roots.

    ``get_node`` raises ``KeyError`` for a hash it never stored; ``root_of`` raises
    ``UnknownVersionError`` for a version it never stored; ``put_root`` is called once per version."""

    def get_node(self, node_hash: bytes) -> Node: ...

    def put_node(self, node_hash: bytes, node: Node) -> None: ...

    def root_of(self, version: int) -> bytes: ...

    def has_version(self, version: int) -> bool: ...

    def put_root(self, version: int, root: bytes) -> None: ...


@dataclass
class MemoryNodeStore:
    """A ``NodeStore`` in two dicts (tests, benchmarks, and a verifier rebuilding a state itself)."""

    nodes: dict[bytes, Node] = field(default_factory=dict)
    roots: dict[int, bytes] = field(default_factory=dict)

    def get_node(self, node_hash: bytes) -> Node:
        return self.nodes[node_hash]

    def put_node(self, node_hash: bytes, node: Node) -> None:
        self.nodes[node_hash] = node

    def root_of(self, version: int) -> bytes:
        try:
            return self.roots[version]
        except KeyError:
            raise UnknownVersionError(f"there is no title state version {version} in this store") from None

    def has_version(self, version: int) -> bool:
        return version in self.roots

    def put_root(self, version: int, root: bytes) -> None:
        self.roots[version] = root


# -- updates -------------------------------------------------------------------------------------------

# an update in flight: (path as an integer, leaf hash, leaf node); kept sorted by path
_Item = tuple[int, bytes, LeafNode]


def _item(head: Head) -> _Item:
    path = _path_of_checked(head)
    node = LeafNode(path, value_hash(head), head)
    return int.from_bytes(path, "big"), leaf_hash(path, node.value_hash), node


def split_paths(paths: list[int], depth: int, lo: int, hi: int) -> int:
    """In ``paths[lo:hi]`` (sorted paths as integers, sharing their first ``depth`` bits), the index
    of the first whose bit at ``depth`` is 1: the left half of a node at ``depth`` is ``lo:mid``."""
    shift = _TOP_BIT - depth
    boundary = ((paths[lo] >> (shift + 1) << 1) | 1) << shift
    return bisect.bisect_left(paths, boundary, lo, hi)


class _Updater:
    """One update: ``items`` sorted by path, each subtree's share of them an index range
    ``lo:hi`` (split by bisection on ``paths``, never copied)."""

    def __init__(self, store: NodeStore, items: list[_Item], replaced: list[bytes] | None) -> None:
        self.get, self.put = store.get_node, store.put_node
        self.items = items
        self.paths = [item[0] for item in items]
        self.replaced = replaced

    def update(self, node_hash: bytes, depth: int, lo: int, hi: int) -> bytes:
        """The hash of the subtree at ``depth`` that was ``node_hash``, with ``items[lo:hi]`` set in it."""
        if lo == hi:
            return node_hash
        if node_hash == EMPTY:
            return self.build(depth, lo, hi, None)
        node = self.get(node_hash)
        if isinstance(node, InnerNode):
            shift = _TOP_BIT - depth
            mid = bisect.bisect_left(self.paths, ((self.paths[lo] >> (shift + 1) << 1) | 1) << shift, lo, hi)
            hashed = self.inner(self.update(node.left, depth + 1, lo, mid), self.update(node.right, depth + 1, mid, hi))
            gone = hashed != node_hash
        else:
            # a leaf: its key joins the update (moved down, the same node) unless the update sets that very key
            path = int.from_bytes(node.path, "big")
            at = bisect.bisect_left(self.paths, path, lo, hi)
            gone = at < hi and self.paths[at] == path
            hashed = self.build(depth, lo, hi, None if gone else (path, node_hash, node))
            gone = gone and hashed != node_hash
        if gone and self.replaced is not None:
            self.replaced.append(node_hash)
        return hashed

    def build(self, depth: int, lo: int, hi: int, extra: _Item | None) -> bytes:
        """The subtree at ``depth`` holding exactly ``items[lo:hi]`` and ``extra`` (at least one)."""
        if hi - lo + (extra is not None) == 1:
            _, hashed, node = extra if extra is not None else self.items[lo]
            self.put(hashed, node)
            return hashed
        shift = _TOP_BIT - depth
        some = self.paths[lo] if lo < hi else extra[0]  # type: ignore[index]
        boundary = ((some >> (shift + 1) << 1) | 1) << shift
        mid = bisect.bisect_left(self.paths, boundary, lo, hi)
        if extra is not None and extra[0] < boundary:
            left_extra, right_extra = extra, None
        else:
            left_extra, right_extra = None, extra
        left = self.build(depth + 1, lo, mid, left_extra) if mid > lo or left_extra else EMPTY
        right = self.build(depth + 1, mid, hi, right_extra) if hi > mid or right_extra else EMPTY
        return self.inner(left, right)

    def inner(self, left: bytes, right: bytes) -> bytes:
        hashed = keccak256(_INNER_PREFIX + left + right)
        self.put(hashed, InnerNode(left, right))
        return hashed


def apply(
    store: NodeStore, base_version: int | None, heads: Iterable[Head], *, version: int,
    replaced: list[bytes] | None = None,
) -> tuple[int, bytes]:  # fmt: skip
    """Set ``heads`` onto the state of ``base_version`` (``None``: the empty state) and store the
    result as ``version``; returns ``(version, root)``.

    Reads only nodes under ``base_version``'s root and writes only the nodes on the updated keys'
    paths (O(k log n) hashes for k heads in a state of n parcels). Applying onto an old version
    makes a new branch: the versions after it keep their roots and proofs. A parcel appears at most
    once per update (give its latest head), and ``version`` must not exist yet. ``replaced``, when
    given, receives the hashes of the base's nodes the new state no longer holds (the inner nodes
    on the updated paths, the leaves whose heads changed): a caller keeping a whole tree in memory
    drops them."""
    if store.has_version(version):
        raise VersionExistsError(
            f"title state version {version} exists already; a rebuilt state takes a new version number"
        )
    root = EMPTY if base_version is None else store.root_of(base_version)
    items = sorted(_item(h) for h in heads)
    for a, b in zip(items, items[1:], strict=False):
        if a[0] == b[0]:
            raise TitleStateError(
                f"parcel {b[2].head.parcel_key!r} appears twice in one update; give only its latest head"
            )
    new_root = _Updater(store, items, replaced).update(root, 0, 0, len(items))
    store.put_root(version, new_root)
    return version, new_root


def heads_of(store: NodeStore, version: int) -> dict[str, Head]:
    """Every head of a state (walks the whole tree: for tests and audits, not for the hot path)."""
    out: dict[str, Head] = {}
    stack = [store.root_of(version)]
    while stack:
        node_hash = stack.pop()
        if node_hash == EMPTY:
            continue
        node = store.get_node(node_hash)
        if isinstance(node, LeafNode):
            out[node.head.parcel_key] = node.head
        else:
            stack += (node.left, node.right)
    return out


# -- proofs --------------------------------------------------------------------------------------------


def _bit(path: bytes, depth: int) -> int:
    return (path[depth >> 3] >> (7 - (depth & 7))) & 1


def _same_prefix(a: bytes, b: bytes, bits: int) -> bool:
    whole, rest = divmod(bits, 8)
    if a[:whole] != b[:whole]:
        return False
    return not rest or (a[whole] ^ b[whole]) >> (8 - rest) == 0


@dataclass(frozen=True, slots=True)
class OtherLeaf:
    """The leaf of another parcel found where the proven parcel's path ends: proof of its absence."""

    path: bytes
    value_hash: bytes


@dataclass(frozen=True, slots=True)
class HeadProof:
    """A parcel's head (``head``) or its absence (``leaf`` of another parcel, or neither: an empty
    subtree) in one state, with the sibling of every level on the way from the root, root side
    first (``EMPTY`` where a sibling is an empty subtree). Construction checks the shape."""

    siblings: tuple[bytes, ...]
    head: ProvenHead | None = None
    leaf: OtherLeaf | None = None

    def __post_init__(self) -> None:
        if len(self.siblings) > MAX_DEPTH:
            raise MalformedProofError(f"a head proof has at most {MAX_DEPTH} levels, this one {len(self.siblings)}")
        if any(not isinstance(s, bytes) or len(s) != 32 for s in self.siblings):
            raise MalformedProofError("every sibling of a head proof is 32 bytes")
        # in a compacted tree the node at the end of a walk always has a non-empty sibling (else its
        # parent would hold it alone and the walk would have ended there): one spelling per proof
        if self.siblings and self.siblings[-1] == EMPTY:
            raise MalformedProofError("the deepest sibling of a head proof is never empty; this proof is not canonical")
        if self.head is not None and self.leaf is not None:
            raise MalformedProofError("a head proof proves a head or an absence, not both")
        if self.leaf is not None and (len(self.leaf.path) != 32 or len(self.leaf.value_hash) != 32):
            raise MalformedProofError("the other leaf of an absence proof has a 32-byte path and value hash")

    @property
    def depth(self) -> int:
        return len(self.siblings)

    @property
    def kind(self) -> str:
        return "member" if self.head is not None else "absent-leaf" if self.leaf is not None else "absent-empty"

    def bitmap(self) -> bytes:
        """Bit ``i`` (most significant first) set where sibling ``i`` is not empty; zero padding."""
        bits = 0
        for s in self.siblings:
            bits = bits << 1 | (s != EMPTY)
        size = (self.depth + 7) // 8
        return (bits << (size * 8 - self.depth)).to_bytes(size, "big")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "scheme": SCHEME,
            "kind": self.kind,
            "depth": self.depth,
            "bitmap": "0x" + self.bitmap().hex(),
            "siblings": [to_hex(s) for s in self.siblings if s != EMPTY],
        }
        if self.head is not None:
            out["head"] = {"commitment": to_hex(self.head.commitment), "historyLength": self.head.history_length}
        if self.leaf is not None:
            out["leaf"] = {"path": to_hex(self.leaf.path), "valueHash": to_hex(self.leaf.value_hash)}
        return out

    def to_bytes(self) -> bytes:
        """Binary form: kind (1) ‖ depth uint16_be ‖ bitmap ‖ non-empty siblings ‖ terminal."""
        out = bytes([_KIND_CODES[self.kind]]) + self.depth.to_bytes(2, "big") + self.bitmap()
        out += b"".join(s for s in self.siblings if s != EMPTY)
        if self.head is not None:
            out += self.head.commitment + self.head.history_length.to_bytes(8, "big")
        if self.leaf is not None:
            out += self.leaf.path + self.leaf.value_hash
        return out


def prove(store: NodeStore, version: int, parcel_key: str) -> HeadProof:
    """The proof of ``parcel_key``'s head in state ``version``, or of its absence."""
    path = path_of(parcel_key)
    node_hash = store.root_of(version)
    siblings: list[bytes] = []
    while node_hash != EMPTY:
        node = store.get_node(node_hash)
        if isinstance(node, LeafNode):
            if node.path == path:
                return HeadProof(tuple(siblings), head=ProvenHead(node.head.commitment, node.head.history_length))
            return HeadProof(tuple(siblings), leaf=OtherLeaf(node.path, node.value_hash))
        if _bit(path, len(siblings)):
            siblings.append(node.left)
            node_hash = node.right
        else:
            siblings.append(node.right)
            node_hash = node.left
    return HeadProof(tuple(siblings))


def verify_head(root: bytes, parcel_key: str, proof: HeadProof) -> Head | None:
    """The head ``proof`` shows for ``parcel_key`` under ``root``: the ``Head``, or ``None`` when it
    proves the parcel has none in that state. Raises ``PathMismatchError`` for an absence proof
    whose leaf cannot stand on this parcel's path, ``RootMismatchError`` (expected and computed
    roots) when the proof does not lead to ``root``."""
    if len(root) != 32:
        raise TitleStateError("a title-state root is 32 bytes")
    path = path_of(parcel_key)
    depth = proof.depth
    head: Head | None = None
    if proof.head is not None:
        head = Head(parcel_key, proof.head.commitment, proof.head.history_length)
        node = leaf_hash(path, value_hash(head))
    elif proof.leaf is not None:
        if proof.leaf.path == path:
            raise PathMismatchError(
                f"this absence proof shows parcel {parcel_key!r}'s own leaf: it proves the parcel has a head, "
                "not that it has none; ask for the parcel's head proof"
            )
        if not _same_prefix(proof.leaf.path, path, depth):
            raise PathMismatchError(
                f"the leaf in this absence proof is not on parcel {parcel_key!r}'s path at depth {depth}; "
                "the proof is for another parcel"
            )
        node = leaf_hash(proof.leaf.path, proof.leaf.value_hash)
    else:
        node = EMPTY
    for level in range(depth - 1, -1, -1):
        sibling = proof.siblings[level]
        node = inner_hash(sibling, node) if _bit(path, level) else inner_hash(node, sibling)
    if node != root:
        raise RootMismatchError(root, node)
    return head


# -- strict parsing ---------------------------------------------------------------------------------


def _hex32(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise MalformedProofError(f"{what} is a 0x-hex string, not {type(value).__name__}")
    try:
        return from_hex32(value)
    except ValueError:
        raise MalformedProofError(f"{what} is 0x and 64 lowercase hex digits (32 bytes), not {value!r}") from None


def _members(obj: object, expected: set[str], what: str) -> Mapping[str, Any]:
    if not isinstance(obj, dict):
        raise MalformedProofError(f"{what} is a JSON object")
    if set(obj) != expected:
        extra, missing = sorted(set(obj) - expected), sorted(expected - set(obj))
        wrong = "; ".join(
            f"{label} {', '.join(names)}" for label, names in (("unknown:", extra), ("missing:", missing)) if names
        )
        raise MalformedProofError(f"{what} has exactly the members {', '.join(sorted(expected))} ({wrong})")
    return obj


def _depth(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_DEPTH:
        raise MalformedProofError(f"a head proof's depth is a whole number from 0 to {MAX_DEPTH}, not {value!r}")
    return value


def _bitmap(value: object, depth: int) -> int:
    size = (depth + 7) // 8
    if not isinstance(value, str) or len(value) != 2 + 2 * size or not value.startswith("0x"):
        raise MalformedProofError(f"a proof of depth {depth} has a bitmap of {size} bytes as 0x-hex, not {value!r}")
    try:
        raw = bytes.fromhex(value[2:])
    except ValueError:
        raise MalformedProofError(f"the bitmap {value!r} is not hex") from None
    if value[2:] != raw.hex():
        raise MalformedProofError("the bitmap is written in lowercase hex")
    bits = int.from_bytes(raw, "big")
    padding = size * 8 - depth
    if bits & ((1 << padding) - 1):
        raise MalformedProofError("the bitmap's bits past the proof's depth are set")
    return bits >> padding


def _expand(bits: int, depth: int, given: list[bytes]) -> tuple[bytes, ...]:
    """The full sibling list from the bitmap and the non-empty siblings; every one must be used."""
    if bin(bits).count("1") != len(given):
        raise MalformedProofError(
            f"the bitmap marks {bin(bits).count('1')} non-empty siblings but the proof gives {len(given)}"
        )
    it = iter(given)
    return tuple(next(it) if bits >> (depth - 1 - i) & 1 else EMPTY for i in range(depth))


def proof_from_json(obj: object) -> HeadProof:
    """A ``HeadProof`` from its JSON form, strictly: exactly the members of its kind, 32-byte hex
    values, a bitmap exactly as long as the depth with zero padding, and every sibling used."""
    kind = obj.get("kind") if isinstance(obj, dict) else None
    if kind not in _PROOF_MEMBERS:
        raise MalformedProofError(f"a head proof is a JSON object whose kind is one of {sorted(_PROOF_MEMBERS)}")
    top = _members(obj, _PROOF_MEMBERS[kind], f"a {kind} proof")
    if top["scheme"] != SCHEME:
        raise MalformedProofError(f"this is a {SCHEME} verifier; the proof says {top['scheme']!r}")
    depth = _depth(top["depth"])
    bits = _bitmap(top["bitmap"], depth)
    if not isinstance(top["siblings"], list):
        raise MalformedProofError("a head proof's siblings are a JSON array")
    siblings = _expand(bits, depth, [_hex32(s, "a sibling") for s in top["siblings"]])
    if kind == "member":
        h = _members(top["head"], {"commitment", "historyLength"}, "a proof's head")
        return HeadProof(siblings, head=ProvenHead(_hex32(h["commitment"], "a head's commitment"), h["historyLength"]))
    if kind == "absent-leaf":
        leaf = _members(top["leaf"], {"path", "valueHash"}, "a proof's leaf")
        other = OtherLeaf(_hex32(leaf["path"], "a leaf's path"), _hex32(leaf["valueHash"], "a leaf's value hash"))
        return HeadProof(siblings, leaf=other)
    return HeadProof(siblings)


def proof_from_bytes(data: bytes) -> HeadProof:
    """A ``HeadProof`` from ``to_bytes`` form, strictly (no trailing bytes, every sibling used)."""
    codes = {code: kind for kind, code in _KIND_CODES.items()}
    if len(data) < 3 or data[0] not in codes:
        raise MalformedProofError("a binary head proof starts with its kind (0, 1 or 2) and a 2-byte depth")
    kind, depth = codes[data[0]], _depth(int.from_bytes(data[1:3], "big"))
    size = (depth + 7) // 8
    bits = _bitmap("0x" + data[3 : 3 + size].hex(), depth) if len(data) >= 3 + size else -1
    if bits < 0:
        raise MalformedProofError("the binary head proof ends inside its bitmap")
    count = bin(bits).count("1")
    body = data[3 + size :]
    tail = {"member": 40, "absent-leaf": 64, "absent-empty": 0}[kind]
    if len(body) != 32 * count + tail:
        raise MalformedProofError(f"a {kind} proof with {count} siblings is {32 * count + tail} bytes after its bitmap")
    given = [body[i : i + 32] for i in range(0, 32 * count, 32)]
    siblings, rest = _expand(bits, depth, given), body[32 * count :]
    if kind == "member":
        return HeadProof(siblings, head=ProvenHead(rest[:32], int.from_bytes(rest[32:], "big")))
    if kind == "absent-leaf":
        return HeadProof(siblings, leaf=OtherLeaf(rest[:32], rest[32:]))
    return HeadProof(siblings)
