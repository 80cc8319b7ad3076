"""Processes that hash records for bulk migration and reconciliation (both cores, one each).

Kept light on imports on purpose: a spawned process imports this module, not the chain or web
stack, so the processes are hashing within a second of starting.
"""

from __future__ import annotations

import multiprocessing
import os
from multiprocessing.pool import Pool
from typing import Any

from hybrid_store.db.engine import Database
from hybrid_store.db.records import StoredRecord, load_records
from hybrid_store.errors import DamagedRecord
from hybrid_store.ledger import Entry, Source

_DB: Database | None = None


def start(url: str, processes: int, *, yield_cpu: bool = False, fork: bool = False) -> Pool:
    """``processes`` hashing processes reading the database at ``url``; with ``yield_cpu`` they run
    at a lower priority, so the process that commits in recording order keeps its core.

    ``fork`` (where the platform has it) starts them as copies of this process, already past its
    imports: only for a caller that has no database connection and no other thread yet."""
    method = "fork" if fork and "fork" in multiprocessing.get_all_start_methods() else "spawn"
    return multiprocessing.get_context(method).Pool(processes, initializer=_init, initargs=(url, yield_cpu))


def _init(url: str, yield_cpu: bool) -> None:
    global _DB
    if yield_cpu:
        os.nice(10)
    _DB = Database(url)


def database() -> Database:
    """This hashing process's database (set when the process started)."""
    assert _DB is not None, "not a hashing process: pass the database"
    return _DB


def prepare_chunk(ids: list[int], db: Database | None = None) -> list[Entry]:
    """For a migration batch: each record's prepared commitment (everything but its history link,
    which the committing process adds in recording order), as ledger entries, in recording order."""
    db = db or database()
    with db.read() as s:
        stored = load_records(s.connection(), ids)
    return [Entry.of(r, Source.MIGRATION) for r in stored]


def recompute_chunk(ids: list[int], db: Database | None = None) -> list[tuple[int, str, bytes]]:
    """For reconciliation: (instrument id, number, commitment recomputed from the rows), the history
    link taken from the stored ``prev`` (which the commitment, and so the chain, covers).

    A record whose rows no longer make a record at all (its stored history link is not a list of
    links, say) is left out: the caller, finding no recomputed commitment, reports it as changed."""
    db = db or database()
    with db.read() as s:
        try:
            stored = load_records(s.connection(), ids)
        except DamagedRecord:  # some record's rows are damaged: read one by one to leave out only those
            stored = [r for iid in ids for r in _readable(s.connection(), iid)]
    return [(r.instrument_id, r.number, r.recompute()) for r in stored]


def _readable(conn: Any, instrument_id: int) -> list[StoredRecord]:
    try:
        return load_records(conn, [instrument_id])
    except DamagedRecord:
        return []
