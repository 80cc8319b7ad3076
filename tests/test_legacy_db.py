"""Attaching to a county's recorder database (MariaDB and PostgreSQL, both running here) and
loading it: the shipped layouts (ACRIS, the landreg export), a county's own layout from a file
alone, every kind of real-world messiness mapped to the record written out in the fixtures, the
malformed documents quarantined with their reasons, a read-only connection, and a connection
secret that never shows.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text

from hybrid_store.db.engine import Database
from hybrid_store.db.models import Instrument, LegacyDocument
from hybrid_store.db.records import instrument_id, load_records
from hybrid_store.errors import ConfigurationError
from hybrid_store.jurisdictions import get_profile
from hybrid_store.pins import pin_jurisdiction
from migration_tools.legacy.database import LegacyDatabaseError, open_engine
from migration_tools.legacy.layout import LayoutError, load_layout
from migration_tools.legacy.sync import attach, sync
from tests import legacy_fixtures as fx
from tests.conftest import make_sqlite

ENV = "LANDREG_TEST_LEGACY_URL"


def attached(db, profile, server, schema, layout, monkeypatch, tmp_path, **kw):
    server.load(schema)
    monkeypatch.setenv(ENV, server.url)
    done = attach(db, profile, layout_ref=layout, url_env=ENV, url_file=None, actor="test", **kw)
    report = sync(db, profile, quarantine=tmp_path / "q.csv")
    return done, report


def record_of(db: Database, number: str) -> dict:
    with db.read() as s:
        iid = instrument_id(s.connection(), number)
        assert iid is not None, f"{number} was not loaded"
        [stored] = load_records(s.connection(), [iid])
    r = stored.record
    return {"instrument_number": r.instrument_number, "doc_type": r.doc_type, "book": r.book, "page": r.page,
            "recorded_at": r.recorded_at, "grantors": list(r.grantors), "grantees": list(r.grantees),
            "parcels": list(r.parcels), "consideration_cents": r.consideration_cents,
            "legal_description": r.legal_description, "corrects": r.corrects}  # fmt: skip


def quarantined(db: Database) -> dict[str, tuple[str, str]]:
    with db.read() as s:
        rows = s.execute(select(LegacyDocument.legacy_key, LegacyDocument.field, LegacyDocument.reason)
                         .where(LegacyDocument.state == "quarantined")).all()  # fmt: skip
    return {k: (f, r) for k, f, r in rows}


# --- ACRIS -------------------------------------------------------------------------------------------
def test_acris_documents_become_the_records_written_out_and_the_malformed_are_quarantined(
    legacy, registry, monkeypatch, tmp_path
):
    db, profile = registry
    done, report = attached(db, profile, legacy, fx.acris_schema(), "acris", monkeypatch, tmp_path)
    assert done.inspection.documents == 12 and done.code_table_rows == 99  # master rows (the orphan has none)
    assert report.documents == len(fx.ACRIS_GOOD) + len(fx.ACRIS_BAD)
    assert report.loaded + report.quarantined == report.documents
    assert report.loaded == len(fx.ACRIS_GOOD)
    for key, expected in fx.ACRIS_EXPECTED.items():
        assert record_of(db, expected["instrument_number"]) == expected, key
    found = quarantined(db)
    assert set(found) == set(fx.ACRIS_QUARANTINE)
    for key, (field, phrase) in fx.ACRIS_QUARANTINE.items():
        assert found[key][0] == field and phrase in found[key][1], (key, found[key])
    lines = (tmp_path / "q.csv").read_text().splitlines()
    assert lines[0] == "where,column,field,reason,raw" and len(lines) == 1 + len(fx.ACRIS_BAD)


def test_a_second_sync_reads_only_what_changed_and_retries_a_fixed_document(legacy, registry, monkeypatch, tmp_path):
    db, profile = registry
    _, first = attached(db, profile, legacy, fx.acris_schema(), "acris", monkeypatch, tmp_path)
    again = sync(db, profile, quarantine=tmp_path / "q2.csv")
    assert (again.loaded, again.quarantined, again.retried) == (0, 0, 0)
    assert again.unchanged == first.loaded and again.still_quarantined == first.quarantined
    # the recorder fixes the date it keyed wrong: that document is tried again, and loads
    legacy.execute("UPDATE acris_master SET recordedfiled = '06/01/2019' WHERE documentid = '2019060100700007'")
    fixed = sync(db, profile, quarantine=tmp_path / "q3.csv")
    assert (fixed.retried, fixed.loaded, fixed.quarantined) == (1, 1, 0)
    assert "2019060100700007" not in quarantined(db)
    assert record_of(db, "2019000055555")["recorded_at"] == "2019-06-01T16:00:00Z"
    with db.read() as s:
        assert s.scalar(select(LegacyDocument.state).where(LegacyDocument.legacy_key == "2019060100700007")) == "loaded"
    # a change to a column the layout does not read (an address) is no change at all
    legacy.execute("UPDATE acris_parties SET address1 = '1 NEW ADDRESS' WHERE documentid = '2019010400123001'")
    assert sync(db, profile, quarantine=tmp_path / "q4.csv").changed_since_loaded == 0
    legacy.execute("UPDATE acris_parties SET name = 'TAYLOR, EMILY A' WHERE documentid = '2019010400123001'")
    assert sync(db, profile, quarantine=tmp_path / "q5.csv").changed_since_loaded == 1


def test_the_legacy_database_is_never_written(legacy, registry, monkeypatch, tmp_path):
    db, profile = registry
    attached(db, profile, legacy, fx.acris_schema(), "acris", monkeypatch, tmp_path)
    engine = open_engine(legacy.url)
    try:
        with pytest.raises(Exception, match="(?i)read.only"), engine.begin() as conn:
            conn.execute(text("DELETE FROM acris_master"))
    finally:
        engine.dispose()
    with legacy.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM acris_master")).scalar() == 12


@pytest.mark.jurisdiction("bergen")
def test_an_acris_layout_is_refused_by_a_bergen_registry(legacy, registry, monkeypatch, tmp_path):
    db, profile = registry
    legacy.load(fx.acris_schema())
    monkeypatch.setenv(ENV, legacy.url)
    with pytest.raises(LayoutError, match="names parcels of 'nyc', but this registry is 'bergen'"):
        attach(db, profile, layout_ref="acris", url_env=ENV, url_file=None, actor="test")


# --- the landreg export, and a county's own layout ----------------------------------------------------
@pytest.mark.jurisdiction("bergen")
def test_the_export_layout_loads_corrections_after_what_they_correct(legacy, registry, monkeypatch, tmp_path):
    db, profile = registry
    _, report = attached(db, profile, legacy, fx.export_schema(), "landreg-export", monkeypatch, tmp_path)
    assert (report.documents, report.loaded, report.quarantined) == (5, 3, 2)
    for number, expected in fx.EXPORT_EXPECTED.items():
        got = record_of(db, number)
        assert {k: got[k] for k in expected} == expected, number
    assert record_of(db, "2001-0000001")["legal_description"] == "ALL that certain lot...\nsituate in Hackensack"
    found = quarantined(db)
    for key, (field, phrase) in fx.EXPORT_QUARANTINE.items():
        assert found[key][0] == field and phrase in found[key][1], (key, found[key])


@pytest.mark.jurisdiction("bergen")
def test_a_county_layout_with_other_names_works_from_its_file_alone(legacy, registry, monkeypatch, tmp_path):
    db, profile = registry
    layout_file = tmp_path / "county-x.toml"
    layout_file.write_text(fx.RENAMED_LAYOUT)
    _, report = attached(db, profile, legacy, fx.renamed_schema(), layout_file, monkeypatch, tmp_path)
    assert (report.documents, report.loaded, report.quarantined) == (2, 2, 0)
    for number, expected in fx.RENAMED_EXPECTED.items():
        got = record_of(db, number)
        assert {k: got[k] for k in expected} == expected, number


@pytest.mark.jurisdiction("bergen")
def test_a_layout_that_does_not_match_the_database_is_refused_naming_what_is_missing(
    legacy, registry, monkeypatch, tmp_path
):
    db, profile = registry
    legacy.load(fx.renamed_schema())
    layout_file = tmp_path / "county-x.toml"
    layout_file.write_text(fx.RENAMED_LAYOUT.replace('"blk"', '"block_no"').replace('"rec_names"', '"rec_people"'))
    monkeypatch.setenv(ENV, legacy.url)
    with pytest.raises(LegacyDatabaseError) as caught:
        attach(db, profile, layout_ref=layout_file, url_env=ENV, url_file=None, actor="test")
    assert "no table rec_people" in str(caught.value) and "rec_lots has no column block_no" in str(caught.value)


def test_broken_layout_files_name_every_problem(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(
        fx.RENAMED_LAYOUT.replace('book = "liber"\n', "").replace('table = "rec_lots"', 'table = "rec lots"')
    )
    with pytest.raises(LayoutError) as caught:
        load_layout(bad)
    assert "missing: book" in str(caught.value) and "'rec lots' is not a table or column name" in str(caught.value)
    (tmp_path / "nottoml.toml").write_text("format = [")
    with pytest.raises(LayoutError, match="not valid TOML"):
        load_layout(tmp_path / "nottoml.toml")
    with pytest.raises(LayoutError, match="name one of landreg-export, acris"):
        load_layout("no-such-layout")


def test_a_layout_reads_files_only_from_its_own_folder(tmp_path):
    """A layout is data someone hands over, and the code table it names is copied into landreg's
    database (legacy_sources.layout_text): an absolute path, a '..' or a symlink out of the
    layout's folder would read any file landreg may read."""
    import shutil

    shipped = Path(__file__).parents[1] / "migration_tools" / "legacy" / "layouts"
    folder = tmp_path / "layouts"
    shutil.copytree(shipped / "acris", folder / "acris")
    text = (shipped / "acris.toml").read_text()
    codes = 'file = "acris/document_control_codes.csv"'
    assert codes in text
    (folder / "ok.toml").write_text(text)
    assert load_layout(folder / "ok.toml")[0].doc_types.code_table.rows  # beside it, in a subfolder: read
    outside = tmp_path / "secret.csv"  # a readable code table, so only where it is makes it refused
    shutil.copy(shipped / "acris" / "document_control_codes.csv", outside)
    (folder / "acris" / "link.csv").symlink_to(outside)
    for name in ("/etc/passwd", str(outside), "../secret.csv", "acris/../../secret.csv", "acris/link.csv"):
        bad = folder / "bad.toml"
        bad.write_text(text.replace(codes, f"file = {json.dumps(name)}"))
        with pytest.raises(LayoutError) as caught:
            load_layout(bad)
        message = str(caught.value)
        assert "outside the layout's folder" in message and "\n" not in message, (name, message)
        assert "root:" not in message


