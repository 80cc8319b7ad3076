"""The title state in the database: every parcel's head after each batch, anchored as the batch's
TITLE marker leaf (the pure tree: ``core.title_state``; the spec: docs/title-state.md).

* **Storage.** Nodes live in ``title_nodes`` under (version, hash), the version being the batch
  that wrote them (as the Jellyfish Merkle tree's node keys), and each batch's state in
  ``title_versions`` (its base, root, parcels, and its marker's Merkle proof). The version number of
  a state is its batch's id, and a state's root always lies under its own version. An inner node
  also names the versions its children lie under: pointers for storage only, outside its hash, so a
  reader still checks every node it decodes against the hash its parent names: a pointer edited to
  another version finds no row there (the node is named missing) or another copy of that very node. Keyed by hash alone, a batch's ~31,000
  new nodes landed on nearly every page of the key's index; keyed by version first, they append
  as one run at its end.
* **Heads.** A parcel's head is, among the records of the live batches, its record with the
  greatest history length (the number of records in the parcel's history up to and including it,
  followed through the commitments' ``prev`` links); a record anchored again, or late, never moves a
  head back.
* **Every batch** gets a state: the one of the newest live batch (not failed) with this batch's
  records applied, even when it touches nothing, so the newest anchored batch holds the newest state.
* **Requeue and rollback.** A failed batch's state is never built on again: the next batch starts
  from the newest live batch's state and points at the nodes it keeps where they lie (never under
  the failed batch, which that state does not reach). A rolled-back stage's records are anchored
  again by the batch that supersedes it, so they stay in the state.
* **Work per batch** is proportional to the parcels it touches: the paths of those parcels are read
  level by level (one query per level), the new nodes written in one statement, behind a bounded
  per-process cache of the nodes read (checked against their hash) and of those committed batches
  wrote.
"""

from __future__ import annotations

import json
import logging
import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from hybrid_store.core import merkle
from hybrid_store.core import title_state as ts
from hybrid_store.core.hashing import to_hex
from hybrid_store.db.bulk import copies, copy_binary
from hybrid_store.db.engine import bulk_execute, chunks, driver_datetime, select_in
from hybrid_store.db.models import AnchorBatch, BatchRecord, BatchState, Commitment, TitleVersion
from hybrid_store.db.records import driver_rows, ids_clause, ids_param
from hybrid_store.errors import LandregError

log = logging.getLogger(__name__)

#: the manifest's name of a title-state marker leaf: "TITLE <parcels in the state>"
MANIFEST_PREFIX = "TITLE "
#: the version number a state carries until its batch is stored and has an id
PENDING = 0
#: nodes kept in memory per process (about 300 bytes each): the nodes the last batches wrote, which
#: the next batch reads (the top of the tree is new after every batch)
CACHE_NODES = 400_000

#: (version, hash) pairs per read: two bind parameters each in SQLite
READ_CHUNK = 2_000

_LEAF = 0
_INNER = 1
_INNER_SIZE = 1 + 32 + 32 + 8 + 8
_LEAF_KIND, _INNER_KIND = bytes([_LEAF]), bytes([_INNER])
_POINTERS = struct.Struct(">QQ").pack


class TitleStoreError(ts.TitleStateError, LandregError):
    """A stored node or version is not what its hash or its records say: the store was edited."""

    code = "title-store"
    hint = "run `landreg reconcile`: it names the edit (the state anchored on the chain is intact)"


# -- node encoding -------------------------------------------------------------------------------------


def encode_node(node: ts.Node, children: tuple[int, int] | None = None) -> bytes:
    """A node's stored bytes: 0x00 ‖ path ‖ value hash ‖ value(head) for a leaf; for an inner node
    0x01 ‖ left ‖ right ‖ uint64_be(left's version) ‖ uint64_be(right's version), ``children``: the
    versions its children are stored under (0 for an empty subtree). The versions are storage
    pointers only: the node's hash (``node_hash``) follows from left and right alone."""
    if isinstance(node, ts.LeafNode):
        return _LEAF_KIND + node.path + node.value_hash + node.head.encode()
    if children is None:
        raise ValueError("an inner node is stored with the versions of its children")
    return _INNER_KIND + node.left + node.right + children[0].to_bytes(8, "big") + children[1].to_bytes(8, "big")


