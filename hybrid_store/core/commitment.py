"""Salted, redactable, history-linked commitments to instruments (scheme ``landreg-commitment/v1``).

Spec: docs/commitment-spec.md. In short, for a record with a 32-byte secret ``seed``:

    salt(f)       = HMAC-SHA256(seed, "landreg-commitment/v1/salt" 0x00 f)
    field_hash(f) = SHA-256("landreg-commitment/v1/field" 0x00 f 0x00 salt(f) JCS(value(f)))
    commitment    = SHA-256("landreg-commitment/v1/commitment" 0x00 || sorted field hashes)

*Hiding*: every field hash mixes in 256 secret bits, so even a price or a name cannot be guessed
from the commitment. *Redactable*: a disclosure may give a field's hash instead of its salt and
value; the commitment still recomputes. *History-linked*: the ``prev`` field holds the commitment of
each parcel's previous record.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hybrid_store.core.canonical import canonical_json
from hybrid_store.core.hashing import sha256
from hybrid_store.core.records import InstrumentRecord

SCHEME = "landreg-commitment/v1"
SEED_LENGTH = 32
SALT_LENGTH = 32

#: the committed fields of v1, in the order the spec lists them (the commitment itself sorts hashes)
FIELDS: tuple[str, ...] = (
    "instrument_number",
    "doc_type",
    "recorded_at",
    "book",
    "page",
    "grantors",
    "grantees",
    "consideration",
    "legal_description",
    "document_digest",
    "parcels",
    "corrects",
    "prev",
)

_SALT_TAG = SCHEME.encode() + b"/salt\x00"
_FIELD_TAG = SCHEME.encode() + b"/field\x00"
_COMMITMENT_TAG = SCHEME.encode() + b"/commitment\x00"


def field_values(record: InstrumentRecord) -> dict[str, Any]:
    """The committed value of each field, in the JSON value domain of ``canonical``."""
    return {
        "instrument_number": record.instrument_number,
        "doc_type": record.doc_type,
        "recorded_at": record.recorded_at,
        "book": record.book,
        "page": record.page,
        "grantors": list(record.grantors),
        "grantees": list(record.grantees),
        "consideration": record.consideration_cents,
        "legal_description": record.legal_description,
        "document_digest": record.document_digest,
        "parcels": list(record.parcels),
        "corrects": record.corrects,
        "prev": [[key, link] for key, link in record.prev],
    }


def field_salt(seed: bytes, name: str) -> bytes:
    if len(seed) != SEED_LENGTH:
        raise ValueError(f"a record seed is {SEED_LENGTH} bytes, got {len(seed)}")
    return hmac.digest(seed, _SALT_TAG + name.encode(), "sha256")


def field_hash(name: str, salt: bytes, value: Any) -> bytes:
    if len(salt) != SALT_LENGTH:
        raise ValueError(f"a field salt is {SALT_LENGTH} bytes, got {len(salt)}")
    return sha256(_FIELD_TAG + name.encode() + b"\x00" + salt + canonical_json(value))


def combine(field_hashes: Iterable[bytes]) -> bytes:
    """The commitment over a complete set of field hashes (order-independent)."""
    return sha256(_COMMITMENT_TAG + b"".join(sorted(field_hashes)))


def commit(record: InstrumentRecord, seed: bytes) -> bytes:
    """The 32-byte commitment of ``record`` under ``seed``."""
    return prepare(record, seed).complete(field_values(record)["prev"])


@dataclass(frozen=True, slots=True)
class Prepared:
    """A record's commitment before its history link is known: the field hashes of every field but
    ``prev`` (they depend on the record alone, so bulk migration computes them in parallel
    processes) and the salt of ``prev``. ``complete`` adds the link, in recording order."""

    field_hashes: tuple[bytes, ...]
    prev_salt: bytes

    def complete(self, prev: list[list[str | None]]) -> bytes:
        """The commitment with history link ``prev`` (``field_values`` form: ``[[key, commitment hex
        or None], ...]`` in parcel order)."""
        return combine([*self.field_hashes, field_hash("prev", self.prev_salt, prev)])


def prepare(record: InstrumentRecord, seed: bytes) -> Prepared:
    """Everything of ``record``'s commitment but its history link (``record.prev`` is not read)."""
    inner, outer = _keyed(seed)
    values = field_values(record)
    hashes = []
    for name in _BEFORE_HISTORY:  # _salt inlined: this loop runs for every field of every record in bulk
        i = inner.copy()
        i.update(_SALT_MESSAGE[name])
        o = outer.copy()
        o.update(i.digest())
        hashes.append(sha256(_FIELD_PREFIX[name] + o.digest() + canonical_json(values[name])))
    return Prepared(tuple(hashes), _salt(inner, outer, "prev"))


