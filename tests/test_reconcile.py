"""Parallel-run reconciliation against a tamperer who is a database administrator.

The tamperer may change any row after it was anchored and then rewrite every column that could
give them away: the stored commitment, the batch's tree nodes and root, the tree indexes. The
chain and the batch manifests (kept outside the database) are what reconciliation trusts.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text, update

from hybrid_store import manifests
from hybrid_store.anchoring import Anchorer
from hybrid_store.core import commitment as commitment_lib
from hybrid_store.core import merkle
from hybrid_store.db.engine import Database
from hybrid_store.db.models import AnchorBatch, BatchRecord, BatchState, Commitment, Instrument, MigrationStage
from hybrid_store.db.records import load_records
from hybrid_store.filing import record_instruments
from hybrid_store.intake import validate
from hybrid_store.proofs import export_bundle
from hybrid_store.verifier.verdicts import verify_document
from migration_tools import hashing_pool
from migration_tools.legacy.importer import import_records, synthetic_source
from migration_tools.reconciliation import recompute, reports
from migration_tools.reconciliation.run import CLEAN_KINDS, reconcile
from migration_tools.stages import Selector, StageError, StageRunner, plan_stage, sign_off
from tests.conftest import bypass_append_only, deed, make_sqlite, pg_admin, pg_url, trust_of

BOOK, SEED, BATCH = 240, 31, 60


def migrate(db: Database, chain, dep, manifest_dir: Path) -> None:
    report = import_records(db, synthetic_source(BOOK, SEED), name="book", quarantine=manifest_dir.parent / "q.csv")
    assert report.loaded == BOOK
    plan_stage(db, chain, "all", Selector(), batch_size=BATCH, actor="it")
    StageRunner(db, chain, dep, manifest_dir=manifest_dir, workers=1).run("all")


@pytest.fixture(scope="module")
def migrated_once(tmp_path_factory) -> Iterator[dict]:
    """Per database kind, one book migrated once: its database (a file, or a PostgreSQL database to
    copy), its manifests, and its chain with a snapshot to go back to."""
    books: dict = {}
    yield books
    for kind, book in books.items():
        if kind == "postgres":
            pg_admin(f'DROP DATABASE IF EXISTS "{book["template"]}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def migrated(request, migrated_once, tmp_path, tmp_path_factory):
    """``(db, chain, deployment, manifest_dir)`` of a freshly migrated book: a copy of the module's
    book (its database copied, its chain reverted to the snapshot taken after the migration)."""
    from hybrid_store.chain.connect import eth_tester_chain
    from hybrid_store.deployment import attach

    kind = request.param
    if kind not in migrated_once:
        base = tmp_path_factory.mktemp(f"migrated-{kind}")
        if kind == "sqlite":
            db = make_sqlite(base)
        else:
            template = request.getfixturevalue("pg_copies").take()
            db = Database(pg_url(template))
        chain = eth_tester_chain()
        dep = attach(db, chain)
        migrate(db, chain, dep, base / "manifests")
        db.dispose()  # no connection may stay open on a database that is copied
        tester = chain.w3.provider.ethereum_tester
        migrated_once[kind] = {"base": base, "chain": chain, "dep": dep, "snapshot": tester.take_snapshot(),
                               "template": None if kind == "sqlite" else template}  # fmt: skip
    book = migrated_once[kind]
    chain = book["chain"]
    chain.w3.provider.ethereum_tester.revert_to_snapshot(book["snapshot"])
    chain.address = book["dep"].contract_address
    shutil.copytree(book["base"] / "manifests", tmp_path / "manifests")
    if kind == "sqlite":
        shutil.copy(book["base"] / "landreg.db", tmp_path / "landreg.db")
        db = Database(f"sqlite:///{tmp_path / 'landreg.db'}")
        yield db, chain, book["dep"], tmp_path / "manifests"
        db.dispose()
    else:
        name = f"landreg_t_{uuid.uuid4().hex[:12]}"
        pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{book["template"]}"')
        db = Database(pg_url(name))
        yield db, chain, book["dep"], tmp_path / "manifests"
        db.dispose()
        pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def problems(result) -> list[tuple[str, str | None]]:
    return sorted((d.kind, d.instrument_number) for d in result.discrepancies if d.kind not in CLEAN_KINDS)


# --- the tamperer ---------------------------------------------------------------------------------


MUTATIONS = {
    "price": "UPDATE instruments SET consideration_cents = COALESCE(consideration_cents, 0) + 100 WHERE id = :id",
    "legal_description": "UPDATE instruments SET legal_description = legal_description || ' AND LOT 9' WHERE id = :id",
    "grantee_name": "UPDATE instrument_parties SET name = 'MALLORY' WHERE instrument_id = :id AND role = 'grantee'",
    "document_digest": "UPDATE instruments SET document_digest = '" + "e" * 64 + "' WHERE id = :id",
    "doc_type": "UPDATE instruments SET doc_type = CASE WHEN doc_type = 'DEED' THEN 'EASEMENT' ELSE 'DEED' END "
    "WHERE id = :id",
    "salt_seed": "UPDATE instruments SET salt_seed = :zero WHERE id = :id",
    "history_link": 'UPDATE commitments SET prev = \'[["0201-1-1", "1900-0000001", "0x' + "ab" * 32 + "\"]]' "
    "WHERE instrument_id = :id",
}


def tamper(db: Database, number: str, mutation: str, *, rewrite_hashes: bool) -> bytes:
    """Change one anchored record; with ``rewrite_hashes`` also make every derived column agree
    with the change (commitment, tree nodes, root, tree indexes). Returns the new commitment."""
    with db.write() as s:
        iid = s.scalar(select(Instrument.id).where(Instrument.instrument_number == number))
        bypass_append_only(s)
        s.execute(text(MUTATIONS[mutation]), {"id": iid, "zero": b"\0" * 32})
    ((_, _, new),) = hashing_pool.recompute_chunk([iid], db)
    if rewrite_hashes:
        with db.write() as s:
            bypass_append_only(s)
            s.execute(update(Commitment).where(Commitment.instrument_id == iid).values(commitment=new))
            batch_id = s.scalar(select(BatchRecord.batch_id).where(BatchRecord.instrument_id == iid))
            rows = s.execute(
                select(BatchRecord.instrument_id, Commitment.commitment)
                .join(Commitment, Commitment.instrument_id == BatchRecord.instrument_id)
                .where(BatchRecord.batch_id == batch_id)
            ).all()  # fmt: skip
            ordered = sorted(rows, key=lambda r: merkle.commitment_leaf(r[1]))
            nodes = merkle.build([merkle.commitment_leaf(c) for _, c in ordered])
            for index, (member, _) in enumerate(ordered):
                s.execute(update(BatchRecord).where(BatchRecord.batch_id == batch_id, BatchRecord.instrument_id == member)
                          .values(tree_index=len(nodes) - 1 - index))  # fmt: skip
            s.execute(update(AnchorBatch).where(AnchorBatch.id == batch_id)
                      .values(root=nodes[0], nodes=merkle.nodes_to_bytes(nodes)))  # fmt: skip
    return new


def some_numbers(db: Database, n: int) -> list[str]:
    with db.read() as s:
        return list(s.scalars(select(Instrument.instrument_number).order_by(Instrument.id).limit(n)))


# --- scenarios on both databases -----------------------------------------------------------------
def test_a_clean_migration_reconciles_clean_and_pending_is_not_tampering(migrated):
    db, chain, dep, manifest_dir = migrated
    result = reconcile(db, chain, manifest_dir=manifest_dir, workers=1)
    assert result.clean and problems(result) == [] and result.counts["verified"] == BOOK
    assert result.chain["batchesOnChain"] == -(-BOOK // BATCH)
    with db.write() as s:  # a clerk files a deed; it waits for its batch
        record_instruments(s, [validate(deed())])
    pending = reconcile(db, chain, manifest_dir=manifest_dir, workers=1)
    assert pending.clean and pending.kinds() == {"pending": 1} and pending.counts["pending_outbox"] == 1
    Anchorer(db, chain, dep).drain()
    assert reconcile(db, chain, manifest_dir=manifest_dir, workers=1).kinds() == {}


def test_tamperer_who_rewrote_the_hash_columns_is_located_through_the_manifest(migrated):
    db, chain, _dep, manifest_dir = migrated
    victim = some_numbers(db, 100)[77]
    with db.read() as s:
        before = export_bundle(s, victim).to_json()
    new = tamper(db, victim, "price", rewrite_hashes=True)
    with db.read() as s:  # the database is self-consistent again: its own proof checks out offline...
        after = export_bundle(s, victim).to_json()
    assert after["record"]["commitment"] != before["record"]["commitment"]
    verdict = verify_document(after, chain=chain, trust=trust_of(db))
    assert not verdict.valid  # ...but not against the chain
    result = reconcile(db, chain, manifest_dir=manifest_dir, workers=1)
    assert not result.clean
    assert problems(result) == [("tampered_record", victim)]
    (d,) = [d for d in result.discrepancies if d.kind == "tampered_record"]
    assert d.expected == before["record"]["commitment"] and d.found == "0x" + new.hex()
    assert result.counts["verified"] == BOOK - 1
    with db.read() as s:
        assert s.scalar(select(MigrationStage.reconciled_clean)) is False
    with pytest.raises(StageError, match="no clean reconciliation"):
        sign_off(db, "all", "Jo IT")

    blind = reconcile(db, chain, manifest_dir=None, workers=1)  # without the manifests: the batch, not the record
    assert [k for k, _ in problems(blind)] == ["tampered_batch"]
    assert "provide the batch manifest" in blind.discrepancies[0].message


@pytest.mark.subprocess
def test_hashing_processes_find_exactly_what_one_process_finds(migrated):
    """The batches are checked in two processes, each against the root the database holds; one whose
    root was rewritten is checked again against the chain's (the outcome must not depend on where)."""
    db, chain, _dep, manifest_dir = migrated
    numbers = some_numbers(db, BOOK)
    tamper(db, numbers[10], "price", rewrite_hashes=True)  # its batch's root in the database rewritten too
    tamper(db, numbers[200], "grantee_name", rewrite_hashes=False)
    for manifests_at in (manifest_dir, None):
        one = reconcile(db, chain, manifest_dir=manifests_at, workers=1)
        two = reconcile(db, chain, manifest_dir=manifests_at, workers=2)
        assert two.discrepancies == one.discrepancies
        assert two.counts == one.counts and two.stages == one.stages
        assert one.counts["records_checked"] == BOOK
    assert problems(two) == [("tampered_batch", None), ("tampered_batch", None), ("tampered_record", numbers[200])]
    located = reconcile(db, chain, manifest_dir=manifest_dir, workers=2)
    assert problems(located) == sorted([("tampered_record", numbers[10]), ("tampered_record", numbers[200])])
    assert located.counts["verified"] == BOOK - 2