def decode_stored(node_hash: bytes, data: bytes) -> tuple[ts.Node, tuple[int, int]]:
    """The node stored as ``data`` under ``node_hash``, with its children's versions ((0, 0) for a
    leaf); ``TitleStoreError`` if its hash is another or a pointer is not one (a child's version is
    0 exactly when the child is the empty subtree)."""
    children = (0, 0)
    try:
        if data[0] == _INNER and len(data) == _INNER_SIZE:
            left, right = data[1:33], data[33:65]
            children = (int.from_bytes(data[65:73], "big"), int.from_bytes(data[73:81], "big"))
            if (left == ts.EMPTY) != (children[0] == 0) or (right == ts.EMPTY) != (children[1] == 0):
                raise ValueError("a child's version")
            node: ts.Node = ts.InnerNode(left, right)
            computed = ts.inner_hash(left, right)
        elif data[0] == _LEAF:
            path, value = data[1:33], data[65:]
            k = int.from_bytes(value[:2], "big")
            if len(value) != 2 + k + 40:
                raise ValueError("length")
            head = ts.Head(value[2 : 2 + k].decode("utf-8"), value[2 + k : 34 + k], int.from_bytes(value[34 + k :]))
            node = ts.LeafNode(path, ts.value_hash(head), head)
            computed = ts.leaf_hash(path, node.value_hash) if node.value_hash == data[33:65] else b""
        else:
            raise ValueError("kind")
    except (ValueError, IndexError) as exc:
        raise TitleStoreError(f"title-state node {to_hex(node_hash)} is not a well-formed node ({exc})") from None
    if computed != node_hash:
        raise TitleStoreError(
            f"title-state node {to_hex(node_hash)} holds a node whose hash is another: the stored tree was edited; "
            "run `landreg reconcile` and rebuild the state from the anchored records"
        )
    return node, children


def decode_node(node_hash: bytes, data: bytes) -> ts.Node:
    """``decode_stored`` without the children's versions."""
    return decode_stored(node_hash, data)[0]


# -- the database's node store ----------------------------------------------------------------------

_Cached = tuple[ts.Node, tuple[int, int]]  # a node and its children's versions
_LOW64 = (1 << 64) - 1


class _Cache:
    """Nodes with the versions their children are stored under, bounded. An entry is named by the
    node's hash, so it is never stale (any stored copy of a node is that node); its pointers name
    rows that are committed: read from the database, or written by a batch the database has since
    shown committed (``stage``, then ``committed``). A batch's own nodes wait in ``staged`` because
    its transaction may still roll back, and a pointer to a row never committed would send the next
    batch's nodes after it."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.nodes: dict[bytes, ts.Node] = {}
        # the children's versions packed in one int (left << 64 | right): a tuple per entry would be
        # one more object for the garbage collector to walk, 400,000 times
        self.pointers: dict[bytes, int] = {}
        self.staged: tuple[int, bytes, dict[bytes, _Cached]] | None = None

    def get(self, node_hash: bytes) -> _Cached | None:
        node = self.nodes.get(node_hash)
        if node is None:
            return None
        packed = self.pointers.get(node_hash, 0)
        return node, (packed >> 64, packed & _LOW64)

    def add(self, node_hash: bytes, entry: _Cached) -> None:
        if len(self.nodes) >= self.limit:  # drop the oldest half: the top of the tree is read again at once
            for key in list(self.nodes)[: self.limit // 2]:
                del self.nodes[key]
                self.pointers.pop(key, None)
        node, (left, right) = entry
        self.nodes[node_hash] = node
        if left or right:
            self.pointers[node_hash] = left << 64 | right

    def stage(self, version: int, root: bytes, entries: dict[bytes, _Cached]) -> None:
        """The nodes a batch writes, cached once ``committed`` shows its state stored."""
        self.staged = (version, root, entries)

    def committed(self, version: int, root: bytes) -> None:
        """The database holds state ``version`` with this root: if these are the staged batch's, its
        nodes are stored, and cached."""
        if self.staged is not None and self.staged[:2] == (version, root):
            for node_hash, entry in self.staged[2].items():
                self.add(node_hash, entry)
            self.staged = None

    def clear(self) -> None:
        self.nodes.clear()
        self.pointers.clear()
        self.staged = None


CACHE = _Cache(CACHE_NODES)


@dataclass
class _LiveState:
    """One state's whole tree in memory: every node under its root (``nodes``), the version each
    is stored under (``at``), and every parcel's head (``heads``: key -> (commitment, length))."""

    version: int | None
    root: bytes
    nodes: dict[bytes, ts.Node] = field(default_factory=dict)
    at: dict[bytes, int] = field(default_factory=dict)
    heads: dict[str, tuple[bytes, int]] = field(default_factory=dict)