def rollback_marker(old_root: bytes) -> bytes:
    """The extra leaf value of a re-anchoring batch: it names the superseded root, and keeps the new
    root distinct from the old one (the contract never anchors a root twice)."""
    return sha256(b"landreg-rollback/v1\x00" + old_root)


_BEFORE_HISTORY = tuple(name for name in FIELDS if name != "prev")
_SALT_MESSAGE = {name: _SALT_TAG + name.encode() for name in FIELDS}
_FIELD_PREFIX = {name: _FIELD_TAG + name.encode() + b"\x00" for name in FIELDS}


def _keyed(seed: bytes) -> tuple[Any, Any]:
    """The record's two padded-key HMAC-SHA256 states (RFC 2104), set up once and copied per field:
    bulk migration and reconciliation hash millions of fields, and OpenSSL's per-call HMAC setup
    costs more than the hashing itself (a test holds the result to ``hmac.digest``)."""
    if len(seed) != SEED_LENGTH:
        raise ValueError(f"a record seed is {SEED_LENGTH} bytes, got {len(seed)}")
    key = seed.ljust(64, b"\x00")
    return hashlib.sha256(key.translate(_IPAD)), hashlib.sha256(key.translate(_OPAD))


def _salt(inner: Any, outer: Any, name: str) -> bytes:
    """``field_salt(seed, name)`` from the states of ``_keyed(seed)``."""
    i = inner.copy()
    i.update(_SALT_MESSAGE[name])
    o = outer.copy()
    o.update(i.digest())
    digest: bytes = o.digest()
    return digest


_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))


@dataclass(frozen=True)
class Disclosure:
    """What a proof reveals of a record: some fields opened (salt + value), the rest only hashed."""

    opened: Mapping[str, tuple[bytes, Any]] = field(default_factory=dict)
    redacted: Mapping[str, bytes] = field(default_factory=dict)

    def field_hashes(self) -> dict[str, bytes]:
        """Every field's hash; raises ``ValueError`` naming a field that is missing, doubled or unknown."""
        both = set(self.opened) & set(self.redacted)
        if both:
            raise ValueError(f"field {sorted(both)[0]!r} is both disclosed and redacted")
        names = set(self.opened) | set(self.redacted)
        unknown = sorted(names - set(FIELDS))
        if unknown:
            raise ValueError(f"field {unknown[0]!r} is not a field of {SCHEME}")
        missing = [n for n in FIELDS if n not in names]
        if missing:
            raise ValueError(f"field {missing[0]!r} is neither disclosed nor redacted")
        hashes = {name: field_hash(name, salt, value) for name, (salt, value) in self.opened.items()}
        hashes.update(self.redacted)
        return hashes

    def commitment(self) -> bytes:
        return combine(self.field_hashes().values())


def disclose(record: InstrumentRecord, seed: bytes, redact: Iterable[str] = ()) -> Disclosure:
    """Open every field of ``record`` except those in ``redact``, which are given as hashes only."""
    redact = set(redact)
    unknown = sorted(redact - set(FIELDS))
    if unknown:
        raise ValueError(f"cannot redact {unknown[0]!r}: not a field of {SCHEME}")
    values = field_values(record)
    opened, redacted = {}, {}
    for name in FIELDS:
        salt = field_salt(seed, name)
        if name in redact:
            redacted[name] = field_hash(name, salt, values[name])
        else:
            opened[name] = (salt, values[name])
    return Disclosure(opened=opened, redacted=redacted)
