"""Hash primitives and the hex forms they travel in."""

from __future__ import annotations

import functools
import hashlib
import re
import struct
from collections.abc import Callable, Sequence

try:  # safe-pysha3 is a thin C binding: about 5x less per-call overhead than pycryptodome
    from sha3 import keccak_256 as _keccak_256

    def keccak256(data: bytes) -> bytes:
        """Ethereum's Keccak-256 (not FIPS SHA3-256)."""
        digest: bytes = _keccak_256(data).digest()
        return digest

except ImportError:  # pragma: no cover - exercised only where safe-pysha3 is unavailable
    from Crypto.Hash import keccak as _keccak

    def keccak256(data: bytes) -> bytes:
        """Ethereum's Keccak-256 (not FIPS SHA3-256)."""
        return _keccak.new(digest_bits=256, data=data).digest()


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


_HEX32 = re.compile(r"0x[0-9a-f]{64}")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


def is_checksum_address(text: object) -> bool:
    """An Ethereum address in its EIP-55 mixed-case form. Here rather than eth-utils': the verifier
    imports it, and eth-utils with its hashing backend is most of an offline verification's start-up."""
    return isinstance(text, str) and _ADDRESS.fullmatch(text) is not None and _checksummed(text)


# a registry has a handful of contracts, and every bundle names one; only address-shaped texts are
# kept (42 characters each), so no input can make the cache hold more than a few hundred KB
@functools.lru_cache(maxsize=1024)
def _checksummed(text: str) -> bool:
    digits = text[2:]
    nibbles = keccak256(digits.lower().encode()).hex()
    return digits == "".join(c.upper() if int(n, 16) >= 8 else c.lower() for c, n in zip(digits, nibbles, strict=False))


def to_hex(data: bytes) -> str:
    """Lowercase 0x-prefixed hex, the only form landreg emits."""
    return "0x" + data.hex()


def is_hex32(text: object) -> bool:
    return isinstance(text, str) and _HEX32.fullmatch(text) is not None


def hex32_bytes(text: object) -> bytes | None:
    """The 32 bytes of ``text`` if it is ``0x`` and 64 lowercase hex digits (``is_hex32``), else None:
    the check and the conversion in one step, for parsers that read thousands of hashes."""
    if not isinstance(text, str) or _HEX32.fullmatch(text) is None:
        return None
    return bytes.fromhex(text[2:])


def hex32_many(texts: Sequence[object]) -> list[bytes] | None:
    """The 32 bytes of each of ``texts`` if every one is ``is_hex32``, else None. A bundle holds a
    few dozen such hashes (salts, proof nodes), and the regular expression costs more per text than
    hashing a field does: here they are checked together, in a few C calls over their concatenation
    (66 characters each, ``0x`` at each start and no other ``x``, then every ``0x`` read as a zero
    byte and the hex read back exactly: no upper case, no whitespace). A test holds it to ``is_hex32``."""
    n = len(texts)
    if n == 0:
        return []
    try:
        joined = "".join(texts)  # type: ignore[arg-type]  # a text that is not a str is refused here
    except TypeError:
        return None
    if (len(joined) != 66 * n or set(map(len, texts)) != {66} or joined[0::66] != "0" * n  # type: ignore[arg-type]
            or joined[1::66] != "x" * n or joined.count("x") != n):  # fmt: skip
        return None
    try:
        digits = joined.encode("ascii").translate(_X_TO_ZERO).decode("ascii")
        blob = bytes.fromhex(digits)
    except ValueError:  # not ASCII, or not hex
        return None
    if blob.hex() != digits:  # fromhex reads upper case and skips whitespace: neither is a bundle's spelling
        return None
    return list(_hashes_of(n)(blob))


_X_TO_ZERO = bytes.maketrans(b"x", b"0")


@functools.lru_cache(maxsize=128)  # a bundle has a handful of sizes: its fields, its proof
def _hashes_of(n: int) -> Callable[[bytes], tuple[bytes, ...]]:
    """Cuts ``n`` hashes, each after its zero byte, out of a blob in one C call."""
    return struct.Struct("x32s" * n).unpack


def from_hex32(text: str) -> bytes:
    """Parse exactly 32 bytes of lowercase 0x-hex; anything else (upper case included) is rejected,
    so a bundle has exactly one spelling and any changed byte is a changed value."""
    if not is_hex32(text):
        raise ValueError("expected 0x followed by 64 lowercase hex digits")
    return bytes.fromhex(text[2:])