class _Live:
    """The newest state's whole tree, kept in memory by a migration run (``LIVE.enabled()``).

    A stage's batch of 10,000 records moves about a sixth of a large book's heads, so reading the
    touched paths back (``heads_on_paths``) and caching what each batch wrote cost more than the
    update itself; with the whole tree here, a batch's heads are dict lookups and ``apply`` reads
    nothing. The tree is read once (every node checked against its hash, as any read is) when a
    batch builds on a state it does not hold: the run's first batch, or after a batch failed or
    another process anchored. A batch's nodes join it only once the database shows that batch's
    state committed (as the cache's ``stage``/``committed``), and the nodes it replaced leave
    it then. Off outside a migration run: a registry's server
    anchoring a few filings per batch reads only their paths, and keeps no tree."""

    def __init__(self, max_parcels: int) -> None:
        self.max_parcels = max_parcels
        self.on = False
        self.state: _LiveState | None = None
        self.staged: tuple[_LiveState, dict[bytes, ts.Node], list[ts.Head], list[bytes]] | None = None

    @contextmanager
    def enabled(self) -> Iterator[None]:
        self.on = True
        try:
            yield
        finally:
            self.on, self.state, self.staged = False, None, None

    def of(self, s: Session, base: int | None, parcels: int) -> _LiveState | None:
        """The whole tree of state ``base`` (None: the empty state), or None when off or too large."""
        if not self.on or parcels > self.max_parcels:
            return None
        if base is None:
            return _LiveState(None, ts.EMPTY)
        root = s.scalar(select(TitleVersion.root).where(TitleVersion.batch_id == base))
        if root is None:
            return None
        root = bytes(root)
        if self.staged is not None:
            old, new, moved, replaced = self.staged
            self.staged = None
            if (old.version, old.root) == (base, root):  # the staged batch committed: its nodes are stored
                self.state = old
                old.nodes.update(new)
                old.at.update(dict.fromkeys(new, base))
                old.at[root] = base
                for h in replaced:
                    del old.nodes[h]
                    del old.at[h]
                old.heads.update((h.parcel_key, (h.commitment, h.history_length)) for h in moved)
            else:
                self.state = None
        if self.state is None or (self.state.version, self.state.root) != (base, root):
            self.state = _read_whole(s, base, root)
        return self.state

    def stage(self, state: _LiveState, version: int, root: bytes, store: DbNodeStore) -> None:
        """A batch wrote ``store.new`` as state ``version`` (replacing ``store.replaced``): joined
        to the tree once it shows committed. The tree is changed in place: one state is kept."""
        state.version, state.root = version, root
        self.staged = (state, store.new, store.moved, store.replaced)
        self.state = None  # until then it is not a stored state


def _read_whole(s: Session, version: int, root: bytes) -> _LiveState:
    """State ``version``'s whole tree read from the database, level by level, each node checked."""
    state = _LiveState(version, root)
    for node in _stored_under(DbNodeStore(s, cache=None, loaded=state.nodes, at=state.at), version, root, keep=True):
        if isinstance(node, ts.LeafNode):
            state.heads[node.head.parcel_key] = (node.head.commitment, node.head.history_length)
    return state


#: the largest state a migration run keeps whole in memory (about 2 nodes and 600 bytes per parcel)
LIVE_PARCELS = 1_500_000
LIVE = _Live(LIVE_PARCELS)


