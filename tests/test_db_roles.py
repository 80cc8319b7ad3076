"""Every table declares what it is (hybrid_store/db/tables.py), and the live schema is held to it:
append-only tables refuse UPDATE, DELETE and TRUNCATE from every role; the runtime role gets what
its tables declare and nothing else (deny by default); the service refuses to run as a superuser or
as the owner. PostgreSQL cases use three real roles in a database of their own: the owner (which
migrated it), the runtime role (granted by ``grant_runtime``) and the test server's superuser."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from hybrid_store import audit_log, fee_book, fee_schedule, fees
from hybrid_store.anchoring import Anchorer
from hybrid_store.db.engine import Database
from hybrid_store.db.models import Instrument
from hybrid_store.db.tables import APPEND_ONLY_TABLES, PLACED_ONCE_TABLES, TABLES
from hybrid_store.deployment import attach
from hybrid_store.filing import record_instruments
from hybrid_store.intake import validate
from hybrid_store.jurisdictions import get_profile
from hybrid_store.pins import pin_jurisdiction
from hybrid_store.proofs import export_bundle
from hybrid_store.settings import get_settings
from migration_tools.reconciliation.run import reconcile
from tests.conftest import NOW, TEST_RECEIPT_PASSPHRASE, deed, pg_admin, pg_url


def run_the_service(db: Database, chain) -> str:
    """The service's own work, as whatever role ``db`` connects as: first use (jurisdiction pinned),
    filings (one flagged as a double sale, one citing another), the contract attached, everything anchored (batches,
    attempts, audit checkpoints), a proof exported and a clean reconciliation recorded. Returns the
    number of an anchored instrument."""
    pin_jurisdiction(db, get_profile("bergen"))
    numbers = []
    # the third is a double sale (flagged); the fourth, from the owner of record to the same buyer,
    # resolves that flag (title_flag_resolutions)
    schedule = fee_schedule.load(get_settings(jurisdiction="bergen"))
    assert schedule is not None
    for grantors, grantees in ((["PRIOR OWNER"], ["ANNA ADAMS"]), (["ANNA ADAMS"], ["BEN BAKER"]),
                               (["ANNA ADAMS"], ["CARL CLARK"]), (["BEN BAKER"], ["CARL CLARK"])):  # fmt: skip
        with db.write() as s:
            inst = validate(deed(grantors=grantors, grantees=grantees, page_count=2), now=NOW)
            [made] = record_instruments(s, [inst], now=NOW)
            # the fees recorded with it (instrument_fees), as the filing service records them
            day = fees.day_of_receipt(made.recorded_at, "America/New_York")
            fee_book.record(s, made.instrument_id, made.recorded_at, day,
                            fees.statement(schedule, fees.inputs_of(inst, day)))  # fmt: skip
            audit_log.append(s, actor="Pat Clerk (clerk)", role="clerk", action="instrument.file",
                             target=made.instrument_number, details={})  # fmt: skip
        numbers.append(made.instrument_number)
    with db.write() as s:  # an instrument that cites another (instrument_references)
        record_instruments(s, [validate(deed(doc_type="SATISFACTION", grantors=["FIRST BANK"], grantees=["BEN BAKER"],
                                             references=[{"kind": "acts_on_mortgage", "instrument_number": numbers[1]}]),
                                        now=NOW)], now=NOW)  # fmt: skip
    deployment = attach(db, chain)
    assert Anchorer(db, chain, deployment).drain().records == 5
    with db.read() as s:
        assert export_bundle(s, numbers[0]).anchor is not None
    assert reconcile(db, chain, manifest_dir=None, workers=1).clean
    return numbers[0]


#: a placed-once row may be completed (and rewritten with what it holds): these change what was placed
PLACED_CHANGE = {"tx_attempts": "nonce = nonce + 1", "audit_chain": "entry_id = entry_id + 1000000"}


def rewrite(db: Database, table: str) -> str:
    """An UPDATE of every row of ``table`` that the table's kind forbids."""
    if table in PLACED_CHANGE:
        return f"UPDATE {table} SET {PLACED_CHANGE[table]}"
    column = next(c["name"] for c in inspect(db.engine).get_columns(table))
    return f"UPDATE {table} SET {column} = {column}"


