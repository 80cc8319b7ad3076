"""Writing many rows at once: PostgreSQL's COPY where it pays, a plain multi-row INSERT elsewhere.

The rows are the same either way (a test loads one book both ways and compares every table): COPY
takes each value through the column type's bind processing exactly as the INSERT does, a serial
``id`` left out of the rows is drawn from its sequence in row order as the INSERT draws it, and a
failure surfaces as the same SQLAlchemy error (``IntegrityError`` for a broken constraint).
SQLite has no COPY and keeps the INSERT.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

from sqlalchemy import Table, insert
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from hybrid_store.db.engine import bulk_execute

#: rows from which COPY beats a multi-row INSERT (below it, a filing's few rows: one statement's round trip either way)
COPY_FROM = 50

_Plan = tuple[tuple[str, ...], tuple[Callable[[Any], Any] | None, ...], list[int], str]
_plans: dict[tuple[str, tuple[str, ...]], _Plan] = {}


def copies(conn: Connection, rows: int) -> bool:
    """Whether ``rows`` rows go in by COPY on this connection."""
    return rows >= COPY_FROM and conn.dialect.name == "postgresql"


def insert_rows(conn: Connection, tbl: Table, rows: Sequence[dict[str, Any]], *, any_order: bool = False) -> None:
    """Insert ``rows`` (dicts with the same keys) into ``tbl``, in order; ``any_order`` (a table
    whose rows draw no ids, so the order changes nothing in them): by COPY in its primary key's order,
    each row landing in the index next to the one before (a chunk's rows of a wide index touch a
    fraction of the pages they would in the order they came)."""
    if not rows:
        return
    if copies(conn, len(rows)):
        if any_order:
            key = [c.name for c in tbl.primary_key.columns]
            rows = sorted(rows, key=lambda r: [r[c] for c in key])
        copy_rows(conn, tbl, rows)
    else:  # one row: a plain execute (executemany goes through the driver's pipeline machinery)
        conn.execute(insert(tbl), rows[0] if len(rows) == 1 else list(rows))


def copy_rows(conn: Connection, tbl: Table, rows: Sequence[dict[str, Any]]) -> None:
    """COPY ``rows`` into ``tbl`` in this connection's transaction (PostgreSQL)."""
    import psycopg  # (PostgreSQL's driver: only where there is COPY)

    columns, processors, types, sql = _plan(conn, tbl, tuple(rows[0]))
    raw = cast("psycopg.Connection[Any]", conn.connection.dbapi_connection)
    try:
        with raw.cursor() as cur, cur.copy(sql) as copy:
            copy.set_types(types)
            for row in rows:
                values = [row[c] for c in columns]
                for i, process in enumerate(processors):
                    if process is not None:
                        values[i] = process(values[i])
                copy.write_row(values)
    except psycopg.Error as exc:  # as SQLAlchemy would have raised it from the INSERT
        raise DBAPIError.instance(sql, None, exc, psycopg.Error) from None


def copy_binary(conn: Connection, table: str, columns: Sequence[str], types: Sequence[str],
                rows: Sequence[Sequence[Any]]) -> None:  # fmt: skip
    """COPY ``rows`` (tuples already in the driver's types: ints and bytes) into ``table`` in
    PostgreSQL's binary format, in this connection's transaction: for the title state's node rows,
    31,000 a migration batch, where it takes a ninth of the time of the same rows by ``executemany``."""
    import psycopg

    sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"
    raw = cast("psycopg.Connection[Any]", conn.connection.dbapi_connection)
    try:
        with raw.cursor() as cur, cur.copy(sql) as copy:
            copy.set_types(list(types))
            for row in rows:
                copy.write_row(row)
    except psycopg.Error as exc:  # as SQLAlchemy would have raised it from the INSERT
        raise DBAPIError.instance(sql, None, exc, psycopg.Error) from None


def update_pairs(conn: Connection, table: str, column: str, pairs: Sequence[tuple[int, int]]) -> None:
    """``UPDATE table SET column = value WHERE id = id`` for each (value, id) of ``pairs`` (integer
    columns): on PostgreSQL one statement over two arrays (a migration batch moves thousands of
    parcels' heads), elsewhere ``executemany``."""
    if not pairs:
        return
    if copies(conn, len(pairs)):
        conn.exec_driver_sql(
            f"UPDATE {table} SET {column} = u.v FROM unnest(%s::bigint[], %s::bigint[]) AS u (v, id) "
            f"WHERE {table}.id = u.id",
            ([v for v, _ in pairs], [i for _, i in pairs]),
        )
    else:
        bulk_execute(conn, f"UPDATE {table} SET {column} = ? WHERE id = ?", list(pairs))


def selected(conn: Connection, tbl: Table, rows: Sequence[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """``rows`` for ``tbl`` as a SELECT of one array a column and its parameters (PostgreSQL), in
    their order: the source of an INSERT that must stay one statement (ON CONFLICT ... RETURNING),
    without a multi-row VALUES list the driver parses afresh for each length."""
    columns = tuple(rows[0])
    arrays, params = [], {}
    for i, c in enumerate(columns):
        column_type = tbl.c[c].type
        process = column_type.bind_processor(conn.dialect)
        params[f"c{i}"] = [r[c] if process is None else process(r[c]) for r in rows]
        arrays.append(f"%(c{i})s::{column_type.compile(dialect=conn.dialect)}[]")
    listed = ", ".join(columns)
    return f"SELECT {listed} FROM unnest({', '.join(arrays)}) WITH ORDINALITY AS u({listed}, n) ORDER BY n", params


def next_ids(conn: Connection, tbl: Table, n: int) -> list[int]:
    """``n`` values of ``tbl``'s serial ``id`` sequence, ascending, as an INSERT of ``n`` rows would draw them."""
    ids = conn.exec_driver_sql(
        "SELECT nextval(pg_get_serial_sequence(%(t)s, 'id')) FROM generate_series(1, %(n)s)", {"t": tbl.name, "n": n}
    ).scalars()
    return sorted(ids)


def _plan(conn: Connection, tbl: Table, columns: tuple[str, ...]) -> _Plan:
    """The columns, their bind processing, their PostgreSQL types (binary COPY: a fifth of the CPU
    of formatting text, and the server parses nothing) and the statement."""
    key = (tbl.name, columns)
    if key not in _plans:
        missing = [c.name for c in tbl.columns if c.name not in columns and c.default is not None]
        if missing:  # a Python-side default the INSERT would fill in: COPY would leave the server's
            raise ValueError(f"COPY into {tbl.name} without {', '.join(missing)}: give every value")
        processors = tuple(tbl.c[c].type.bind_processor(conn.dialect) for c in columns)
        oids: dict[str, int] = dict(conn.exec_driver_sql(
            "SELECT attname, atttypid::int FROM pg_attribute WHERE attrelid = %(t)s::regclass AND attnum > 0",
            {"t": tbl.name},
        ).all())  # fmt: skip
        quoted = ", ".join(conn.dialect.identifier_preparer.quote(c) for c in columns)
        sql = f"COPY {tbl.name} ({quoted}) FROM STDIN (FORMAT BINARY)"
        _plans[key] = (columns, processors, [oids[c] for c in columns], sql)
    return _plans[key]
