"""One verdict for a proof bundle (and a receipt), shared by ``landreg verify`` and the auditors'
API and web page.

Three outcomes: ``valid`` (the math holds and the anchor was checked on chain against the
registry's pinned trust root), ``invalid`` (with a one-line reason), and ``unchecked`` (the math
holds, but nothing says the root is the registry's: no chain or no trust root was given). Only
``valid`` ever says VALID.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hybrid_store import strict_json
from hybrid_store.core import bundle as bundles
from hybrid_store.core.hashing import to_hex
from hybrid_store.core.trust import TrustRoot
from hybrid_store.errors import ChainError, ChainUnavailable, MalformedBundle, VerificationFailed

VALID, INVALID, UNCHECKED, UNAVAILABLE = "valid", "invalid", "unchecked", "unavailable"


@dataclass(frozen=True)
class Verdict:
    valid: bool
    reason: str  # one line: why not valid, or what was checked
    summary: str = ""
    checked_on_chain: bool = False
    details: dict[str, Any] = field(default_factory=dict)
    unchecked: bool = False  # the math holds, but the anchor was not checked against a trust root
    unavailable: bool = False  # the node did not answer: nothing was concluded about the anchor
    #: a valid record's standing on the chain: current, superseded (by a newer version), deleted_in_legacy
    standing: str = "current"

    @property
    def status(self) -> str:
        if self.valid:
            return VALID
        return UNCHECKED if self.unchecked else UNAVAILABLE if self.unavailable else INVALID

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "valid": self.valid,
            "reason": self.reason,
            "summary": self.summary,
            "checkedOnChain": self.checked_on_chain,
            "standing": self.standing,
            "details": self.details,
        }


def _describe(bundle: bundles.ProofBundle) -> str:
    number = bundle.disclosed("instrument_number") or "(number redacted)"
    doc_type = bundle.disclosed("doc_type") or "type redacted"
    recorded = bundle.disclosed("recorded_at") or "time redacted"
    return f"instrument {number} ({doc_type}, recorded {recorded})"


NO_TRUST = (
    "no trust root: a bundle is only checked against the registry's published trust root "
    "(pass --trust FILE|URL, obtained from the county, or run `landreg trust export` on the registry)"
)


def verify_document(
    document: Any, rpc_url: str | None = None, *, chain: Any = None, trust: TrustRoot | None = None,
    successor: Any = None, successor_of: Callable[[bytes], Any] | None = None,
) -> Verdict:  # fmt: skip
    """Verify a decoded bundle; with a chain (``rpc_url`` or a ``RegistryChain``) and ``trust``, also
    its anchor, pinned to the registry's trust root. Without both it is at best ``unchecked``.
    A record revoked as superseded needs the newer version's bundle to be reported SUPERSEDED: the
    bundle's own ``successor``, else ``successor`` (a decoded bundle the auditor has), else what
    ``successor_of`` (the record's commitment -> a decoded bundle or None) finds."""
    try:
        bundle = bundles.parse(document)
        given = bundles.parse(successor) if successor is not None else None
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
    scheme = bundle.disclosure.scheme
    if trust is not None and not trust.lists_scheme(scheme):
        return Verdict(False, f"commitment scheme {scheme} is not one {trust.describe()} lists: this registry "
                       "did not commit records that way, so the bundle is not its (ask the registry for its "
                       "current trust root if it says otherwise)", summary=what, details=details)  # fmt: skip
    if trust is None or (rpc_url is None and chain is None):
        missing = NO_TRUST if trust is None else "the anchor was not checked on chain (add --rpc URL)"
        return Verdict(
            False,
            f"UNCHECKED: the record's fields, commitment and Merkle proof agree, but {missing}",
            summary=f"{what}: commitment and Merkle proof agree with root {to_hex(offline.root)}; "
            f"the anchor (batch {a.batch_id} of {a.contract} on chain {a.chain_id}) was not checked",
            details=details,
            unchecked=True,
        )
    from hybrid_store.chain.connect import node_at
    from hybrid_store.proofs import verify_anchor

    if chain is None and rpc_url is not None:
        chain = node_at(rpc_url)
    try:
        chain.ensure_reachable()
        on_chain = verify_anchor(bundle, chain, trust, successor_of=_successors(given, successor_of))
    except VerificationFailed as exc:
        return Verdict(False, str(exc), summary=what, checked_on_chain=True, details=details)
    except ChainUnavailable as exc:
        return Verdict(False, f"UNAVAILABLE: the node did not answer, so the anchor was not checked: {exc}",
                       summary=what, details=details, unavailable=True)  # fmt: skip
    except ChainError as exc:
        return Verdict(False, f"cannot check the anchor: {exc}", summary=what, details=details)
    details["confirmations"] = on_chain.confirmations
    if on_chain.moved:
        details["moved"] = on_chain.moved
    details["anchorTime"] = on_chain.block_time
    details["trustRoot"] = {"version": trust.version, "registry": trust.registry_name,
                            "registryVersion": on_chain.registry_version}  # fmt: skip
    plural = "" if on_chain.confirmations == 1 else "s"
    standing = on_chain.standing
    if standing.current:
        reason = (
            f"the record's proof verifies and its root is anchored in {trust.registry_name}'s registry and not revoked"
        )
        state = "not revoked"
    else:  # still a valid record of the registry, but never to be taken as the current one
        details["standing"] = {"kind": standing.kind, "atBlock": standing.at_block,
                               "successorCommitmentPrefix": to_hex(standing.successor) if standing.successor else None}  # fmt: skip
        shown = ""
        if on_chain.successor is not None:  # verify_anchor says superseded only with the successor shown
            commitment, number = on_chain.successor
            details["standing"].update(successorCommitment=to_hex(commitment), successorNumber=number)
            shown = (f" (instrument {number or '(number redacted)'}, whose anchored bundle verifies and whose history "
                     "link names this record on each of its parcels)")  # fmt: skip
        reason = (
            f"VALID, {'SUPERSEDED' if standing.kind == 'superseded' else 'NOT CURRENT'}: the record's proof "
            f"verifies and is anchored in {trust.registry_name}'s registry, but it was {standing.describe()}{shown}"
        )
        state = f"NOT CURRENT: {standing.describe()}"
    return Verdict(
        True,
        reason,
        summary=f"{what} is anchored as batch {on_chain.batch_id} of {a.contract} on chain {a.chain_id} "
        f"(tx {on_chain.tx_hash}, block {on_chain.block_number}, {on_chain.confirmations} confirmation{plural}); "
        f"{state}; pinned to trust root v{trust.version} of {trust.registry_name}"
        + (f" (note: {on_chain.moved})" if on_chain.moved else ""),
        checked_on_chain=True,
        details=details,
        standing=standing.kind,
    )


def _successors(given: bundles.ProofBundle | None, lookup: Callable[[bytes], Any] | None) -> Any:
    """The ``successor_of`` of ``verify_anchor``: the bundle the auditor gave, else the lookup's
    (a lookup's document that does not parse is no evidence)."""

    def successor_of(commitment: bytes) -> bundles.ProofBundle | None:
        if given is not None or lookup is None:
            return given
        found = lookup(commitment)
        try:
            return bundles.parse(found) if found is not None else None
        except MalformedBundle:
            return None

    return successor_of


def verify_file(
    path: Path, rpc_url: str | None = None, *, trust: TrustRoot | None = None, successor: Path | None = None
) -> Verdict:
    try:
        raw = strict_json.read_file(path, max_bytes=bundles.MAX_BUNDLE_BYTES)
        newer = strict_json.read_file(successor, max_bytes=bundles.MAX_BUNDLE_BYTES) if successor is not None else None
    except OSError as exc:
        return Verdict(False, f"cannot read {exc.filename or path}: {exc.strerror}")
    except strict_json.InvalidJSON as exc:
        return Verdict(False, f"malformed bundle: (bundle): {exc}")
    return verify_bytes(raw, rpc_url, trust=trust, successor=newer)


def verify_bytes(
    raw: bytes, rpc_url: str | None = None, *, chain: Any = None, trust: TrustRoot | None = None,
    successor: bytes | None = None,
) -> Verdict:  # fmt: skip
    try:  # bounded in size and depth before any parser runs
        document = strict_json.loads(raw, max_bytes=bundles.MAX_BUNDLE_BYTES)
    except strict_json.InvalidJSON as exc:
        return Verdict(False, f"malformed bundle: (bundle): {exc}")
    try:
        newer = strict_json.loads(successor, max_bytes=bundles.MAX_BUNDLE_BYTES) if successor is not None else None
    except strict_json.InvalidJSON as exc:
        return Verdict(False, f"malformed bundle: (the newer version's bundle): {exc}")
    return verify_document(document, rpc_url, chain=chain, trust=trust, successor=newer)


# --- receipts ----------------------------------------------------------------------------------------
_RECEIPT_FIELDS = {"instrumentNumber": "instrument_number", "book": "book", "page": "page", "docType": "doc_type",
                   "recordedAt": "recorded_at", "documentDigest": "document_digest",
                   # a v2 record's receipt names these too (a v1 bundle discloses none of them)
                   "documentDate": "document_date", "pageCount": "page_count",
                   "granteeMailingAddress": "grantee_mailing_address", "preparer": "preparer",
                   "references": "references"}  # fmt: skip


def verify_receipt(
    receipt: Any, bundle_document: Any, rpc_url: str | None = None, *, chain: Any = None,
    trust: TrustRoot | None = None,
) -> Verdict:  # fmt: skip
    """A receipt proves something only together with its record's anchor: the signing key must be a
    receipt key of the pinned trust root, not compromised, and the record must have been anchored
    (the bundle verifies VALID) no later than the key's window closed, plus the trust root's grace."""
    if trust is None:
        return Verdict(False, NO_TRUST)
    signed = _signing_key(receipt, trust)
    if isinstance(signed, Verdict):
        return signed
    kid, key = signed
    verdict = verify_document(bundle_document, rpc_url, chain=chain, trust=trust)
    if not verdict.valid:
        return Verdict(False, f"the receipt's record does not verify: {verdict.reason}", unchecked=verdict.unchecked,
                       unavailable=verdict.unavailable)  # fmt: skip
    mismatch = _receipt_mismatch(receipt, bundle_document, verdict)
    if mismatch:
        return Verdict(False, mismatch)
    anchored = datetime.fromtimestamp(verdict.details["anchorTime"], UTC)
    if key.valid_until is not None and anchored > key.valid_until + timedelta(seconds=trust.receipt_anchor_grace_s):
        return Verdict(
            False,
            f"the receipt is signed by {kid}, retired at {key.valid_until:%Y-%m-%d %H:%M:%S}Z, but its record "
            f"was anchored at {anchored:%Y-%m-%d %H:%M:%S}Z, after the key's window closed "
            f"(+{trust.receipt_anchor_grace_s} s grace): a retired key cannot vouch for later records",
        )
    return Verdict(
        True,
        f"the receipt is signed by {kid} ({key.status}) and its record is anchored within the key's window",
        summary=f"receipt of {receipt.get('instrumentNumber')} signed by {kid}; {verdict.summary}",
        checked_on_chain=True,
        details={**verdict.details, "kid": kid, "keyStatus": key.status},
    )


def _signing_key(receipt: Any, trust: TrustRoot) -> tuple[str, Any] | Verdict:
    """(kid, key) of a well-formed receipt whose signature holds under a key the trust root lists
    and does not mark compromised; else the INVALID verdict saying why."""
    from cryptography.exceptions import InvalidSignature

    from hybrid_store.core.trust import unb64url
    from registry_service.receipts import FORMAT, FORMATS, signed_bytes

    if not isinstance(receipt, dict) or receipt.get("format") not in FORMATS:
        return Verdict(False, f"not a {' or '.join(FORMATS)} receipt")
    if receipt["format"] == FORMAT and not (isinstance(receipt.get("flags"), list) and "fees" in receipt):
        return Verdict(False, f"a {FORMAT} receipt names its flags and its fees (null when none); this one does not")
    signature = receipt.get("signature")
    if (
        not isinstance(signature, dict)
        or signature.get("alg") != "Ed25519"
        or not isinstance(signature.get("kid"), str)
    ):
        return Verdict(False, "the receipt has no Ed25519 signature")
    kid = signature["kid"]
    key = trust.receipt_key(kid)
    if key is None:
        return Verdict(False, f"the receipt is signed by {kid}, which is not a receipt key of {trust.describe()}")
    if key.status == "compromised":
        return Verdict(False, f"the receipt is signed by {kid}, which {trust.describe()} marks compromised")
    try:
        key.public_key().verify(unb64url(str(signature.get("value", ""))), signed_bytes(receipt))
    except (InvalidSignature, ValueError, TypeError):
        return Verdict(False, "the receipt's signature does not match it (altered, or signed by another key)")
    return kid, key


def _receipt_mismatch(receipt: dict[str, Any], bundle_document: Any, verdict: Verdict) -> str:
    """Why the receipt is not about the bundle's record ("" when it is)."""
    if verdict.details["commitment"] != receipt.get("commitment"):
        return "the receipt's commitment is not the bundle's: they are about different records"
    bundle = bundles.parse(bundle_document)
    for receipt_name, field_name in _RECEIPT_FIELDS.items():
        disclosed = bundle.disclosed(field_name)
        if disclosed is not None and disclosed != receipt.get(receipt_name):
            return f"the receipt's {receipt_name} is {receipt.get(receipt_name)!r}, the record's is {disclosed!r}"
    return ""