@dataclass
class DbNodeStore:
    """``core.title_state.NodeStore`` over ``title_nodes`` / ``title_versions`` in the caller's
    transaction. A stored node is found by (version, hash): its version from the pointer of the
    node above it, the root's from the state's own version (every state stores its root under its
    version). New nodes and roots are held here until ``write`` (the batch's own transaction);
    ``cache=None`` reads every node from the database (reconciliation trusts no memory)."""

    session: Session
    cache: _Cache | None = CACHE
    new: dict[bytes, ts.Node] = field(default_factory=dict)
    roots: dict[int, bytes] = field(default_factory=dict)
    #: the nodes read (or taken from the cache) by this store: ``apply`` walks again the paths
    #: ``heads_on_paths`` walked, and the bounded cache may have dropped some meanwhile
    loaded: dict[bytes, ts.Node] = field(default_factory=dict)
    #: the version a stored copy of a node lies under, learnt from the pointers of the nodes above
    #: it (and from a state's root): only ever committed rows
    at: dict[bytes, int] = field(default_factory=dict)
    #: a migration run's whole tree of the base state (``LIVE``): ``loaded`` and ``at`` are its own
    #: dicts, and ``write`` stages the batch's nodes there instead of in the cache
    live: _LiveState | None = None
    #: the heads this store's update set (kept with the live tree's heads when the batch commits)
    moved: list[ts.Head] = field(default_factory=list)
    #: the base's nodes the update replaced (dropped from the live tree when the batch commits)
    replaced: list[bytes] = field(default_factory=list)

    def get_node(self, node_hash: bytes) -> ts.Node:
        node = self._held(node_hash)
        if node is None:
            node = self.load([node_hash]).get(node_hash)
        if node is None:
            raise KeyError(node_hash)
        return node

    def stored(self, node_hash: bytes) -> ts.Node:
        """``get_node`` for a node the tree says is there: its absence is an edit, not a miss."""
        try:
            return self.get_node(node_hash)
        except KeyError:
            where = f" (version {self.at[node_hash]})" if node_hash in self.at else ""
            raise TitleStoreError(
                f"title-state node {to_hex(node_hash)}{where} is missing from the database: the stored tree was "
                "edited; run `landreg reconcile`"
            ) from None

    def _held(self, node_hash: bytes) -> ts.Node | None:
        # what this store read or built first: ``apply`` reads those
        node = self.loaded.get(node_hash) or self.new.get(node_hash)
        if node is None and self.cache is not None:
            hit = self.cache.get(node_hash)
            if hit is not None:
                node = self.loaded[node_hash] = self._learn(*hit)
        return node

    def _learn(self, node: ts.Node, children: tuple[int, int]) -> ts.Node:
        if isinstance(node, ts.InnerNode):
            if children[0]:
                self.at[node.left] = children[0]
            if children[1]:
                self.at[node.right] = children[1]
        return node

    def put_node(self, node_hash: bytes, node: ts.Node) -> None:
        # a node stored already (a leaf moved one level down, a subtree rebuilt as an earlier state
        # had it) is pointed at where it lies, not written again
        if node_hash not in self.at:
            self.new[node_hash] = node

    def root_of(self, version: int) -> bytes:
        if version not in self.roots:
            root = self.session.scalar(select(TitleVersion.root).where(TitleVersion.batch_id == version))
            if root is None:
                raise ts.UnknownVersionError(f"there is no title state after batch {version}")
            root = self.roots[version] = bytes(root)
            if root != ts.EMPTY:
                self.at[root] = version
            if self.cache is not None:
                self.cache.committed(version, root)
        return self.roots[version]

    def has_version(self, version: int) -> bool:
        try:
            self.root_of(version)
        except ts.UnknownVersionError:
            return False
        return True

    def put_root(self, version: int, root: bytes) -> None:
        self.roots[version] = root

    def load(self, hashes: Iterable[bytes]) -> dict[bytes, ts.Node]:
        """The nodes of ``hashes`` (``EMPTY`` left out): those in memory, and the others read by
        (version, hash), each checked against its hash; a hash no row answers is left out."""
        found: dict[bytes, ts.Node] = {}
        wanted = []
        for h in set(hashes):
            if h == ts.EMPTY:
                continue
            node = self._held(h)
            if node is not None:
                found[h] = node
            elif h in self.at:
                wanted.append((self.at[h], h))
        for _, h, data in self._read(sorted(wanted)):
            node, children = decode_stored(bytes(h), bytes(data))
            found[bytes(h)] = self.loaded[bytes(h)] = self._learn(node, children)
            if self.cache is not None:
                self.cache.add(bytes(h), (node, children))
        return found

    def _read(self, wanted: Sequence[tuple[int, bytes]]) -> Iterator[tuple[int, bytes, bytes]]:
        """The rows of ``wanted`` (version, hash), in key order: one index seek each."""
        conn = self.session.connection()
        postgres = conn.dialect.name == "postgresql"
        for chunk in chunks(wanted, READ_CHUNK):
            if postgres:
                sql = ("SELECT n.version, n.hash, n.node FROM unnest(%s::bigint[], %s::bytea[]) AS w (v, h) "
                       "JOIN title_nodes n ON n.version = w.v AND n.hash = w.h")  # fmt: skip
                param: tuple[Any, ...] = ([v for v, _ in chunk], [h for _, h in chunk])
            else:  # a row-value IN is a scan in SQLite; a join on a VALUES list seeks the key
                sql = (f"WITH w (v, h) AS (VALUES {', '.join(['(?, ?)'] * len(chunk))}) "
                       "SELECT n.version, n.hash, n.node FROM w JOIN title_nodes n ON n.version = w.v AND n.hash = w.h")  # fmt: skip
                param = tuple(x for pair in chunk for x in pair)
            yield from driver_rows(conn, sql, param)

    def heads_on_paths(self, version: int | None, keys: Iterable[str]) -> dict[str, ts.Head]:
        """The heads of ``keys`` in state ``version`` (None: empty), reading the tree level by level
        along their paths: the nodes ``apply`` then needs are all in memory."""
        keyed = {ts.path_of(k): k for k in keys}
        # the paths as sorted integers: each node's share of them is a range, split by bisection
        paths = sorted(int.from_bytes(p, "big") for p in keyed)
        root = self.root_of(version) if version is not None else ts.EMPTY
        frontier = [(root, 0, len(paths))] if paths else []
        found: dict[str, ts.Head] = {}
        depth = 0
        while frontier:
            level = self.load(h for h, _, _ in frontier)
            deeper = []
            for node_hash, lo, hi in frontier:
                if node_hash == ts.EMPTY:
                    continue
                node = level.get(node_hash) or self.stored(node_hash)  # (not stored: an edit, named)
                if isinstance(node, ts.LeafNode):
                    if node.path in keyed:
                        found[node.head.parcel_key] = node.head
                    continue
                mid = ts.split_paths(paths, depth, lo, hi)
                if lo < mid:
                    deeper.append((node.left, lo, mid))
                if mid < hi:
                    deeper.append((node.right, mid, hi))
            frontier = deeper
            depth += 1
        return found

    def write(self, conn: Connection, version: int, root: bytes) -> None:
        """Insert the new nodes under ``version``, the state's root among them (a copy of it when
        the state kept its base's root: a state's root always lies under its own version)."""
        new, at, empty = self.new, self.at, ts.EMPTY

        def place(child: bytes) -> int:
            return 0 if child == empty else version if child in new else at[child]

        if root != empty and root not in new:
            new = {**new, root: self.stored(root)}
        rows = []
        for h in sorted(new):  # all under one version: in key order, the rows append at the index's end
            node = new[h]
            if type(node) is ts.InnerNode:
                left, right = node.left, node.right
                rows.append((version, h, _INNER_KIND + left + right + _POINTERS(place(left), place(right))))
            else:
                rows.append((version, h, encode_node(node)))
        if copies(conn, len(rows)):
            copy_binary(conn, "title_nodes", ("version", "hash", "node"), ("int8", "bytea", "bytea"), rows)
        else:
            bulk_execute(conn, "INSERT INTO title_nodes (version, hash, node) VALUES (?, ?, ?)", rows)
        if self.live is not None:
            LIVE.stage(self.live, version, root, self)
        elif self.cache is not None:
            self.cache.stage(version, root, {h: _cached(node, place) for h, node in new.items()})


