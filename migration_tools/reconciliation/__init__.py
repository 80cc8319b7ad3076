"""Parallel-run reconciliation: do the deed database and the chain agree, record by record?

``run`` is the reconciliation and its named checks; ``recompute`` recomputes one batch's records in
the hashing processes (kept light on imports, as they are); ``audit_log`` checks the audit log's
hash chain against the heads anchored on chain; ``reports`` writes the HTML, JSON and CSV reports.
This package file imports nothing, so the hashing processes load only what they use.
"""
