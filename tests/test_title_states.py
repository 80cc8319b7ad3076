"""The title state in the database (``hybrid_store.title_states``): a TITLE marker in every batch
(outbox, audit-only, migration, rollback), provable against the chain's root; the state after each
batch equals the one computed from scratch over the live batches' records; a failed batch is never
built on; a database-only edit of a stored node or version is found by reconciliation."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text

from hybrid_store import audit_log, title_states
from hybrid_store.anchoring import Anchorer
from hybrid_store.batches import open_holds
from hybrid_store.core import merkle
from hybrid_store.core import title_state as ts
from hybrid_store.core.hashing import to_hex
from hybrid_store.db.models import AnchorBatch, BatchState, InstrumentParcel, Parcel, TitleNode, TitleVersion
from hybrid_store.errors import ChainError
from migration_tools.reconciliation.run import reconcile
from tests.conftest import bypass_append_only
from tests.test_anchoring import anchorer_tx, file_many, second_account


def versions(db) -> list[tuple[AnchorBatch, TitleVersion | None]]:
    with db.read() as s:
        rows = s.execute(select(AnchorBatch, TitleVersion).outerjoin(TitleVersion, TitleVersion.batch_id == AnchorBatch.id)
                         .order_by(AnchorBatch.id)).all()  # fmt: skip
        return [(b, v) for b, v in rows]


def assert_each_state_anchored_and_recomputable(db, chain) -> None:
    """Every batch holds a state; a live one's marker proves against the chain's root and its root
    is the state recomputed from scratch over the live batches' records up to it."""
    rows = versions(db)
    assert rows and all(v is not None for _, v in rows), "a batch without a title state"
    with db.read() as s:
        for b, v in rows:
            assert v is not None
            if b.state == BatchState.FAILED:
                continue
            proof = [bytes(v.proof[i : i + 32]) for i in range(0, len(v.proof), 32)]
            leaf = merkle.commitment_leaf(ts.state_marker(bytes(v.root)))
            assert merkle.verify(chain.get_batch(b.chain_batch_id).root, leaf, proof)
            assert title_states.rebuild(s, b.id)[0] == bytes(v.root)


def records_on(db, parcel_key: str) -> int:
    with db.read() as s:
        return len(s.scalars(select(InstrumentParcel.instrument_id).join(Parcel, Parcel.id == InstrumentParcel.parcel_id)
                             .where(Parcel.parcel_key == parcel_key)).all())  # fmt: skip


def test_every_outbox_batch_anchors_the_state_and_a_head_proves_against_the_chain(deployed):
    db, chain, dep = deployed
    file_many(db, 13, lots=3)
    with db.write() as s:  # the audit head alone: a batch of no record still anchors the state
        audit_log.append(s, actor="it", role="admin", action="key.create", target="k", details={})
    anchorer = Anchorer(db, chain, dep, batch_max_records=5)
    summary = anchorer.drain()
    assert [b.records for b in summary.batches] == [5, 5, 3]
    with db.write() as s:
        audit_log.append(s, actor="it", role="admin", action="key.revoke", target="k", details={})
    [audit_only] = anchorer.drain().batches
    assert audit_only.records == 0
    assert_each_state_anchored_and_recomputable(db, chain)
    rows = versions(db)
    assert [v.touched for _, v in rows if v] == [3, 3, 3, 0]  # each batch moves every lot's head
    assert [v.base_batch_id for _, v in rows if v] == [None, rows[0][0].id, rows[1][0].id, rows[2][0].id]
    with db.read() as s:
        keys = s.scalars(select(Parcel.parcel_key).order_by(Parcel.parcel_key)).all()
        for key in keys:
            got = title_states.anchored_head(s, key)
            assert got.batch_id == rows[-1][0].id  # the newest confirmed batch
            assert got.head is not None and got.head.history_length == records_on(db, key)
            assert merkle.verify(chain.get_batch(got.chain_batch_id).root, merkle.commitment_leaf(got.marker),
                                 got.marker_proof)  # fmt: skip
            assert ts.verify_head(got.state_root, key, got.proof) == got.head
        absent = title_states.anchored_head(s, "0999_1_1")
        assert absent.head is None and ts.verify_head(absent.state_root, "0999_1_1", absent.proof) is None
        # an older state stays provable: the first batch's, where each lot had its first records
        first = title_states.anchored_head(s, keys[0], rows[0][0].id)
        assert first.head is not None and first.head.history_length < records_on(db, keys[0])


