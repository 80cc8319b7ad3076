"""What IT staff run at the command line: stages that select nothing or overlap are refused,
re-planning says what it replaces, the book's municipalities are listed, CLI actions are
audit-logged, and the trust root is exported without the signing key's passphrase."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from hybrid_store.db.engine import Database
from hybrid_store.db.models import AuditEntry, MigrationStage
from migration_tools.stages import Selector, StageError, plan_stage
from tests.conftest import PASSPHRASE_ENV, TEST_TRUST_PASSPHRASE
from tests.processes import landreg

BOOK = 300


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    """A home holding a synthetic legacy book; no chain is reachable (planning needs none)."""
    from tests.conftest import landreg_environment

    env = landreg_environment(tmp_path_factory.mktemp("it-tools"))
    env |= {"LANDREG_CHAIN__BACKEND": "rpc", "LANDREG_CHAIN__RPC_URL": "http://127.0.0.1:9"}
    landreg(env, "legacy", "import", "synthetic", "--instruments", str(BOOK), "--seed", "3", check=True)
    return env


@pytest.fixture
def home(book, tmp_path):
    """A copy of the book's home, so each test plans from no stage."""
    import shutil

    shutil.copytree(book["LANDREG_HOME"], tmp_path / "home")
    return {**book, "LANDREG_HOME": str(tmp_path / "home")}


def municipalities(env) -> list[dict]:
    return json.loads(landreg(env, "legacy", "municipalities", "--json", check=True).stdout)


