"""Salted, redactable, history-linked commitments to instruments (schemes ``landreg-commitment/v1``
and ``/v2``).

Spec: docs/commitment-spec.md. In short, for a record with a 32-byte secret ``seed``, under scheme S:

    salt(f)       = HMAC-SHA256(seed, S "/salt" 0x00 f)
    field_hash(f) = SHA-256(S "/field" 0x00 f 0x00 salt(f) JCS(value(f)))
    commitment    = SHA-256(S "/commitment" 0x00 || sorted field hashes)

v2 is v1's construction over more fields (the instrument's own date, page count, grantee's mailing
address, preparer, cross-references, and the commitment a mirrored version supersedes), with its
own domain tags. New records are committed under ``SCHEME``; a record keeps the scheme it was
committed under forever (``commitments.scheme``, a bundle's ``record.scheme``), so every function
here takes the scheme and v1 records and bundles verify exactly as before.

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

SCHEME_V1 = "landreg-commitment/v1"
SCHEME_V2 = "landreg-commitment/v2"
#: the scheme new records are committed under
SCHEME = SCHEME_V2
#: every scheme whose records and bundles verify, oldest first
SCHEMES: tuple[str, ...] = (SCHEME_V1, SCHEME_V2)
SEED_LENGTH = 32
SALT_LENGTH = 32

#: the committed fields of v1, in the order the spec lists them (the commitment itself sorts hashes)
FIELDS_V1: tuple[str, ...] = (
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
#: v2: v1's fields and what a recorder indexes besides (``prev`` stays last: it is added in order)
FIELDS_V2: tuple[str, ...] = (
    *FIELDS_V1[:-1],
    "document_date",
    "page_count",
    "grantee_mailing_address",
    "preparer",
    "references",
    "supersedes",
    "prev",
)
#: every field name of any scheme (v2's are a superset of v1's)
FIELDS = FIELDS_V2
_FIELDS = {SCHEME_V1: FIELDS_V1, SCHEME_V2: FIELDS_V2}


def fields_of(scheme: str) -> tuple[str, ...]:
    """The committed fields of ``scheme``; ``ValueError`` for a scheme this code does not know."""
    try:
        return _FIELDS[scheme]
    except KeyError:
        raise ValueError(f"{scheme!r} is not a commitment scheme ({', '.join(SCHEMES)})") from None


def field_values(record: InstrumentRecord, scheme: str = SCHEME_V1) -> dict[str, Any]:
    """The committed value of each field of ``scheme``, in the JSON value domain of ``canonical``.

    A record holding what only v2 commits cannot be committed under v1 (it would silently leave
    those fields out): ``ValueError``."""
    values = _v1_values(record)
    if scheme == SCHEME_V1:
        if record.has_v2_content:
            raise ValueError(f"this record has fields {SCHEME_V1} does not commit; commit it under {SCHEME}")
        return values
    fields_of(scheme)
    values.update({
        "document_date": record.document_date,
        "page_count": record.page_count,
        "grantee_mailing_address": record.grantee_mailing_address,
        "preparer": record.preparer,
        "references": [ref.value() for ref in record.references],
        "supersedes": record.supersedes,
    })  # fmt: skip
    return values


def _v1_values(record: InstrumentRecord) -> dict[str, Any]:
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


def field_salt(seed: bytes, name: str, scheme: str = SCHEME_V1) -> bytes:
    if len(seed) != SEED_LENGTH:
        raise ValueError(f"a record seed is {SEED_LENGTH} bytes, got {len(seed)}")
    return hmac.digest(seed, _salt_message(scheme, name), "sha256")


def field_hash(name: str, salt: bytes, value: Any, scheme: str = SCHEME_V1) -> bytes:
    if len(salt) != SALT_LENGTH:
        raise ValueError(f"a field salt is {SALT_LENGTH} bytes, got {len(salt)}")
    return sha256(_field_prefix(scheme, name) + salt + canonical_json(value))


def combine(field_hashes: Iterable[bytes], scheme: str = SCHEME_V1) -> bytes:
    """The commitment over a complete set of field hashes (order-independent)."""
    fields_of(scheme)
    return sha256(scheme.encode() + b"/commitment\x00" + b"".join(sorted(field_hashes)))


def commit(record: InstrumentRecord, seed: bytes, scheme: str = SCHEME_V1) -> bytes:
    """The 32-byte commitment of ``record`` under ``seed``."""
    return prepare(record, seed, scheme).complete(field_values(record, scheme)["prev"])


@dataclass(frozen=True, slots=True)
class Prepared:
    """A record's commitment before its history link is known: the field hashes of every field but
    ``prev`` (they depend on the record alone, so bulk migration computes them in parallel
    processes) and the salt of ``prev``. ``complete`` adds the link, in recording order."""

    field_hashes: tuple[bytes, ...]
    prev_salt: bytes
    scheme: str = SCHEME_V1

    def complete(self, prev: list[list[str | None]]) -> bytes:
        """The commitment with history link ``prev`` (``field_values`` form: ``[[key, commitment hex
        or None], ...]`` in parcel order)."""
        return combine([*self.field_hashes, field_hash("prev", self.prev_salt, prev, self.scheme)], self.scheme)


def prepare(record: InstrumentRecord, seed: bytes, scheme: str = SCHEME_V1) -> Prepared:
    """Everything of ``record``'s commitment but its history link (``record.prev`` is not read)."""
    inner, outer = _keyed(seed)
    values = field_values(record, scheme)
    salts, prefixes = _SALT_MESSAGE[scheme], _FIELD_PREFIX[scheme]
    hashes = []
    for name in _BEFORE_HISTORY[scheme]:  # _salt inlined: this loop runs for every field of every record in bulk
        i = inner.copy()
        i.update(salts[name])
        o = outer.copy()
        o.update(i.digest())
        hashes.append(sha256(prefixes[name] + o.digest() + canonical_json(values[name])))
    return Prepared(tuple(hashes), _salt(inner, outer, salts["prev"]), scheme)


