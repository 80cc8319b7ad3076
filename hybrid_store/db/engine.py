"""Engines, sessions and migrations.

SQLite (the embedded default) runs in WAL mode with ``synchronous=FULL`` and foreign keys on;
PostgreSQL sessions are refused when they would acknowledge commits that are not yet durable. Python's sqlite3 module
opens transactions lazily and cannot upgrade a read lock safely under contention, so landreg
issues ``BEGIN`` itself: ``BEGIN IMMEDIATE`` for write transactions (they queue on the busy
timeout instead of failing half-way) and a plain ``BEGIN`` for reads. PostgreSQL gets a pooled
engine and row locks where writers must serialise.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from hybrid_store.errors import LandregError

T = TypeVar("T")

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_S = 30
VACUUM_WORKERS = 2  # tables vacuumed at once after a bulk load (the machines landreg runs on have 2 cores or more)


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        # LIFO: the connection used last is used again, so one connection's page cache (up to 64 MiB)
        # serves a bulk read instead of several filling theirs in turn
        kwargs.setdefault("pool_use_lifo", True)
        engine = create_engine(
            url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False}, **kwargs
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see module docstring)
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            # FULL: a filing answered 201 survives a power cut, not only a process kill (NORMAL in WAL
            # mode may lose the last commits when the machine loses power)
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA cache_size=-65536")  # 64 MiB of pages: bulk inserts touch wide indexes
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("landreg_write") else "BEGIN")

        return engine
    # enough pooled connections for a server process's request threads: a connection opened beyond
    # the pool is closed again on return, and opening one costs PostgreSQL a process fork
    kwargs.setdefault("pool_size", 30)
    kwargs.setdefault("max_overflow", 10)
    # no pre-ping (a round trip per checkout); connections that die are discarded when they fail,
    # and none lives long enough for a server-side idle timeout
    kwargs.setdefault("pool_recycle", 1800)
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _durable(dbapi_conn: Any, _record: Any) -> None:
        check_durable(dbapi_conn)

    return engine


class NotDurable(LandregError, RuntimeError):
    """The database would acknowledge commits it may lose; landreg refuses to use it so."""

    hint = "set synchronous_commit = on and fsync = on (e.g. ALTER ROLE landreg SET synchronous_commit = on)"


def check_durable(dbapi_conn: Any) -> None:
    """Refuse a PostgreSQL session that would acknowledge a commit before it is on disk: with
    ``synchronous_commit = off`` (set for the server, the database, the role or by PGOPTIONS) or
    ``fsync = off``, a filing answered 201 can vanish in a crash."""
    cur = dbapi_conn.cursor()
    try:
        cur.execute("SELECT current_setting('synchronous_commit'), current_setting('fsync')")
        synchronous_commit, fsync = cur.fetchone()
    finally:
        cur.close()
    dbapi_conn.rollback()  # leave no transaction open on a pooled connection
    if synchronous_commit == "off" or fsync == "off":
        raise NotDurable(
            f"PostgreSQL runs with synchronous_commit={synchronous_commit}, fsync={fsync}: acknowledged filings "
            "could be lost in a crash"
        )


class Database:
    """The deed database: an engine plus read and write transactions."""

    def __init__(self, url: str, **engine_kwargs: Any):
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self._write = sessionmaker(self.engine.execution_options(landreg_write=True), expire_on_commit=False)
        self._read = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One write transaction: committed when the block ends, rolled back if it raises."""
        with self._write() as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._read() as session, session.begin():
            yield session

    def refresh_statistics(self, tables: Sequence[str]) -> None:
        """After a bulk load, on PostgreSQL: the planner's statistics of ``tables`` and their
        visibility maps (``VACUUM (ANALYZE)``, outside any transaction), which autovacuum brings
        only later, if it runs. Until then the planner guesses from no statistics at all (a page's
        25 rows read by a parallel scan of every party) and an index-only scan reads the table too.
        A role that does not own a table is skipped with a warning, not refused. VACUUM reads a
        table on one core: the tables go two at a time, each on a connection of its own, largest first."""
        if self.dialect != "postgresql" or not tables:
            return
        with self.engine.connect() as conn:
            sizes: dict[str, int] = dict(conn.exec_driver_sql(
                "SELECT t, pg_total_relation_size(t::regclass) FROM unnest(%(t)s::text[]) AS t", {"t": list(tables)}
            ).all())  # fmt: skip
        with ThreadPoolExecutor(VACUUM_WORKERS, thread_name_prefix="landreg-vacuum") as pool:
            for done in [pool.submit(self._vacuum, t) for t in sorted(tables, key=lambda t: -sizes[t])]:
                done.result()

    def _vacuum(self, table: str) -> None:
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql(f"VACUUM (ANALYZE) {table}")

    def migrate(self, revision: str = "head") -> None:
        """Bring the schema to ``revision`` with Alembic (the only way landreg creates tables)."""
        from alembic import command

        self._alembic(command.upgrade, revision)

    def downgrade(self, revision: str) -> None:
        """Take the schema back to ``revision`` (``base``: nothing): for tests and emergencies."""
        from alembic import command

        self._alembic(command.downgrade, revision)

    def _alembic(self, step: Callable[[Any, str], None], revision: str) -> None:
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            raw = conn.connection.dbapi_connection if self.dialect == "sqlite" else None
            if raw is not None:  # SQLite's way to change a table: copy it with foreign keys off, then check
                raw.execute("PRAGMA foreign_keys=OFF")
            try:
                with conn.begin():
                    before = MigrationContext.configure(conn).get_current_revision()
                    cfg = alembic_config(self.url)
                    cfg.attributes["connection"] = conn
                    step(cfg, revision)
                    changed = MigrationContext.configure(conn).get_current_revision() != before
                # the check reads every table: only after a migration that ran (commands migrate SQLite each time)
                if raw is not None and changed and (broken := raw.execute("PRAGMA foreign_key_check").fetchall()):
                    raise RuntimeError(f"the migration left rows that refer to nothing: {broken[:5]}")
            finally:
                if raw is not None:
                    raw.execute("PRAGMA foreign_keys=ON")

    def current_revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def dispose(self) -> None:
        self.engine.dispose()


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def bulk_execute(conn: Any, sql: str, rows: list[tuple[Any, ...]]) -> None:
    """executemany straight through the driver, for the bulk paths (migration) where SQLAlchemy's
    per-row parameter processing costs more than the database. ``sql`` uses ``?`` placeholders;
    values must already be in the driver's types (see ``driver_datetime``)."""
    if not rows:
        return
    if conn.dialect.paramstyle != "qmark":
        sql = sql.replace("?", "%s")
    conn.exec_driver_sql(sql, rows)


