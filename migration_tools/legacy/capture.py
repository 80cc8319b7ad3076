"""Change capture on a county's recorder database, for ``landreg legacy sync --follow``.

Two methods, chosen per attachment (docs/migration.md weighs them):

**trigger**: ``landreg legacy install-capture`` creates a change-log table, ``landreg_changes``,
and triggers on every table the layout reads that append one row per inserted, updated or
deleted row: the table, the document key, the operation and the full row image (JSON). It needs
one-time DDL rights (a separate account, whose URL is read like the main one and never kept);
landreg's own account only reads the log. The follow loop reads the log past its cursor, so it
sees every change, deletions included, within one poll. The triggers write the log with the
installing account's rights (PostgreSQL: a ``SECURITY DEFINER`` function with a fixed
``search_path``; MariaDB: a trigger always runs as its definer), so the recorder's own accounts
need no right on the log and cannot write rows into it.

**A forged row is an alarm, not a cursor.** The follower never trusts a row's image, and it does
not trust its number either: whoever can write the log can insert ``seq = 2**62``. On PostgreSQL an
explicit number does not move the sequence, so a row above the sequence's last value was not
handed out by it: it is reported (``Poll.implausible``) and never becomes the cursor, and the real
changes that follow, numbered below it, are read as usual. On MariaDB an explicit number moves
``AUTO_INCREMENT`` past it, so later changes are numbered above it: a jump of more than
``MAX_JUMP`` is reported and then followed. Either way the gaps a jump leaves are bounded
(``MAX_GAPS``), so a poll takes the same time whatever the number.

**watermark**: no DDL. The layout names the documents' last-modified column; each poll reads the
documents modified at or after the watermark. It cannot see deletions, nor edits that leave the
column alone (a party row changed without touching the master row), so a periodic **sweep**
compares the fingerprint of every legacy document with what landreg holds.

**Transactions that commit out of order.** A sequence number or a timestamp is taken when a row is
written, not when its transaction commits: a long transaction can commit an older number after
the cursor has passed it. The trigger cursor therefore keeps the **gaps** it skipped and looks
for them again on every poll until they appear or expire (``gap_timeout``: a rolled-back
transaction leaves a gap forever); the watermark trails the newest value it saw by
``lookback`` seconds of wall-clock time. Reading a change twice is harmless: what a document
became is decided by comparing its rows' fingerprint with the one landreg holds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

from migration_tools.legacy.database import LegacyDatabase, LegacyDatabaseError
from migration_tools.legacy.layout import Layout

CHANGE_LOG = "landreg_changes"
FUNCTION = "landreg_capture"
MAX_GAPS = 10_000  # beyond this many open gaps, the sweep is the safety net
READ_LIMIT = 20_000  # change-log rows per poll
# a skip of more change-log numbers than this between two rows is not one rolled-back transaction
MAX_JUMP = 100_000


# --- installing --------------------------------------------------------------------------------------
def capture_tables(layout: Layout) -> dict[str, str]:
    """table -> its document-key column, for every table the layout reads."""
    out: dict[str, str] = {}
    for spec in layout.tables().values():
        out.setdefault(spec.table, spec.key)
    return out


def install(engine: Engine, layout: Layout) -> list[str]:
    """Create the change log and the triggers (idempotent: run again, they are replaced). Returns
    what was made, for the operator's record."""
    dialect = engine.dialect.name
    q = engine.dialect.identifier_preparer
    made: list[str] = []
    with engine.begin() as conn:
        if dialect == "postgresql":
            schema = q.quote_identifier(str(conn.exec_driver_sql("SELECT current_schema()").scalar_one()))
            conn.exec_driver_sql(
                f"CREATE TABLE IF NOT EXISTS {schema}.{CHANGE_LOG} (seq BIGSERIAL PRIMARY KEY, "
                "table_name TEXT NOT NULL, doc_key TEXT, op CHAR(1) NOT NULL, row_image JSONB, "
                "changed_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp())"
            )
            conn.exec_driver_sql(f"REVOKE ALL ON {schema}.{CHANGE_LOG} FROM PUBLIC")
            # how far the sequence has counted is what tells a forged number (below): anyone may see it
            conn.exec_driver_sql(f"GRANT SELECT ON SEQUENCE {schema}.{CHANGE_LOG}_seq_seq TO PUBLIC")
            conn.exec_driver_sql(_pg_function(schema))
            # only the triggers call it; nobody else gets a way to write the log as its owner
            conn.exec_driver_sql(f"REVOKE ALL ON FUNCTION {schema}.{FUNCTION}() FROM PUBLIC")
            for table, key in capture_tables(layout).items():
                name = ".".join(q.quote_identifier(p) for p in table.split("."))
                conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {FUNCTION} ON {name}")
                conn.exec_driver_sql(
                    f"CREATE TRIGGER {FUNCTION} AFTER INSERT OR UPDATE OR DELETE ON {name} "
                    f"FOR EACH ROW EXECUTE FUNCTION {schema}.{FUNCTION}({_pg_literal(key)})"
                )
                made.append(f"trigger {FUNCTION} on {table}")
        elif dialect in ("mysql", "mariadb"):
            conn.exec_driver_sql(
                f"CREATE TABLE IF NOT EXISTS {CHANGE_LOG} (seq BIGINT AUTO_INCREMENT PRIMARY KEY, "
                "table_name VARCHAR(128) NOT NULL, doc_key VARCHAR(255), op CHAR(1) NOT NULL, row_image LONGTEXT, "
                "changed_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)) ENGINE=InnoDB"
            )
            for table, key in capture_tables(layout).items():
                schema, _, bare = table.rpartition(".")
                # the catalogue's own names: SQLAlchemy's reflection leaves a doubled backtick doubled
                columns = list(conn.execute(text(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = "
                    "COALESCE(:schema, DATABASE()) AND table_name = :bare ORDER BY ordinal_position"),
                    {"schema": schema or None, "bare": bare}).scalars())  # fmt: skip
                for statement in _mariadb_triggers(q, table, key, columns):
                    conn.exec_driver_sql(statement)
                made.append(f"triggers landreg_*_{bare} (insert, update, delete) on {table}")
        else:
            raise LegacyDatabaseError(f"trigger capture is written for PostgreSQL and MariaDB, not {dialect}: "
                                      "use --capture watermark")  # fmt: skip
    made.insert(0, f"table {CHANGE_LOG}")
    return made


