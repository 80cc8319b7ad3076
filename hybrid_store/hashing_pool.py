"""Processes that hash records for bulk migration and reconciliation (both cores, one each).

Kept light on imports on purpose: a spawned process imports this module, not the chain or web
stack, so the processes are hashing within a second of starting.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from multiprocessing.pool import Pool

from hybrid_store.committing import Committable, driver_rows, ids_clause, ids_param, load_pending
from hybrid_store.core import commitment as commitments
from hybrid_store.db.engine import Database

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


def hash_chunk(ids: list[int], db: Database | None = None) -> tuple[list[Committable], list[list[bytes]]]:
    """For a migration batch: the records' history-free field hashes, and what committing needs
    of each record (slim: the records themselves are not sent back)."""
    db = db or database()
    with db.read() as s:
        items = load_pending(s, ids)
    return [p.slim() for p in items], [commitments.hashes_before_history(p.record, p.seed) for p in items]


def recompute_chunk(ids: list[int], db: Database | None = None) -> list[tuple[int, str, bytes]]:
    """For reconciliation: (instrument id, number, commitment recomputed from the rows), the history
    link taken from the stored ``prev`` (which the commitment, and so the chain, covers)."""
    db = db or database()
    with db.read() as s:
        items = load_pending(s, ids)
        conn = s.connection()
        sql = "SELECT instrument_id, prev FROM commitments WHERE " + ids_clause(conn)("instrument_id")
        prev = dict(driver_rows(conn, sql, ids_param(conn, ids)))
    out = []
    for p in items:
        stored = prev.get(p.instrument_id)
        if isinstance(stored, str):  # SQLite hands JSON back as text
            stored = json.loads(stored)
        links = [[key, c] for key, _, c in (stored or [])]
        out.append((p.instrument_id, p.record.instrument_number, commitments.commit_linked(p.record, p.seed, links)))
    return out