def rollback_marker(old_root: bytes) -> bytes:
    """The extra leaf value of a re-anchoring batch: it names the superseded root, and keeps the new
    root distinct from the old one (the contract never anchors a root twice)."""
    return sha256(b"landreg-rollback/v1\x00" + old_root)


_BEFORE_HISTORY = {s: tuple(name for name in names if name != "prev") for s, names in _FIELDS.items()}
_SALT_MESSAGE = {s: {name: s.encode() + b"/salt\x00" + name.encode() for name in names} for s, names in _FIELDS.items()}
_FIELD_PREFIX = {
    s: {name: s.encode() + b"/field\x00" + name.encode() + b"\x00" for name in names} for s, names in _FIELDS.items()
}


def _salt_message(scheme: str, name: str) -> bytes:
    fields_of(scheme)
    return _SALT_MESSAGE[scheme].get(name) or scheme.encode() + b"/salt\x00" + name.encode()


def _field_prefix(scheme: str, name: str) -> bytes:
    fields_of(scheme)
    return _FIELD_PREFIX[scheme].get(name) or scheme.encode() + b"/field\x00" + name.encode() + b"\x00"


def _keyed(seed: bytes) -> tuple[Any, Any]:
    """The record's two padded-key HMAC-SHA256 states (RFC 2104), set up once and copied per field:
    bulk migration and reconciliation hash millions of fields, and OpenSSL's per-call HMAC setup
    costs more than the hashing itself (a test holds the result to ``hmac.digest``)."""
    if len(seed) != SEED_LENGTH:
        raise ValueError(f"a record seed is {SEED_LENGTH} bytes, got {len(seed)}")
    key = seed.ljust(64, b"\x00")
    return hashlib.sha256(key.translate(_IPAD)), hashlib.sha256(key.translate(_OPAD))


def _salt(inner: Any, outer: Any, message: bytes) -> bytes:
    """``field_salt(seed, name)`` from the states of ``_keyed(seed)`` (``message``: the field's salt message)."""
    i = inner.copy()
    i.update(message)
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
    scheme: str = SCHEME_V1

    def check_fields(self) -> None:
        """Raise ``ValueError`` naming a field that is missing, doubled or unknown (the bundle parser
        asks this alone; the hashes are computed once, when the commitment is)."""
        fields = fields_of(self.scheme)
        both = self.opened.keys() & self.redacted.keys()
        if both:
            raise ValueError(f"field {sorted(both)[0]!r} is both disclosed and redacted")
        names = self.opened.keys() | self.redacted.keys()
        if len(names) == len(fields) and names.issuperset(fields):
            return  # the common case: each field once, in one of the two
        unknown = sorted(names - set(fields))
        if unknown:
            raise ValueError(f"field {unknown[0]!r} is not a field of {self.scheme}")
        missing = [n for n in fields if n not in names]
        raise ValueError(f"field {missing[0]!r} is neither disclosed nor redacted")

    def field_hashes(self) -> dict[str, bytes]:
        """Every field's hash; raises ``ValueError`` naming a field that is missing, doubled or unknown."""
        self.check_fields()
        # field_hash, inlined: a bulk verification hashes every field of every bundle
        prefixes = _FIELD_PREFIX[self.scheme]
        hashes = {}
        for name, (salt, value) in self.opened.items():
            if len(salt) != SALT_LENGTH:
                raise ValueError(f"a field salt is {SALT_LENGTH} bytes, got {len(salt)}")
            hashes[name] = hashlib.sha256(prefixes[name] + salt + canonical_json(value)).digest()
        hashes.update(self.redacted)
        return hashes

    def commitment(self) -> bytes:
        return combine(self.field_hashes().values(), self.scheme)


def disclose(record: InstrumentRecord, seed: bytes, redact: Iterable[str] = (), scheme: str = SCHEME_V1) -> Disclosure:
    """Open every field of ``record`` except those in ``redact``, which are given as hashes only.
    A field ``scheme`` does not commit may be named in ``redact`` (a registry-wide redaction list
    covers records of every scheme); it is simply not there."""
    fields = fields_of(scheme)
    redact = set(redact)
    unknown = sorted(redact - set(FIELDS))
    if unknown:
        raise ValueError(f"cannot redact {unknown[0]!r}: not a field of {scheme}")
    values = field_values(record, scheme)
    opened, redacted = {}, {}
    for name in fields:
        salt = field_salt(seed, name, scheme)
        if name in redact:
            redacted[name] = field_hash(name, salt, values[name], scheme)
        else:
            opened[name] = (salt, values[name])
    return Disclosure(opened=opened, redacted=redacted, scheme=scheme)
