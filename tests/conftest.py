"""Shared fixtures: a migrated deed database on SQLite and on the local PostgreSQL server, an
in-process chain, and a managed anvil node.

PostgreSQL: every test gets its own database, copied from a template migrated once per session
with Alembic (exactly like production). When no server answers, those tests are skipped and the
run says so loudly at the end; with LANDREG_REQUIRE_POSTGRES=1 (CI) they fail instead.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import os
import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hybrid_store.db.engine import Database

REPO = Path(__file__).resolve().parents[1]
#: passphrases of the test registries' encrypted signing keys (tests only)
TEST_RECEIPT_PASSPHRASE = "test receipt passphrase"
TEST_TRUST_PASSPHRASE = "test trust-root passphrase"
PASSPHRASE_ENV = {
    "LANDREG_SERVICE__RECEIPT_KEY_PASSPHRASE": TEST_RECEIPT_PASSPHRASE,
    "LANDREG_TRUST__SIGNING_KEY_PASSPHRASE": TEST_TRUST_PASSPHRASE,
}


# Settings built in-process read the passphrases from the environment, as in production (set for
# the whole session, so module-scoped fixtures see them too; a test about their absence removes them)
os.environ.update(PASSPHRASE_ENV)


_trust_homes: dict[str, Path] = {}


def trust_of(db: Database, home: Path | None = None):  # -> TrustRoot
    """Publish (or refresh) the trust root of the registry in ``db`` (under ``home``, or a temporary
    folder kept per database) and return it, as an auditor would pin it."""
    import tempfile

    from hybrid_store.settings import Settings
    from hybrid_store.trust import publish

    home = home or _trust_homes.setdefault(str(db.engine.url), Path(tempfile.mkdtemp(prefix="landreg-trust-")))
    cfg = Settings(home=home, trust={"signing_key_passphrase": TEST_TRUST_PASSPHRASE})
    cfg.ensure_home()
    return publish(cfg, db)[0]


PG_ADMIN_URL = os.environ.get("LANDREG_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
_pg_problem: list[str] = []


def pg_url(database: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + database


def pg_admin(sql: str) -> None:
    import psycopg

    url = PG_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql)


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    name = f"landreg_tpl_{uuid.uuid4().hex[:10]}"
    try:
        pg_admin(f'CREATE DATABASE "{name}"')
    except Exception as exc:
        message = f"PostgreSQL at {PG_ADMIN_URL} is unreachable ({exc.__class__.__name__}: {exc})"
        if os.environ.get("LANDREG_REQUIRE_POSTGRES"):
            pytest.fail(message + " and LANDREG_REQUIRE_POSTGRES is set")
        _pg_problem.append(message)
        pytest.skip(message)
    db = Database(pg_url(name))
    db.migrate()
    db.dispose()
    yield name
    pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pytest_collection_modifyitems(config, items):
    """Tests that start an anvil node or processes of their own are slow: `make test-fast` leaves
    them out (``-m "not slow"``), `make test` runs them."""
    for item in items:
        if item.get_closest_marker("anvil") or item.get_closest_marker("subprocess"):
            item.add_marker(pytest.mark.slow)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if _pg_problem:
        bar = "!" * 78
        terminalreporter.write_line(bar, red=True, bold=True)
        terminalreporter.write_line("PostgreSQL TESTS WERE SKIPPED: " + _pg_problem[0], red=True, bold=True)
        terminalreporter.write_line("Start a server (see README) to run them.", red=True, bold=True)
        terminalreporter.write_line(bar, red=True, bold=True)


@functools.cache
def head_revision() -> str:
    from alembic.script import ScriptDirectory

    from hybrid_store.db.engine import alembic_config

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


_sqlite_template: list[Path] = []


def sqlite_template() -> Path:
    """A SQLite deed database migrated with Alembic once per test session; tests get copies."""
    if not _sqlite_template:
        import tempfile

        path = Path(tempfile.mkdtemp(prefix="landreg-sqlite-template-")) / "landreg.db"
        db = Database(f"sqlite:///{path}")
        db.migrate()
        db.dispose()  # the last connection closed: the WAL is checkpointed into the file
        assert not path.with_name(path.name + "-wal").exists() or not path.with_name(path.name + "-wal").stat().st_size
        _sqlite_template.append(path)
    return _sqlite_template[0]


def make_sqlite(tmp_path: Path) -> Database:
    """A migrated SQLite deed database at ``tmp_path/landreg.db``, copied from the session's template."""
    import shutil

    target = tmp_path / "landreg.db"
    shutil.copyfile(sqlite_template(), target)
    db = Database(f"sqlite:///{target}")
    assert db.current_revision() == head_revision()
    return db


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    db = make_sqlite(tmp_path)
    yield db
    db.dispose()