# --- the secret ----------------------------------------------------------------------------------------
def test_a_malformed_url_is_refused_without_quoting_it(monkeypatch):
    """An unencoded '@', '/' or '#' in the password makes the parser take part of it for the host
    or the database, and a driver would then name that part ("failed to resolve host 'ss'")."""
    from migration_tools.legacy.sync import SecretError, read_url

    for password in ("Xq7@Yk9", "Xq7/Yk9", "Xq7#Yk9", "Xq7@Yk9/Zv3#Wu2"):
        monkeypatch.setenv(ENV, f"postgresql+psycopg://clerk:{password}@127.0.0.1:5432/recorder")
        with pytest.raises(SecretError) as caught:
            read_url(ENV, None)
        message = str(caught.value)
        assert "malformed" in message
        for fragment in ("Xq7", "Yk9", "Zv3", "Wu2", "clerk", "recorder", "127.0.0.1"):
            assert fragment not in message, (password, message)
    monkeypatch.setenv(ENV, "postgresql+psycopg://clerk:Xq7%40Yk9%2FZv3%23Wu2@127.0.0.1:5432/recorder")
    assert read_url(ENV, None).endswith("/recorder")  # percent-encoded, it is fine


@pytest.mark.subprocess
def test_legacy_commands_fail_in_one_line_without_the_url(tmp_path):
    """`sync --follow` against a stopped server and `install-capture` with a malformed URL printed
    raw tracebacks outside the scrubber: each now prints one error line naming no part of the URL."""
    pytest.importorskip("MySQLdb")
    from tests.conftest import free_port, landreg_environment
    from tests.processes import landreg

    server = fx.LegacyServer("mariadb").create()
    secret = os.urandom(6).hex()
    try:
        server.load(fx.acris_schema(fx.ACRIS_GOOD))
        env = {**landreg_environment(tmp_path), "LANDREG_JURISDICTION": "nyc", "COUNTY_DB": server.url}
        landreg(env, "legacy", "attach", "--layout", "acris", "--url-env", "COUNTY_DB", check=True)
        landreg(env, "legacy", "sync", check=True)
        landreg(env, "legacy", "install-capture", "--ddl-url-env", "COUNTY_DB", check=True)
        follow = ("legacy", "sync", "--follow", "--polls", "1", "--interval", "0.1", "--sweep-every", "0")
        landreg(env, *follow, check=True)  # the cursor is saved
        server.execute(f"INSERT INTO landreg_changes (seq, table_name, doc_key, op) VALUES ({2**62}, 'x', 'x', 'I')")
        forged = landreg(env, *follow, check=True)
        assert "ALARM" in forged.stderr and str(2**62) in forged.stderr  # on the poll line, and in the status:
        assert "ALARM" in landreg(env, "legacy", "status", check=True).stdout

        def one_line(done, *secrets: str) -> str:
            out = done.stdout + done.stderr
            assert done.returncode == 1 and "Traceback" not in out and out.count("error:") == 1, out
            for s in secrets:
                assert s not in out, out
            return out

        stopped = f"mysql+mysqldb://root:{secret}@127.0.0.1:{free_port()}/{server.name}"  # nothing listens there
        follow = landreg({**env, "COUNTY_DB": stopped}, "legacy", "sync", "--follow", "--polls", "1", timeout=120)
        assert "cannot connect to the legacy database" in one_line(follow, secret, "Can't connect")
        ddl = landreg({**env, "COUNTY_DDL": stopped}, "legacy", "install-capture", "--ddl-url-env", "COUNTY_DDL")
        assert "cannot connect to the legacy database" in one_line(ddl, secret)
        for password in (f"p@ss{secret}", f"pa/ss{secret}", f"pa#ss{secret}"):
            bad = f"mysql+mysqldb://dba:{password}@127.0.0.1:3306/{server.name}"
            done = landreg({**env, "COUNTY_DDL": bad}, "legacy", "install-capture", "--ddl-url-env", "COUNTY_DDL")
            assert "malformed" in one_line(done, secret, "'ss", "dba", server.name)
    finally:
        server.drop()