def test_a_failed_batch_is_never_built_on(deployed):
    db, chain, dep = deployed
    anchorer = Anchorer(db, chain, dep)
    file_many(db, 4, lots=2)
    [good] = anchorer.drain().batches
    file_many(db, 3, lots=3)
    pauser = second_account(chain)
    signed = anchorer.build(force=True)
    pauser.transact(pauser.contract.functions.pause())
    chain.broadcast(anchorer_tx(signed))
    anchorer.settle()
    pauser.transact(pauser.contract.functions.unpause())
    file_many(db, 2, lots=1)
    again = anchorer.step(force=True)
    assert again.state == BatchState.CONFIRMED
    rows = versions(db)
    (ok, _), (failed, failed_v), (new, new_v) = rows
    assert failed.state == BatchState.FAILED and failed_v is not None  # its state is kept, never built on
    assert new_v is not None and new_v.base_batch_id == ok.id == good.batch_id
    assert new_v.root != failed_v.root
    assert_each_state_anchored_and_recomputable(db, chain)
    with db.read() as s:  # the requeued records are in the new state: lot 1 has all its records
        head = title_states.anchored_head(s, "0223_9_1").head
        assert head is not None and head.history_length == records_on(db, "0223_9_1") == 5


def test_a_later_batch_on_a_failed_one_is_skipped_as_a_base(deployed):
    """A batch signed on top of one that then failed is doomed (batch ids go in sequence): the next
    state builds on the newest batch whose own base is live."""
    db, chain, dep = deployed
    file_many(db, 3)
    first, second, third = Anchorer(db, chain, dep, batch_max_records=1).drain().batches
    with db.write() as s:
        assert title_states.live_base(s)[0] == third.batch_id
        # what a reorg and a failed re-send leave behind: the second batch failed, the third still live on it
        s.execute(text("UPDATE anchor_batches SET state = 'failed' WHERE id = :i"), {"i": second.batch_id})
        assert title_states.live_base(s) == (first.batch_id, 1)


def test_a_stored_node_or_version_edited_in_the_database_is_found(deployed):
    db, chain, dep = deployed
    file_many(db, 12, lots=4)
    Anchorer(db, chain, dep, batch_max_records=6).drain()
    assert reconcile(db, chain, manifest_dir=None, workers=1).clean
    with db.read() as s:
        newest = s.scalar(select(TitleVersion.batch_id).order_by(TitleVersion.batch_id.desc()).limit(1))
        leaf = next(h for h, n in s.execute(select(TitleNode.hash, TitleNode.node)) if bytes(n)[0] == 0
                    and title_states.decode_node(bytes(h), bytes(n)).head.history_length == 3)  # fmt: skip
    with db.write() as s:  # a head moved back by one record, its hash left alone
        bypass_append_only(s)
        node = title_states.decode_node(bytes(leaf), s.scalar(select(TitleNode.node).where(TitleNode.hash == leaf)))
        assert isinstance(node, ts.LeafNode)
        forged = ts.Head(node.head.parcel_key, hashlib.sha256(b"forged").digest(), 2)
        s.execute(text("UPDATE title_nodes SET node = :n WHERE hash = :h"),
                  {"n": title_states.encode_node(ts.LeafNode(node.path, ts.value_hash(forged), forged)), "h": leaf})  # fmt: skip
    found = reconcile(db, chain, manifest_dir=None, workers=1)
    assert not found.clean and found.kinds() == {"title_state_altered": 1}, found.discrepancies
    assert "edited" in found.discrepancies[0].message
    # a worker that reads the edited leaf (this one holds the true node in memory: restarted) would
    # build the next state on it: anchoring holds instead
    title_states.CACHE.clear()
    file_many(db, 4, lots=4)
    with pytest.raises(ChainError, match="title state cannot be built"):
        Anchorer(db, chain, dep).step(force=True)
    with db.read() as s:
        [hold] = open_holds(s)
    assert "title state cannot be built" in hold.reason and "edited" in hold.reason
    with db.write() as s:  # put it back; now rewrite the version's root instead
        bypass_append_only(s)
        s.execute(
            text("UPDATE title_nodes SET node = :n WHERE hash = :h"), {"n": title_states.encode_node(node), "h": leaf}
        )
        s.execute(text("UPDATE title_versions SET root = :r WHERE batch_id = :b"),
                  {"r": hashlib.sha256(b"another").digest(), "b": newest})  # fmt: skip
    found = reconcile(db, chain, manifest_dir=None, workers=1)
    assert not found.clean and "title_state_altered" in found.kinds(), found.discrepancies
    assert any(
        d.kind == "title_state_altered" and "version row was rewritten" in d.message for d in found.discrepancies
    )