class PgCopies:
    """Copies of the migrated template, made ahead in a thread of their own (CREATE DATABASE ...
    TEMPLATE takes a quarter of a second, mostly waiting on the server) and dropped behind; a test
    takes a ready one."""

    AHEAD = 2

    def __init__(self, template: str):
        import queue
        import threading

        self.template = template
        self.ready: queue.Queue[str] = queue.Queue()
        self.used: queue.Queue[str] = queue.Queue()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="pg-copies", daemon=True)
        self.thread.start()

    def _make(self) -> str:
        name = f"landreg_t_{uuid.uuid4().hex[:12]}"
        pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        return name

    def _run(self) -> None:
        import queue

        while not self.stop.is_set():
            try:
                if self.ready.qsize() < self.AHEAD:
                    self.ready.put(self._make())
                    continue
                pg_admin(f'DROP DATABASE IF EXISTS "{self.used.get(timeout=0.05)}" WITH (FORCE)')
            except queue.Empty:
                continue
            except Exception:  # the test asking for a copy makes one itself and shows the error
                self.stop.wait(0.5)

    def take(self) -> str:
        import queue

        try:
            return self.ready.get(timeout=5)
        except queue.Empty:
            return self._make()

    def give_back(self, name: str) -> None:
        self.used.put(name)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        for q in (self.ready, self.used):
            while not q.empty():
                pg_admin(f'DROP DATABASE IF EXISTS "{q.get()}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_copies(pg_template: str) -> Iterator[PgCopies]:
    copies = PgCopies(pg_template)
    yield copies
    copies.close()


@pytest.fixture
def pg_db(pg_copies: PgCopies) -> Iterator[Database]:
    name = pg_copies.take()
    db = Database(pg_url(name))
    yield db
    db.dispose()
    pg_copies.give_back(name)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest) -> Database:
    """The deed database, once on SQLite and once on PostgreSQL."""
    return request.getfixturevalue("sqlite_db" if request.param == "sqlite" else "pg_db")


@pytest.fixture
def chain():
    """A fresh in-process chain with its registrar account."""
    from hybrid_store.chain.connect import eth_tester_chain

    return eth_tester_chain()


