"""The one settings object, read from the environment (``LANDREG_*``, nested with ``__``, e.g.
``LANDREG_CHAIN__BACKEND=rpc``). Nothing else in landreg reads the environment.

All local state lives under ``home`` (default ``./.landreg``): the SQLite database, the managed
anvil node's state and log, keystores, the receipt-signing key and reports. Deleting that one
folder starts over.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from hybrid_store.errors import ConfigurationError

#: anvil's first development account. Public knowledge: anvil prints it at start. Development only.
ANVIL_DEV_KEY_0 = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"


class ChainSettings(BaseModel):
    #: ``anvil``: the managed local node; ``eth-tester``: in-process py-evm (tests);
    #: ``rpc``: any JSON-RPC node at ``rpc_url``.
    backend: Literal["anvil", "eth-tester", "rpc"] = "anvil"
    rpc_url: str | None = None
    anvil_host: str = "127.0.0.1"
    anvil_port: int = Field(default=8545, ge=1, le=65535)
    anvil_binary: Path | None = None
    #: how often the managed anvil dumps its state to disk (a SIGKILL loses at most this much)
    anvil_state_interval_s: int = Field(default=2, ge=1)
    #: blocks on top of the anchoring block (itself included) before a batch counts as anchored
    confirmations: int = Field(default=1, ge=1, le=1000)
    #: the registrar key: a raw hex key (development) or an encrypted keystore (eth-keyfile)
    registrar_key: SecretStr | None = None
    registrar_keystore: Path | None = None
    registrar_keystore_password: SecretStr | None = None
    #: anchor to an existing DeedRegistry instead of deploying one
    contract_address: str | None = None
    poll_interval_s: float = Field(default=0.05, gt=0)
    receipt_timeout_s: float = Field(default=120.0, gt=0)

    @model_validator(mode="after")
    def _rpc_needs_url(self) -> ChainSettings:
        if self.backend == "rpc" and not self.rpc_url:
            raise ValueError("chain.backend=rpc needs LANDREG_CHAIN__RPC_URL")
        return self


class AnchoringSettings(BaseModel):
    #: a batch closes when it holds this many records ...
    batch_max_records: int = Field(default=1000, ge=1, le=1_000_000)
    #: ... or when its oldest record has waited this long, whichever comes first
    batch_max_age_s: float = Field(default=2.0, gt=0)


class ServiceSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    #: uvicorn worker processes; exactly one of them runs the anchoring worker (a database lock decides)
    workers: int = Field(default=1, ge=1, le=64)
    #: run the anchoring worker inside ``landreg serve`` (else run ``landreg worker`` on its own)
    run_worker: bool = True
    registry_name: str = "Bergen County Clerk, Land Records"
    #: the record fields an unauthenticated verifier sees in a proof bundle; the rest are redacted
    public_fields: frozenset[str] = frozenset()
    max_body_bytes: int = Field(default=1_000_000, ge=1024)
    #: Ed25519 key that signs receipts; default LANDREG_HOME/keys/receipt-ed25519.pem (created once)
    receipt_key_file: Path | None = None
    #: signs the web desk's session cookies; default LANDREG_HOME/keys/session.secret (created once)
    session_secret: SecretStr | None = None
    #: how long a verified API key is trusted before it is looked up again (revocation delay)
    key_cache_s: float = Field(default=5.0, ge=0)
    #: complete proof bundles kept per server process (about 3 KB each); 0 disables the cache
    proof_cache_size: int = Field(default=20_000, ge=0)

    @field_validator("public_fields")
    @classmethod
    def _known_fields(cls, value: frozenset[str]) -> frozenset[str]:
        from hybrid_store.core.commitment import FIELDS

        unknown = sorted(value - set(FIELDS))
        if unknown:
            raise ValueError(f"public_fields: {unknown[0]!r} is not a record field ({', '.join(FIELDS)})")
        return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="LANDREG_", env_nested_delimiter="__", extra="ignore", populate_by_name=True
    )

    home: Path = Path(".landreg")
    #: SQLAlchemy URL; default is a SQLite file under ``home``. ``DATABASE_URL`` is honoured too.
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("LANDREG_DATABASE_URL", "DATABASE_URL", "database_url")
    )
    #: where batch manifests are written (and reconciliation reads them); point it at storage the
    #: database's administrators cannot rewrite, or hand auditors copies (default LANDREG_HOME/manifests)
    manifest_dir: Path | None = None
    chain: ChainSettings = ChainSettings()
    anchoring: AnchoringSettings = AnchoringSettings()
    service: ServiceSettings = ServiceSettings()

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        return value.expanduser().absolute()

    @cached_property
    def db_url(self) -> str:
        if self.database_url:
            url = self.database_url
            # the bare postgresql:// scheme means psycopg2 to SQLAlchemy; landreg ships psycopg 3
            if url.startswith("postgresql://") or url.startswith("postgres://"):
                url = "postgresql+psycopg://" + url.split("://", 1)[1]
            return url
        return f"sqlite:///{self.home / 'landreg.db'}"

    # --- paths under home ---------------------------------------------------------------------
    @property
    def chain_dir(self) -> Path:
        return self.home / "chain"

    @property
    def keys_dir(self) -> Path:
        return self.home / "keys"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @property
    def manifests_dir(self) -> Path:
        return self.manifest_dir or self.home / "manifests"

    def ensure_home(self) -> Path:
        for path in (self.home, self.chain_dir, self.keys_dir, self.reports_dir):
            path.mkdir(parents=True, exist_ok=True)
        self.keys_dir.chmod(0o700)
        return self.home

    def registrar_key_hex(self) -> str:
        """The registrar's private key, from the keystore, the environment, or anvil's dev key."""
        c = self.chain
        if c.registrar_keystore is not None:
            from eth_keyfile import decode_keyfile_json, load_keyfile

            if c.registrar_keystore_password is None:
                raise ConfigurationError(
                    "LANDREG_CHAIN__REGISTRAR_KEYSTORE is set but LANDREG_CHAIN__REGISTRAR_KEYSTORE_PASSWORD is not"
                )
            try:
                key = decode_keyfile_json(
                    load_keyfile(str(c.registrar_keystore)), c.registrar_keystore_password.get_secret_value().encode()
                )
            except (OSError, ValueError) as exc:
                raise ConfigurationError(f"cannot open registrar keystore {c.registrar_keystore}: {exc}") from None
            return "0x" + key.hex()
        if c.registrar_key is not None:
            return c.registrar_key.get_secret_value()
        if c.backend == "anvil":
            return ANVIL_DEV_KEY_0
        if c.backend == "eth-tester":
            return ""  # the in-process chain supplies its own funded test account
        raise ConfigurationError(
            "no registrar key: set LANDREG_CHAIN__REGISTRAR_KEYSTORE (+ _PASSWORD) or LANDREG_CHAIN__REGISTRAR_KEY"
        )


def get_settings(**overrides: object) -> Settings:
    """A fresh Settings from the environment (plus overrides). Callers pass it down explicitly;
    there is no import-time singleton to monkeypatch."""
    return Settings(**overrides)  # type: ignore[arg-type]