def _cached(node: ts.Node, place: Callable[[bytes], int]) -> _Cached:
    return (node, (place(node.left), place(node.right))) if isinstance(node, ts.InnerNode) else (node, (0, 0))


# -- history lengths and heads -----------------------------------------------------------------------

_Link = tuple[str, bytes]  # (parcel key, commitment)


def _unhex(value: str | None) -> bytes | None:
    return bytes.fromhex(value[2:] if value.startswith("0x") else value) if value else None


def record_links(rows: Iterable[tuple[bytes, Any]]) -> dict[_Link, bytes | None]:
    """(parcel key, commitment) -> the commitment before it in that parcel's history (None: first),
    from commitment rows' ``prev`` (``[key, previous number, previous commitment hex]`` per parcel;
    SQLite's driver hands it back as text). A ``prev`` that is not such a list (only an edit makes
    one, and reconciliation names it) links nothing, here and in ``rebuild`` alike."""
    out: dict[_Link, bytes | None] = {}
    for c, stored in rows:
        try:
            links = json.loads(stored) if isinstance(stored, str) else stored
            out.update({(key, bytes(c)): _unhex(prev) for key, _, prev in links})
        except (ValueError, TypeError) as exc:
            log.warning("commitment %s: its history links are unreadable (%s); left out of the title state",
                        to_hex(bytes(c)), exc)  # fmt: skip
    return out


