"""The verifier: everything an auditor runs to check what the registry hands out, in one package.

It is the project's trust boundary, so it stands alone (as transparency-dev/merkle's ``proof``
package and python-opentimestamps' ``verify_*`` methods do): it imports the pure core
(``hybrid_store.core``), the strict JSON reader and the typed errors, and nothing that reads the
registry's database, serves HTTP or is part of ``registry_service``. The chain is reached through
``reader.ChainReader``, a small read-only protocol that ``hybrid_store.chain.client.RegistryChain``
satisfies; the web3 adapter is imported lazily, only when a verdict is asked of a node by URL.
``tests/test_architecture.py`` keeps it so (a fresh interpreter importing it loads none of them).

* ``anchor``      - the on-chain half: network, contract, anchoring transaction, batch, revocation,
                    supersession, confirmation depth;
* ``corrections`` - "corrected by N", shown by the correction's own anchored bundle;
* ``disclosed``   - which fields a bundle verified (with their values and units) and which it withheld;
* ``verdicts``    - one verdict for a bundle (VALID, INVALID, UNCHECKED, UNAVAILABLE, PENDING) and
                    its standing;
* ``abstracts``   - a parcel's title abstract and head proof: COMPLETE, COMPLETE AS OF BATCH M,
                    STALE, PENDING or INVALID, with the owners and encumbrances derived
                    (``hybrid_store.core.abstract``);
* ``receipts``    - the receipt format, the bytes a receipt's signature covers, and its checks;
* ``trust``       - a trust root read from the auditor's pinned file or a URL, and its updates;
* ``reader``      - ``ChainReader``, the reads the checks make of a chain;
* ``bulk``        - many bundles at once (a folder, JSON lines): each in full, what is shared once;
* ``remembered``  - a ``ChainReader`` that reads each batch's anchor once per run.
"""
