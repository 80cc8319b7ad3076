"""The audit log's hash chain (``landreg-audit/v1``): every entry is linked to all before it, and
the chain's head is anchored on chain with the batches.

    entry_hash(e) = SHA-256("landreg-audit/v1/entry" 0x00 JCS(e))
    head_0        = 32 zero bytes
    head_n        = SHA-256("landreg-audit/v1/link" 0x00 head_{n-1} entry_hash(e_n))
    marker(n)     = SHA-256("landreg-audit/v1/head" 0x00 head_n uint64_be(n))

``e`` is the entry as a JSON object (id, at, actor, role, action, target, details). The marker is a
leaf value of an anchored batch, as a rollback marker is; its tag keeps it distinct from every
record commitment, and it names how many entries the head covers, so a head anchored once proves
every entry before it: an entry changed, removed or inserted afterwards changes every later head.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import rfc8785

SCHEME = "landreg-audit/v1"
GENESIS = b"\x00" * 32

_ENTRY_TAG = SCHEME.encode() + b"/entry\x00"
_LINK_TAG = SCHEME.encode() + b"/link\x00"
_HEAD_TAG = SCHEME.encode() + b"/head\x00"
ENTRY_FIELDS = ("id", "at", "actor", "role", "action", "target", "details")


def timestamp(moment: datetime) -> str:
    """An entry's time as hashed: UTC, microseconds, ``Z`` (what both databases store exactly)."""
    if moment.tzinfo is None:
        raise ValueError("audit timestamps are timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_document(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON object an entry hashes as; ``entry`` has the ``ENTRY_FIELDS`` (``at`` a datetime)."""
    doc = {name: entry[name] for name in ENTRY_FIELDS}
    if isinstance(doc["at"], datetime):
        doc["at"] = timestamp(doc["at"])
    return doc


def encode_entry(entry: Mapping[str, Any]) -> bytes:
    """RFC 8785 bytes of an entry; raises ``ValueError`` for a value JCS cannot represent exactly."""
    try:
        return rfc8785.dumps(entry_document(entry))
    except (rfc8785.CanonicalizationError, TypeError) as exc:
        raise ValueError(f"audit entry cannot be canonicalised: {exc}") from None


def entry_hash(entry: Mapping[str, Any]) -> bytes:
    return hashlib.sha256(_ENTRY_TAG + encode_entry(entry)).digest()


def link(head: bytes, hashed_entry: bytes) -> bytes:
    """The head after appending an entry whose ``entry_hash`` is ``hashed_entry``."""
    if len(head) != 32 or len(hashed_entry) != 32:
        raise ValueError("audit chain heads and entry hashes are 32 bytes")
    return hashlib.sha256(_LINK_TAG + head + hashed_entry).digest()


def extend(head: bytes, hashed_entries: Iterable[bytes]) -> bytes:
    for h in hashed_entries:
        head = link(head, h)
    return head


def head_marker(head: bytes, entries: int) -> bytes:
    """The leaf value that anchors ``head``, the head after ``entries`` entries."""
    if not 0 <= entries < 2**64:
        raise ValueError("entry count out of range")
    return hashlib.sha256(_HEAD_TAG + head + entries.to_bytes(8, "big")).digest()
