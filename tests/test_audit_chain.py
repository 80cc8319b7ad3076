"""The audit log's hash chain: anchored with the batches, and reconciliation names an altered or
truncated log, whoever did it and however many derived columns they rewrote.

The tamperer is a database administrator (the owner role, or a superuser): they switch off the
triggers, then change, delete, truncate or insert audit rows, and may rewrite the stored entry
hashes and checkpoints to match. Only what the chain holds is trusted.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import threading
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select, text

from hybrid_store import audit_log, manifests
from hybrid_store.anchoring import Anchorer
from hybrid_store.core import audit as chain_rules
from hybrid_store.db.engine import Database
from hybrid_store.db.models import AnchorBatch, AuditCheckpoint, AuditLink
from hybrid_store.filing import record_instruments
from hybrid_store.intake import validate
from migration_tools.reconciliation.run import CLEAN_KINDS, reconcile
from tests.conftest import deed
from tests.processes import landreg


# --- the pure chain ---------------------------------------------------------------------------------
def naive_entry_hash(entry: dict) -> bytes:
    """Written from the module docstring alone: JCS of an ASCII object with ints and strings is
    json.dumps with sorted keys and no spaces."""
    doc = dict(entry, at=entry["at"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    body = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    return hashlib.sha256(b"landreg-audit/v1/entry\x00" + body).digest()


ascii_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=20)
entries = st.lists(
    st.fixed_dictionaries({
        "actor": ascii_text, "role": st.sampled_from(["clerk", "admin", "operator"]), "action": ascii_text,
        "target": ascii_text, "details": st.dictionaries(ascii_text, st.integers(-(2**53) + 1, 2**53 - 1) | ascii_text,
                                                         max_size=3),
        "at": st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
    }),
    min_size=1, max_size=12,
).map(lambda es: [dict(e, id=i + 1) for i, e in enumerate(es)])  # fmt: skip


def head_of(es: list[dict]) -> bytes:
    return chain_rules.extend(chain_rules.GENESIS, [chain_rules.entry_hash(e) for e in es])


@given(entries)
def test_entry_hash_matches_a_naive_implementation_of_the_spec(es):
    for e in es:
        assert chain_rules.entry_hash(e) == naive_entry_hash(e)


@given(entries, st.data())
def test_any_change_removal_insertion_or_swap_changes_the_head(es, data):
    head = head_of(es)
    i = data.draw(st.integers(0, len(es) - 1))
    mutation = data.draw(st.sampled_from(["field", "remove", "insert", "swap"]))
    changed = [dict(e) for e in es]
    if mutation == "field":
        name = data.draw(st.sampled_from(["actor", "action", "target", "role"]))
        changed[i][name] += "x"
    elif mutation == "remove":
        del changed[i]
    elif mutation == "insert":
        changed.insert(i, dict(es[i], id=10_000))
    else:
        if len(es) < 2 or es[i] == es[(i + 1) % len(es)]:
            return
        j = (i + 1) % len(es)
        changed[i], changed[j] = changed[j], changed[i]
    assert head_of(changed) != head
    # the marker names the count too: the same head cannot pose as covering fewer entries
    assert chain_rules.head_marker(head, len(es)) != chain_rules.head_marker(head, len(es) - 1)


def test_details_the_chain_cannot_hash_exactly_are_refused_before_anything_is_written(sqlite_db):
    with pytest.raises(ValueError, match="canonicalised"), sqlite_db.write() as s:
        audit_log.append(s, actor="x", role="admin", action="a", target="t", details={"n": 2**60})
    with sqlite_db.read() as s:
        assert s.scalar(text("SELECT count(*) FROM audit_log")) == 0


# --- anchoring ------------------------------------------------------------------------------------------
def write_entries(db: Database, n: int, action: str = "key.create") -> list[int]:
    ids = []
    for k in range(n):
        with db.write() as s:
            ids.append(audit_log.append(s, actor="Ada Admin (admin)", role="admin", action=action,
                                        target=f"key k{k}", details={"role": "clerk", "n": k}))  # fmt: skip
    return ids


def file_deeds(db: Database, n: int) -> None:
    for _ in range(n):
        with db.write() as s:
            [made] = record_instruments(s, [validate(deed())])
            audit_log.append(s, actor="Pat Clerk (clerk)", role="clerk", action="instrument.file",
                             target=made.instrument_number, details={})  # fmt: skip


@pytest.fixture
def anchored(deployed, tmp_path):
    """Entries chained and anchored in three batches: two with filings, one of the log alone."""
    db, chain, dep = deployed
    manifest_dir = tmp_path / "manifests"
    a = Anchorer(db, chain, dep, manifest_dir=manifest_dir)
    write_entries(db, 3)
    file_deeds(db, 4)
    a.drain()
    file_deeds(db, 2)
    a.drain()
    write_entries(db, 2, action="key.revoke")
    a.drain()  # a drain anchors the log's head even with no record pending
    return db, chain, dep, manifest_dir


def problems(result) -> list[str]:
    return sorted(d.kind for d in result.discrepancies if d.kind not in CLEAN_KINDS)


def messages(result) -> str:
    return " | ".join(d.message for d in result.discrepancies)


def test_every_entry_is_chained_and_its_head_anchored_with_the_batches(anchored):
    db, chain, _dep, manifest_dir = anchored
    with db.read() as s:
        points = s.execute(select(AuditCheckpoint.entries, AuditCheckpoint.batch_id).order_by(AuditCheckpoint.id)).all()
        positions = s.scalars(select(AuditLink.position).order_by(AuditLink.entry_id)).all()
        batches = s.scalars(select(AnchorBatch).order_by(AnchorBatch.id)).all()
    assert [n for n, _ in points] == [7, 9, 11] and positions == list(range(11))
    assert [b.record_count for b in batches] == [6, 4, 2]  # the records plus the head's and the title state's markers
    for batch in batches:  # each manifest names the head its batch anchored
        listed = [n for n, _ in manifests.read(manifest_dir, batch.root).records if n.startswith("AUDIT ")]
        assert len(listed) == 1
    result = reconcile(db, chain, manifest_dir=manifest_dir, workers=1)
    assert result.clean and problems(result) == [], messages(result)
    assert result.counts["audit_entries"] == 11 and result.counts["audit_anchored"] == 11
    assert result.counts["audit_pending"] == 0
    # without the manifests the chain's roots still rebuild, marker leaves included
    assert reconcile(db, chain, manifest_dir=None, workers=1).clean


def test_an_entry_alone_waits_for_its_own_batch_then_is_anchored(deployed):
    db, chain, dep = deployed
    now = [datetime.now(UTC)]
    a = Anchorer(db, chain, dep, audit_max_age_s=60, clock=lambda: now[0])
    write_entries(db, 1)
    assert a.step() is None  # no filing to ride along, and not old enough for a batch of its own
    result = reconcile(db, chain, manifest_dir=None, workers=1)
    assert result.clean and result.counts["audit_pending"] == 1 and result.counts["audit_anchored"] == 0
    now[0] += timedelta(seconds=61)
    batch = a.step()
    assert batch is not None and batch.records == 0
    result = reconcile(db, chain, manifest_dir=None, workers=1)
    assert result.clean and result.counts["audit_anchored"] == 1


def test_a_failed_batch_s_head_is_anchored_again(deployed):
    db, chain, dep = deployed
    a = Anchorer(db, chain, dep)
    write_entries(db, 2)
    file_deeds(db, 1)
    a.drain()
    with db.write() as s:  # as `reconcile --heal` does with a batch the node lost
        s.execute(text("UPDATE anchor_batches SET state = 'failed'"))
        s.execute(text("UPDATE anchor_outbox SET batch_id = NULL"))
    with db.read() as s:
        plan = audit_log.plan(s)
    assert plan is not None and plan.links == () and plan.entries == 3


@pytest.mark.postgres
def test_an_entry_committed_after_later_ones_were_chained_is_chained_next(pg_db, chain):
    from hybrid_store.deployment import attach

    dep = attach(pg_db, chain)
    a = Anchorer(pg_db, chain, dep)
    early = threading.Event()
    release = threading.Event()
    ids: dict[str, int] = {}

    def slow_transaction() -> None:
        with pg_db.write() as s:
            ids["slow"] = audit_log.append(s, actor="slow", role="admin", action="key.create", target="key slow",
                                           details={})  # fmt: skip
            early.set()
            release.wait(30)

    t = threading.Thread(target=slow_transaction)
    t.start()
    assert early.wait(10)
    ids["fast"] = write_entries(pg_db, 1)[0]
    assert ids["slow"] < ids["fast"]  # the slow one took its id first, and commits last
    file_deeds(pg_db, 1)
    a.drain()
    release.set()
    t.join()
    file_deeds(pg_db, 1)
    a.drain()
    with pg_db.read() as s:
        order = dict(s.execute(select(AuditLink.entry_id, AuditLink.position)).all())
    assert order[ids["slow"]] > order[ids["fast"]] and sorted(order.values()) == list(range(4))
    result = reconcile(pg_db, chain, manifest_dir=None, workers=1)
    assert result.clean and result.counts["audit_anchored"] == 4, messages(result)


# --- the tamperer ----------------------------------------------------------------------------------
AUDIT_TABLES = ("audit_log", "audit_chain", "audit_checkpoints")


@contextmanager
def dba(db: Database):
    """A write transaction as the database's administrator runs it: the triggers switched off."""
    with db.write() as s:
        if db.dialect == "postgresql":
            for table in AUDIT_TABLES:
                s.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
        else:
            for (name,) in s.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'")).all():
                s.execute(text(f'DROP TRIGGER "{name}"'))
        yield s
        if db.dialect == "postgresql":
            for table in AUDIT_TABLES:
                s.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER USER"))