@pytest.fixture
def deployed(db: Database, chain):
    """``(db, chain, deployment)`` with a DeedRegistry deployed and recorded."""
    from hybrid_store.deployment import attach

    return db, chain, attach(db, chain)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def landreg_environment(tmp_path: Path) -> dict[str, str]:
    """Environment for running landreg in a subprocess: its own home and anvil port."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LANDREG_") and k != "DATABASE_URL"}
    env.update(
        {"LANDREG_HOME": str(tmp_path / "home"), "LANDREG_CHAIN__ANVIL_PORT": str(free_port()), **PASSPHRASE_ENV}
    )
    return env


@pytest.fixture
def landreg_env(tmp_path: Path) -> dict[str, str]:
    return landreg_environment(tmp_path)


@pytest.fixture
def anvil_settings(landreg_env: dict[str, str]):
    from hybrid_store.settings import Settings

    return Settings(
        home=Path(landreg_env["LANDREG_HOME"]),
        chain={
            "backend": "anvil",
            "anvil_port": int(landreg_env["LANDREG_CHAIN__ANVIL_PORT"]),
            "anvil_state_interval_s": 1,
        },
    )


@pytest.fixture
def anvil(anvil_settings):
    """A real managed anvil node under a temporary LANDREG_HOME, stopped afterwards."""
    from hybrid_store.chain.anvil import ManagedAnvil

    node = ManagedAnvil(anvil_settings)
    node.start()
    yield node
    node.stop()


NOW = datetime(2026, 11, 1, 15, 0, tzinfo=UTC)
DIGEST = "c0ffee" + "0" * 58


_SCANS = itertools.count(1)


def scan_digest() -> str:
    """The SHA-256 of another scanned document: filing one scan twice waits as a possible duplicate."""
    return hashlib.sha256(f"scan {next(_SCANS)}".encode()).hexdigest()


def deed(**overrides) -> dict:
    """A valid deed as a clerk would submit it; override any field."""
    base = {
        "doc_type": "DEED",
        "grantors": ["JOHN Q. SMITH", "MARY SMITH"],
        "grantees": ["MARÍA GARCÍA"],
        "parcels": [{"municipality_code": "0223", "block": "100.01", "lot": "5"}],
        "consideration": "350000.00",
        "legal_description": "ALL that certain lot in the City of Hackensack.",
        "document_digest": scan_digest(),  # each call another scan: the same scan twice is a possible duplicate
        # what N.J.S.A. 46:26A-3 requires of a deed (a filing without them is rejected on examination)
        "preparer": "ANNA LEE, ESQ.",
        "grantee_mailing_address": "12 MAIN STREET, HACKENSACK NJ 07601",
    }
    base.update(overrides)
    return base


#: every confirmation examination may ask for (``hybrid_store.examination.CONFIRMABLE``)
ALL_CONFIRMATIONS = ["new_parcel", "possible_duplicate", "grantor_not_owner", "conflicting_conveyance"]


def filing(**overrides) -> dict:
    """A deed filed through the API by a test that is about something else than examination: its
    findings are confirmed up front, so it is recorded at once as before examination existed (a
    test of examination files ``deed()`` and sees what waits)."""
    return {**deed(**overrides), "confirm": ALL_CONFIRMATIONS,
            "confirm_reason": "a test filing: its chain of title is not what this test is about"}  # fmt: skip


def app_routes(app) -> set[tuple[str, str]]:
    """Every (method, path template) an app serves, routers included (FastAPI keeps included
    routers as nodes of their own), HEAD aside."""
    from starlette.routing import Route

    out: set[tuple[str, str]] = set()

    def walk(routes, prefix: str) -> None:
        for route in routes:
            if hasattr(route, "original_router"):
                walk(route.original_router.routes, prefix + route.include_context.prefix)
            elif isinstance(route, Route) and route.methods:
                out.update((m, prefix + route.path) for m in route.methods - {"HEAD"})

    walk(app.routes, "")
    return out


# --- legacy recorder databases (tests/legacy_fixtures.py) ------------------------------------------------
@pytest.fixture(params=["mariadb", pytest.param("postgres", marks=pytest.mark.postgres)])
def legacy(request):
    """A legacy database of its own on the server named by the parameter."""
    from tests import legacy_fixtures as fx

    server = fx.LegacyServer(request.param).create()
    yield server
    server.drop()


@pytest.fixture
def registry(request, tmp_path):
    """A landreg store for a registry of the jurisdiction the test names (default: nyc)."""
    from hybrid_store.jurisdictions import get_profile
    from hybrid_store.pins import pin_jurisdiction

    marker = request.node.get_closest_marker("jurisdiction")
    profile = get_profile(marker.args[0] if marker else "nyc")
    db = make_sqlite(tmp_path)
    pin_jurisdiction(db, profile)
    yield db, profile
    db.dispose()


# --- the tamperer's first step ----------------------------------------------------------------------
def bypass_append_only(s) -> None:
    """What a database administrator can do: switch off the append-only and placed-once triggers."""
    from sqlalchemy import text

    from hybrid_store.db.tables import APPEND_ONLY_TABLES, PLACED_ONCE_TABLES

    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("SET LOCAL session_replication_role = replica"))
    else:
        for table in APPEND_ONLY_TABLES + PLACED_ONCE_TABLES:
            for kind in ("append_only", "placed_once"):
                for action in ("update", "delete"):
                    s.execute(text(f"DROP TRIGGER IF EXISTS {table}_{kind}_{action}"))


def desk_attestations(jurisdiction: str = "bergen") -> dict[str, str]:
    """The filing form's attestation boxes, every one ticked (a test about something else than
    examination: an empty box is a ground for refusal)."""
    from hybrid_store.jurisdictions import get_profile

    return {f"attest_{a.code}": "on" for a in get_profile(jurisdiction).attestations}


def recorded_on_desk(svc, location: str) -> tuple[str, str]:
    """(the desk's page of the instrument a filing recorded, the submission page the filing form
    redirected to, which says so once: post, redirect, get)."""
    import re

    page = svc.client.get(location).text
    found = re.search(r"Recorded as instrument ([0-9A-Z-]+)\.", page)
    assert found, page[:2000]
    return f"/desk/instruments/{found.group(1)}", page
