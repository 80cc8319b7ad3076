"""A legacy load on PostgreSQL by COPY, the next chunk read while one is written (issue 25), writes
exactly the rows the plain INSERTs write one chunk after another: the same book, damaged the same
way (numbers given twice, within a chunk and across chunks; records that cannot be read), loaded
both ways into two databases; every table, the quarantine file and the report compared whole, the
ids drawn from the sequences included. (``bench/import_same.py`` compares
a checkout with another the same way, commitments and proofs included.)"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
from collections.abc import Iterator

import pytest
from sqlalchemy import inspect, text

from hybrid_store import filing
from hybrid_store.db import bulk
from hybrid_store.db.engine import Database
from migration_tools.legacy import importer
from migration_tools.legacy.importer import SourceRecord, import_records, synthetic_source
from tests.conftest import NOW, pg_url

pytestmark = pytest.mark.postgres


def damaged(n: int) -> Iterator[SourceRecord]:
    """The synthetic book with every 397th record given again at once, every 601st again 150 records
    later (a number an earlier chunk took), and every 149th unreadable."""
    records = list(synthetic_source(n, 7))
    for i, rec in enumerate(records, start=1):
        if i % 149 == 0:
            yield SourceRecord(where=rec.where, raw=rec.raw, problem="unreadable on purpose", column="12-18")
            continue
        yield rec
        if i % 397 == 0:
            yield SourceRecord(where=f"{rec.where} again", raw=rec.raw, data=rec.data)
        if i > 150 and i % 601 == 0:
            yield SourceRecord(where=f"{records[i - 151].where} later", raw=rec.raw, data=records[i - 151].data)


def seeds():
    counter = itertools.count()
    return lambda: hashlib.sha256(f"seed {next(counter)}".encode()).digest()


def dump(db: Database) -> dict[str, list[str]]:
    with db.engine.connect() as conn:
        return {
            table: sorted(repr(tuple(r)) for r in conn.execute(text(f'SELECT * FROM "{table}"')))
            for table in inspect(conn).get_table_names()
        }


class Quiet:
    """A journal that hears nothing (a load with a journal writes each chunk before reading on)."""

    def loaded(self, session, made) -> None:
        pass

    def quarantined(self, rec, field, reason) -> None:
        pass

    def flush(self) -> None:
        pass


class Frozen(dt.datetime):
    @classmethod
    def now(cls, tz=None):  # type: ignore[override]
        return NOW


def test_copy_writes_the_rows_the_inserts_write(pg_copies, tmp_path, monkeypatch):
    monkeypatch.setattr(importer, "CHUNK", 100)  # 20 chunks: most by COPY, those with a duplicate not
    monkeypatch.setattr(filing, "datetime", Frozen)  # a new parcel's created_at
    copied = []
    real_copy, real_copy_from = bulk.copy_rows, bulk.COPY_FROM

    def spy(conn, tbl, rows):
        copied.append((tbl.name, len(rows)))
        real_copy(conn, tbl, rows)

    monkeypatch.setattr(bulk, "copy_rows", spy)
    loads = {}
    for way, copy_from, journal in (("insert", 10**9, Quiet()), ("copy", real_copy_from, None)):
        monkeypatch.setattr(bulk, "COPY_FROM", copy_from)
        copied.clear()
        name = pg_copies.take()
        db = Database(pg_url(name))
        try:
            report = import_records(db, damaged(2_000), name="damaged", quarantine=tmp_path / f"{way}.csv", now=NOW,
                                    journal=journal, seed=seeds())  # fmt: skip
            loads[way] = (report.to_json() | {"seconds": 0, "quarantine_file": None}, dump(db),
                          (tmp_path / f"{way}.csv").read_bytes())  # fmt: skip
        finally:
            db.dispose()
            pg_copies.give_back(name)
        if way == "insert":
            assert copied == []
        else:  # the instruments and every table of their details went in by COPY
            assert {t for t, _ in copied} >= {"instruments", "instrument_parties", "party_name_keys",
                                              "instrument_terms", "instrument_parcels"}  # fmt: skip
            assert sum(n for t, n in copied if t == "instruments") > 1_000
    (report_i, rows_i, quarantine_i), (report_c, rows_c, quarantine_c) = loads["insert"], loads["copy"]
    assert report_c == report_i
    assert report_i["quarantined"] >= 15 and report_i["loaded"] > 1_900
    assert quarantine_c == quarantine_i
    assert rows_c.keys() == rows_i.keys()
    for table, rows in rows_i.items():
        assert rows_c[table] == rows, table
    assert len(rows_i["instruments"]) == report_i["loaded"] and len(rows_i["instrument_terms"]) > 5 * report_i["loaded"]