def as_dba(db: Database, *statements: str) -> None:
    with dba(db) as s:
        for statement in statements:
            s.execute(text(statement))


def rewrite_chain(db: Database) -> None:
    """Make every stored entry hash and checkpoint head agree with the log's rows as they are now."""
    with db.read() as s:
        rows = s.execute(select(AuditLink.entry_id, AuditLink.position).order_by(AuditLink.position)).all()
        entries = {e.id: e for e in s.scalars(select(audit_log.AuditEntry))}
        points = s.execute(select(AuditCheckpoint.id, AuditCheckpoint.entries)).all()
    head, heads, hashes = chain_rules.GENESIS, {}, {}
    for entry_id, position in rows:
        hashes[entry_id] = chain_rules.entry_hash(audit_log.as_document(entries[entry_id]))
        head = chain_rules.link(head, hashes[entry_id])
        heads[position + 1] = head
    with dba(db) as s:
        for entry_id, h in hashes.items():
            s.execute(text("UPDATE audit_chain SET entry_hash = :h WHERE entry_id = :i"), {"h": h, "i": entry_id})
        for pid, n in points:
            s.execute(text("UPDATE audit_checkpoints SET head = :h WHERE id = :i"), {"h": heads[n], "i": pid})


@pytest.mark.parametrize("with_manifests", [True, False], ids=["manifests", "no-manifests"])
def test_a_changed_entry_is_named_and_the_anchored_head_proves_it(anchored, with_manifests):
    db, chain, _dep, manifest_dir = anchored
    where = manifest_dir if with_manifests else None
    as_dba(db, "UPDATE audit_log SET target = 'key nobody' WHERE id = 2")
    result = reconcile(db, chain, manifest_dir=where, workers=1)
    assert not result.clean and problems(result) == ["audit_log_altered", "audit_log_altered"]
    assert "entries changed after they were chained: 2 (key.create key nobody)" in messages(result)
    assert "entries 1 to 7 (chain positions) no longer hash to the head anchored in batch 0" in messages(result)
    # the tamperer rewrites the stored entry hashes and the checkpoints too: the chain still says no
    rewrite_chain(db)
    result = reconcile(db, chain, manifest_dir=where, workers=1)
    assert problems(result) == ["audit_log_altered"]
    assert "the audit checkpoint of batch 0 (7 entries) is not what the batch anchored" in messages(result)


