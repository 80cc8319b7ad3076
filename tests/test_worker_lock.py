"""Exactly one anchoring worker per registry: the lock, on SQLite and PostgreSQL, across processes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hybrid_store.worker_lock import WorkerLock


def test_one_holder_at_a_time(db):
    first, second = WorkerLock(db), WorkerLock(db)
    assert first.acquire() and first.still_held()
    assert not second.acquire()
    first.release()
    assert second.acquire()
    second.release()


@pytest.mark.subprocess
def test_another_process_cannot_take_it(db):
    lock = WorkerLock(db)
    assert lock.acquire()
    try:
        probe = (
            "import sys; from hybrid_store.db.engine import Database; from hybrid_store.worker_lock import WorkerLock;"
            f"sys.exit(0 if WorkerLock(Database({db.url!r})).acquire() else 3)"
        )
        assert subprocess.run([sys.executable, "-c", probe], timeout=60).returncode == 3
    finally:
        lock.release()
    assert subprocess.run([sys.executable, "-c", probe], timeout=60).returncode == 0


def test_one_legacy_follower_per_registry_beside_the_anchoring_worker(db):
    from hybrid_store.worker_lock import follower_lock

    worker, first, second = WorkerLock(db), follower_lock(db), follower_lock(db)
    assert worker.acquire() and first.acquire()  # the two locks are distinct
    assert not second.acquire()
    first.release()
    assert second.acquire()
    second.release()
    worker.release()
