"""Signed filing receipts, as a verifier reads them (format ``landreg-receipt/v2``; ``/v1``
receipts keep verifying).

The signature covers the RFC 8785 canonical JSON of the receipt without its ``signature`` member
(``signed_bytes``). A receipt proves something only together with its record's anchor
(``verify_receipt``): the signing key must be a receipt key of the pinned trust root, not
compromised, and the record must have been anchored no later than the key's window closed, plus the
trust root's grace. ``check_signature`` is the signature alone, against a published key set. The
signer, which reads the registry's keys from its database, is ``registry_service.receipts``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from hybrid_store.core import bundle as bundles
from hybrid_store.core.trust import KeyEntry, TrustRoot, unb64url
from hybrid_store.verifier.anchor import DEFAULT_DEPTH
from hybrid_store.verifier.reader import ChainReader
from hybrid_store.verifier.verdicts import NO_TRUST, Verdict, verify_document

FORMAT_V1 = "landreg-receipt/v1"
FORMAT = "landreg-receipt/v2"  # what new receipts are signed as
#: every receipt format whose receipts exist: a verifier takes each
FORMATS = (FORMAT_V1, FORMAT)


def signed_bytes(receipt: dict[str, Any]) -> bytes:
    """What a receipt's signature covers: the receipt without its signature, RFC 8785 canonical."""
    return rfc8785.dumps({k: v for k, v in receipt.items() if k != "signature"})


def _signature_of(receipt: Any) -> dict[str, Any] | str:
    """A receipt's well-formed Ed25519 signature member, or why it has none."""
    if not isinstance(receipt, dict) or receipt.get("format") not in FORMATS:
        return f"not a {' or '.join(FORMATS)} receipt"
    signature = receipt.get("signature")
    if (
        not isinstance(signature, dict)
        or signature.get("alg") != "Ed25519"
        or not isinstance(signature.get("kid"), str)
    ):
        return "the receipt has no Ed25519 signature"
    return signature


def _holds(public: Ed25519PublicKey, receipt: dict[str, Any], signature: dict[str, Any]) -> bool:
    try:
        public.verify(unb64url(str(signature.get("value", ""))), signed_bytes(receipt))
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def check_signature(receipt: dict[str, Any], jwks: dict[str, Any]) -> tuple[bool, str]:
    """Check a receipt's signature against a published key set. Returns (valid, reason). This is the
    signature alone; ``verify_receipt`` also checks the key's window against the record's anchor,
    pinned to the trust root."""
    signature = _signature_of(receipt)
    if isinstance(signature, str):
        return False, signature
    key = next((k for k in jwks.get("keys", []) if k.get("kid") == signature["kid"]), None)
    if key is None:
        return False, f"no published key {signature['kid']!r}"
    if key.get("status") == "compromised":
        return False, f"signed by key {signature['kid']}, which the registry marked compromised"
    try:
        public = Ed25519PublicKey.from_public_bytes(unb64url(str(key["x"])))
    except (ValueError, KeyError, TypeError):
        return False, f"the published key {signature['kid']!r} is not an Ed25519 public key"
    if not _holds(public, receipt, signature):
        return False, "the signature does not match the receipt (it was altered, or signed by another key)"
    return True, f"signed by {signature['kid']}"


_RECEIPT_FIELDS = {"instrumentNumber": "instrument_number", "book": "book", "page": "page", "docType": "doc_type",
                   "recordedAt": "recorded_at", "documentDigest": "document_digest",
                   # a v2 record's receipt names these too (a v1 bundle discloses none of them)
                   "documentDate": "document_date", "pageCount": "page_count",
                   "granteeMailingAddress": "grantee_mailing_address", "preparer": "preparer",
                   "references": "references"}  # fmt: skip


def verify_receipt(
    receipt: Any, bundle_document: Any, rpc_url: str | None = None, *, chain: ChainReader | None = None,
    trust: TrustRoot | None = None, depth: int = DEFAULT_DEPTH,
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
    verdict = verify_document(bundle_document, rpc_url, chain=chain, trust=trust, depth=depth)
    if not verdict.valid:
        return Verdict(False, f"the receipt's record does not verify: {verdict.reason}", unchecked=verdict.unchecked,
                       unavailable=verdict.unavailable, pending=verdict.pending)  # fmt: skip
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


def _signing_key(receipt: Any, trust: TrustRoot) -> tuple[str, KeyEntry] | Verdict:
    """(kid, key) of a well-formed receipt whose signature holds under a key the trust root lists
    and does not mark compromised; else the INVALID verdict saying why."""
    signature = _signature_of(receipt)
    if isinstance(signature, str):
        return Verdict(False, signature)
    if receipt["format"] == FORMAT and not (isinstance(receipt.get("flags"), list) and "fees" in receipt):
        return Verdict(False, f"a {FORMAT} receipt names its flags and its fees (null when none); this one does not")
    kid = signature["kid"]
    key = trust.receipt_key(kid)
    if key is None:
        return Verdict(False, f"the receipt is signed by {kid}, which is not a receipt key of {trust.describe()}")
    if key.status == "compromised":
        return Verdict(False, f"the receipt is signed by {kid}, which {trust.describe()} marks compromised")
    if not _holds(key.public_key(), receipt, signature):
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