def _links_of(s: Session, instrument_ids: Sequence[int]) -> dict[_Link, bytes | None]:
    """``record_links`` of these records, read through the driver (a migration batch's 10,000 rows:
    SQLAlchemy's JSON processing would cost more than the query)."""
    conn = s.connection()
    sql = "SELECT commitment, prev FROM commitments WHERE " + ids_clause(conn)("instrument_id")
    return record_links(row for chunk in chunks(list(instrument_ids), 50_000)
                        for row in driver_rows(conn, sql, ids_param(conn, chunk)))  # fmt: skip


def history_lengths(s: Session, links: dict[_Link, bytes | None], known: dict[_Link, int]) -> dict[_Link, int]:
    """The history length of each link of ``links``: followed back through ``links``, then through
    the commitments table (one query per step back, for all links at once), until a parcel's first
    record or a record whose length is ``known`` (the base state's heads)."""
    links = dict(links)
    while True:
        missing = {
            (k, p) for (k, _), p in links.items() if p is not None and (k, p) not in links and (k, p) not in known
        }
        if not missing:
            break
        rows = select_in(s, select(Commitment.commitment, Commitment.prev), Commitment.commitment,
                         sorted({p for _, p in missing}))  # fmt: skip
        found = {link: prev for link, prev in record_links(rows).items() if link in missing}
        for lost in sorted(missing - set(found)):
            # a history link no stored record answers (the commitments table was edited: reconciliation
            # names the record): counted as that parcel's first record, the same here and in ``rebuild``,
            # so anchoring goes on and the state stays recomputable
            log.warning("parcel %r: its history names commitment %s, which no stored record has; counted as the "
                        "parcel's first record (run `landreg reconcile`)", lost[0], to_hex(lost[1]))  # fmt: skip
            found[lost] = None
        links.update(found)
    lengths = dict(known)
    for start in links:
        trail = []
        link: _Link | None = start
        while link is not None and link not in lengths:
            trail.append(link)
            prev = links[link]
            link = (link[0], prev) if prev is not None else None
        n = lengths[link] if link is not None else 0
        for step in reversed(trail):
            n += 1
            lengths[step] = n
    return lengths


def newer_heads(lengths: dict[_Link, int], records: Iterable[_Link], base: dict[str, ts.Head]) -> list[ts.Head]:
    """The heads ``records`` set: per parcel the record of greatest history length, where it is
    longer than the parcel's head in ``base`` (never back, never sideways)."""
    best: dict[str, tuple[int, bytes]] = {key: (h.history_length, h.commitment) for key, h in base.items()}
    moved = set()
    for key, c in records:
        n = lengths[(key, c)]
        if n > best.get(key, (0, b""))[0]:
            best[key] = (n, c)
            moved.add(key)
    return [ts.Head(key, best[key][1], best[key][0]) for key in moved]


# -- a batch's title plan -------------------------------------------------------------------------


@dataclass
class TitlePlan:
    """The state a batch anchors: its root, the batch whose state it was applied onto, how many
    parcels it holds and moved, and the nodes to write with the batch."""

    root: bytes
    base_batch_id: int | None
    parcels: int
    touched: int
    store: DbNodeStore

    @property
    def marker(self) -> bytes:
        return ts.state_marker(self.root)

    @property
    def label(self) -> str:
        return f"{MANIFEST_PREFIX}{self.parcels}"