def uninstall(engine: Engine, layout: Layout) -> None:
    dialect = engine.dialect.name
    q = engine.dialect.identifier_preparer
    with engine.begin() as conn:
        for table in capture_tables(layout):
            if dialect == "postgresql":
                conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {FUNCTION} ON "
                                     + ".".join(q.quote(p) for p in table.split(".")))  # fmt: skip
            else:
                bare = table.rpartition(".")[2]
                for op in ("ai", "au", "ad"):
                    conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {q.quote(f'landreg_{op}_{bare}')}")
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {CHANGE_LOG}")
        if dialect == "postgresql":
            conn.exec_driver_sql(f"DROP FUNCTION IF EXISTS {FUNCTION}()")


def _pg_function(schema: str) -> str:
    """The capture function, run with its owner's rights (SECURITY DEFINER) so the recorder's
    accounts need none on the log; its search_path is fixed, as a definer function's must be, so
    nobody's own objects can stand in for the log or a built-in."""
    log = f"{schema}.{CHANGE_LOG}"
    return f"""
CREATE OR REPLACE FUNCTION {schema}.{FUNCTION}() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  k text := TG_ARGV[0];
BEGIN
  IF TG_OP = 'DELETE' THEN
    INSERT INTO {log} (table_name, doc_key, op, row_image)
      VALUES (TG_TABLE_NAME, to_jsonb(OLD) ->> k, 'D', to_jsonb(OLD));
    RETURN OLD;
  END IF;
  INSERT INTO {log} (table_name, doc_key, op, row_image)
    VALUES (TG_TABLE_NAME, to_jsonb(NEW) ->> k, left(TG_OP, 1), to_jsonb(NEW));
  IF TG_OP = 'UPDATE' AND (to_jsonb(OLD) ->> k) IS DISTINCT FROM (to_jsonb(NEW) ->> k) THEN
    INSERT INTO {log} (table_name, doc_key, op, row_image)
      VALUES (TG_TABLE_NAME, to_jsonb(OLD) ->> k, 'U', NULL);  -- the document the row left
  END IF;
  RETURN NEW;
END $$"""


def _pg_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _mariadb_text(value: str) -> str:
    """A string literal that means the same under every sql_mode (backslash escapes on or off,
    ANSI quotes or not): the name's UTF-8 bytes in hex."""
    return f"CONVERT(X'{value.encode('utf-8').hex()}' USING utf8mb4)"


