"""Following a legacy recorder database in a parallel run, on the real MariaDB and PostgreSQL
servers: inserts become records committed at once, in-place edits become versions flagged
changed_in_legacy with their difference, deletions are flagged deleted_in_legacy, owners of
record follow the legacy system, and nothing is recorded twice however often a change is read."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.exc import DBAPIError

from hybrid_store import mirror
from hybrid_store.db.models import (
    Commitment,
    Instrument,
    LegacyDocument,
    LegacySource,
    MirrorFlag,
    OutboxEntry,
    Parcel,
)
from hybrid_store.db.records import instrument_id
from migration_tools.legacy import capture
from migration_tools.legacy.follow import Follower
from migration_tools.legacy.layout import load_layout
from migration_tools.legacy.sync import sync
from tests import legacy_fixtures as fx
from tests.test_legacy_db import ENV, attached, record_of

NEW_DOC = "2026120100900001"
EDITED = "2019010400123001"  # a deed: TAYLOR, EMILY to JOHN SMITH and BLUE HARBOR HOLDINGS, LLC (1-01234-0056)
DELETED = "2019050600600006"  # a deed: GARCIA, MARIA to LEE, DAVID (1-01234-0057)


def insert_document(server: fx.LegacyServer, doc: str, crfn: str, **kw) -> None:
    with server.connect() as conn:
        insert_rows(conn, doc, crfn, **kw)


def insert_rows(conn, doc: str, crfn: str, *, block: int = 1234, lot: int = 58, grantor: str = "PARK, SUN",
                grantee: str = "NOVAK, ANNA", modified: str = "") -> None:  # fmt: skip
    for table, row in (("acris_master", fx.master(doc, crfn, "DEED", "12/01/2026 09:30:00 AM", "900000",
                                                  modified=modified)),
                       ("acris_legals", fx.legal(doc, block, lot)),
                       ("acris_parties", fx.party(doc, "1", grantor)),
                       ("acris_parties", fx.party(doc, "2", grantee))):  # fmt: skip
        cols = list(row)
        # both drivers (mysqlclient, psycopg) take %s parameters
        conn.exec_driver_sql(
            f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join(['%s'] * len(cols))})", tuple(row.values())
        )


def install_capture(server: fx.LegacyServer) -> None:
    layout, _ = load_layout("acris")
    engine = create_engine(server.url)
    try:
        capture.install(engine, layout)
    finally:
        engine.dispose()


def owner_of(db, key: str) -> str | None:
    with db.read() as s:
        return s.scalar(select(Instrument.instrument_number).join(Parcel, Parcel.owner_instrument_id == Instrument.id)
                        .where(Parcel.parcel_key == key))  # fmt: skip


def counts(db) -> tuple[int, int, int]:
    with db.read() as s:
        return (s.scalar(select(func.count()).select_from(Instrument)),
                s.scalar(select(func.count()).select_from(Commitment)),
                s.scalar(select(func.count()).select_from(MirrorFlag)))  # fmt: skip


def test_trigger_capture_mirrors_inserts_edits_and_deletions_once(legacy, registry, monkeypatch, tmp_path):
    db, profile = registry
    attached(db, profile, legacy, fx.acris_schema(), "acris", monkeypatch, tmp_path)
    install_capture(legacy)
    follower = Follower(db, profile)
    assert follower.method == "trigger"
    follower.start()  # the sweep finds nothing: the first sync loaded exactly what is there
    assert (follower.report.new, follower.report.versions, follower.report.deleted) == (0, 0, 0)
    assert owner_of(db, "1-01234-0057") == "2019000044444"

    insert_document(legacy, NEW_DOC, "2026000000901")
    legacy.execute(f"UPDATE acris_parties SET name = 'TAYLOR-SMITH, EMILY' WHERE documentid = '{EDITED}' "
                   "AND partytype = '1'")  # fmt: skip
    legacy.execute(f"UPDATE acris_master SET docamount = 1300000 WHERE documentid = '{EDITED}'")
    for table in ("acris_master", "acris_legals", "acris_parties", "acris_references"):
        legacy.execute(f"DELETE FROM {table} WHERE TRIM(documentid) = '{DELETED}'")
    polled = follower.poll()
    assert {NEW_DOC, EDITED, DELETED} <= polled.keys
    assert (follower.report.new, follower.report.versions, follower.report.deleted) == (1, 1, 1)

    # the new document: committed at once, on its way to the chain through the outbox
    with db.read() as s:
        new_id = instrument_id(s.connection(), "2026000000901")
        assert s.scalar(select(Commitment.source).where(Commitment.instrument_id == new_id)) == "mirror"
        assert s.scalar(select(OutboxEntry.id).where(OutboxEntry.instrument_id == new_id)) is not None
    # the edit: a new version committing to the one it supersedes, the old one flagged with the difference
    v2 = record_of(db, "2019000004567-V2")
    assert v2["grantors"] == ["EMILY TAYLOR-SMITH"] and v2["consideration_cents"] == 130_000_000
    with db.read() as s:
        old_id = instrument_id(s.connection(), "2019000004567")
        new_v = instrument_id(s.connection(), "2019000004567-V2")
        assert s.scalar(select(Commitment.supersedes_id).where(Commitment.instrument_id == new_v)) == old_id
        [flag] = mirror.flags(s, instrument_ids=[old_id])
        deleted = mirror.flags(s, instrument_ids=[instrument_id(s.connection(), "2019000044444")])
    assert flag.kind == "changed_in_legacy" and flag.successor_number == "2019000004567-V2"
    assert set(flag.diff) == {"grantors", "consideration_cents", "document_digest"}  # the digest is of the rows
    assert flag.diff["grantors"] == {"before": ["EMILY TAYLOR"], "after": ["EMILY TAYLOR-SMITH"]}
    assert flag.diff["consideration_cents"] == {"before": 125_000_000, "after": 130_000_000}
    assert [f.kind for f in deleted] == ["deleted_in_legacy"]
    # owners of record follow the legacy system: the deleted deed no longer makes LEE, DAVID the owner
    assert owner_of(db, "1-01234-0057") is None
    assert owner_of(db, "1-01234-0058") == "2026000000901"

    # reading every change again, and a full sweep, record nothing more
    before = counts(db)
    follower.cursor.seq = 0  # type: ignore[union-attr]
    follower.poll()
    follower.sweep()
    assert counts(db) == before
    # a second edit: version 3 supersedes version 2
    legacy.execute(f"UPDATE acris_master SET docamount = 1350000 WHERE documentid = '{EDITED}'")
    follower.poll()
    assert record_of(db, "2019000004567-V3")["consideration_cents"] == 135_000_000
    with db.read() as s:
        assert s.scalar(select(LegacyDocument.version).where(LegacyDocument.legacy_key == EDITED)) == 3
        [flag2] = mirror.flags(s, instrument_ids=[instrument_id(s.connection(), "2019000004567-V2")])
    assert flag2.successor_number == "2019000004567-V3"
    # an edit that cannot be read leaves version 3 current; a plain sync leaves it to the follower
    legacy.execute(f"UPDATE acris_master SET recordedfiled = '13/45/2026' WHERE documentid = '{EDITED}'")
    follower.poll()
    assert follower.report.quarantined == 1
    with db.read() as s:
        row = s.scalar(select(LegacyDocument).where(LegacyDocument.legacy_key == EDITED))
        assert (row.state, row.version, row.instrument_id) == ("quarantined", 3, instrument_id(
            s.connection(), "2019000004567-V3"))  # fmt: skip
    before = counts(db)
    plain = sync(db, profile, quarantine=tmp_path / "again.csv")
    assert (plain.loaded, plain.quarantined, plain.retried) == (0, 0, 0) and counts(db) == before
    # undone: the rows make version 3's record again, so no version 4 (a version never repeats another)
    legacy.execute(f"UPDATE acris_master SET recordedfiled = '01/04/2019 10:15:32 AM' WHERE documentid = '{EDITED}'")
    follower.poll()
    assert counts(db) == before
    with db.read() as s:
        row = s.scalar(select(LegacyDocument).where(LegacyDocument.legacy_key == EDITED))
        assert (row.state, row.version) == ("loaded", 3)
    follower.close()


def test_a_transaction_that_commits_after_a_later_one_is_not_missed(legacy, registry, monkeypatch, tmp_path):
    db, profile = registry
    attached(db, profile, legacy, fx.acris_schema(fx.ACRIS_GOOD), "acris", monkeypatch, tmp_path)
    install_capture(legacy)
    follower = Follower(db, profile)
    follower.start()
    slow = create_engine(legacy.url)
    with slow.connect() as long_tx:  # takes its change-log numbers first, commits last
        insert_rows(long_tx, "2026120100900002", "2026000000902", lot=59)
        insert_document(legacy, NEW_DOC, "2026000000901")  # commits now, with later numbers
        follower.poll()
        assert follower.report.new == 1
        assert follower.cursor.gaps  # type: ignore[union-attr]
        long_tx.commit()
    slow.dispose()
    follower.poll()
    assert follower.report.new == 2 and not follower.cursor.gaps  # type: ignore[union-attr]
    assert record_of(db, "2026000000902")["parcels"] == ["1-01234-0059"]
    follower.close()


def test_watermark_capture_and_the_sweep_find_an_edit_the_watermark_missed(legacy, registry, monkeypatch, tmp_path):
    db, profile = registry
    docs = {k: ([{**m, "modifieddate": "2025-01-01 00:00:00"} for m in v[0]], *v[1:])
            for k, v in fx.ACRIS_GOOD.items()}  # fmt: skip
    attached(db, profile, legacy, fx.acris_schema(docs), "acris", monkeypatch, tmp_path)
    follower = Follower(db, profile, lookback=0)
    assert follower.method == "watermark"  # no change log in this database
    follower.start()
    insert_document(legacy, NEW_DOC, "2026000000901", modified="2026-12-01 09:30:00")
    follower.poll()
    assert follower.report.new == 1
    # an edit to a party row only: the master row's modified date stays where it was
    legacy.execute(f"UPDATE acris_parties SET name = 'TAYLOR-SMITH, EMILY' WHERE documentid = '{EDITED}' "
                   "AND partytype = '1'")  # fmt: skip
    follower.poll()
    assert follower.report.versions == 0  # the watermark cannot see it ...
    assert follower.sweep() == {EDITED}  # ... the sweep does
    assert follower.report.versions == 1
    assert record_of(db, "2019000004567-V2")["grantors"] == ["EMILY TAYLOR-SMITH"]
    follower.close()


def follow_one_edit(db, profile, monkeypatch, tmp_path, edit: str) -> None:
    """A registry that followed one ``edit`` (SQL) in a MariaDB ACRIS legacy database (dropped afterwards)."""
    server = fx.LegacyServer("mariadb").create()
    try:
        attached(db, profile, server, fx.acris_schema(fx.ACRIS_GOOD), "acris", monkeypatch, tmp_path)
        install_capture(server)
        follower = Follower(db, profile)
        follower.start()
        server.execute(edit)
        follower.poll()
        follower.close()
    finally:
        server.drop()


def test_acknowledging_a_flag_needs_a_reason_and_is_audit_logged(registry, monkeypatch, tmp_path):
    from hybrid_store.db.models import AuditEntry
    from hybrid_store.errors import Conflict

    db, profile = registry
    follow_one_edit(db, profile, monkeypatch, tmp_path,
                    f"UPDATE acris_master SET docamount = 1 WHERE documentid = '{EDITED}'")  # fmt: skip
    with db.read() as s:
        [flag] = mirror.flags(s, open_only=True)
    with pytest.raises(Conflict, match="say why"), db.write() as s:
        mirror.acknowledge(s, flag.id, actor="cli:ops", role="admin", reason=" ")
    with db.write() as s:
        done = mirror.acknowledge(s, flag.id, actor="cli:ops", role="admin", reason="keying error fixed by the clerk")
    assert done.acknowledged_by == "cli:ops"
    with db.read() as s:
        assert mirror.flags(s, open_only=True) == []
        entry = s.scalar(select(AuditEntry).where(AuditEntry.action == "mirror.acknowledge"))
        assert entry is not None and "keying error" in str(entry.details)
    with pytest.raises(Conflict, match="was acknowledged"), db.write() as s:
        mirror.acknowledge(s, flag.id, actor="cli:ops", role="admin", reason="again")


def test_three_way_reconciliation_names_each_divergence_with_its_legacy_key(legacy, registry, monkeypatch, tmp_path):
    from migration_tools.reconciliation import legacy as three_way

    db, profile = registry
    attached(db, profile, legacy, fx.acris_schema(fx.ACRIS_GOOD), "acris", monkeypatch, tmp_path)
    install_capture(legacy)
    follower = Follower(db, profile)
    follower.start()

    def report() -> dict[str, set[str]]:
        found: list = []
        summary = three_way.check(db, "county", found.append)
        assert summary["counts"]["legacy_documents"] >= len(fx.ACRIS_GOOD) - 1
        out: dict[str, set[str]] = {}
        for d in found:
            out.setdefault(d.kind, set()).add(d.legacy_key or d.instrument_number)
        return out

    assert report() == {}  # the first sync mirrored everything
    legacy.execute(f"UPDATE acris_master SET docamount = 1 WHERE documentid = '{EDITED}'")
    for table in ("acris_master", "acris_legals", "acris_parties", "acris_references"):
        legacy.execute(f"DELETE FROM {table} WHERE TRIM(documentid) = '{DELETED}'")
    insert_document(legacy, NEW_DOC, "2026000000901")
    # before the follower catches up: each divergence is named as not mirrored yet
    assert report() == {"changed_in_legacy": {EDITED}, "deleted_in_legacy": {DELETED}, "not_mirrored": {NEW_DOC}}
    follower.poll()
    # after: the new document is mirrored; the edit and the deletion stay named until acknowledged
    assert report() == {"changed_in_legacy": {EDITED}, "deleted_in_legacy": {DELETED}}
    with db.write() as s:
        for flag in mirror.flags(s):
            mirror.acknowledge(s, flag.id, actor="cli:ops", role="admin", reason="seen in the parallel run")
    assert report() == {}
    # a record landreg holds that no legacy document accounts for
    from hybrid_store.filing import record_instruments
    from hybrid_store.intake import validate

    with db.write() as s:
        record_instruments(s, [validate(fx_nyc_deed(), profile=profile)])
    assert set(report()) == {"unknown_to_legacy"}
    follower.close()


def fx_nyc_deed() -> dict:
    from tests.conftest import deed

    return deed(parcels=[{"borough": "2", "block": "3000", "lot": "12"}])


def test_filing_is_refused_while_the_registry_mirrors_a_legacy_database(legacy, tmp_path, monkeypatch):
    from hybrid_store.chain.connect import eth_tester_chain
    from migration_tools.legacy.sync import attach
    from tests.conftest import make_sqlite
    from tests.test_api import make_service

    db = make_sqlite(tmp_path)
    svc = make_service(tmp_path, db, eth_tester_chain(), jurisdiction="nyc")
    with svc.client:
        svc.client.app.state.services.filing.mirror_check_every = 0
        first = svc.file(fx_nyc_deed())["receipt"]["instrumentNumber"]  # before the attachment: filed here
        legacy.load(fx.acris_schema(fx.ACRIS_GOOD))
        monkeypatch.setenv(ENV, legacy.url)
        from hybrid_store.jurisdictions import get_profile

        attach(db, get_profile("nyc"), layout_ref="acris", url_env=ENV, url_file=None, actor="test")
        svc.client.app.state.services.filing.mirror_check_every = 0  # no 2 s wait in a test
        r = svc.client.post("/api/v1/instruments", json=fx_nyc_deed(), headers=svc.as_("clerk"))
        assert r.status_code == 409 and "file the instrument there" in r.json()["error"]["message"]
        assert "county's recorder system" in r.json()["error"]["hint"]
        # search, proofs and verification work as before
        assert svc.client.get(f"/api/v1/instruments/{first}", headers=svc.as_("auditor")).status_code == 200
        from tests.test_role_matrix import desk_session

        desk_session(svc, "clerk")  # the desk says it too, before the clerk types anything
        page = svc.client.get("/desk/file")
        assert page.status_code == 409 and "file the instrument there" in page.text
    db.dispose()


# --- what an auditor sees: superseded and deleted versions, from the chain alone -----------------------
MULTI = "2019020100300003"  # a deed on three lots of borough 3 that nothing later touches (2019000011111)


def test_auditors_see_superseded_and_deleted_versions_from_the_chain_alone(registry, monkeypatch, tmp_path):
    from hybrid_store.anchoring import Anchorer
    from hybrid_store.chain.connect import eth_tester_chain
    from hybrid_store.core import merkle, standing
    from hybrid_store.deployment import attach as attach_chain
    from hybrid_store.proofs import export_bundle
    from hybrid_store.verifier.verdicts import verify_document
    from tests.conftest import trust_of

    db, profile = registry
    server = fx.LegacyServer("mariadb").create()
    try:
        attached(db, profile, server, fx.acris_schema(fx.ACRIS_GOOD), "acris", monkeypatch, tmp_path)
        install_capture(server)
        chain = eth_tester_chain()
        deployment = attach_chain(db, chain)
        anchorer = Anchorer(db, chain, deployment)
        follower = Follower(db, profile)  # (its new versions wait for the outbox: anchored below)
        follower.start()
        with db.write() as s:  # the first sync's records, committed as a migration stage would
            from hybrid_store import ledger
            from hybrid_store.db.records import load_records as load

            ids = list(s.scalars(select(Instrument.id).order_by(Instrument.id)))
            stored = load(s.connection(), ids)
            heads = ledger.lock_heads(s, [p for r in stored for p in r.parcel_ids])
            ledger.append(s, [ledger.Entry.of(r, ledger.Source.MIGRATION) for r in stored], heads, enqueue=True)
        anchorer.drain()
        trust = trust_of(db, tmp_path / "trust")

        def bundle(number: str) -> dict:
            with db.read() as s:
                return export_bundle(s, number).to_json()

        old_bundle, doomed, between = bundle("2019000011111"), bundle("2019000044444"), bundle("2019000004567")
        assert verify_document(old_bundle, chain=chain, trust=trust).standing == "current"
        server.execute(f"UPDATE acris_master SET docamount = 2500000 WHERE documentid = '{MULTI}'")
        # a deed that later records on its lot came after: its new version cannot show it replaced it
        server.execute(f"UPDATE acris_master SET docamount = 1300000 WHERE documentid = '{EDITED}'")
        for table in ("acris_master", "acris_legals", "acris_parties", "acris_references"):
            server.execute(f"DELETE FROM {table} WHERE TRIM(documentid) = '{DELETED}'")
        follower.poll()  # records the versions; the worker revokes the replaced leaves it can show ...
        anchorer.revoker.step()
        with db.read() as s:
            waiting = {f.instrument_number: f for f in mirror.flags(s)}
        assert waiting["2019000011111"].held == mirror.WAITING and waiting["2019000011111"].revoked_block is None
        assert waiting["2019000044444"].revoked_block  # a deletion waits for nothing newer
        anchorer.drain()  # ... once the new version is anchored
        follower.close()
    finally:
        server.drop()
    with db.read() as s:
        flags = {f.instrument_number: f for f in mirror.flags(s)}
    assert flags["2019000011111"].revoked_block and flags["2019000044444"].revoked_block
    held = flags["2019000004567"]
    assert held.revoked_block is None and held.revoke_tx is None  # flagged, visible, never revoked
    assert held.held is not None and "a later record came between them" in held.held
    assert verify_document(between, chain=chain, trust=trust).standing == "current"

    new_bundle = bundle("2019000011111-V2")
    # the bundle made before the edit says nothing of it, and the chain's tag alone is not evidence
    alone = verify_document(old_bundle, chain=chain, trust=trust)
    assert not alone.valid and "SUPERSEDED" not in alone.reason and "could not be shown" in alone.reason
    assert "no proof bundle of that version" in alone.reason
    # with the newer version's bundle (given, or carried by the record's bundle exported now) it is shown
    for verdict in (verify_document(old_bundle, chain=chain, trust=trust, successor=new_bundle),
                    verify_document(bundle("2019000011111"), chain=chain, trust=trust)):  # fmt: skip
        assert verdict.valid and verdict.standing == "superseded", verdict.reason
        assert verdict.details["standing"]["successorCommitment"] == new_bundle["record"]["commitment"]
        assert verdict.details["standing"]["successorNumber"] == "2019000011111-V2"
        assert "SUPERSEDED" in verdict.reason and "not revoked" not in verdict.summary
    assert bundle("2019000011111")["format"] == "landreg-proof-bundle/v2"
    # the registry's service looks the newer version up for a bundle that carries none (its database
    # is not trusted for it: what it finds is verified like any successor)
    from hybrid_store.settings import Settings
    from registry_service.services.proofs import Proofs

    service = Proofs(Settings(home=tmp_path / "service"), db, lambda: chain)
    looked_up = verify_document(old_bundle, chain=chain, trust=trust, successor_of=service.successor_of)
    assert looked_up.valid and looked_up.standing == "superseded", looked_up.reason
    assert looked_up.details["standing"]["successorCommitment"] == new_bundle["record"]["commitment"]
    gone = verify_document(doomed, chain=chain, trust=trust)
    assert gone.valid and gone.standing == "deleted_in_legacy" and "deleted in the county" in gone.summary
    assert "the registry's word: not provable from the chain" in gone.reason
    assert verify_document(new_bundle, chain=chain, trust=trust).standing == "current"

    # attacks: a look-alike contract revoking the current version (with "deleted") changes nothing,
    # nor does its event for the superseded one (the verifier reads the listed contract only)
    lookalike = eth_tester_chain()
    lookalike.w3 = chain.w3
    lookalike.deploy()
    leaf = merkle.commitment_leaf(bytes.fromhex(new_bundle["record"]["commitment"][2:]))
    old_leaf = merkle.commitment_leaf(bytes.fromhex(old_bundle["record"]["commitment"][2:]))
    batch = new_bundle["anchor"]["batchId"]
    for i in range(batch + 1):  # give the look-alike as many batches, so revoking batch `batch` is allowed
        lookalike.transact(lookalike.contract.functions.anchorBatch(lookalike.batch_count(), bytes([i + 1]) * 32, 1,
                                                                    b"\x00" * 32, 0))  # fmt: skip
    lookalike.transact(lookalike.contract.functions.revokeRecords(batch, [leaf], standing.DELETED_IN_LEGACY))
    lookalike.transact(lookalike.contract.functions.revokeRecords(old_bundle["anchor"]["batchId"], [old_leaf],
                                                                  standing.revocation_reason(b"\x42" * 32)))  # fmt: skip
    assert verify_document(new_bundle, chain=chain, trust=trust).standing == "current"
    again = verify_document(old_bundle, chain=chain, trust=trust, successor=new_bundle)
    assert again.details["standing"]["successorCommitment"] == new_bundle["record"]["commitment"]
    # another version's bundle is no evidence for this record: its history link does not name it
    unrelated = verify_document(old_bundle, chain=chain, trust=trust, successor=bundle("2019000004567-V2"))
    assert not unrelated.valid and "does not start with" in unrelated.reason


def test_the_desk_and_the_api_show_the_flags_and_an_operator_acknowledges_one(registry, monkeypatch, tmp_path):
    import re

    from hybrid_store.chain.connect import eth_tester_chain
    from hybrid_store.db.models import AuditEntry
    from tests.test_api import make_service
    from tests.test_role_matrix import desk_session

    db, profile = registry
    follow_one_edit(db, profile, monkeypatch, tmp_path, "UPDATE acris_parties SET name = 'TAYLOR-SMITH, EMILY' "
                    f"WHERE documentid = '{EDITED}' AND partytype = '1'")  # fmt: skip
    svc = make_service(tmp_path, db, eth_tester_chain(), jurisdiction="nyc")
    with svc.client:
        api = svc.client.get("/api/v1/instruments/2019000004567", headers=svc.as_("auditor")).json()
        assert api["superseded_by"] == "2019000004567-V2"
        [flag] = api["mirror_flags"]
        assert flag["kind"] == "changed_in_legacy" and flag["changed"]["grantors"]["after"] == ["EMILY TAYLOR-SMITH"]
        parcel = svc.client.get("/api/v1/parcels/1-01234-0056", headers=svc.as_("auditor")).json()
        assert [f["instrument_number"] for f in parcel["mirror_flags"]] == ["2019000004567"]

        desk_session(svc, "clerk")  # a clerk sees the flag, and no form to acknowledge it
        page = svc.client.get("/desk/instruments/2019000004567").text
        assert "superseded" in page and 'href="/desk/instruments/2019000004567-V2"' in page
        assert "EMILY TAYLOR-SMITH" in page and "Acknowledge" not in page
        assert "Changed in the county" in svc.client.get("/desk/parcels/1-01234-0056").text
        desk_session(svc, "operator")
        page = svc.client.get("/desk/instruments/2019000004567").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        url = f"/desk/mirror-flags/{flag['id']}/ack"
        assert svc.client.post(url, data={"csrf": csrf, "reason": " "}).status_code == 422
        done = svc.client.post(url, data={"csrf": csrf, "reason": "the recorder fixed a misspelt name",
                                          "next": "/desk/instruments/2019000004567"}, follow_redirects=False)  # fmt: skip
        assert done.status_code == 303 and done.headers["location"] == "/desk/instruments/2019000004567"
        assert "Acknowledged by operator one" in svc.client.get("/desk/instruments/2019000004567").text
    with db.read() as s:
        entry = s.scalar(select(AuditEntry).where(AuditEntry.action == "mirror.acknowledge"))
        assert entry is not None and entry.role == "operator"


def test_a_document_whose_key_is_stored_untidily_is_read_whole_by_its_key(legacy, registry, monkeypatch, tmp_path):
    """The follower reads a changed document by exact key (the tables' key indexes), with every
    form its key is stored in: " 2019050600600006" in acris_legals, "2019050600600006 " in
    acris_parties. Missing one would drop a parcel or a party and record a false version."""
    db, profile = registry
    attached(db, profile, legacy, fx.acris_schema(fx.ACRIS_GOOD), "acris", monkeypatch, tmp_path)
    with db.read() as s:
        raw = s.scalar(select(LegacyDocument.raw_keys).where(LegacyDocument.legacy_key == DELETED))
    assert sorted(raw) == [" 2019050600600006", "2019050600600006 "]
    install_capture(legacy)
    follower = Follower(db, profile)
    follower.start()
    legacy.execute(f"UPDATE acris_master SET docamount = 700000 WHERE documentid = '{DELETED}'")
    follower.poll()
    with db.read() as s:
        [flag] = mirror.flags(s, instrument_ids=[instrument_id(s.connection(), "2019000044444")])
    assert set(flag.diff) == {"consideration_cents", "document_digest"}, flag.diff
    assert record_of(db, "2019000044444-V2")["parcels"] == ["1-01234-0057"]
    follower.close()


# --- the change log under attack (issue 19, item 2) ----------------------------------------------------
ACRIS_TABLES = ("acris_master", "acris_legals", "acris_parties", "acris_references")


@contextmanager
def recorder_account(server: fx.LegacyServer) -> Iterator[str]:
    """A URL for an account of the recorder system: rights on its own tables, none on the change log."""
    user = f"rec_{uuid.uuid4().hex[:8]}"
    if server.kind == "mariadb":
        server.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'pw'")
        for table in ACRIS_TABLES:
            server.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {server.name}.{table} TO '{user}'@'%'")
        url = f"mysql+mysqldb://{user}:pw@127.0.0.1:3306/{server.name}"
    else:
        server.execute(f"CREATE ROLE {user} LOGIN")
        server.execute(f"GRANT USAGE ON SCHEMA public TO {user}")
        server.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {', '.join(ACRIS_TABLES)} TO {user}")
        url = f"postgresql+psycopg://{user}@127.0.0.1:5432/{server.name}"
    try:
        yield url
    finally:
        if server.kind == "mariadb":
            server.execute(f"DROP USER '{user}'@'%'")
        else:
            server.execute(f"DROP OWNED BY {user}")
            admin = create_engine(server.admin_url, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.exec_driver_sql(f"DROP ROLE {user}")
            admin.dispose()


def change_log(server: fx.LegacyServer) -> list[tuple[int, str, str]]:
    with server.connect() as conn:
        return [(int(s), k, o) for s, k, o in conn.exec_driver_sql(
            f"SELECT seq, doc_key, op FROM {capture.CHANGE_LOG} ORDER BY seq")]  # fmt: skip


def test_the_recorders_accounts_need_no_right_on_the_change_log_and_cannot_write_it(legacy):
    """The triggers write the log with the installing account's rights, so the recorder's own
    accounts are captured without any right on it, and none of them can forge a row."""
    legacy.load(fx.acris_schema(fx.ACRIS_GOOD))
    install_capture(legacy)
    with recorder_account(legacy) as url:
        engine = create_engine(url)
        try:
            with engine.begin() as conn:  # the recorder's own writes, through the triggers
                insert_rows(conn, NEW_DOC, "2026000000901")
                conn.exec_driver_sql(f"UPDATE acris_master SET docamount = 950000 WHERE documentid = '{NEW_DOC}'")
            with pytest.raises(DBAPIError, match="(?i)denied"), engine.begin() as conn:
                conn.exec_driver_sql(f"INSERT INTO {capture.CHANGE_LOG} (seq, table_name, doc_key, op) "
                                     f"VALUES ({2**62}, 'acris_master', 'FORGED', 'I')")  # fmt: skip
        finally:
            engine.dispose()
    logged = change_log(legacy)
    assert [(k, o) for _, k, o in logged] == [(NEW_DOC, "I")] * 4 + [(NEW_DOC, "U")]
    assert max(s for s, _, _ in logged) < 2**62


@pytest.mark.timeout(60)  # on 16949d2 the poll looped over the 2**62 gap for ever
def test_a_forged_change_log_number_is_an_alarm_not_a_cursor(legacy, registry, monkeypatch, tmp_path, caplog):
    """Whoever can write the log (its owner) inserts seq = 2**62 and seq = cursor + 100,000: a poll
    still takes its usual time, the real edits that follow are mirrored by the next poll (not the
    hourly sweep), and the forged rows are reported, not followed."""
    db, profile = registry
    attached(db, profile, legacy, fx.acris_schema(fx.ACRIS_GOOD), "acris", monkeypatch, tmp_path)
    install_capture(legacy)
    follower = Follower(db, profile, gap_timeout=3600)
    follower.start()
    start = follower.cursor.seq  # type: ignore[union-attr]
    forged = (start + 100_000, 2**62)
    for seq in forged:
        legacy.execute(f"INSERT INTO {capture.CHANGE_LOG} (seq, table_name, doc_key, op) "
                       f"VALUES ({seq}, 'acris_master', '{EDITED}', 'I')")  # fmt: skip
    began = time.monotonic()
    follower.poll()
    assert time.monotonic() - began < 30  # bounded, on a loaded machine
    assert follower.report.alarms >= 1 and "did not hand out" in caplog.text
    insert_document(legacy, NEW_DOC, "2026000000901")  # real edits, after the forged rows
    legacy.execute(f"UPDATE acris_master SET docamount = 1300000 WHERE documentid = '{EDITED}'")
    follower.poll()
    assert (follower.report.new, follower.report.versions) == (1, 1)  # captured by the poll, no sweep ran
    assert follower.report.sweeps == 1
    assert record_of(db, "2019000004567-V2")["consideration_cents"] == 130_000_000
    assert len(follower.cursor.gaps) <= capture.MAX_GAPS  # type: ignore[union-attr]
    if legacy.kind == "postgres":  # the sequence never counted that far: the cursor stays with the real rows
        assert follower.cursor.seq < forged[0]  # type: ignore[union-attr]
        assert follower.report.implausible == list(forged)
    else:  # AUTO_INCREMENT followed 2**62: later changes are numbered above it, and the jump is reported
        assert follower.report.implausible == [forged[0], forged[1]] or forged[1] in follower.report.implausible
    follower.close()
    with db.read() as s:
        saved = s.scalar(select(LegacySource.last_sync))["follow"]
    assert saved["alarms"] == follower.report.alarms  # what `landreg legacy status` shows as an ALARM
    # a restart from the saved cursor is as quick, and still raises the alarm on PostgreSQL
    again = Follower(db, profile)
    began = time.monotonic()
    again.poll()
    assert time.monotonic() - began < 30
    insert_document(legacy, "2026120100900002", "2026000000902", lot=59)
    again.poll()
    assert again.report.new == 1
    if legacy.kind == "postgres":
        assert again.report.alarms == 4
    again.close()


def test_trigger_ddl_quotes_awkward_column_names(legacy):
    """Column names go into the MariaDB triggers as identifiers and as JSON keys: a quote, a
    backtick, a backslash or a percent sign in one neither breaks the DDL nor changes the image."""
    awkward = 'it\'s "q" `b` \\ 50%'
    legacy.load(fx.acris_schema(fx.ACRIS_GOOD))
    quoted = ("`" + awkward.replace("`", "``") + "`") if legacy.kind == "mariadb" else \
        ('"' + awkward.replace('"', '""') + '"')  # fmt: skip
    legacy.execute(f"ALTER TABLE acris_master ADD COLUMN {quoted} VARCHAR(20)")
    install_capture(legacy)
    legacy.execute(f"UPDATE acris_master SET {quoted} = 'odd' WHERE documentid = '{EDITED}'")
    with legacy.connect() as conn:
        [image] = [row[0] for row in conn.exec_driver_sql(f"SELECT row_image FROM {capture.CHANGE_LOG}")]
    image = json.loads(image) if isinstance(image, str) else image
    assert image[awkward] == "odd" and image["documentid"] == EDITED