def live_base(s: Session) -> tuple[int | None, int]:
    """(batch, parcels) of the state the next batch builds on: the newest batch that did not fail
    and whose own base did not fail (a batch built on a failed one is doomed: the contract takes
    batch ids in sequence), or (None, 0) when no batch has a state yet."""
    base_t = AnchorBatch.__table__.alias("base")
    rows = s.execute(
        select(TitleVersion.batch_id, TitleVersion.parcels, base_t.c.state)
        .join(AnchorBatch, AnchorBatch.id == TitleVersion.batch_id)
        .outerjoin(base_t, base_t.c.id == TitleVersion.base_batch_id)
        .where(AnchorBatch.state != BatchState.FAILED)
        .order_by(TitleVersion.batch_id.desc())
        .limit(50)
    ).all()
    for batch_id, parcels, base_state in rows:
        if base_state != BatchState.FAILED:
            return int(batch_id), int(parcels)
    return None, 0


def _live_records(s: Session) -> list[int]:
    """Records of every live batch: when no live state exists to build on (batches anchored before
    the title state existed, or every state's batch failed), the next state is built from them."""
    return list(s.scalars(
        select(BatchRecord.instrument_id).join(AnchorBatch, AnchorBatch.id == BatchRecord.batch_id)
        .where(AnchorBatch.state != BatchState.FAILED)))  # fmt: skip


def plan_title(s: Session, instrument_ids: Sequence[int], links: dict[_Link, bytes | None] | None = None) -> TitlePlan:
    """The state after a batch of these records (read only: the nodes are written by ``store``).
    ``links`` are their ``record_links`` when the caller holds them (a migration batch has just
    written them: reading them back would cost a query and a JSON parse per record); else they are
    read. The first state ever also takes every record the live batches anchored before it."""
    base, parcels = live_base(s)
    links = dict(links) if links is not None else _links_of(s, instrument_ids)
    if base is None:
        links.update((link, prev) for link, prev in _links_of(s, _live_records(s)).items() if link not in links)
    keys = {key for key, _ in links}
    live = LIVE.of(s, base, parcels)
    if live is not None:  # a migration run: the base's whole tree is in memory
        store = DbNodeStore(s, cache=None, loaded=live.nodes, at=live.at, live=live)
        if base is not None:
            store.roots[base] = live.root
        current = {k: ts.Head(k, *live.heads[k]) for k in keys if k in live.heads}
    else:
        store = DbNodeStore(s)
        current = store.heads_on_paths(base, keys)
    known = {(h.parcel_key, h.commitment): h.history_length for h in current.values()}
    heads = store.moved = newer_heads(history_lengths(s, links, known), links, current)
    _, root = ts.apply(store, base, heads, version=PENDING, replaced=store.replaced if live else None)
    fresh = sum(1 for h in heads if h.parcel_key not in current)
    return TitlePlan(root, base, parcels + fresh, len(heads), store)


def store(conn: Connection, plan: TitlePlan, batch_id: int, proof: Sequence[bytes], now: datetime) -> None:
    """Write the plan's nodes and the batch's version, inside the batch's own transaction."""
    plan.store.write(conn, batch_id, plan.root)
    bulk_execute(
        conn,
        "INSERT INTO title_versions (batch_id, base_batch_id, root, parcels, touched, proof, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(batch_id, plan.base_batch_id, plan.root, plan.parcels, plan.touched, b"".join(proof),
          driver_datetime(conn, now))],
    )  # fmt: skip


# -- reading a head back -------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnchoredHead:
    """A parcel's head (or its absence) in the state a batch anchored, with everything a verifier
    needs to check it against the chain: the head proof to the state's root, the marker leaf's
    standard-v1 inclusion proof to the batch root, and the batch's anchor facts."""

    parcel_key: str
    head: ts.Head | None
    proof: ts.HeadProof
    state_root: bytes
    marker: bytes
    marker_proof: tuple[bytes, ...]
    batch_id: int
    chain_batch_id: int
    batch_root: bytes
    chain_id: int
    contract: str
    tx_hash: str
    block_number: int | None
    state: str

    def to_json(self) -> dict[str, Any]:
        return {
            "parcelKey": self.parcel_key, "stateRoot": to_hex(self.state_root), "headProof": self.proof.to_json(),
            "marker": to_hex(self.marker), "markerProof": [to_hex(p) for p in self.marker_proof],
            "batch": {"chainBatchId": self.chain_batch_id, "root": to_hex(self.batch_root), "chainId": self.chain_id,
                      "contract": self.contract, "txHash": self.tx_hash, "blockNumber": self.block_number,
                      "state": self.state},
        }  # fmt: skip