def _mariadb_triggers(q: Any, table: str, key: str, columns: list[str]) -> list[str]:
    """The three triggers of ``table``. A trigger runs with its definer's rights (the installing
    account), so the recorder's accounts need no right on the change log."""
    bare = table.rpartition(".")[2]
    name = ".".join(q.quote_identifier(p) for p in table.split("."))

    def image(row: str) -> str:
        return "JSON_OBJECT(" + ", ".join(f"{_mariadb_text(c)}, {row}.{q.quote_identifier(c)}" for c in columns) + ")"

    log = f"INSERT INTO {CHANGE_LOG} (table_name, doc_key, op, row_image) VALUES "
    k = q.quote_identifier(key)
    out = []
    for op in ("ai", "au", "ad"):
        out.append(f"DROP TRIGGER IF EXISTS {q.quote(f'landreg_{op}_{bare}')}")
    out.append(f"CREATE TRIGGER {q.quote(f'landreg_ai_{bare}')} AFTER INSERT ON {name} FOR EACH ROW "
               f"{log}({_mariadb_text(bare)}, NEW.{k}, 'I', {image('NEW')})")  # fmt: skip
    out.append(f"CREATE TRIGGER {q.quote(f'landreg_au_{bare}')} AFTER UPDATE ON {name} FOR EACH ROW BEGIN "
               f"{log}({_mariadb_text(bare)}, NEW.{k}, 'U', {image('NEW')}); "
               f"IF NOT (OLD.{k} <=> NEW.{k}) THEN {log}({_mariadb_text(bare)}, OLD.{k}, 'U', NULL); END IF; END")  # fmt: skip
    out.append(f"CREATE TRIGGER {q.quote(f'landreg_ad_{bare}')} AFTER DELETE ON {name} FOR EACH ROW "
               f"{log}({_mariadb_text(bare)}, OLD.{k}, 'D', {image('OLD')})")  # fmt: skip
    return out


# --- reading -----------------------------------------------------------------------------------------
@dataclass
class Poll:
    keys: set[str] = field(default_factory=set)
    forms: dict[str, set[str]] = field(
        default_factory=dict
    )  # key -> how the change log stored it, where not normalised
    changes: int = 0  # change-log rows (or modified documents) read
    gaps_open: int = 0
    gaps_filled: int = 0
    gaps_expired: int = 0
    oldest_change_at: float | None = None  # epoch seconds of the oldest change read (trigger capture)
    implausible: list[int] = field(default_factory=list)  # change-log numbers the database did not hand out


def has_change_log(legacy: LegacyDatabase) -> bool:
    with legacy.engine.connect() as conn:
        return inspect(conn).has_table(CHANGE_LOG)


class TriggerCursor:
    """The change log read past ``seq``, with the gaps it skipped (seq -> when first missed)."""

    def __init__(self, state: dict[str, Any] | None, *, gap_timeout: float):
        state = state or {}
        self.seq = int(state.get("seq", 0))
        self.gaps: dict[int, float] = {int(k): float(v) for k, v in (state.get("gaps") or {}).items()}
        self.gap_timeout = gap_timeout

    def state(self) -> dict[str, Any]:
        return {"method": "trigger", "seq": self.seq, "gaps": {str(k): v for k, v in sorted(self.gaps.items())}}

    def start(self, legacy: LegacyDatabase) -> None:
        """A new cursor starts at the newest change the database itself numbered."""
        with legacy.engine.connect() as conn:
            top = _numbered_up_to(conn)
            bound = "" if top is None else f" WHERE seq <= {top}"
            self.seq = int(conn.execute(text(f"SELECT COALESCE(MAX(seq), 0) FROM {CHANGE_LOG}{bound}")).scalar_one())

    def poll(self, legacy: LegacyDatabase, now: float | None = None) -> Poll:
        now = time.time() if now is None else now
        out = Poll()
        with legacy.engine.connect() as conn:
            rows = _read(conn, f"seq > {self.seq} ORDER BY seq LIMIT {READ_LIMIT}")
            if self.gaps:
                filled = _read(conn, f"seq IN ({', '.join(str(g) for g in sorted(self.gaps))})")
                for seq, _key, _at in filled:
                    self.gaps.pop(seq, None)
                out.gaps_filled = len(filled)
                rows = filled + rows
            top = _numbered_up_to(conn)  # read after the rows: each row the database numbered is below it
        for seq, raw, at in rows:
            if seq > self.seq and not self._advance(seq, top, out, now):
                continue  # not a change the database recorded: its key is not read either
            key = raw.strip(" ").upper()  # as the reader normalises keys (TRIM, UPPER)
            if key:
                out.keys.add(key)
                if raw != key:
                    out.forms.setdefault(key, set()).add(raw)
            if at is not None and (out.oldest_change_at is None or at < out.oldest_change_at):
                out.oldest_change_at = at
        out.changes = len(rows) - len(out.implausible)
        expired = [g for g, since in self.gaps.items() if now - since > self.gap_timeout]
        for g in expired:
            del self.gaps[g]
        out.gaps_expired, out.gaps_open = len(expired), len(self.gaps)
        return out

    def _advance(self, seq: int, top: int | None, out: Poll, now: float) -> bool:
        """Move the cursor to ``seq`` (a row past it), keeping the numbers skipped on the way as
        gaps; False for a number the database did not hand out, which stays an alarm."""
        jump = seq - self.seq - 1
        if top is not None and seq > top:  # PostgreSQL: above the sequence, so written with an explicit number
            out.implausible.append(seq)
            return False
        if top is None and jump > MAX_JUMP:
            # MariaDB: an explicit number moved AUTO_INCREMENT past it, so what comes later is
            # numbered above it; followed, and reported
            out.implausible.append(seq)
        room = max(0, min(jump, MAX_GAPS - len(self.gaps)))  # bounded, however far the jump
        for missing in range(self.seq + 1, self.seq + 1 + room):
            self.gaps.setdefault(missing, now)
        self.seq = seq
        return True