def test_a_batch_cannot_be_hidden_by_its_state_columns(migrated):
    """The database's state columns say which batches to check; a tamperer who rewrites them must
    not get a batch left out (the chain's batches are what must be accounted for)."""
    db, chain, _dep, manifest_dir = migrated
    with db.read() as s:
        batches = s.scalars(select(AnchorBatch).order_by(AnchorBatch.chain_batch_id)).all()
    a, b, c = batches[0], batches[1], batches[2]

    def flagged() -> list[tuple[str, int | None, str | None]]:
        result = reconcile(db, chain, manifest_dir=manifest_dir, workers=1)
        return sorted((d.kind, d.batch_id, d.instrument_number) for d in result.discrepancies)

    def set_batch(batch: AnchorBatch, **values) -> None:
        with db.write() as s:
            s.execute(update(AnchorBatch).where(AnchorBatch.id == batch.id).values(**values))

    set_batch(a, superseded_at=a.confirmed_at, supersedes_batch_id=a.id)  # "rolled back", by itself
    assert flagged() == [("tampered_batch", a.chain_batch_id, None)]
    set_batch(a, superseded_at=None, supersedes_batch_id=None)
    set_batch(b, state=BatchState.FAILED)  # "failed", though the chain holds it
    assert flagged() == [("tampered_batch", b.chain_batch_id, None)]
    set_batch(b, state=BatchState.CONFIRMED)
    with db.read() as s:
        victim = s.scalar(select(Instrument.instrument_number).join(BatchRecord, BatchRecord.instrument_id == Instrument.id)
                          .where(BatchRecord.batch_id == c.id).limit(1))  # fmt: skip
    tamper(db, victim, "legal_description", rewrite_hashes=True)
    set_batch(c, state=BatchState.MINED)  # "not yet confirmed": pending, and checked all the same
    assert flagged() == [("pending", c.chain_batch_id, None), ("tampered_record", c.chain_batch_id, victim)]