def refused(db: Database, statement: str, match: str) -> None:
    with pytest.raises(DBAPIError, match=match), db.write() as s:
        s.execute(text(statement))


def test_every_table_in_the_live_schema_declares_what_it_is(db):
    live = set(inspect(db.engine).get_table_names())
    assert live - set(TABLES) == set(), "tables that declare nothing in hybrid_store/db/tables.py"
    assert set(TABLES) - live <= {"alembic_version"} if db.dialect == "sqlite" else set(TABLES) == live
    for name, rule in TABLES.items():
        assert rule.why.strip(), f"{name} says what it is but not why"
        columns = {c["name"] for c in inspect(db.engine).get_columns(name)} if name in live else set()
        assert set(rule.update) <= columns, f"{name} grants UPDATE on columns it does not have"


def test_history_refuses_update_and_delete_on_sqlite(sqlite_db, chain):
    run_the_service(sqlite_db, chain)
    for table in APPEND_ONLY_TABLES + PLACED_ONCE_TABLES:
        with sqlite_db.read() as s:
            assert s.scalar(text(f"SELECT count(*) FROM {table}")), f"the service paths wrote nothing to {table}"
        refused(sqlite_db, rewrite(sqlite_db, table), "append-only|placed once|kept as signed")
        refused(sqlite_db, f"DELETE FROM {table}", "append-only|placed once|kept as signed")


# --- PostgreSQL: three roles ---------------------------------------------------------------------------
@dataclass
class Roles:
    owner: Database
    runtime: Database
    superuser: Database
    runtime_name: str


@pytest.fixture
def roles(pg_template) -> Iterator[Roles]:
    """A database migrated by a non-superuser owner, on a server still granting CREATE on schema
    public to PUBLIC (PostgreSQL before 15 does by default; here it is granted to simulate that),
    then ``grant_runtime`` as the owner, as `landreg db grant-runtime` runs it."""
    from hybrid_store.db.roles import grant_runtime

    tag = uuid.uuid4().hex[:8]
    owner, runtime, name = f"landreg_own_{tag}", f"landreg_rt_{tag}", f"landreg_roles_{tag}"
    pg_admin(f'CREATE ROLE "{owner}" LOGIN NOSUPERUSER')
    pg_admin(f'CREATE ROLE "{runtime}" LOGIN NOSUPERUSER')
    pg_admin(f'CREATE DATABASE "{name}" OWNER "{owner}"')
    url = make_url(pg_url(name))
    dbs = [
        Database(url.set(username=who).render_as_string(hide_password=False)) for who in (owner, runtime, "postgres")
    ]
    try:
        with dbs[2].engine.begin() as conn:
            conn.execute(text("GRANT CREATE ON SCHEMA public TO PUBLIC"))
        dbs[0].migrate()
        grant_runtime(dbs[0], runtime)
        yield Roles(*dbs, runtime_name=runtime)
    finally:
        for db in dbs:
            db.dispose()
        pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        pg_admin(f'DROP ROLE IF EXISTS "{runtime}"')
        pg_admin(f'DROP ROLE IF EXISTS "{owner}"')


@pytest.mark.postgres
def test_history_refuses_update_delete_and_truncate_from_every_role(roles, chain):
    run_the_service(roles.runtime, chain)  # the runtime role does all of the service's work
    for table in APPEND_ONLY_TABLES + PLACED_ONCE_TABLES:
        with roles.superuser.read() as s:
            assert s.scalar(text(f"SELECT count(*) FROM {table}")), f"the service paths wrote nothing to {table}"
            # the TRUNCATE refusal below is this table's own trigger, not one of a table it cascades to
            assert s.scalar(text("SELECT count(*) FROM pg_trigger WHERE tgrelid = CAST(:t AS regclass) "
                                 "AND tgenabled = 'O' AND tgname = :t || '_no_truncate'"), {"t": table}) == 1, table  # fmt: skip
        for who, db in (("runtime", roles.runtime), ("owner", roles.owner), ("superuser", roles.superuser)):
            denied = "permission denied" if who == "runtime" else "append-only|placed once|kept as signed"
            truncate = "permission denied" if who == "runtime" else "TRUNCATE refused"
            refused(db, rewrite(db, table), denied)
            refused(db, f"DELETE FROM {table}", denied)
            refused(db, f"TRUNCATE {table} CASCADE", truncate)