def stored_rows(db) -> dict[tuple[int, bytes], bytes]:
    with db.read() as s:
        return {(int(v), bytes(h)): bytes(n) for v, h, n in s.execute(select(TitleNode.version, TitleNode.hash,
                                                                              TitleNode.node))}  # fmt: skip


def test_each_batch_writes_its_nodes_under_its_own_version_and_points_at_the_ones_it_keeps(deployed):
    """A batch's new nodes lie under its batch id, its root too when it moved nothing (a copy);
    every inner node names where its children lie, and following those pointers from any state's
    root reads exactly its tree."""
    db, chain, dep = deployed
    file_many(db, 4, lots=4)
    anchorer = Anchorer(db, chain, dep)
    anchorer.drain()
    file_many(db, 1, lots=1)  # one lot's head moves; the other three lots' leaves are kept
    anchorer.drain()
    with db.write() as s:  # a batch of no record: the state moves nothing, its root is copied
        audit_log.append(s, actor="it", role="admin", action="key.create", target="k", details={})
    anchorer.drain()
    rows = versions(db)
    stored = stored_rows(db)
    ids = [b.id for b, _ in rows]
    assert {v for v, _ in stored} == set(ids)
    (_, first), (_, second), (_, third) = rows
    assert first is not None and second is not None and third is not None
    assert third.root == second.root and [h for v, h in stored if v == ids[2]] == [bytes(third.root)]
    assert len([1 for v, _ in stored if v == ids[1]]) < len([1 for v, _ in stored if v == ids[0]])
    pointers = {p for (v, h), n in stored.items() if v == ids[1] and n[0] == 1
                for p in title_states.decode_stored(h, n)[1]}  # fmt: skip
    assert {ids[0], ids[1]} <= pointers <= {0, ids[0], ids[1]}  # kept nodes, its own (0: an empty subtree)
    with db.read() as s:
        for b, v in rows:
            assert v is not None
            heads = ts.heads_of(title_states.DbNodeStore(s, cache=None), b.id)
            assert len(heads) == v.parcels == 4
            memory = ts.MemoryNodeStore()
            assert ts.apply(memory, None, heads.values(), version=1)[1] == bytes(v.root)
            assert title_states.stored_nodes_intact(s, b.id, bytes(v.root)) == len(memory.nodes)


def _edit_pointer(db, version: int, to: int) -> tuple[bytes, bytes]:
    """Point the root of ``version`` (an inner node) at ``to`` for its left child; returns the root
    and its original bytes."""
    with db.write() as s:
        bypass_append_only(s)
        root = bytes(s.scalar(select(TitleVersion.root).where(TitleVersion.batch_id == version)))
        data = bytes(s.scalar(select(TitleNode.node).where(TitleNode.version == version, TitleNode.hash == root)))
        assert data[0] == 1
        s.execute(text("UPDATE title_nodes SET node = :n WHERE version = :v AND hash = :h"),
                  {"n": data[:65] + to.to_bytes(8, "big") + data[73:], "v": version, "h": root})  # fmt: skip
    return root, data


