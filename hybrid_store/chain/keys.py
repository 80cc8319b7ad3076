"""The chain keys of the three DeedRegistry roles, from what the settings name.

Settings hold only where a key is (a keystore and its password, a raw key, or anvil's public
development keys); opening a keystore and deriving an address are the chain library's work, so
they live here, behind ``hybrid_store.chain``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from hybrid_store.chain.node import address_of_key
from hybrid_store.errors import ConfigurationError
from hybrid_store.settings import ANVIL_DEV_KEYS, Settings


def registrar_key_hex(settings: Settings) -> str:
    """The registrar's private key, from the keystore, the environment, or anvil's dev key."""
    key = role_key_hex(settings, "registrar")
    if key is None:
        raise ConfigurationError(
            "no registrar key: set LANDREG_CHAIN__REGISTRAR_KEYSTORE (+ _PASSWORD) or LANDREG_CHAIN__REGISTRAR_KEY"
        )
    return key


def role_key_hex(settings: Settings, role: str) -> str | None:
    """The private key of ``role`` (registrar, admin, pauser): its keystore, its raw key, anvil's
    dev key for that role, or None. eth-tester answers "" (the in-process chain has its own)."""
    c = settings.chain
    keystore: Path | None = getattr(c, f"{role}_keystore")
    raw: SecretStr | None = getattr(c, f"{role}_key")
    var = f"LANDREG_CHAIN__{role.upper()}"
    if keystore is not None:
        from eth_keyfile import decode_keyfile_json, load_keyfile

        password: SecretStr | None = getattr(c, f"{role}_keystore_password")
        if password is None:
            raise ConfigurationError(f"{var}_KEYSTORE is set but {var}_KEYSTORE_PASSWORD is not")
        try:
            key = decode_keyfile_json(load_keyfile(str(keystore)), password.get_secret_value().encode())
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"cannot open {role} keystore {keystore}: {exc}") from None
        return "0x" + key.hex()
    if raw is not None:
        return raw.get_secret_value()
    if c.backend == "anvil":
        return ANVIL_DEV_KEYS[role]
    if c.backend == "eth-tester":
        return ""
    return None


def role_address(settings: Settings, role: str) -> str | None:
    """The address of ``role``: configured, or derived from its key; None when neither is set."""
    configured = getattr(settings.chain, f"{role}_address", None)
    if configured:
        return str(configured)
    key = role_key_hex(settings, role)
    return address_of_key(key) if key else None