def audit_actions(env) -> list[tuple[str, str, str]]:
    db = Database(env.get("LANDREG_DATABASE_URL") or f"sqlite:///{env['LANDREG_HOME']}/landreg.db")
    try:
        with db.read() as s:
            return [(e.action, e.target, e.actor) for e in s.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    finally:
        db.dispose()


def test_legacy_municipalities_lists_what_the_book_holds(home):
    rows = municipalities(home)
    assert (
        len(rows) >= 3
        and sum(r["records"] for r in rows) >= BOOK
        and all(r["records"] > 0 and r["unmigrated"] == r["records"] for r in rows)
    )
    assert {"code": "0223", "name": "Hackensack City"}.items() <= next(r for r in rows if r["code"] == "0223").items()
    shown = landreg(home, "legacy", "municipalities", check=True).stdout
    assert "Hackensack" in shown and f"{rows[0]['records']:,}" in shown and "not migrated" in shown


def test_a_stage_that_selects_nothing_is_refused_unless_forced(home):
    held = {r["code"] for r in municipalities(home)}
    absent = next(f"02{n:02d}" for n in range(1, 71) if f"02{n:02d}" not in held)
    refused = landreg(home, "migrate", "plan", "pilot", "-m", absent)
    assert refused.returncode != 0
    said = refused.stderr + refused.stdout
    assert f"the book holds no legacy record in municipality {absent}" in said
    assert "landreg legacy municipalities" in said and f"selects 0 of the book's {BOOK:,} legacy records" in said
    assert "--force" in said and "Traceback" not in said
    status = json.loads(landreg(home, "migrate", "status", "--json", check=True).stdout)
    assert status == []  # nothing recorded
    dry = landreg(home, "migrate", "plan", "pilot", "-m", absent, "--dry-run", check=True).stdout
    assert "refused" in dry and "selects 0" in dry
    forced = landreg(home, "migrate", "plan", "pilot", "-m", absent, "--force", check=True).stdout
    assert "forced" in forced
    assert [s["name"] for s in json.loads(landreg(home, "migrate", "status", "--json").stdout)] == ["pilot"]
    plans = [a for a in audit_actions(home) if a[0] == "migration.plan"]
    assert plans == [("migration.plan", "stage pilot", plans[0][2])] and plans[0][2].startswith("cli:")


def test_replanning_says_what_it_replaces_and_overlaps_are_refused(home):
    by_size = sorted(municipalities(home), key=lambda r: -r["records"])
    a, b, c = by_size[0], by_size[1], by_size[2]
    landreg(home, "migrate", "plan", "pilot", "-m", a["code"], check=True)
    again = landreg(home, "migrate", "plan", "pilot", "-m", b["code"], "--batch-size", "50", check=True).stdout
    line = " ".join(again.split())  # rich wraps long lines
    assert (f"replaced stage 'pilot': municipalities {a['code']} ({a['records']:,} records, batches of 10,000) "
            f"→ municipalities {b['code']} ({b['records']:,} records, batches of 50)") in line  # fmt: skip
    overlap = landreg(home, "migrate", "plan", "north", "-m", b["code"], "-m", c["code"])
    said = " ".join((overlap.stderr + overlap.stdout).split())
    assert (
        overlap.returncode != 0 and "also selected by stage 'pilot'" in said and f"municipalities {b['code']}" in said
    )
    # the runbook's "everything else" after a pilot is not an overlap: it waits for the pilot, then takes the rest
    rest = landreg(home, "migrate", "plan", "rest", check=True).stdout
    assert "waits for 'pilot'" in rest
    # but a narrower stage planned after "everything" would find nothing left when its turn came
    late = landreg(home, "migrate", "plan", "late", "-m", c["code"])
    assert late.returncode != 0 and "also selected by stage 'rest'" in " ".join((late.stderr + late.stdout).split())
    db = Database(f"sqlite:///{home['LANDREG_HOME']}/landreg.db")
    try:
        with db.read() as s:
            assert s.scalars(select(MigrationStage.name).order_by(MigrationStage.id)).all() == ["pilot", "rest"]
    finally:
        db.dispose()
    assert [t for a, t, _ in audit_actions(home) if a == "migration.plan"] == ["stage pilot"] * 2 + ["stage rest"]


def test_plan_stage_refusals_in_the_library(sqlite_db, chain, tmp_path):
    from migration_tools.legacy.importer import import_records, synthetic_source

    import_records(sqlite_db, synthetic_source(120, 5), name="book", quarantine=tmp_path / "q.csv")
    with pytest.raises(StageError, match="holds no legacy record in municipality 0299"):
        plan_stage(sqlite_db, None, "pilot", Selector(municipalities=("0299",)), actor="it")
    seen: list[tuple[str, dict]] = []
    plan_stage(sqlite_db, None, "all", Selector(), actor="it", audit=lambda s, action, d: seen.append((action, d)))
    assert seen[0][0] == "migration.plan" and seen[0][1]["to_migrate"] == 120 and seen[0][1]["replaced"] is None
    report = plan_stage(sqlite_db, None, "all", Selector(), batch_size=7, actor="it", save=False)
    assert report.replaces is not None and report.replaces.to_migrate == 120 and report.replaces.batch_size == 10_000


# --- the trust root ------------------------------------------------------------------------------------
def cli_env(tmp_path: Path, db_path: Path, **extra: str) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("LANDREG_") and k != "DATABASE_URL"}
    return env | {"LANDREG_HOME": str(tmp_path / "home"), "DATABASE_URL": f"sqlite:///{db_path}", **extra}