def test_the_url_must_come_from_its_variable_or_a_private_file(registry, tmp_path, monkeypatch):
    from migration_tools.legacy.sync import SecretError, read_url

    monkeypatch.delenv(ENV, raising=False)
    with pytest.raises(SecretError, match=f"{ENV} .* is not set"):
        read_url(ENV, None)
    secret = tmp_path / "legacy.url"
    secret.write_text("mysql+mysqldb://reader:pw@host/db\n")
    secret.chmod(0o644)
    with pytest.raises(SecretError, match="chmod 600"):
        read_url(None, str(secret))
    secret.chmod(0o600)
    assert read_url(None, str(secret)) == "mysql+mysqldb://reader:pw@host/db"


def test_a_wrong_jurisdiction_setting_is_refused_once_pinned(tmp_path):
    db = make_sqlite(tmp_path)
    pin_jurisdiction(db, get_profile("nyc"))
    pin_jurisdiction(db, get_profile("nyc"))  # the same one: fine
    with pytest.raises(ConfigurationError, match="jurisdiction is 'nyc'"):
        pin_jurisdiction(db, get_profile("bergen"))
    with db.read() as s:
        places = sorted(s.execute(text("SELECT code FROM municipalities")).scalars())
    assert places == ["1", "2", "3", "4", "5"]
    db.dispose()