def test_deleted_and_inserted_entries_are_named(anchored):
    db, chain, _dep, manifest_dir = anchored
    as_dba(db, "DELETE FROM audit_chain WHERE entry_id = 9", "DELETE FROM audit_log WHERE id = 9")
    result = reconcile(db, chain, manifest_dir=manifest_dir, workers=1)
    assert "audit_log_truncated" in problems(result) and "positions 8 to 8 are missing" in messages(result)
    as_dba(db, "INSERT INTO audit_log (id, at, actor, role, action, target, details) VALUES "
               "(99, '2026-01-01 00:00:00', 'Mallory', 'admin', 'key.create', 'key evil', '{}')")  # fmt: skip
    result = reconcile(db, chain, manifest_dir=manifest_dir, workers=1)
    assert "never chained (written behind the service's back): ids 99" in messages(result)


@pytest.mark.parametrize("with_manifests", [True, False], ids=["manifests", "no-manifests"])
def test_a_truncated_log_is_reported_even_with_its_checkpoints_gone(anchored, with_manifests):
    db, chain, _dep, manifest_dir = anchored
    where = manifest_dir if with_manifests else None
    delete_all = "TRUNCATE {} CASCADE" if db.dialect == "postgresql" else "DELETE FROM {}"
    as_dba(db, delete_all.format("audit_chain"), delete_all.format("audit_log"))
    result = reconcile(db, chain, manifest_dir=where, workers=1)
    assert problems(result) == ["audit_log_truncated"]
    assert "anchored the audit log's head after 7 entries, but only 0 remain chained" in messages(result)
    as_dba(db, delete_all.format("audit_checkpoints"))
    result = reconcile(db, chain, manifest_dir=where, workers=1)
    named = [d for d in result.discrepancies if d.kind not in CLEAN_KINDS]
    assert sorted(d.batch_id for d in named) == [0, 1, 2]
    if with_manifests:  # each manifest names the head its batch anchored
        assert {d.kind for d in named} == {"audit_log_truncated"} and "holds no checkpoint" in named[0].message
    else:  # the records are intact, and each batch holds one leaf nothing accounts for
        assert {d.kind for d in named} == {"tampered_batch"}
        assert "no record or audit-log checkpoint in the database accounts for" in named[0].message
        assert result.counts["verified"] == 6