def driver_datetime(conn: Any, moment: Any) -> Any:
    """A UTC datetime as the driver stores it for ``UTCDateTime`` (SQLite: SQLAlchemy's text form)."""
    if conn.dialect.name == "sqlite":
        return moment.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
    return moment


def upsert_insert(dialect: str) -> Any:
    """The dialect's ``insert`` construct, which has ``on_conflict_do_*`` (PostgreSQL or SQLite)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


INSUFFICIENT_PRIVILEGE = "42501"  # PostgreSQL's SQLSTATE for "permission denied"


def permission_denied(exc: BaseException) -> bool:
    """Whether a driver error is the database refusing the role a privilege (not a broken statement)."""
    return getattr(getattr(exc, "orig", None), "sqlstate", None) == INSUFFICIENT_PRIVILEGE


def rows_affected(result: Any) -> int:
    """The row count of an UPDATE or DELETE result (typed: ``Session.execute`` returns a plain Result)."""
    return int(result.rowcount)


IN_LIST = 500  # values per IN (...) list, one bind parameter each
IDS_PER_ARRAY = 5_000  # ids per array parameter (SQLite allows 32,766 parameters, PostgreSQL 65,535)


def chunks(items: Sequence[T], size: int = IN_LIST) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def select_in(session: Session, stmt: Any, column: Any, values: Sequence[Any]) -> list[Any]:
    """The rows of ``stmt`` where ``column`` is one of ``values``, in bounded IN lists."""
    out: list[Any] = []
    for chunk in chunks(values):
        out.extend(session.execute(stmt.where(column.in_(chunk))).all())
    return out
