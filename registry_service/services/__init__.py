"""The registry's use cases, one service each: filing, queries, proofs, status. They speak in
results and typed errors; permissions and HTTP status codes live at the edge (``deps``, ``api``,
``web``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hybrid_store.chain.client import RegistryChain
from hybrid_store.db.engine import Database
from hybrid_store.settings import Settings
from registry_service.chain_probe import ChainProbe
from registry_service.receipts import ReceiptSigner
from registry_service.services.filing import Filed, Filing, IdempotencyMismatch
from registry_service.services.proofs import Proofs
from registry_service.services.queries import Queries
from registry_service.services.queues import Queues
from registry_service.services.status import Status
from registry_service.services.submissions import Submissions


@dataclass(frozen=True)
class Services:
    filing: Filing
    queries: Queries
    proofs: Proofs
    status: Status
    settings: Settings
    submissions: Submissions
    queues: Queues

    @classmethod
    def build(cls, settings: Settings, db: Database, signer: ReceiptSigner,
              read_chain: Callable[[], RegistryChain]) -> Services:  # fmt: skip
        filing = Filing(settings, db, signer)
        return cls(filing, Queries(settings, db), Proofs(settings, db, read_chain),
                   Status(settings, db, ChainProbe(read_chain, settings.service.chain_probe_s)), settings,
                   Submissions(settings, db, filing), Queues(settings, db))  # fmt: skip


__all__ = ["Filed", "Filing", "IdempotencyMismatch", "Proofs", "Queries", "Queues", "Services", "Status", "Submissions"]