def test_the_runtime_paths_cannot_rewrite_the_chain(anchored):
    from sqlalchemy.exc import DBAPIError

    db, *_ = anchored
    for statement in (
        "UPDATE audit_chain SET entry_hash = NULL WHERE entry_id = 1",
        "UPDATE audit_chain SET position = 500 WHERE entry_id = 1",
        "DELETE FROM audit_chain WHERE entry_id = 1",
        "UPDATE audit_checkpoints SET entries = 1",
        "DELETE FROM audit_checkpoints",
    ):
        with pytest.raises(DBAPIError, match="placed once|append-only"), db.write() as s:
            s.execute(text(statement))
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(AuditLink).where(AuditLink.position.is_not(None))) == 11


def test_reports_name_the_audit_kinds(anchored, tmp_path: Path):
    from migration_tools.reconciliation import reports

    db, chain, _dep, manifest_dir = anchored
    as_dba(db, "UPDATE audit_log SET actor = 'Mallory' WHERE id = 5")
    result = reconcile(db, chain, manifest_dir=manifest_dir, workers=1)
    reports.write_html(result, tmp_path / "r.html")
    reports.write_json(result, tmp_path / "r.json")
    page = (tmp_path / "r.html").read_text()
    assert "audit log altered" in page and "under a head anchored on chain" in page
    assert json.loads((tmp_path / "r.json").read_text())["kinds"] == {"audit_log_altered": 2}


# --- as the owner role, through the command line -------------------------------------------------------
@pytest.mark.postgres
@pytest.mark.anvil
@pytest.mark.slow
def test_the_owner_role_tampering_makes_reconcile_exit_1_naming_the_kind(pg_template, landreg_env, tmp_path):
    """Two real roles, as in production: the owner migrates, the runtime role serves. The owner
    (no superuser) then does what an owner can: switch its tables' triggers off and rewrite."""
    import psycopg

    from tests.conftest import pg_admin, pg_url

    tag = uuid.uuid4().hex[:8]
    owner, runtime, name = f"landreg_own_{tag}", f"landreg_rt_{tag}", f"landreg_roles_{tag}"
    pg_admin(f'CREATE ROLE "{owner}" LOGIN NOSUPERUSER')
    pg_admin(f'CREATE ROLE "{runtime}" LOGIN NOSUPERUSER')
    pg_admin(f'CREATE DATABASE "{name}" OWNER "{owner}"')
    base = pg_url(name)
    as_owner = {**landreg_env, "DATABASE_URL": base.replace("//postgres@", f"//{owner}@")}
    served = {**landreg_env, "DATABASE_URL": base.replace("//postgres@", f"//{runtime}@")}
    owner_dsn = as_owner["DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")

    def ok(proc: subprocess.CompletedProcess[str]) -> str:
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    def tamper(*statements: str) -> None:
        with psycopg.connect(owner_dsn, autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)

    def reconciled() -> tuple[int, dict]:
        out = tmp_path / "r.json"
        proc = landreg(served, "reconcile", "--json", str(out), "--workers", "1")
        return proc.returncode, json.loads(out.read_text())

    try:
        ok(landreg(as_owner, "db", "upgrade"))
        ok(landreg(as_owner, "db", "grant-runtime", runtime))
        ok(landreg(as_owner, "signing-keys", "init"))  # key administration is the owner's, never the service's
        ok(landreg(served, "chain", "start"))
        for who in ("Pat Clerk", "Ada Auditor"):
            ok(landreg(as_owner, "keys", "create", "clerk", "--name", who))
        ok(landreg(served, "worker", "--drain"))
        code, report = reconciled()
        assert code == 0 and report["counts"]["audit_anchored"] == report["counts"]["audit_entries"] >= 2, report

        tamper("ALTER TABLE audit_log DISABLE TRIGGER USER",
               "UPDATE audit_log SET target = 'key nobody' WHERE id = (SELECT min(id) FROM audit_log)",
               "ALTER TABLE audit_log ENABLE TRIGGER USER")  # fmt: skip
        code, report = reconciled()
        assert code == 1 and set(report["kinds"]) == {"audit_log_altered"}, report

        tamper("ALTER TABLE audit_log DISABLE TRIGGER USER", "ALTER TABLE audit_chain DISABLE TRIGGER USER",
               "TRUNCATE audit_log CASCADE")  # fmt: skip
        code, report = reconciled()
        assert code == 1 and set(report["kinds"]) == {"audit_log_truncated"}, report
    finally:
        landreg(served, "chain", "stop")
        pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        pg_admin(f'DROP ROLE IF EXISTS "{runtime}"')
        pg_admin(f'DROP ROLE IF EXISTS "{owner}"')