def _numbered_up_to(conn: Connection) -> int | None:
    """The highest change-log number the database itself has handed out, where that can be told
    from a row written with an explicit number: PostgreSQL's sequence (an explicit number leaves it
    alone). None on MariaDB, whose AUTO_INCREMENT follows an explicit number."""
    if conn.dialect.name != "postgresql":
        return None
    row = conn.execute(text(
        "SELECT has_sequence_privilege(c.oid, 'SELECT, USAGE'), COALESCE(s.last_value, 0) "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "LEFT JOIN pg_sequences s ON s.schemaname = n.nspname AND s.sequencename = c.relname "
        f"WHERE c.oid = pg_get_serial_sequence('{CHANGE_LOG}', 'seq')::regclass"
    )).first()  # fmt: skip
    if row is None or not row[0]:
        raise LegacyDatabaseError(f"landreg's account cannot read how far the sequence of {CHANGE_LOG} has counted: "
                                  "run `landreg legacy install-capture` again (it grants that to every account)")  # fmt: skip
    return int(row[1])


def _read(conn: Connection, where: str) -> list[tuple[int, str, float | None]]:
    sql = f"SELECT seq, doc_key, changed_at FROM {CHANGE_LOG} WHERE {where}"
    out = []
    for seq, key, at in conn.execute(text(sql)):
        out.append(
            (int(seq), str(key) if key is not None else "", at.timestamp() if hasattr(at, "timestamp") else None)
        )
    return out


class WatermarkCursor:
    """The documents' modified column read from a watermark that trails the newest value seen by
    ``lookback`` seconds of wall-clock time (marks: [wall-clock time, newest value then])."""

    def __init__(self, state: dict[str, Any] | None, *, lookback: float):
        state = state or {}
        self.marks: list[list[Any]] = [list(m) for m in state.get("marks", [])]
        self.since: str | None = state.get("since")
        self.lookback = lookback
        self.seen: dict[str, str | None] = {}  # key -> modified value already read, within the window

    def state(self) -> dict[str, Any]:
        return {"method": "watermark", "since": self.since, "marks": self.marks}

    def start(self, legacy: LegacyDatabase, now: float | None = None) -> None:
        """A new cursor starts at the newest value now (the sweep that follows covers the rest)."""
        self.since = legacy.newest_modified()
        self.marks = [[time.time() if now is None else now, self.since]] if self.since else []

    def poll(self, legacy: LegacyDatabase, now: float | None = None) -> Poll:
        now = time.time() if now is None else now
        found, top = legacy.keys_modified_since(self.since)
        if top is not None and (not self.marks or self.marks[-1][1] != top):
            self.marks.append([now, top])
        old = [m for m in self.marks if now - m[0] >= self.lookback]
        if old:  # the newest value seen at least `lookback` ago becomes the watermark
            self.since = max((self.since, old[-1][1]), key=lambda v: (v is not None, v or ""))
            self.marks = [m for m in self.marks if now - m[0] < self.lookback] + [old[-1]]
        # the window is read again on every poll; a document is fetched only when its value moved
        # (a late commit with an older value is new here, so it is fetched)
        fresh = {k for k, mark in found.items() if k not in self.seen or self.seen[k] != mark}
        self.seen = found
        return Poll(keys=fresh, changes=len(fresh))


def cursor_for(method: str, state: dict[str, Any] | None, *, gap_timeout: float,
               lookback: float) -> TriggerCursor | WatermarkCursor:  # fmt: skip
    if state and state.get("method") not in (None, method):
        state = None  # the method changed: start over (the sweep covers the switch)
    return TriggerCursor(state, gap_timeout=gap_timeout) if method == "trigger" else \
        WatermarkCursor(state, lookback=lookback)  # fmt: skip