def test_trust_export_needs_no_passphrase_to_copy_the_published_root(tmp_path):
    from hybrid_store.chain.connect import eth_tester_chain
    from hybrid_store.deployment import attach
    from hybrid_store.settings import Settings
    from hybrid_store.trust import publish
    from tests.conftest import make_sqlite

    (tmp_path / "db").mkdir()
    db = make_sqlite(tmp_path / "db")
    env = cli_env(tmp_path, tmp_path / "db" / "landreg.db")
    try:
        nothing = landreg(env, "trust", "export")
        said = nothing.stderr + nothing.stdout
        assert nothing.returncode != 0 and "no trust root has been published yet" in said
        assert "LANDREG_TRUST__SIGNING_KEY_PASSPHRASE" in said and "Traceback" not in said
        attach(db, eth_tester_chain())
        cfg = Settings(home=tmp_path / "home", trust={"signing_key_passphrase": TEST_TRUST_PASSPHRASE})
        cfg.ensure_home()
        root, _ = publish(cfg, db)
        out = tmp_path / "for-the-auditor.json"
        done = landreg(env, "trust", "export", "--out", str(out), check=True)
        assert out.read_text() == (tmp_path / "home" / "trust" / "root.json").read_text()
        assert f"trust root v{root.version} (unchanged)" in done.stdout and "warning" not in done.stderr
        # the registry changed since (here, its name): the copy is still the signed one, said to be stale
        stale = landreg({**env, "LANDREG_SERVICE__REGISTRY_NAME": "Renamed"}, "trust", "export", check=True)
        assert "out of date" in " ".join(stale.stderr.split()) and "(unchanged)" in stale.stdout
        with_key = landreg({**env, **PASSPHRASE_ENV, "LANDREG_SERVICE__REGISTRY_NAME": "Renamed"}, "trust", "export")
        assert with_key.returncode == 0 and f"trust root v{root.version + 1} (new)" in with_key.stdout
        actions = [(a, t) for a, t, _ in audit_actions({"LANDREG_HOME": str(tmp_path / "db")})]
        assert actions == [("trust.export", "trust root v1"), ("trust.export", "trust root v1"),
                           ("trust.publish", "trust root v2")]  # fmt: skip
    finally:
        db.dispose()


# --- a shipped layout under another loader's table names ----------------------------------------------
def test_legacy_attach_maps_table_names_from_the_command_line(legacy, tmp_path):
    from tests import legacy_fixtures as fx
    from tests.conftest import landreg_environment

    schema = fx.acris_schema()
    legacy.load(fx.Schema([d.replace("acris_", "real_property_") for d in schema.ddl],
                          {k.replace("acris_", "real_property_"): v for k, v in schema.rows.items()}))  # fmt: skip
    env = landreg_environment(tmp_path) | {"LANDREG_JURISDICTION": "nyc", "COUNTY_DB": legacy.url}
    bad = landreg(env, "legacy", "attach", "--layout", "acris", "--url-env", "COUNTY_DB", "--table", "acris_master")
    assert bad.returncode != 0 and "give LAYOUT_NAME=DATABASE_NAME" in bad.stderr
    tables = [f"--table=acris_{t}=real_property_{t}" for t in ("master", "parties", "legals", "references")]
    done = landreg(env, "legacy", "attach", "--layout", "acris", "--url-env", "COUNTY_DB", *tables, check=True)
    assert "real_property_master" in done.stdout and "12" in done.stdout
    synced = landreg(env, "legacy", "sync", check=True)
    assert f"{len(fx.ACRIS_GOOD)}" in synced.stdout
    actions = [(a, t) for a, t, _ in audit_actions(env)]
    assert actions == [("legacy.attach", "legacy county"), ("legacy.sync", "legacy county")]


