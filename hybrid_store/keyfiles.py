"""Ed25519 private keys at rest: PKCS#8 PEM files, always encrypted with a passphrase.

Used for the receipt-signing keys and the trust-root signing key. A key is never written in
plaintext; a plaintext key left by an older landreg is encrypted in place the first time it is
opened with a passphrase.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hybrid_store.core.trust import key_id, raw_public
from hybrid_store.errors import ConfigurationError
from hybrid_store.files import write_atomic

MIN_PASSPHRASE = 12


def _check(passphrase: str | None, setting: str) -> bytes:
    if not passphrase:
        raise ConfigurationError(f"{setting} is not set: the signing keys are encrypted at rest with it")
    if len(passphrase) < MIN_PASSPHRASE:
        raise ConfigurationError(f"{setting} is too short (at least {MIN_PASSPHRASE} characters)")
    return passphrase.encode()


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    write_atomic(path, data, 0o600)


def encrypted_pem(key: Ed25519PrivateKey, passphrase: bytes) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(passphrase)
    )


def new_key(folder: Path, passphrase: str | None, setting: str) -> tuple[str, Ed25519PrivateKey]:
    """Generate a key, store it encrypted as ``folder/<kid>.pem``; returns (kid, key)."""
    secret = _check(passphrase, setting)
    key = Ed25519PrivateKey.generate()
    kid = key_id(raw_public(key))
    _write_atomic(folder / f"{kid}.pem", encrypted_pem(key, secret))
    return kid, key


def load_key(folder: Path, kid: str, passphrase: str | None, setting: str) -> Ed25519PrivateKey:
    """The key ``kid`` from ``folder``; a plaintext file is encrypted in place first."""
    secret = _check(passphrase, setting)
    path = folder / f"{kid}.pem"
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read signing key {path}: {exc.strerror}") from None
    try:
        key = serialization.load_pem_private_key(pem, password=None if b"ENCRYPTED" not in pem else secret)
    except (ValueError, TypeError):
        raise ConfigurationError(f"cannot decrypt {path}: wrong {setting}?") from None
    if not isinstance(key, Ed25519PrivateKey) or key_id(raw_public(key)) != kid:
        raise ConfigurationError(f"{path} does not hold the Ed25519 key {kid}")
    if b"ENCRYPTED" not in pem:
        _write_atomic(path, encrypted_pem(key, secret))
    return key


def adopt_plaintext(path: Path, folder: Path, passphrase: str | None, setting: str) -> tuple[str, Ed25519PrivateKey]:
    """Move a plaintext PEM key (an older landreg's) into ``folder``, encrypted; the plaintext is removed."""
    secret = _check(passphrase, setting)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigurationError(f"{path} is not an Ed25519 private key")
    kid = key_id(raw_public(key))
    _write_atomic(folder / f"{kid}.pem", encrypted_pem(key, secret))
    path.unlink()
    return kid, key
