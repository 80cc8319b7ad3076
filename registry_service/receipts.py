"""Signing filing receipts (format ``landreg-receipt/v2``; ``/v1`` receipts keep verifying). The
format, the bytes a signature covers and every check of a receipt are the verifier's
(``hybrid_store.verifier.receipts``); signing reads the registry's keys, so it stays here.

The registry signs each receipt with its active Ed25519 key. Keys rotate: each has a validity
window and a status (active, retired, compromised), all are listed in the trust root and at
``/.well-known/landreg-receipt-keys.json``, and the private halves are encrypted at rest with
``LANDREG_SERVICE__RECEIPT_KEY_PASSPHRASE``. A receipt proves something only together with its
record's anchor: the verifier checks that the anchor lies inside the signing key's window (plus
the trust root's grace), so a stolen retired key cannot backdate receipts into validity, and a
compromised key never verifies. The signature covers the RFC 8785 canonical JSON of
the receipt without its ``signature`` member. It covers the facts fixed at filing (number, book,
page, time, commitment, ...), not the anchoring status, which changes afterwards.

``/v2`` adds what a clerk and a filer need from the paper they keep: the review flags raised at
recording (``flags``: kind, parcel, message) and the fees (``fees``: each line's code, payer and
integer cents, and the total; null when no fee statement was recorded). Both are fixed at
recording, so a receipt signed again later is the same bytes.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select

from hybrid_store import signing_keys
from hybrid_store.core.trust import b64url, format_time
from hybrid_store.db.engine import Database
from hybrid_store.db.models import KeyStatus, SigningKey
from hybrid_store.settings import Settings
from hybrid_store.signing_keys import KeySource
from hybrid_store.verifier.receipts import signed_bytes


def receipt_fees(statement: dict[str, Any] | None) -> dict[str, Any] | None:
    """A fee statement as a v2 receipt carries it: each line's code, payer and cents, and the total
    (integer cents throughout); the words and statutes stay on the certificate."""
    if statement is None:
        return None
    return {"lines": [{"code": line["code"], "payer": line["payer"], "cents": int(line["cents"])}
                      for line in statement.get("lines", [])],
            # None: the statement was incomplete (no page count): the lines charged so far, no total
            "totalCents": None if statement.get("totalCents") is None else int(statement["totalCents"])}  # fmt: skip


def key_source(settings: Settings) -> KeySource:
    secret = settings.service.receipt_key_passphrase
    return KeySource(
        purpose="receipt",
        folder=settings.receipt_keys_dir,
        passphrase=secret.get_secret_value() if secret else None,
        setting="LANDREG_SERVICE__RECEIPT_KEY_PASSPHRASE",
    )


class ReceiptSigner:
    """Signs with the registry's active receipt key. A rotation (``landreg keys rotate-receipt``,
    from another process) is picked up within ``refresh_s``; the retired key's window closed at the
    rotation, and what it signed until then keeps verifying."""

    def __init__(self, db: Database, source: KeySource, *, refresh_s: float = 5.0,
                 legacy_plaintext: Path | None = None):  # fmt: skip
        self._db = db
        self._source = source
        self._refresh_s = refresh_s
        self._lock = threading.Lock()
        self._kid, self._key = signing_keys.active_key(db, source, legacy_plaintext=legacy_plaintext)
        self._checked = time.monotonic()

    @classmethod
    def for_settings(cls, settings: Settings, db: Database) -> ReceiptSigner:
        """The service's signer; refuses to start without the passphrase (ConfigurationError)."""
        return cls(db, key_source(settings), refresh_s=settings.service.key_cache_s,
                   legacy_plaintext=settings.keys_dir / "receipt-ed25519.pem")  # fmt: skip

    @property
    def kid(self) -> str:
        return self._kid

    def refresh(self) -> None:
        """Pick up a rotation. Call it *before* a write transaction, never inside one: a second
        connection taken while a transaction holds the first starves the pool under load."""
        if time.monotonic() - self._checked < self._refresh_s:
            return
        with self._lock:
            with self._db.read() as s:
                kid = s.scalar(select(SigningKey.kid).where(SigningKey.purpose == "receipt",
                                                            SigningKey.status == KeyStatus.ACTIVE))  # fmt: skip
            if kid is not None and kid != self._kid:
                self._key, self._kid = self._source.load(kid), kid
            self._checked = time.monotonic()

    def sign(self, receipt: dict[str, Any]) -> dict[str, Any]:
        body = {k: v for k, v in receipt.items() if k != "signature"}
        value = self._key.sign(signed_bytes(body))
        return {**body, "signature": {"alg": "Ed25519", "kid": self._kid, "value": b64url(value)}}

    def jwks(self) -> dict[str, Any]:
        """Every receipt key the registry ever used, with its window and status (JWK set)."""
        return {"keys": [
            {"kty": "OKP", "crv": "Ed25519", "x": k.public_key, "kid": k.kid, "use": "sig", "alg": "EdDSA",
             "status": k.status, "validFrom": format_time(k.valid_from),
             "validUntil": None if k.valid_until is None else format_time(k.valid_until)}
            for k in signing_keys.keys_of(self._db, "receipt")
        ]}  # fmt: skip