def test_batches_are_grouped_for_the_processes_without_splitting_one():
    def tasks(*sizes: int) -> list[recompute.BatchTask]:
        return [recompute.BatchTask(i, i, n, b"\0" * 32) for i, n in enumerate(sizes)]

    few = tasks(60, 60, 60, 60)
    assert recompute.group(few) == [[t] for t in few]  # a small run: one batch per task, so all processes work
    mixed = tasks(20_000, 3, 1, 1, 20_000, 7)
    groups = recompute.group(mixed)
    assert [t for g in groups for t in g] == mixed  # in order, each once
    assert [len(g) for g in groups] == [1, 4, 1]  # a group closes once it holds GROUP_RECORDS; none is split
    tiny = tasks(*[1] * 100_000)  # a year of one-deed filing batches
    sizes = [len(g) for g in recompute.group(tiny)]
    assert sum(sizes) == 100_000 and set(sizes) == {recompute.GROUP_RECORDS}


def test_without_manifests_a_naive_change_is_still_located(migrated):
    db, chain, _dep, _ = migrated
    victim = some_numbers(db, 10)[3]
    tamper(db, victim, "grantee_name", rewrite_hashes=False)
    result = reconcile(db, chain, manifest_dir=None, workers=1)
    assert problems(result) == [("tampered_batch", None), ("tampered_record", victim)]


