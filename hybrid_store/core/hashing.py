"""Hash primitives and the hex forms they travel in."""

from __future__ import annotations

import hashlib
import re

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
    if not isinstance(text, str) or _ADDRESS.fullmatch(text) is None:
        return False
    digits = text[2:]
    nibbles = keccak256(digits.lower().encode()).hex()
    return digits == "".join(c.upper() if int(n, 16) >= 8 else c.lower() for c, n in zip(digits, nibbles, strict=False))


def to_hex(data: bytes) -> str:
    """Lowercase 0x-prefixed hex, the only form landreg emits."""
    return "0x" + data.hex()


def is_hex32(text: object) -> bool:
    return isinstance(text, str) and _HEX32.fullmatch(text) is not None


def from_hex32(text: str) -> bytes:
    """Parse exactly 32 bytes of lowercase 0x-hex; anything else (upper case included) is rejected,
    so a bundle has exactly one spelling and any changed byte is a changed value."""
    if not is_hex32(text):
        raise ValueError("expected 0x followed by 64 lowercase hex digits")
    return bytes.fromhex(text[2:])
