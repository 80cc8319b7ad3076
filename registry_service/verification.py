"""One verdict for a proof bundle, shared by ``landreg verify`` and the auditors' API and web page."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hybrid_store.core import bundle as bundles
from hybrid_store.core.hashing import to_hex
from hybrid_store.errors import ChainError, MalformedBundle, VerificationFailed


@dataclass(frozen=True)
class Verdict:
    valid: bool
    reason: str  # one line: why not valid, or what was checked
    summary: str = ""
    checked_on_chain: bool = False
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "reason": self.reason,
            "summary": self.summary,
            "checkedOnChain": self.checked_on_chain,
            "details": self.details,
        }


def _describe(bundle: bundles.ProofBundle) -> str:
    number = bundle.disclosed("instrument_number") or "(number redacted)"
    doc_type = bundle.disclosed("doc_type") or "type redacted"
    recorded = bundle.disclosed("recorded_at") or "time redacted"
    return f"instrument {number} ({doc_type}, recorded {recorded})"


def verify_document(document: Any, rpc_url: str | None = None, *, chain: Any = None) -> Verdict:
    """Verify a decoded bundle; with ``rpc_url`` (or a ``RegistryChain``) also its anchor on that chain."""
    try:
        bundle = bundles.parse(document)
    except MalformedBundle as exc:
        return Verdict(False, str(exc), details={"field": exc.field})
    what = _describe(bundle)
    try:
        offline = bundles.verify_offline(bundle)
    except VerificationFailed as exc:
        return Verdict(False, str(exc), summary=what, details={"expected": exc.expected, "computed": exc.computed})
    details: dict[str, Any] = {
        "commitment": to_hex(offline.commitment),
        "leaf": to_hex(offline.leaf),
        "root": to_hex(offline.root),
    }
    assert bundle.anchor is not None
    a = bundle.anchor
    details["anchor"] = {"chainId": a.chain_id, "contract": a.contract, "batchId": a.batch_id,
                         "txHash": a.tx_hash, "blockNumber": a.block_number}  # fmt: skip
    if rpc_url is None and chain is None:
        return Verdict(
            True,
            "the record's fields, commitment and Merkle proof agree (offline check)",
            summary=f"{what}: commitment and Merkle proof verified offline against root {to_hex(offline.root)}; "
            f"anchor not checked (add --rpc URL to check batch {a.batch_id} of {a.contract} on chain {a.chain_id})",
            details=details,
        )
    from hybrid_store.chain.client import RegistryChain
    from hybrid_store.chain.connect import http_web3
    from hybrid_store.proofs import verify_anchor

    if chain is None:
        chain = RegistryChain(http_web3(rpc_url), description=f"the node at {rpc_url}")
    try:
        chain.ensure_reachable()
        on_chain = verify_anchor(bundle, chain)
    except VerificationFailed as exc:
        return Verdict(False, str(exc), summary=what, checked_on_chain=True, details=details)
    except ChainError as exc:
        return Verdict(False, f"cannot check the anchor: {exc}", summary=what, details=details)
    details["confirmations"] = on_chain.confirmations
    plural = "" if on_chain.confirmations == 1 else "s"
    return Verdict(
        True,
        "the record's proof verifies and its root is anchored and not revoked",
        summary=f"{what} is anchored as batch {a.batch_id} of {a.contract} on chain {a.chain_id} "
        f"(tx {a.tx_hash}, block {a.block_number}, {on_chain.confirmations} confirmation{plural}); not revoked",
        checked_on_chain=True,
        details=details,
    )


def verify_file(path: Path, rpc_url: str | None = None) -> Verdict:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return Verdict(False, f"cannot read {path}: {exc.strerror}")
    return verify_bytes(raw, rpc_url)


def verify_bytes(raw: bytes, rpc_url: str | None = None) -> Verdict:
    if len(raw) > bundles.MAX_BUNDLE_BYTES:
        return Verdict(False, f"malformed bundle: (bundle): larger than {bundles.MAX_BUNDLE_BYTES} bytes")
    try:
        document = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant, object_pairs_hook=_unique_keys)
    except UnicodeDecodeError as exc:
        return Verdict(False, f"malformed bundle: (bundle): not UTF-8 text (byte {exc.start})")
    except (json.JSONDecodeError, ValueError) as exc:
        return Verdict(False, f"malformed bundle: (bundle): not JSON ({exc})")
    return verify_document(document, rpc_url)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A member given twice would let two readers see two different bundles: refuse it."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"member {key!r} appears twice")
        out[key] = value
    return out


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")