def test_a_child_version_pointer_edited_in_the_database_is_found(deployed):
    """The versions an inner node names are outside its hash: an attacker with the database may
    point one at a row that is not there, or at a forged row he inserted. The first is a node
    missing, the second a node whose hash is another: reconciliation names both, anchoring holds."""
    db, chain, dep = deployed
    file_many(db, 8, lots=4)
    Anchorer(db, chain, dep, batch_max_records=4).drain()
    file_many(db, 1, lots=1)
    Anchorer(db, chain, dep).drain()
    assert reconcile(db, chain, manifest_dir=None, workers=1).clean
    newest = versions(db)[-1][0].id
    root, data = _edit_pointer(db, newest, 999)  # at a version with no such row
    found = reconcile(db, chain, manifest_dir=None, workers=1)
    assert not found.clean and found.kinds() == {"title_state_altered": 1}, found.discrepancies
    assert "missing" in found.discrepancies[0].message and "version 999" in found.discrepancies[0].message
    with db.write() as s:  # a forged leaf in a row of its own, under the hash the root names
        bypass_append_only(s)
        left = data[1:33]
        real = title_states.decode_node(left, bytes(s.scalar(select(TitleNode.node).where(TitleNode.hash == left)
                                                             .limit(1))))  # fmt: skip
        if isinstance(real, ts.InnerNode):  # the forgery: a leaf where the subtree was
            forged_head = ts.Head("0223_9_1", hashlib.sha256(b"forged").digest(), 1)
            forged = title_states.encode_node(ts.LeafNode(ts.path_of("0223_9_1"), ts.value_hash(forged_head),
                                                          forged_head))  # fmt: skip
        else:
            forged_head = ts.Head(real.head.parcel_key, hashlib.sha256(b"forged").digest(), 1)
            forged = title_states.encode_node(ts.LeafNode(real.path, ts.value_hash(forged_head), forged_head))
        s.execute(text("INSERT INTO title_nodes (version, hash, node) VALUES (999, :h, :n)"), {"h": left, "n": forged})
    found = reconcile(db, chain, manifest_dir=None, workers=1)
    assert not found.clean and found.kinds() == {"title_state_altered": 1}, found.discrepancies
    assert "edited" in found.discrepancies[0].message and "hash is another" in found.discrepancies[0].message
    title_states.CACHE.clear()  # a worker started afresh reads the forged row: anchoring holds
    file_many(db, 4, lots=4)
    with pytest.raises(ChainError, match="title state cannot be built"):
        Anchorer(db, chain, dep).step(force=True)
    with db.read() as s:
        [hold] = open_holds(s)
    assert "hash is another" in hold.reason


def test_revision_0023_moves_the_nodes_under_their_versions_and_back(deployed):
    """Down to one row per hash (0019's layout, pointers dropped) and up again: the rows are exactly
    the ones the anchoring wrote (each node under the first state that reaches it, each state's
    root under its own version), and every state proves the same heads."""
    db, chain, dep = deployed
    anchorer = Anchorer(db, chain, dep)
    file_many(db, 6, lots=5)
    anchorer.drain()
    file_many(db, 2, lots=2)
    anchorer.drain()
    with db.write() as s:  # a state that moves nothing: its root is copied under its version
        audit_log.append(s, actor="it", role="admin", action="key.create", target="k", details={})
    anchorer.drain()
    keys = [f"0223_9_{lot}" for lot in range(1, 7)]

    def proofs() -> list[ts.HeadProof]:
        with db.read() as s:
            store = title_states.DbNodeStore(s, cache=None)
            return [ts.prove(store, b.id, key) for b, _ in versions(db) for key in keys]

    written, proved = stored_rows(db), proofs()
    assert len({h for _, h in written}) < len(written)  # the copied root
    db.downgrade("0022")
    with db.read() as s:
        old = dict((bytes(h), bytes(n)) for h, n in s.execute(text("SELECT hash, node FROM title_nodes")))
    assert set(old) == {h for _, h in written}
    for h, n in old.items():  # by hash alone, as 0019 kept them: an inner node is its two children
        if n[0] == 1:
            assert len(n) == 65 and ts.inner_hash(n[1:33], n[33:65]) == h
        else:
            assert isinstance(title_states.decode_node(h, n), ts.LeafNode)
    db.migrate()
    assert stored_rows(db) == written
    assert proofs() == proved
    title_states.CACHE.clear()
    assert reconcile(db, chain, manifest_dir=None, workers=1).clean
    file_many(db, 1, lots=1)  # and the next batch builds on the rewritten rows
    anchorer.drain()
    assert_each_state_anchored_and_recomputable(db, chain)


