"""The consensus-critical core: canonical encoding, commitments, Merkle trees, proof bundles.

Everything here is pure (no database, network, chain or file access) and deterministic. Changing the
output of any function in this package invalidates every proof already handed to an auditor; such a
change needs a new scheme version (see docs/commitment-spec.md), never an edit in place.
"""