@pytest.mark.postgres
def test_the_runtime_role_may_not_touch_keys_rewrite_history_or_create_tables(roles, chain):
    run_the_service(roles.runtime, chain)
    secret = "\\x" + "00" * 32
    for statement in (
        "UPDATE api_keys SET role = 'admin'",
        "INSERT INTO api_keys (key_id, secret_hash, role, name, created_at, created_by) "
        f"VALUES ('mallory', '{secret}', 'admin', 'Mallory', now(), 'Mallory')",
        "DELETE FROM api_keys",
        "INSERT INTO signing_keys (kid, purpose, algorithm, public_key, valid_from, status, created_at) "
        "VALUES ('ed25519-mallory', 'receipt', 'Ed25519', 'AAAA', now(), 'active', now())",
        "UPDATE signing_keys SET status = 'compromised'",
        "DELETE FROM signing_keys",
        "DELETE FROM batch_records",
        "UPDATE batch_records SET tree_index = 0",
        "DELETE FROM tx_attempts",
        f"UPDATE tx_attempts SET raw_tx = '{secret}'",
        "UPDATE anchor_batches SET root = nodes",  # a batch's tree never changes
        "DELETE FROM anchor_batches",
        "DELETE FROM anchor_outbox",
        "UPDATE parcels SET municipality_code = '0201'",
        "UPDATE chain_deployments SET contract_address = '0x0000000000000000000000000000000000000000'",
        "DELETE FROM reconciliations",
        "UPDATE alembic_version SET version_num = '0001'",
        "CREATE TABLE sneaky (id int)",
        "ALTER TABLE instruments DISABLE TRIGGER ALL",
    ):
        refused(roles.runtime, statement, "permission denied|must be owner")
    with roles.superuser.read() as s:  # PUBLIC's CREATE on schema public, granted by the fixture, is gone
        assert s.scalar(text("SELECT has_schema_privilege('public', 'public', 'CREATE')")) is False
        assert s.scalar(text("SELECT count(*) FROM api_keys")) == 0


@pytest.mark.postgres
def test_grant_runtime_refuses_a_superuser_and_a_member_of_the_owner(roles):
    from hybrid_store.db.roles import grant_runtime
    from hybrid_store.errors import ConfigurationError

    owner = roles.owner.engine.url.username
    with pytest.raises(ConfigurationError, match="superuser"):
        grant_runtime(roles.owner, "postgres")
    with pytest.raises(ConfigurationError, match="must not be the owner"):
        grant_runtime(roles.owner, str(owner))
    with pytest.raises(ConfigurationError, match="no PostgreSQL role"):
        grant_runtime(roles.owner, "landreg_nobody_at_all")
    pg_admin(f'GRANT "{owner}" TO "{roles.runtime_name}"')
    with pytest.raises(ConfigurationError, match="member of"):
        grant_runtime(roles.owner, roles.runtime_name)


@pytest.mark.postgres
def test_signing_keys_are_made_by_key_administration_not_the_service(roles, tmp_path: Path):
    from hybrid_store.signing_keys import KeyAdministrationRequired, KeySource, active_key

    source = KeySource("receipt", tmp_path / "keys", TEST_RECEIPT_PASSPHRASE, "LANDREG_SERVICE__RECEIPT_KEY_PASSPHRASE")
    with pytest.raises(KeyAdministrationRequired, match="no active receipt signing key") as caught:
        active_key(roles.runtime, source)
    assert "landreg signing-keys init" in caught.value.hint
    assert not list((tmp_path / "keys").glob("*.pem"))  # the key it could not register is not left behind
    kid, _ = active_key(roles.owner, source)  # `landreg signing-keys init`, as the owner
    assert active_key(roles.runtime, source)[0] == kid  # the service then loads it


