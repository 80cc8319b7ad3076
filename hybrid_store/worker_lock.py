"""Exactly one anchoring worker per registry, however many server processes run.

PostgreSQL: a session-level advisory lock held on a dedicated connection (released by the server
if the process dies). SQLite: an exclusive ``flock`` on a file beside the database (released by the
kernel if the process dies). Both are non-blocking: a process that does not get the lock serves
HTTP requests only, and tries again later.

A migration run needs the lock too (it sends its own batches, and the filings' between them). It
asks for a *handover*; the running worker finishes its step, releases the lock and stands by until
the migration is done.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from typing import Any

from sqlalchemy import select, text, update

from hybrid_store.db.engine import Database, rows_affected
from hybrid_store.db.models import Counter

log = logging.getLogger(__name__)

ADVISORY_KEY = 0x6C616E6472656701  # "landreg" + 1: the anchoring worker's lock
FOLLOWER_KEY = 0x6C616E6472656702  # "landreg" + 2: the legacy follower's lock


HANDOVER = "anchoring_handover"  # a counters row: non-zero while a migration waits for the lock
HANDOVER_CHECK_S = 1.0


class WorkerLock:
    """The anchoring worker's lock; ``name`` and ``key`` make another one-per-registry lock (the
    legacy follower's, ``follower_lock``)."""

    def __init__(self, db: Database, *, name: str = "anchoring", key: int = ADVISORY_KEY):
        self.db = db
        self.name = name
        self.key = key
        self._conn: Any = None
        self._fd: int | None = None
        self._checked_at = 0.0
        self._requested = False

    @property
    def held(self) -> bool:
        return self._conn is not None or self._fd is not None

    def acquire(self) -> bool:
        if self.held:
            return True
        if self.db.dialect == "postgresql":
            conn = self.db.engine.connect()
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar()
            conn.commit()
            if got:
                self._conn = conn
            else:
                conn.close()
            return bool(got)
        path = self._lock_path()
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def still_held(self) -> bool:
        """False if the PostgreSQL session carrying the lock was lost (the lock went with it)."""
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT 1"))
                self._conn.commit()
            except Exception:
                log.warning("lost the database session that held the anchoring lock")
                self._conn = None
                return False
        return self.held

    def release(self) -> None:
        """Never raises: when the session holding the lock is gone (a database restart), the
        server released the lock with it, and there is nothing left to unlock."""
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
                self._conn.commit()
            except Exception:
                log.warning("the session holding the anchoring lock is gone; the lock went with it")
            finally:
                with contextlib.suppress(Exception):  # a dead connection may fail to close; it is gone anyway
                    self._conn.close()
                self._conn = None
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    # --- handover: a migration run asks the running anchoring worker for the lock -----------------
    def request_handover(self) -> None:
        self._set_handover(int(time.time()))

    def clear_handover(self) -> None:
        self._set_handover(0)

    def handover_requested(self) -> bool:
        """Whether someone waits for the lock (checked at most once a second)."""
        now = time.monotonic()
        if now - self._checked_at >= HANDOVER_CHECK_S:
            with self.db.read() as s:
                self._requested = bool(s.scalar(select(Counter.value).where(Counter.name == HANDOVER)))
            self._checked_at = now
        return self._requested

    def _set_handover(self, value: int) -> None:
        with self.db.write() as s:
            done = rows_affected(s.execute(update(Counter).where(Counter.name == HANDOVER).values(value=value)))
            if not done:
                s.add(Counter(name=HANDOVER, value=value))
        self._checked_at = 0.0

    def _lock_path(self) -> str:
        database = self.db.engine.url.database or "landreg"
        return f"{database}.{self.name}.lock"


def follower_lock(db: Database) -> WorkerLock:
    """One ``legacy sync --follow`` per registry: two would race to record the same new version."""
    return WorkerLock(db, name="follower", key=FOLLOWER_KEY)