def test_documents_counted_once_even_when_rows_repeat(legacy, registry, monkeypatch, tmp_path):
    db, profile = registry
    schema = fx.acris_schema(dict(list(fx.ACRIS_GOOD.items())[:2]))
    schema.rows["acris_master"].append(dict(schema.rows["acris_master"][0]))  # the master row twice
    _, report = attached(db, profile, legacy, schema, "acris", monkeypatch, tmp_path)
    assert (report.documents, report.loaded, report.quarantined) == (2, 1, 1)
    key = schema.rows["acris_master"][0]["documentid"]
    assert "appears 2 times in acris_master" in quarantined(db)[key][1]
    with db.read() as s:
        assert (
            s.scalar(select(Instrument.instrument_number).where(Instrument.instrument_number == "2019000004567"))
            is None
        )


@pytest.mark.subprocess
def test_the_command_line_never_shows_the_password(tmp_path):
    """attach, sync, status and the service with a URL whose password is unique: it appears in no
    output, report, quarantine file, log, landreg database row or /readyz answer."""
    pytest.importorskip("MySQLdb")
    from tests.conftest import landreg_environment
    from tests.processes import landreg

    server = fx.LegacyServer("mariadb").create()
    password = "s3cr3t-" + os.urandom(6).hex()
    user = f"ro_{server.name[-8:]}"
    admin = create_engine(fx.MARIADB_ADMIN)
    try:
        server.load(fx.acris_schema())
        with admin.begin() as conn:
            conn.execute(text(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'"))
            conn.execute(text(f"GRANT SELECT ON {server.name}.* TO '{user}'@'%'"))
        url = f"mysql+mysqldb://{user}:{password}@127.0.0.1:3306/{server.name}"
        env = {**landreg_environment(tmp_path), "LANDREG_JURISDICTION": "nyc", "COUNTY_DB": url}
        outputs = []
        for args in (["legacy", "attach", "--layout", "acris", "--url-env", "COUNTY_DB"],
                     ["legacy", "sync", "--json", str(tmp_path / "sync.json")], ["legacy", "status"],
                     ["legacy", "attach", "--layout", "acris", "--url-env", "NO_SUCH_VAR"]):  # fmt: skip
            done = landreg(env, *args)
            outputs.append(done.stdout + done.stderr)
        assert "documents" in outputs[0] and "loaded" in outputs[1], outputs
        assert "$COUNTY_DB" in outputs[2] and "last sync" in outputs[2], outputs[2]
        assert "NO_SUCH_VAR" in outputs[3] and "is not set" in outputs[3]
        wrong = {**env, "COUNTY_DB": url.replace(f":{password}@", f":{password}x@")}
        failed = landreg(wrong, "legacy", "sync")
        assert failed.returncode == 1 and "Access denied" in failed.stderr
        outputs.append(failed.stdout + failed.stderr)
        home = Path(env["LANDREG_HOME"])
        files = [p for p in home.rglob("*") if p.is_file()] + [tmp_path / "sync.json"]
        dump = Database(f"sqlite:///{home / 'landreg.db'}")
        with dump.read() as s:
            rows = [str(r) for table in ("legacy_sources", "legacy_documents", "audit_log")
                    for r in s.execute(text(f"SELECT * FROM {table}")).all()]  # fmt: skip
        dump.dispose()
        from fastapi.testclient import TestClient

        from hybrid_store.settings import Settings
        from registry_service.app import create_app

        app = create_app(Settings(home=home, jurisdiction="nyc", chain={"backend": "eth-tester"}), run_worker=False)
        with TestClient(app) as client:
            outputs.append(client.get("/readyz").text)
        for where, found in [("output", "\n".join(outputs)), ("database", "\n".join(rows))] + [
            (str(p), p.read_bytes().decode("utf-8", "replace")) for p in files
        ]:
            assert password not in found, f"the password shows in {where}"
        assert json.loads((tmp_path / "sync.json").read_text())["loaded"] == len(fx.ACRIS_GOOD)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP USER IF EXISTS '{user}'@'%'"))
        admin.dispose()
        server.drop()


# --- end to end: attach, sync, migrate, reconcile ------------------------------------------------------
@pytest.mark.parametrize("layout", ["acris", "landreg-export"])
def test_attach_sync_migrate_and_reconcile_clean(layout, legacy, db, tmp_path, monkeypatch):
    """Every pairing: legacy database on MariaDB or PostgreSQL, landreg's own store on SQLite or
    PostgreSQL, either shipped layout."""
    from hybrid_store.chain.connect import eth_tester_chain
    from hybrid_store.deployment import attach as attach_chain
    from migration_tools.reconciliation.run import reconcile
    from migration_tools.stages import Selector, StageRunner, plan_stage

    profile = get_profile("nyc" if layout == "acris" else "bergen")
    pin_jurisdiction(db, profile)
    schema = fx.acris_schema() if layout == "acris" else fx.export_schema()
    _, report = attached(db, profile, legacy, schema, layout, monkeypatch, tmp_path)
    assert report.loaded == (len(fx.ACRIS_GOOD) if layout == "acris" else len(fx.EXPORT_EXPECTED))
    chain = eth_tester_chain()
    deployment = attach_chain(db, chain)
    plan_stage(db, chain, "all", Selector(), batch_size=4, actor="it")
    run = StageRunner(db, chain, deployment, manifest_dir=tmp_path / "manifests", workers=1).run("all")
    assert run.records == report.loaded
    result = reconcile(db, chain, manifest_dir=tmp_path / "manifests", workers=1)
    assert result.clean and result.counts["verified"] == report.loaded, result.kinds()


def test_a_shipped_layout_reads_tables_under_the_names_another_loader_gave_them(
    legacy, registry, monkeypatch, tmp_path
):
    """The open-source ACRIS loaders name the tables real_property_*: attach maps them with
    --table's mapping instead of a copied layout, says which table is likely meant when one is
    missing, and loads exactly what the acris_* names load."""
    db, profile = registry
    schema = fx.acris_schema()
    renamed = fx.Schema([d.replace("acris_", "real_property_") for d in schema.ddl],
                        {k.replace("acris_", "real_property_"): v for k, v in schema.rows.items()})  # fmt: skip
    legacy.load(renamed)
    monkeypatch.setenv(ENV, legacy.url)
    with pytest.raises(LegacyDatabaseError, match="no table acris_master.*the database has real_property_master: "
                                                  "map it with --table acris_master=real_property_master"):  # fmt: skip
        attach(db, profile, layout_ref="acris", url_env=ENV, url_file=None, actor="test")
    with pytest.raises(LayoutError, match="reads no table acris_remarks"):
        attach(db, profile, layout_ref="acris", url_env=ENV, url_file=None, actor="test",
               table_names={"acris_remarks": "real_property_remarks"})  # fmt: skip
    names = {f"acris_{t}": f"real_property_{t}" for t in ("master", "parties", "legals", "references")}
    done = attach(db, profile, layout_ref="acris", url_env=ENV, url_file=None, actor="test", table_names=names)
    assert (
        done.layout == "acris"
        and done.inspection.documents == 12
        and set(done.inspection.tables) == set(names.values())
    )
    report = sync(db, profile, quarantine=tmp_path / "q.csv")
    assert report.loaded == len(fx.ACRIS_GOOD) and report.quarantined == len(fx.ACRIS_BAD)
    for key, expected in fx.ACRIS_EXPECTED.items():
        assert record_of(db, expected["instrument_number"]) == expected, key