@pytest.mark.postgres
def test_the_service_refuses_a_superuser_and_the_owner_unless_a_demo_allows_it(roles, caplog):
    from hybrid_store.db.roles import PrivilegedRole, privileged_reason, refuse_privileged

    assert privileged_reason(roles.runtime) is None
    assert "superuser" in (privileged_reason(roles.superuser) or "")
    assert "owns table" in (privileged_reason(roles.owner) or "")
    for db in (roles.superuser, roles.owner):
        with pytest.raises(PrivilegedRole, match="the service refuses to run as"):
            refuse_privileged(db, allow=False, what="the service")
    with caplog.at_level(logging.WARNING, logger="hybrid_store.db.roles"):
        refuse_privileged(roles.owner, allow=True, what="the service")
    assert "one-machine demo only" in caplog.text and "owns table" in caplog.text


@pytest.mark.postgres
def test_reconciliation_names_an_edit_made_with_the_triggers_switched_off(roles, chain):
    """What the owner and the superuser can still do (docs/operations.md): switch the triggers off
    and rewrite a record. Reconciliation, run as the runtime role, names the record tampered."""
    number = run_the_service(roles.runtime, chain)
    with roles.owner.write() as s:
        s.execute(text("ALTER TABLE instruments DISABLE TRIGGER USER"))
        s.execute(text("UPDATE instruments SET legal_description = 'LOT 6 INSTEAD' WHERE instrument_number = :n"),
                  {"n": number})  # fmt: skip
        s.execute(text("ALTER TABLE instruments ENABLE TRIGGER USER"))
    result = reconcile(roles.runtime, chain, manifest_dir=None, workers=1)
    assert not result.clean and ("tampered_record", number) in {
        (d.kind, d.instrument_number) for d in result.discrepancies
    }
    with roles.runtime.read() as s:
        other = s.scalar(select(Instrument.instrument_number).where(Instrument.instrument_number != number).limit(1))
    with roles.superuser.write() as s:
        s.execute(text("SET LOCAL session_replication_role = replica"))
        s.execute(text("UPDATE instruments SET book = '9999' WHERE instrument_number = :n"), {"n": other})
    result = reconcile(roles.runtime, chain, manifest_dir=None, workers=1)
    assert ("tampered_record", other) in {(d.kind, d.instrument_number) for d in result.discrepancies}


@pytest.mark.postgres
def test_the_legacy_mirror_runs_as_the_runtime_role(roles, monkeypatch, tmp_path):
    """A parallel run's whole path as the runtime role: attach and sync a recorder database (MariaDB),
    follow an edit and a deletion (new version, flags, the replaced leaves revoked on the chain),
    anchor, and an operator's acknowledgement."""
    from hybrid_store import ledger, mirror
    from hybrid_store.chain.connect import eth_tester_chain
    from hybrid_store.db.models import MirrorFlag
    from hybrid_store.db.records import load_records
    from migration_tools.legacy.follow import Follower
    from tests import legacy_fixtures as fx
    from tests.test_legacy_db import attached
    from tests.test_legacy_follow import DELETED, MULTI, install_capture

    db, profile = roles.runtime, get_profile("nyc")
    pin_jurisdiction(db, profile)
    server = fx.LegacyServer("mariadb").create()
    try:
        attached(db, profile, server, fx.acris_schema(fx.ACRIS_GOOD), "acris", monkeypatch, tmp_path)
        install_capture(server)
        chain = eth_tester_chain()
        anchorer = Anchorer(db, chain, attach(db, chain))
        follower = Follower(db, profile, anchor=lambda: anchorer.drain().records)
        follower.start()
        with db.write() as s:  # the first sync's records, committed as a migration stage does
            stored = load_records(s.connection(), list(s.scalars(select(Instrument.id).order_by(Instrument.id))))
            heads = ledger.lock_heads(s, [p for r in stored for p in r.parcel_ids])
            ledger.append(s, [ledger.Entry.of(r, ledger.Source.MIGRATION) for r in stored], heads, enqueue=True)
        anchorer.drain()
        # a deed nothing later touches: its new version's history link names it on each parcel
        server.execute(f"UPDATE acris_master SET docamount = 1300000 WHERE documentid = '{MULTI}'")
        for table in ("acris_master", "acris_legals", "acris_parties", "acris_references"):
            server.execute(f"DELETE FROM {table} WHERE TRIM(documentid) = '{DELETED}'")
        follower.poll()  # a version, two flags, the replaced leaves revoked on the chain
        anchorer.drain()
        follower.close()
    finally:
        server.drop()
    with db.write() as s:
        flags = list(s.scalars(select(MirrorFlag).order_by(MirrorFlag.id)))
        assert sorted(f.kind for f in flags) == ["changed_in_legacy", "deleted_in_legacy"]
        assert all(f.revoked_block for f in flags)
        mirror.acknowledge(s, flags[0].id, actor="Olive Operator (operator)", role="operator",
                           reason="the recorder corrected the consideration")  # fmt: skip
    with db.read() as s:
        assert export_bundle(s, "2019000011111-V2").anchor is not None


