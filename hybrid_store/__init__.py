"""landreg's hybrid store: the authoritative deed database plus its on-chain anchors.

Layers, inside out:

* ``hybrid_store.core``  - pure, consensus-critical code: canonical encoding, commitments,
  Merkle trees and proof bundles. No I/O.
* ``hybrid_store.db``    - the deed database (SQLAlchemy models, Alembic migrations, writes).
* ``hybrid_store.chain`` - the DeedRegistry contract and the chain adapters (eth-tester, anvil, JSON-RPC).
* ``hybrid_store.anchoring`` / ``hybrid_store.proofs`` - the outbox worker and the proof exporter
  that tie the two together.
* ``hybrid_store.verifier`` - everything an auditor runs (anchor check, verdicts, receipts), standing
  alone: it imports the core and nothing that reads the database.
"""

__version__ = "0.1.0"
