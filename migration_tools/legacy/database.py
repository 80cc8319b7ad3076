"""Reading a county's recorder database through a layout: read-only, streamed, joined by key.

landreg never writes to the legacy database: every session is made read-only as it connects
(PostgreSQL's ``default_transaction_read_only``, MariaDB's ``SET SESSION TRANSACTION READ ONLY``),
on top of whatever read-only account the county grants. Each table of the layout is read once, in
one stream sorted by the document key (normalised in SQL: trimmed, upper case, compared as bytes),
and the streams are merged here, so memory stays flat however large the book: a document and its
parties, parcels and references come out together, and rows whose document is missing come out as
orphans. All the streams read one snapshot: PostgreSQL's exported snapshot; on MariaDB each
stream's consistent snapshot, started together (a change committed between those starts is seen
by the next sync).

Tested dialects: PostgreSQL (psycopg) and MariaDB (mysqlclient). Others that SQLAlchemy supports
are untested.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Connection, Engine

from hybrid_store.errors import LandregError
from migration_tools.legacy.layout import Layout, Table
from migration_tools.legacy.mapping import KEY_COLUMNS, LegacyRows, instrument_number

FETCH = 2_000  # rows per round trip of each stream
KEYS_PER_QUERY = 500  # documents read by key at once (follow mode)
KEY, RAW = KEY_COLUMNS  # the normalised key, and the key as stored


class LegacyDatabaseError(LandregError, RuntimeError):
    hint = "check the layout against the legacy database (`landreg legacy attach` names what is missing)"


@dataclass(frozen=True)
class Inspection:
    dialect: str
    documents: int
    tables: dict[str, int]  # table -> rows the layout reads of it
    problems: list[str]


def open_engine(url: str) -> Engine:
    """An engine on the legacy database whose every session is read-only."""
    dialect = url.split(":", 1)[0].split("+", 1)[0]
    kwargs: dict[str, Any] = {"pool_size": 6, "max_overflow": 2, "pool_pre_ping": True}
    if dialect == "postgresql":
        kwargs["connect_args"] = {"options": "-c default_transaction_read_only=on"}
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _read_only(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        try:
            if engine.dialect.name in ("mysql", "mariadb"):
                cur.execute("SET SESSION TRANSACTION READ ONLY")
                cur.execute("SET SESSION net_write_timeout = 3600")  # a stream may wait while a chunk loads
            elif engine.dialect.name == "sqlite":
                cur.execute("PRAGMA query_only = ON")
        finally:
            cur.close()

    return engine


class LegacyDatabase:
    """The legacy database behind ``engine``, read as ``layout`` says."""

    def __init__(self, engine: Engine, layout: Layout):
        self.engine = engine
        self.layout = layout
        self.q = engine.dialect.identifier_preparer

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    # --- SQL --------------------------------------------------------------------------------------------
    def _name(self, dotted: str) -> str:
        return ".".join(self.q.quote(part) for part in dotted.split("."))

    def _normal(self, column: str) -> str:
        """The column as text, trimmed, in upper case: keys and codes compare after this."""
        kind = "CHAR" if self.dialect in ("mysql", "mariadb") else "TEXT"
        return f"UPPER(TRIM(CAST({self._name(column)} AS {kind})))"

    def _ordered(self, expression: str) -> str:
        """Sorted as bytes, so Python's string order is the database's."""
        if self.dialect == "postgresql":
            return f'{expression} COLLATE "C"'
        if self.dialect in ("mysql", "mariadb"):
            return f"CAST({expression} AS BINARY)"
        return expression

    def _where(self, spec: Table) -> tuple[str, dict[str, str]]:
        clauses = [f"{self._normal(col)} = :f{i}" for i, col in enumerate(spec.filter)]
        params = {f"f{i}": v.strip().upper() for i, v in enumerate(spec.filter.values())}
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def _select(self, part: str, keys: list[str] | None = None) -> tuple[str, dict[str, str]]:
        """The part's rows with their normalised key (``lr_key``) and the key as stored (``lr_raw``);
        with ``keys``, only rows whose stored key is one of them (an exact match: the key index)."""
        spec = self.layout.tables()[part]
        columns = ", ".join(self._name(c) for c in self.layout.columns(part))
        where, params = self._where(spec)
        key = self._normal(spec.key)
        if keys is not None:
            where += (" AND " if where else " WHERE ") + (
                f"{self._name(spec.key)} IN ({', '.join(f':k{i}' for i in range(len(keys)))})")  # fmt: skip
            params.update({f"k{i}": k for i, k in enumerate(keys)})
        sql = (f"SELECT {key} AS {KEY}, {self._name(spec.key)} AS {RAW}, {columns} FROM {self._name(spec.table)}"
               f"{where} ORDER BY {self._ordered(key)}")  # fmt: skip
        return sql, params

    # --- what is there -----------------------------------------------------------------------------------
    def inspect(self) -> Inspection:
        """Every table and column the layout names, found or listed as a problem; row counts."""
        problems: list[str] = []
        counts: dict[str, int] = {}
        with self.engine.connect() as conn:
            inspector = inspect(conn)
            for part, spec in self.layout.tables().items():
                schema, _, name = spec.table.rpartition(".")
                if not inspector.has_table(name, schema=schema or None):
                    problems.append(f"no table {spec.table} ({part})" + _same_table(inspector, spec.table))
                    continue
                have = {c["name"] for c in inspector.get_columns(name, schema=schema or None)}
                wanted = [*self.layout.columns(part), *spec.filter]
                missing = [c for c in dict.fromkeys(wanted) if c not in have]
                if missing:
                    problems.append(
                        f"{spec.table} has no column {', '.join(missing)} (it has {', '.join(sorted(have))})"
                    )
                    continue
                where, params = self._where(spec)
                counts[spec.table] = int(conn.execute(text(f"SELECT COUNT(*) FROM {self._name(spec.table)}{where}"),
                                                      params).scalar_one())  # fmt: skip
            code_table = self.layout.doc_types.code_table
            if code_table is not None and code_table.table is not None:
                schema, _, name = code_table.table.rpartition(".")
                if not inspector.has_table(name, schema=schema or None):
                    problems.append(f"no code table {code_table.table}")
        return Inspection(self.dialect, counts.get(self.layout.documents.table, 0), counts, problems)

    def code_rows(self) -> dict[str, str]:
        """code -> class from the code table in the legacy database (when the layout names one)."""
        spec = self.layout.doc_types.code_table
        if spec is None or spec.table is None:
            return {}
        sql = f"SELECT {self._normal(spec.code)}, {self._normal(spec.classes)} FROM {self._name(spec.table)}"
        with self.engine.connect() as conn:
            return {" ".join(c.split()): " ".join(k.split()) for c, k in conn.execute(text(sql)) if c}

    def correction_numbers(self) -> dict[str, str]:
        """The instrument numbers of the documents corrections refer to, by key."""
        refs = self.layout.references
        if refs is None or refs.corrects is None:
            return {}
        c = refs.corrects
        kinds = ", ".join(f":k{i}" for i in range(len(c.values)))
        params = {f"k{i}": v.upper() for i, v in enumerate(c.values)}
        with self.engine.connect() as conn:
            targets = sorted({str(t) for (t,) in conn.execute(text(
                f"SELECT {self._normal(c.target)} FROM {self._name(refs.table)} WHERE {self._normal(c.kind)} IN ({kinds})"
            ), params) if t})  # fmt: skip
            docs = self.layout.documents
            columns = ", ".join(self._name(col) for col in self.layout.columns("documents"))
            out: dict[str, str] = {}
            for chunk in (targets[i : i + 500] for i in range(0, len(targets), 500)):
                marks = ", ".join(f":t{i}" for i in range(len(chunk)))
                rows = conn.execute(text(f"SELECT {self._normal(docs.key)} AS {KEY}, {columns} FROM "
                                         f"{self._name(docs.table)} WHERE {self._normal(docs.key)} IN ({marks})"),
                                    {f"t{i}": t for i, t in enumerate(chunk)})  # fmt: skip
                for row in rows.mappings():
                    out[str(row[KEY])] = instrument_number(self.layout, dict(row))
        return out

    # --- the documents -----------------------------------------------------------------------------------
    def documents(self) -> Iterator[LegacyRows]:
        """Every document with its rows, in key order; orphan rows as documents without a master row."""
        parts = list(self.layout.tables())
        with contextlib.ExitStack() as stack:
            conns = {part: stack.enter_context(self.engine.connect()) for part in parts}
            self._snapshot(conns)
            streams = {part: _Stream(part, self._stream(conns[part], part)) for part in parts}
            yield from _merge(streams)

    def fetch(
        self, keys: Iterable[str], stored_as: Mapping[str, Iterable[str]] | None = None
    ) -> dict[str, LegacyRows | None]:
        """The documents of ``keys`` (normalised keys) as they are now; None for a key with no rows.
        Rows are found by exact match on each table's key column (its index), with the key itself
        and the forms it is stored in (``stored_as``: key -> forms seen before or in a change log)."""
        wanted = sorted(set(keys))
        out: dict[str, LegacyRows | None] = dict.fromkeys(wanted)
        forms = sorted({*wanted, *(f for k in wanted for f in (stored_as or {}).get(k, ()))})
        rows_of: dict[str, list[tuple[str, dict[str, Any]]]] = {part: [] for part in self.layout.tables()}
        with self.engine.connect() as conn:
            self._one_snapshot(conn)
            for chunk in (forms[i : i + KEYS_PER_QUERY] for i in range(0, len(forms), KEYS_PER_QUERY)):
                for part in self.layout.tables():
                    sql, params = self._select(part, chunk)
                    rows_of[part] += [(str(r[KEY]), dict(r)) for r in conn.execute(text(sql), params).mappings()]
        streams = {part: _Stream(part, iter(sorted(rows, key=lambda r: r[0]))) for part, rows in rows_of.items()}
        out.update({rows.key: rows for rows in _merge(streams) if rows.key in out})
        return out

    def newest_modified(self) -> str | None:
        docs = self.layout.documents
        assert docs.modified is not None
        where, params = self._where(docs)
        with self.engine.connect() as conn:
            value = conn.execute(text(f"SELECT MAX({self._name(docs.modified)}) FROM {self._name(docs.table)}{where}"),
                                 params).scalar()  # fmt: skip
        return _mark(value)

    def keys_modified_since(self, since: str | None) -> tuple[dict[str, str | None], str | None]:
        """The documents whose modified column is at or after ``since`` (None: all), as key -> that
        value, and the largest value seen (the watermark's next position). The column must sort in
        time order: a timestamp, a row version, or text in ISO form."""
        docs = self.layout.documents
        assert docs.modified is not None
        col = self._name(docs.modified)
        where, params = self._where(docs)
        if since is not None:
            where += (" AND " if where else " WHERE ") + f"{col} >= :since"
            params["since"] = since
        sql = f"SELECT {self._normal(docs.key)}, {col} FROM {self._name(docs.table)}{where}"
        keys: dict[str, str | None] = {}
        top = since
        with self.engine.connect() as conn:
            for key, value in conn.execute(text(sql), params):
                keys[str(key)] = mark = _mark(value)
                if mark is not None and (top is None or mark > top):
                    top = mark
        return keys, top

    def _stream(self, conn: Connection, part: str) -> Iterator[tuple[str, dict[str, Any]]]:
        sql, params = self._select(part)
        result = conn.execution_options(stream_results=True, yield_per=FETCH).execute(text(sql), params)
        names = tuple(result.keys())
        at = names.index(KEY)
        for row in result:  # plain rows zipped with the names once: a mapping view per row costs more than its read
            key = row[at]
            yield (key if type(key) is str else "" if key is None else str(key)), dict(zip(names, row, strict=True))

    def _one_snapshot(self, conn: Connection) -> None:
        """Every query on ``conn`` reads the same state (no snapshot to share, so none exported)."""
        if self.dialect == "postgresql":
            conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        elif self.dialect in ("mysql", "mariadb"):
            conn.exec_driver_sql("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")

    def _snapshot(self, conns: dict[str, Connection]) -> None:
        """Every stream reads the same state of the database."""
        first, *others = conns.values()
        if self.dialect == "postgresql":
            first.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            snapshot = first.exec_driver_sql("SELECT pg_export_snapshot()").scalar_one()
            for conn in others:
                conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                conn.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
        elif self.dialect in ("mysql", "mariadb"):
            for conn in conns.values():
                conn.exec_driver_sql("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")


def _mark(value: Any) -> str | None:
    """A modified-column value as text that sorts in time order (timestamps in ISO form)."""
    if value is None:
        return None
    return value.isoformat(sep=" ") if hasattr(value, "isoformat") else str(value)


class _Stream:
    """One table's rows, sorted by key, with a look at the next key."""

    def __init__(self, part: str, rows: Iterator[tuple[str, dict[str, Any]]]):
        self.part = part
        self.rows = rows
        self.head: tuple[str, dict[str, Any]] | None = next(rows, None)
        self.last = ""

    def key(self) -> str | None:
        return None if self.head is None else self.head[0]

    def take(self, key: str) -> list[dict[str, Any]]:
        """Every row with ``key`` (which must be the head's)."""
        out = []
        while self.head is not None and self.head[0] == key:
            out.append(self.head[1])
            self.head = next(self.rows, None)
            if self.head is not None and self.head[0] < key:
                raise LegacyDatabaseError(
                    f"{self.part}: the database returned key {self.head[0]!r} after {key!r}: its sort order is not "
                    "byte order (keys outside ASCII in a column whose collation does not sort as bytes)"
                )
        return out


def _merge(streams: dict[str, _Stream]) -> Iterator[LegacyRows]:
    docs = streams["documents"]
    children = [s for part, s in streams.items() if part != "documents"]
    every = list(streams.values())
    while True:
        key: str | None = None
        for s in every:  # the smallest head key (a loop: this runs once per legacy document)
            if s.head is not None and (key is None or s.head[0] < key):
                key = s.head[0]
        if key is None:
            return
        found = docs.take(key) if docs.key() == key else []
        rows = {s.part: (s.take(key) if s.key() == key else []) for s in children}
        raw = {str(r[RAW]) for part in (found, *rows.values()) for r in part if r.get(RAW) is not None}
        yield LegacyRows(
            key=key, document=found[0] if found else None, parties=rows.get("parties", []),
            parcels=rows.get("parcels", []), references=rows.get("references", []),
            duplicates=max(len(found) - 1, 0), raw_keys=tuple(sorted(raw - {key})),
        )  # fmt: skip


def _same_table(inspector: Any, wanted: str) -> str:
    """A hint naming the database's table that is likely the one the layout calls ``wanted``:
    the same last word (``acris_master`` / ``real_property_master``), as other loaders name them."""
    schema, _, name = wanted.rpartition(".")
    word = name.rsplit("_", 1)[-1]
    try:
        have = inspector.get_table_names(schema=schema or None)
    except Exception:  # a hint must not hide the problem it hints at
        return ""
    alike = sorted(t for t in have if t != name and (t == word or t.endswith("_" + word)))
    if not alike:
        return ""
    ours = ".".join(filter(None, (schema, alike[0])))
    return f"; the database has {', '.join(alike)}: map it with --table {wanted}={ours}"