def newest_confirmed(s: Session) -> int | None:
    """The newest confirmed batch that has a title state."""
    return s.scalar(
        select(TitleVersion.batch_id).join(AnchorBatch, AnchorBatch.id == TitleVersion.batch_id)
        .where(AnchorBatch.state == BatchState.CONFIRMED).order_by(TitleVersion.batch_id.desc()).limit(1)
    )  # fmt: skip


def anchored_head(s: Session, parcel_key: str, batch_id: int | None = None) -> AnchoredHead:
    """``parcel_key``'s head in the state of ``batch_id`` (default: the newest confirmed batch)."""
    batch_id = batch_id if batch_id is not None else newest_confirmed(s)
    if batch_id is None:
        raise ts.UnknownVersionError("no confirmed batch holds a title state yet; anchor a batch and ask again")
    version = s.get(TitleVersion, batch_id)
    if version is None:
        raise ts.UnknownVersionError(f"batch {batch_id} holds no title state (it was anchored before there was one)")
    batch = s.get_one(AnchorBatch, batch_id)
    node_store = DbNodeStore(s)
    proof = ts.prove(node_store, batch_id, parcel_key)
    head = ts.verify_head(bytes(version.root), parcel_key, proof)
    marker = ts.state_marker(bytes(version.root))
    siblings = tuple(bytes(version.proof[i : i + 32]) for i in range(0, len(version.proof), 32))
    if not merkle.verify(batch.root, merkle.commitment_leaf(marker), siblings):
        raise TitleStoreError(
            f"the stored title state of batch {batch.chain_batch_id} is not the one its anchored root holds: "
            "the stored state was edited; run `landreg reconcile`"
        )
    return AnchoredHead(parcel_key, head, proof, bytes(version.root), marker, siblings, batch.id, batch.chain_batch_id,
                        batch.root, batch.deployment.chain_id, batch.deployment.contract_address, batch.tx_hash,
                        batch.block_number, batch.state)  # fmt: skip


# -- the state recomputed (reconciliation, tests) -----------------------------------------------------


def rebuild(s: Session, batch_id: int | None = None) -> tuple[bytes, int]:
    """(root, parcels) of the state computed from scratch, in memory, over the records of the live
    batches up to ``batch_id`` (default: all), as the head rule defines it."""
    # through the driver's rows: the whole anchored book's histories, SQLAlchemy's JSON processing spared
    sql = ("SELECT k.commitment, k.prev FROM commitments k JOIN batch_records r ON r.instrument_id = k.instrument_id "
           "JOIN anchor_batches b ON b.id = r.batch_id WHERE b.state != 'failed'")  # fmt: skip
    rows = s.execute(text(sql + (" AND b.id <= :b" if batch_id is not None else "")), {"b": batch_id})
    links = record_links(rows)
    heads = newer_heads(history_lengths(s, links, {}), links, {})
    _, root = ts.apply(ts.MemoryNodeStore(), None, heads, version=1)
    return root, len(heads)


def stored_nodes_intact(s: Session, version: int, root: bytes) -> int:
    """Read every stored node under ``root``, the root of state ``version``, from the database (no
    cache), checking each against its hash (``TitleStoreError`` on the first that fails or is
    missing); returns the nodes read."""
    return sum(1 for _ in _stored_under(DbNodeStore(s, cache=None), version, root, keep=False))


def _stored_under(store: DbNodeStore, version: int, root: bytes, *, keep: bool) -> Iterator[ts.Node]:
    """Every node under ``root`` (state ``version``), read level by level through ``store``,
    following each node's pointers to its children's rows, each checked against its hash.
    ``keep=False`` forgets each level once read (one level in memory at a time)."""
    if root != ts.EMPTY:
        store.at[root] = version
    frontier = [root]
    while frontier:
        store.load(frontier)
        deeper: list[bytes] = []
        for h in frontier:
            if h == ts.EMPTY:
                continue
            node = store.stored(h)
            yield node
            if isinstance(node, ts.InnerNode):
                deeper += (node.left, node.right)
            if not keep:
                del store.at[h]
        frontier = deeper
        if not keep:
            store.loaded.clear()