# --- newcomers: the commands after `make demo` ------------------------------------------------------------
def test_commands_after_the_demo_use_its_passphrases(tmp_path):
    """A registry the demo made has its keys under the demo-only passphrases: the commands the README
    runs next find them in LANDREG_HOME/demo.env when the environment sets none, and say so."""
    from hybrid_store.chain.connect import eth_tester_chain
    from hybrid_store.deployment import attach
    from hybrid_store.settings import Settings
    from hybrid_store.trust import publish
    from registry_service.cli.common import DEMO_ENV, DEMO_PASSPHRASES, TRUST_VAR, write_demo_env
    from tests.conftest import make_sqlite

    (tmp_path / "db").mkdir()
    db = make_sqlite(tmp_path / "db")
    home = tmp_path / "home"
    try:
        attach(db, eth_tester_chain())
        cfg = Settings(home=home, trust={"signing_key_passphrase": DEMO_PASSPHRASES[TRUST_VAR]})
        cfg.ensure_home()
        publish(cfg, db)
        env = cli_env(tmp_path, tmp_path / "db" / "landreg.db", LANDREG_SERVICE__REGISTRY_NAME="Changed")
        # someone else's value in the file is not taken: only the demo's own passphrases are
        (home / DEMO_ENV).write_text(f"{TRUST_VAR}='not the demo one'\n")
        stale = landreg(env, "trust", "export", check=True)
        assert "(unchanged)" in stale.stdout and "out of date" in " ".join(stale.stderr.split())
        write_demo_env(home, {TRUST_VAR: DEMO_PASSPHRASES[TRUST_VAR]})
        assert f"{TRUST_VAR}='{DEMO_PASSPHRASES[TRUST_VAR]}'" in (home / DEMO_ENV).read_text()
        done = landreg(env, "trust", "export", check=True)
        assert "trust root v2 (new)" in done.stdout
        assert "using the demo-only passphrases" in " ".join(done.stderr.split())
        # a passphrase the environment sets wins (and here it is the wrong one, so it says so)
        wrong = landreg({**env, TRUST_VAR: "someone else's secret", "LANDREG_SERVICE__REGISTRY_NAME": "Again"},
                        "trust", "export")  # fmt: skip
        assert wrong.returncode != 0 and "cannot decrypt" in wrong.stderr and "using the demo" not in wrong.stderr
    finally:
        db.dispose()


def test_make_test_fast_installs_no_browser():
    """`make test-fast` leaves the browser tests out (they are slow), so it installs no browser;
    `make test` runs them and installs Chromium when it is missing."""
    import subprocess

    repo = Path(__file__).resolve().parents[1]

    def dry(target: str) -> str:
        return subprocess.run(
            ["make", "-n", "-o", ".venv/.landreg-installed", "-o", "node_modules/.landreg-installed", target,
             "CHROMIUM=/nonexistent/chromium"], cwd=repo, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip

    assert "chromium" not in dry("test-fast").lower() and '-m "not slow"' in dry("test-fast")
    assert "apt-get install -y --no-install-recommends chromium" in dry("test")
    browser = (repo / "tests" / "test_desk_browser.py").read_text()
    assert "pytestmark = [pytest.mark.anvil, pytest.mark.slow]" in browser  # what keeps them out of test-fast


# --- a stage through the command line, audit-logged end to end -------------------------------------------
@pytest.mark.anvil
def test_cli_plan_run_signoff_are_audit_logged_and_counted_by_reconciliation(db, tmp_path):
    """The walk an operator does at the command line (plan, run, reconcile, sign off) writes an audit
    entry for each action, and the reconciliation report counts them (it said 0 before issue 24). On
    PostgreSQL too, where the stage's gas arrives summed as a Decimal (the run's audit entry refused it)."""
    from tests.conftest import landreg_environment

    env = landreg_environment(tmp_path) | {"LANDREG_DATABASE_URL": db.engine.url.render_as_string(hide_password=False)}
    landreg(env, "legacy", "import", "synthetic", "--instruments", "120", "--seed", "4", check=True)
    try:
        landreg(env, "chain", "start", check=True)
        landreg(env, "migrate", "plan", "all", "--batch-size", "50", check=True)
        run = landreg(env, "migrate", "run", "all", "--workers", "1", check=True)
        assert "120 records in 3 batches this run" in run.stdout
        landreg(env, "reconcile", "--stage", "all", "--workers", "1", check=True)
        landreg(env, "migrate", "signoff", "all", "--operator", "Jo IT", check=True)
        out = tmp_path / "r.json"
        landreg(env, "reconcile", "--workers", "1", "--json", str(out), "--report", str(tmp_path / "r.html"),
                check=True)  # fmt: skip
    finally:
        landreg(env, "chain", "stop")
    actions = [a for a, _, _ in audit_actions(env)]
    assert [a for a in actions if a.startswith("migration")] == ["migration.plan", "migration.run", "migration.signoff"]
    counts = json.loads(out.read_text())["counts"]
    assert counts["audit_entries"] >= 3
    html = (tmp_path / "r.html").read_text()
    assert f"<th>audit log entries</th><td>{counts['audit_entries']:,}</td>" in html