def test_records_removed_from_a_batch_and_damaged_manifests_are_reported(migrated):
    db, chain, _dep, manifest_dir = migrated
    victim = some_numbers(db, 5)[2]
    with db.write() as s:
        iid = s.scalar(select(Instrument.id).where(Instrument.instrument_number == victim))
        row = s.execute(select(BatchRecord.__table__).where(BatchRecord.instrument_id == iid)).one()
        bypass_append_only(s)  # batch_records is append-only: only an administrator removes a record
        s.execute(BatchRecord.__table__.delete().where(BatchRecord.instrument_id == iid))
    assert problems(reconcile(db, chain, manifest_dir=manifest_dir, workers=1)) == [("missing_record", victim)]
    with db.write() as s:
        s.execute(BatchRecord.__table__.insert(), [row._asdict()])

    with db.read() as s:
        root = s.scalar(select(AnchorBatch.root).order_by(AnchorBatch.id.desc()).limit(1))
    path = manifests.path_for(manifest_dir, root)
    document = json.loads(path.read_text())
    document["records"][0][1] = "0x" + "1" * 64
    path.chmod(0o644)
    path.write_text(json.dumps(document))
    kinds = reconcile(db, chain, manifest_dir=manifest_dir, workers=1).kinds()
    assert kinds == {"manifest_mismatch": 1}  # and the batch is still checked, from the database
    path.write_text("{not json")
    assert reconcile(db, chain, manifest_dir=manifest_dir, workers=1).kinds()["manifest_mismatch"] == 1


def test_a_replaced_chain_is_a_chain_reset_never_verified(migrated):
    from hybrid_store.chain.connect import eth_tester_chain

    db, _chain, _dep, manifest_dir = migrated
    result = reconcile(db, eth_tester_chain(), manifest_dir=manifest_dir, workers=1)
    assert not result.clean and result.counts["verified"] == 0
    assert set(result.kinds()) == {"chain_reset"}
    assert any("genesis" in d.message or "no contract code" in d.message for d in result.discrepancies)


def lose_the_last_two_batches(deployed, tmp_path, **anchorer_kw):
    """A node that lost its newest blocks (eth-tester's snapshot and revert stand in for a node
    restarted from an older state dump or a reorganisation; the anvil tests do it with a real SIGKILL)."""
    db, chain, dep = deployed
    manifest_dir = tmp_path / "manifests"
    import_records(db, synthetic_source(BOOK, SEED), name="book", quarantine=tmp_path / "q.csv")
    plan_stage(db, chain, "all", Selector(), batch_size=BATCH, actor="it")
    tester = chain.w3.provider.ethereum_tester
    anchorer = Anchorer(db, chain, dep, manifest_dir=manifest_dir, **anchorer_kw)
    runner = StageRunner(db, chain, dep, workers=1, anchorer=anchorer)
    snapshots = []
    runner.progress = lambda done, total: snapshots.append(tester.take_snapshot()) if done == 2 * BATCH else None
    runner.run("all")
    before = {b.chain_batch_id: (b.root, b.tx_hash) for b in all_batches(db)}
    tester.revert_to_snapshot(snapshots[0])  # the last two batches are gone from the chain
    return db, chain, dep, manifest_dir, before


def all_batches(db: Database) -> list[AnchorBatch]:
    with db.read() as s:
        return list(s.scalars(select(AnchorBatch).order_by(AnchorBatch.id)))


