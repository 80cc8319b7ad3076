"""Signed filing receipts (format ``landreg-receipt/v1``).

The registry signs each receipt with an Ed25519 key; the public key is published as a JWK set at
``/.well-known/landreg-receipt-keys.json``, so a filer or a court can check a receipt offline,
years later, with any Ed25519 implementation. The signature covers the RFC 8785 canonical JSON of
the receipt without its ``signature`` member. It covers the facts fixed at filing (number, book,
page, time, commitment, ...), not the anchoring status, which changes afterwards.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from hybrid_store.files import create_once

FORMAT = "landreg-receipt/v1"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def signed_bytes(receipt: dict[str, Any]) -> bytes:
    return rfc8785.dumps({k: v for k, v in receipt.items() if k != "signature"})


class ReceiptSigner:
    def __init__(self, key: Ed25519PrivateKey):
        self._key = key
        raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.public_raw = raw
        self.kid = "ed25519-" + hashlib.sha256(raw).hexdigest()[:16]

    @classmethod
    def load_or_create(cls, path: Path) -> ReceiptSigner:
        """Load the PEM key at ``path``, creating it (mode 0600) the first time. Safe when several
        server processes start at once: one creates the file, the others read it."""
        pem = create_once(
            path,
            Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
        )
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path} is not an Ed25519 private key")
        return cls(key)

    def sign(self, receipt: dict[str, Any]) -> dict[str, Any]:
        body = {k: v for k, v in receipt.items() if k != "signature"}
        value = self._key.sign(signed_bytes(body))
        return {**body, "signature": {"alg": "Ed25519", "kid": self.kid, "value": _b64url(value)}}

    def jwks(self) -> dict[str, Any]:
        return {
            "keys": [
                {"kty": "OKP", "crv": "Ed25519", "x": _b64url(self.public_raw), "kid": self.kid, "use": "sig",
                 "alg": "EdDSA"}
            ]
        }  # fmt: skip


def verify_receipt(receipt: dict[str, Any], jwks: dict[str, Any]) -> tuple[bool, str]:
    """Check a receipt against a published key set. Returns (valid, reason)."""
    signature = receipt.get("signature")
    if not isinstance(signature, dict) or signature.get("alg") != "Ed25519":
        return False, "the receipt has no Ed25519 signature"
    if receipt.get("format") != FORMAT:
        return False, f"not a {FORMAT} receipt"
    key = next((k for k in jwks.get("keys", []) if k.get("kid") == signature.get("kid")), None)
    if key is None:
        return False, f"no published key {signature.get('kid')!r}"
    try:
        public = Ed25519PublicKey.from_public_bytes(_unb64url(key["x"]))
        public.verify(_unb64url(signature["value"]), signed_bytes(receipt))
    except (InvalidSignature, ValueError, KeyError, TypeError):
        return False, "the signature does not match the receipt (it was altered, or signed by another key)"
    return True, f"signed by {signature['kid']}"
