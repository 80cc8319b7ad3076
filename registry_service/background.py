"""The anchoring worker running beside the HTTP server (``landreg serve``'s default).

Every server process starts one of these; the ``WorkerLock`` lets exactly one of them anchor.
Shutdown is graceful: the stop flag is checked between steps, so the batch in hand is finished
(or, if the process is killed instead, recovered by the next worker: see hybrid_store.anchoring).
"""

from __future__ import annotations

import logging
import threading

from hybrid_store.anchoring import Anchorer
from hybrid_store.batches import open_hold
from hybrid_store.chain.connect import open_chain
from hybrid_store.db.engine import Database
from hybrid_store.db.models import FailureKind
from hybrid_store.errors import ChainMismatch, ChainReset
from hybrid_store.settings import Settings
from hybrid_store.trust import attach_published
from hybrid_store.worker_lock import WorkerLock

log = logging.getLogger(__name__)

RETRY_S = 2.0


class BackgroundAnchorer:
    def __init__(self, settings: Settings, db: Database, chain_factory=None):
        self.settings = settings
        self.db = db
        self.chain_factory = chain_factory or (lambda: open_chain(settings))
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._main, name="anchoring-worker", daemon=True)
        self.lock = WorkerLock(db)
        self.active = False  # this process holds the lock and anchors

    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        self.stop_event.set()
        self.thread.join(timeout)
        if self.thread.is_alive():
            log.warning(
                "the anchoring worker did not stop within %.0f s; its batch is recovered at next start", timeout
            )

    def _main(self) -> None:
        # nothing may end this thread but stop(): a database that restarts (and takes the lock's
        # session with it) or a node that goes away is waited out and retried
        while not self.stop_event.is_set():
            try:
                got = not self.lock.handover_requested() and self.lock.acquire()
            except Exception:
                log.warning("anchoring worker: cannot take the lock (database unreachable?); retrying", exc_info=True)
                got = False
            if not got:
                self.stop_event.wait(RETRY_S)  # another process anchors; stand by in case it stops
                continue
            self.active = True
            try:
                chain = self.chain_factory()
                deployment = attach_published(self.settings, self.db, chain)
                anchorer = Anchorer.from_settings(self.db, chain, deployment, self.settings)
                anchorer.run(
                    self.stop_event, keep_going=lambda: self.lock.still_held() and not self.lock.handover_requested()
                )
            except ChainReset as exc:  # the node answers as another chain: held (and shown) until it is ours again
                open_hold(self.db, FailureKind.CHAIN_RESET, str(exc))
                self.stop_event.wait(self.settings.chain.identity_check_s)
            except ChainMismatch as exc:
                log.error("anchoring stopped: %s", exc)
                self.stop_event.wait(RETRY_S * 15)
            except Exception:
                log.exception("anchoring worker failed; retrying")
                self.stop_event.wait(RETRY_S)
            finally:
                self.active = False
                self.lock.release()