def test_the_migration_and_its_rollback_keep_the_state(legacy_book):
    from migration_tools.stages import Selector, StageRunner, plan_stage, rollback_stage

    db, chain, dep, manifests = legacy_book
    plan_stage(db, chain, "all", Selector(), batch_size=150, actor="it")
    StageRunner(db, chain, dep, manifest_dir=manifests, workers=1).run("all")
    assert_each_state_anchored_and_recomputable(db, chain)
    before = versions(db)[-1][1]
    assert before is not None and before.parcels > 0
    report = rollback_stage(db, chain, dep, "all", manifest_dir=manifests, batch_ids=[before_first(db)])
    rows = versions(db)
    replacement = next(v for b, v in rows if b.chain_batch_id == report.replacements[0])
    assert replacement is not None and replacement.root == before.root  # the same records: the same state
    assert replacement.touched == 0
    assert_each_state_anchored_and_recomputable(db, chain)
    assert reconcile(db, chain, manifest_dir=manifests, workers=1).clean
    assert reconcile(db, chain, manifest_dir=None, workers=1).clean


def test_a_migration_batch_hands_over_the_history_links_the_table_then_holds(legacy_book, monkeypatch):
    """A migration batch gives ``plan_title`` its records' history links as ``ledger.append`` made
    them instead of reading them back: they must be exactly the ones its commitment rows hold."""
    from migration_tools.stages import Selector, StageRunner, plan_stage

    db, chain, dep, manifests = legacy_book
    handed: list[tuple[list[int], dict]] = []
    plan_title = title_states.plan_title

    def spy(s, instrument_ids, links=None):
        assert links is not None, "a migration batch reads its links back"
        handed.append((list(instrument_ids), dict(links)))
        return plan_title(s, instrument_ids, links)

    monkeypatch.setattr(title_states, "plan_title", spy)
    plan_stage(db, chain, "all", Selector(), batch_size=150, actor="it")
    StageRunner(db, chain, dep, manifest_dir=manifests, workers=1).run("all")
    assert len(handed) > 1
    with db.read() as s:
        for ids, links in handed:
            rows = s.execute(text("SELECT commitment, prev FROM commitments WHERE instrument_id IN "
                                  f"({', '.join(map(str, ids))})")).all()  # fmt: skip
            assert links == title_states.record_links(rows)
    assert_each_state_anchored_and_recomputable(db, chain)


def before_first(db) -> int:
    with db.read() as s:
        return s.scalar(select(AnchorBatch.chain_batch_id).where(AnchorBatch.stage_id.is_not(None))
                        .order_by(AnchorBatch.id).limit(1))  # fmt: skip


@pytest.fixture
def legacy_book(deployed, tmp_path):
    from migration_tools.legacy.importer import import_records, synthetic_source

    db, chain, dep = deployed
    assert import_records(db, synthetic_source(400, 7), name="book", quarantine=tmp_path / "q.csv").loaded == 400
    return db, chain, dep, tmp_path / "manifests"


# -- the head rule, as a property ---------------------------------------------------------------------

_histories = st.lists(st.integers(min_value=1, max_value=6), min_size=1, max_size=6)  # records per parcel