def test_a_lost_tail_not_yet_final_is_sent_again_by_the_worker(deployed, tmp_path):
    db, chain, dep, manifest_dir, before = lose_the_last_two_batches(deployed, tmp_path)
    result = reconcile(db, chain, manifest_dir=manifest_dir, workers=1)
    assert result.clean and result.kinds() == {"pending": 2}  # a reorganisation, not a reset: nothing lost
    assert all("reorganised away before it was final" in d.message for d in result.discrepancies)
    Anchorer(db, chain, dep, manifest_dir=manifest_dir).drain()  # re-sends the very same transactions
    after = reconcile(db, chain, manifest_dir=manifest_dir, workers=1)
    assert after.clean and after.kinds() == {} and after.counts["verified"] == BOOK
    assert {b.chain_batch_id: (b.root, b.tx_hash) for b in all_batches(db)} == before
    assert [b.state for b in all_batches(db)] == [BatchState.CONFIRMED] * len(before)
    assert [chain.get_batch(k).root for k in sorted(before)] == [before[k][0] for k in sorted(before)]


def test_a_lost_tail_that_was_final_is_missing_on_chain_and_heal_reanchors_it(deployed, tmp_path):
    db, chain, dep, manifest_dir, _ = lose_the_last_two_batches(deployed, tmp_path, finality_depth=1)
    assert all(b.finalized_at is not None for b in all_batches(db))
    result = reconcile(db, chain, manifest_dir=manifest_dir, workers=1)
    assert result.kinds() == {"missing_on_chain": 2} and not result.clean
    with pytest.raises(Exception, match="reconcile"):
        Anchorer(db, chain, dep).drain()  # a final batch gone: anchoring refuses until reconciliation explains it
    healed = reconcile(db, chain, manifest_dir=manifest_dir, workers=1, heal=True)
    assert healed.healed == {"batches": 2, "records": 2 * BATCH}
    Anchorer(db, chain, dep, manifest_dir=manifest_dir).drain()
    after = reconcile(db, chain, manifest_dir=manifest_dir, workers=1)
    assert after.clean and after.kinds() == {} and after.counts["verified"] == BOOK
    with db.read() as s:
        failed = s.scalars(select(AnchorBatch.error).where(AnchorBatch.state == BatchState.FAILED)).all()
    assert len(failed) == 2 and all("reconcile --heal" in e for e in failed)  # the history keeps them


def test_reports_for_people_and_machines(migrated, tmp_path):
    db, chain, _dep, manifest_dir = migrated
    victim = some_numbers(db, 3)[1]
    tamper(db, victim, "legal_description", rewrite_hashes=True)
    result = reconcile(db, chain, manifest_dir=manifest_dir, workers=1)
    reports.write_html(result, tmp_path / "r.html", desk_url="http://desk.example/")
    reports.write_json(result, tmp_path / "r.json")
    reports.write_csv(result, tmp_path / "r.csv")
    html = (tmp_path / "r.html").read_text()
    assert victim in html and "tampered record" in html and "<svg" in html and "<rect" in html
    assert f'href="http://desk.example/desk/instruments/{victim}"' in html
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["clean"] is False and data["kinds"] == {"tampered_record": 1}
    assert data["stages"][0]["name"] == "all" and data["stages"][0]["verified"] == BOOK - 1
    lines = (tmp_path / "r.csv").read_text().splitlines()
    assert lines[0].startswith("kind,batch_id,instrument_number") and victim in lines[1]


# --- the property: any single change, however well covered up, is located ---------------------------
@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    """One migrated SQLite book and its chain, copied for every example."""
    from hybrid_store.chain.connect import eth_tester_chain
    from hybrid_store.deployment import attach

    base = tmp_path_factory.mktemp("golden")
    db = make_sqlite(base)
    chain = eth_tester_chain()
    migrate(db, chain, attach(db, chain), base / "manifests")
    numbers = some_numbers(db, BOOK)
    db.dispose()
    return base, chain, numbers


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), mutation=st.sampled_from(sorted(MUTATIONS)), rewrite=st.booleans())
def test_any_tampered_record_is_located_exactly(golden, tmp_path, data, mutation, rewrite):
    base, chain, numbers = golden
    victim = data.draw(st.sampled_from(numbers), label="victim")
    work = Path(tempfile.mkdtemp(prefix=f"ex-{mutation}-", dir=tmp_path))  # hypothesis may replay an example
    shutil.copy(base / "landreg.db", work / "landreg.db")
    db = Database(f"sqlite:///{work / 'landreg.db'}")
    try:
        tamper(db, victim, mutation, rewrite_hashes=rewrite)
        result = reconcile(db, chain, manifest_dir=base / "manifests", workers=1)
        assert problems(result) == [("tampered_record", victim)]
        assert result.counts["verified"] == BOOK - 1
    finally:
        db.dispose()


