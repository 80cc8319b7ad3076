"""Is the node still the registry's chain? The anchoring worker asks before it acts on what the node
says.

A node may be reset or replaced under a running worker (restarted from empty state, another chain
behind the same URL). Such a node answers, and its answers are wrong for this registry: its missing
blocks look like a reorganisation and its empty pool like a transaction to send again. So the worker
checks the node's identity (chain id, genesis, the contract's code at the pinned address) every
``check_s`` seconds, after every failed step, and before it demotes any batch; a node that is not the
registry's chain holds anchoring (``chain_reset``) until it is again. A node that does not answer is
no evidence either way: ``ChainUnavailable`` passes through.
"""

from __future__ import annotations

import logging
import time

from hybrid_store.batches import clear_hold, open_hold
from hybrid_store.chain.port import ChainPort
from hybrid_store.db.engine import Database
from hybrid_store.db.models import ChainDeployment, FailureKind
from hybrid_store.deployment import identity_problems
from hybrid_store.errors import ChainReset

log = logging.getLogger(__name__)


class ChainIdentity:
    def __init__(self, db: Database, chain: ChainPort, deployment: ChainDeployment, check_s: float):
        self.db = db
        self.chain = chain
        self.deployment = deployment
        self.check_s = check_s
        self._due = 0.0  # when it is checked next (0: at the next step)
        #: steps failed in a row: one count, logged; the worker's next step is the only retry
        self.failures = 0

    def check_if_due(self) -> None:
        if time.monotonic() >= self._due:
            self.verify()

    def failed(self, exc: Exception | None = None) -> None:
        """After a failed step (``exc``: why; counted and logged): whatever answers next is checked first."""
        self._due = 0.0
        if exc is not None:
            self.failures += 1
            log.error("anchoring step failed (%d in a row): %s", self.failures, exc)

    def verify(self) -> None:
        """Hold anchoring (``chain_reset``) and raise ``ChainReset`` unless the node is the registry's
        chain; clear that hold when it is."""
        problems = identity_problems(self.chain, self.deployment)
        if problems:
            self._due = 0.0
            reason = f"{self.chain.description} is not the registry's chain: {'; '.join(problems)}"
            open_hold(self.db, FailureKind.CHAIN_RESET, reason)
            raise ChainReset(reason)
        self._due = time.monotonic() + self.check_s
        if clear_hold(self.db, FailureKind.CHAIN_RESET, "the worker: the node is the registry's chain again"):
            log.warning("anchoring resumes: the node is the registry's chain again")