@settings(max_examples=60, deadline=None)
@given(_histories, st.randoms(use_true_random=False), st.integers(min_value=1, max_value=7))
def test_heads_applied_batch_by_batch_in_any_order_equal_the_state_from_scratch(lengths, rnd, size):
    """Records anchored in any order (requeued ones late, one twice as a rollback re-anchors) and
    any batch split: the incremental state always equals the one built from scratch."""
    records = [(f"0223_{p}_1", hashlib.sha256(f"{p}/{n}".encode()).digest(), n)
               for p, count in enumerate(lengths) for n in range(1, count + 1)]  # fmt: skip
    rnd.shuffle(records)
    records += records[: len(records) // 3]  # re-anchored
    history = {(key, c): n for key, c, n in records}
    store, version = ts.MemoryNodeStore(), None
    for i in range(0, len(records), size):
        batch = [(key, c) for key, c, _ in records[i : i + size]]
        base = ts.heads_of(store, version) if version is not None else {}
        heads = title_states.newer_heads(history, dict.fromkeys(batch), base)
        version, _ = ts.apply(store, version, heads, version=(version or 0) + 1)
    assert version is not None
    best = {key: ts.Head(key, c, n) for key, c, n in sorted(records, key=lambda r: r[2])}
    assert store.root_of(version) == ts.apply(ts.MemoryNodeStore(), None, best.values(), version=1)[1]


def test_the_first_state_takes_every_record_anchored_before_there_was_one(deployed):
    """Batches anchored before revision 0018 (here: with the state switched off) have no state: the
    first batch with one builds it over every live batch's records and its own."""
    db, chain, dep = deployed
    file_many(db, 6, lots=3)
    Anchorer(db, chain, dep, batch_max_records=3, title_state=False).drain()
    file_many(db, 2, lots=1)
    [batch] = Anchorer(db, chain, dep).drain().batches
    rows = versions(db)
    assert [v is None for _, v in rows] == [True, True, False]
    with db.read() as s:
        v = s.get_one(TitleVersion, batch.batch_id)
        assert v.base_batch_id is None and v.parcels == 3 and v.root == title_states.rebuild(s)[0]
        head = title_states.anchored_head(s, "0223_9_1").head
    assert head is not None and head.history_length == records_on(db, "0223_9_1") == 4


# -- a migration run's whole tree in memory (title_states.LIVE) ----------------------------------------


def _reachable(nodes_of, root: bytes) -> set[bytes]:
    out, stack = set(), [root]
    while stack:
        h = stack.pop()
        if h == ts.EMPTY or h in out:
            continue
        out.add(h)
        node = nodes_of(h)
        if isinstance(node, ts.InnerNode):
            stack += (node.left, node.right)
    return out


@settings(max_examples=60, deadline=None)
@given(_histories, st.randoms(use_true_random=False), st.integers(min_value=1, max_value=7))
def test_the_nodes_an_update_replaces_are_exactly_those_its_state_no_longer_holds(lengths, rnd, size):
    """``apply(..., replaced=)`` names the base's nodes the new state dropped (never one it keeps, a
    leaf moved down one level included): a tree kept whole in memory stays exactly the state's."""
    records = [(f"0223_{p}_1", hashlib.sha256(f"{p}/{n}".encode()).digest(), n)
               for p, count in enumerate(lengths) for n in range(1, count + 1)]  # fmt: skip
    rnd.shuffle(records)
    history = {(key, c): n for key, c, n in records}
    store, version, live = ts.MemoryNodeStore(), None, set()
    for i in range(0, len(records), size):
        batch = [(key, c) for key, c, _ in records[i : i + size]]
        base = ts.heads_of(store, version) if version is not None else {}
        before = set(store.nodes)
        replaced: list[bytes] = []
        version, root = ts.apply(store, version, title_states.newer_heads(history, dict.fromkeys(batch), base),
                                 version=(version or 0) + 1, replaced=replaced)  # fmt: skip
        assert len(replaced) == len(set(replaced)) and set(replaced) <= live
        live = (live - set(replaced)) | (set(store.nodes) - before)
        assert live == _reachable(store.get_node, root)


def test_a_migration_run_keeps_the_whole_tree_and_writes_what_each_state_adds(legacy_book, monkeypatch):
    """With the tree in memory, each batch's rows are exactly the nodes its state holds and its
    base's did not (its root copied when it moved nothing), every pointer leads to a stored row, and
    the tree in memory after each batch is exactly the state's (no node it dropped, none it lost)."""
    from migration_tools.stages import Selector, StageRunner, plan_stage

    db, chain, dep, manifests = legacy_book
    seen: list[tuple[int | None, int]] = []
    of = title_states.LIVE.of

    def spy(s, base, parcels):
        state = of(s, base, parcels)
        assert state is not None, "a migration run reads the paths back"
        if base is not None:
            assert _reachable(state.nodes.__getitem__, state.root) == set(state.nodes) == set(state.at)
            with db.read() as r:
                stored = ts.heads_of(title_states.DbNodeStore(r, cache=None), base)
            assert {k: ts.Head(k, *h) for k, h in state.heads.items()} == stored
        seen.append((base, len(state.nodes)))
        return state

    monkeypatch.setattr(title_states.LIVE, "of", spy)
    plan_stage(db, chain, "all", Selector(), batch_size=40, actor="it")
    StageRunner(db, chain, dep, manifest_dir=manifests, workers=1).run("all")
    assert len(seen) >= 10 and seen[0][0] is None
    assert title_states.LIVE.state is None and not title_states.LIVE.on  # freed when the run ends
    assert_each_state_anchored_and_recomputable(db, chain)
    rows = stored_rows(db)
    with db.read() as s:
        for b, v in versions(db):
            assert v is not None
            assert title_states.stored_nodes_intact(s, b.id, bytes(v.root)) > 0
            mine = {h for (ver, h) in rows if ver == b.id}
            nodes = title_states.DbNodeStore(s, cache=None)
            now = _reachable(nodes.get_node, nodes.root_of(b.id))
            was = _reachable(nodes.get_node, nodes.root_of(v.base_batch_id)) if v.base_batch_id else set()
            assert mine == (now - was) | {bytes(v.root)}
    assert reconcile(db, chain, manifest_dir=manifests, workers=1).clean


def test_a_migration_run_reading_its_tree_refuses_a_forged_node_anywhere_in_it(legacy_book):
    """The run reads the whole tree once, each node checked against its hash: a node edited in the
    database, even under a parcel the next batch does not touch, holds anchoring, named."""
    from migration_tools.stages import Selector, StageRunner, plan_stage, sign_off

    db, chain, dep, manifests = legacy_book
    with db.read() as s:  # the municipality holding the most parcels: the first stage
        town = s.scalar(select(Parcel.municipality_code).group_by(Parcel.municipality_code)
                        .order_by(func.count().desc()).limit(1))  # fmt: skip
    plan_stage(db, chain, "first", Selector(municipalities=(town,)), batch_size=100, actor="it")
    StageRunner(db, chain, dep, manifest_dir=manifests, workers=1).run("first")
    assert reconcile(db, chain, manifest_dir=manifests, workers=1).clean
    sign_off(db, "first", "Jo IT")
    with db.write() as s:  # a leaf of the state, whose parcel the next stage does not touch, forged
        bypass_append_only(s)
        newest = versions(db)[-1][0].id
        nodes = title_states.DbNodeStore(s, cache=None)
        h = next(h for h in sorted(_reachable(nodes.get_node, nodes.root_of(newest)))
                 if isinstance(nodes.get_node(h), ts.LeafNode))  # fmt: skip
        node = nodes.get_node(h)
        assert isinstance(node, ts.LeafNode)
        forged = ts.Head(node.head.parcel_key, hashlib.sha256(b"forged").digest(), 1)
        s.execute(text("UPDATE title_nodes SET node = :n WHERE hash = :h"),
                  {"n": title_states.encode_node(ts.LeafNode(node.path, ts.value_hash(forged), forged)), "h": h})  # fmt: skip
    title_states.CACHE.clear()
    plan_stage(db, chain, "rest", Selector(), batch_size=100, actor="it")
    with pytest.raises(ChainError, match="title state cannot be built"):
        StageRunner(db, chain, dep, manifest_dir=manifests, workers=1).run("rest")
    with db.read() as s:
        [hold] = open_holds(s)
    assert "edited" in hold.reason and to_hex(bytes(h)) in hold.reason