@pytest.mark.parametrize("damage", ["not json", '[["0201-1-1", null, null]] and more', '{"0201-1-1": null}'])
def test_a_history_link_that_is_no_longer_a_link_is_named_not_fatal(golden, tmp_path, damage):
    """Rows that no longer make a record at all must be reported like any other change: the
    reconciliation goes on and names exactly that record."""
    base, chain, numbers = golden
    victim = numbers[len(numbers) // 2]
    shutil.copy(base / "landreg.db", tmp_path / "landreg.db")
    db = Database(f"sqlite:///{tmp_path / 'landreg.db'}")
    try:
        with db.write() as s:
            iid = s.scalar(select(Instrument.id).where(Instrument.instrument_number == victim))
            bypass_append_only(s)
            s.execute(
                text("UPDATE commitments SET prev = :damage WHERE instrument_id = :id"), {"damage": damage, "id": iid}
            )
        for manifests in (base / "manifests", None):
            result = reconcile(db, chain, manifest_dir=manifests, workers=1)
            assert [p for p in problems(result) if p[0] == "tampered_record"] == [("tampered_record", victim)]
            assert result.counts["verified"] == BOOK - 1
    finally:
        db.dispose()


FIELDS_NAMED = {
    "price": ["consideration"],
    "legal_description": ["legal_description"],
    "grantee_name": ["grantees"],
    "document_digest": ["document_digest"],
    "doc_type": ["doc_type"],
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_a_tampered_record_names_the_fields_that_no_longer_match(golden, tmp_path, mutation):
    """Each field's hash recomputed from the rows, against the field hashes kept beside the
    commitment (believed only if they make the anchored commitment): the report names what changed."""
    base, chain, numbers = golden
    victim = numbers[len(numbers) // 3]
    shutil.copy(base / "landreg.db", tmp_path / "landreg.db")
    db = Database(f"sqlite:///{tmp_path / 'landreg.db'}")
    try:
        tamper(db, victim, mutation, rewrite_hashes=False)
        for manifests in (base / "manifests", None):
            result = reconcile(db, chain, manifest_dir=manifests, workers=1)
            (d,) = [d for d in result.discrepancies if d.kind == "tampered_record"]
            if mutation in FIELDS_NAMED:
                assert d.fields == FIELDS_NAMED[mutation]
                assert d.message.endswith("fields that no longer match their committed hashes: "
                                          + ", ".join(FIELDS_NAMED[mutation]))  # fmt: skip
            elif mutation == "salt_seed":
                assert (
                    d.fields is None and "no field's hash matches, nor its history link's: its salt seed" in d.message
                )
            else:  # the history link is not among the kept hashes: the check says the link changed
                assert d.fields is None and "the history link, or the kept field hashes" in d.message
        reports.write_csv(result, tmp_path / "d.csv")
        assert (tmp_path / "d.csv").read_text().splitlines()[0].endswith(",legacy_key,fields")
    finally:
        db.dispose()


def test_field_hashes_rewritten_to_match_the_change_are_not_believed(golden, tmp_path):
    base, chain, numbers = golden
    victim = numbers[5]
    shutil.copy(base / "landreg.db", tmp_path / "landreg.db")
    db = Database(f"sqlite:///{tmp_path / 'landreg.db'}")
    try:
        tamper(db, victim, "price", rewrite_hashes=False)
        with db.write() as s:
            iid = s.scalar(select(Instrument.id).where(Instrument.instrument_number == victim))
            [stored] = load_records(s.connection(), [iid])
            prepared = commitment_lib.prepare(stored.record, stored.seed, stored.commit_scheme)
            bypass_append_only(s)
            s.execute(update(Commitment).where(Commitment.instrument_id == iid)
                      .values(field_hashes=b"".join(prepared.field_hashes)))  # fmt: skip
        result = reconcile(db, chain, manifest_dir=base / "manifests", workers=1)
        (d,) = [d for d in result.discrepancies if d.kind == "tampered_record"]
        assert d.fields is None and "the kept field hashes themselves, were changed too" in d.message
    finally:
        db.dispose()