@pytest.mark.postgres
@pytest.mark.subprocess
def test_serve_and_the_worker_refuse_to_start_as_the_owner_or_a_superuser(roles, landreg_env):
    from tests.processes import landreg

    def env(db: Database) -> dict[str, str]:
        return {**landreg_env, "DATABASE_URL": db.engine.url.render_as_string(hide_password=False)}

    try:
        for command in (("worker", "--drain"), ("serve", "--no-worker")):
            for db, why in ((roles.owner, "owns table"), (roles.superuser, "superuser")):
                done = landreg(env(db), *command)
                assert done.returncode == 1 and "refuses to run as" in done.stderr and why in done.stderr, done.stderr
                assert "LANDREG_SERVICE__ALLOW_PRIVILEGED_DB_ROLE" in done.stderr  # the hint names the demo switch
        # as the runtime role the start goes on, to the next thing it lacks: the first signing key,
        # which only key administration (the owner) makes
        done = landreg(env(roles.runtime), "serve", "--no-worker")
        assert done.returncode == 1 and "landreg signing-keys init" in done.stderr, done.stderr
    finally:  # a worker that was not refused started the managed node
        landreg(env(roles.runtime), "chain", "stop")


@pytest.mark.postgres
def test_a_staged_migration_and_its_rollback_run_as_the_runtime_role(roles, chain, tmp_path):
    """The bulk path as the runtime role: import a legacy book, plan and run a stage, reconcile,
    sign off, roll a batch back (revoked, superseded, re-anchored) and reconcile clean again."""
    from migration_tools.legacy.importer import import_records, synthetic_source
    from migration_tools.stages import Selector, StageRunner, plan_stage, rollback_stage, sign_off

    db, manifest_dir = roles.runtime, tmp_path / "manifests"
    pin_jurisdiction(db, get_profile("bergen"))
    assert import_records(db, synthetic_source(120, 7), name="book", quarantine=tmp_path / "q.csv").loaded == 120
    deployment = attach(db, chain)
    plan_stage(db, chain, "all", Selector(), batch_size=60, actor="it")
    StageRunner(db, chain, deployment, manifest_dir=manifest_dir, workers=1).run("all")
    assert reconcile(db, chain, manifest_dir=manifest_dir, stage="all", workers=1).clean
    sign_off(db, "all", "Jo IT")
    with db.read() as s:
        number = s.scalar(select(Instrument.instrument_number).order_by(Instrument.id).limit(1))
        first_batch = export_bundle(s, number).to_json()["anchor"]["batchId"]
    rollback_stage(db, chain, deployment, "all", manifest_dir=manifest_dir, batch_ids=[first_batch])
    result = reconcile(db, chain, manifest_dir=manifest_dir, workers=1)
    assert result.clean and result.counts["superseded_batches"] == 1, result.kinds()
