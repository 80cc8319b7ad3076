"""The one settings object, read from the environment (``LANDREG_*``, nested with ``__``, e.g.
``LANDREG_CHAIN__BACKEND=rpc``). Nothing else in landreg reads landreg's configuration from the
environment. Three variables that belong to other tools are read where those tools are driven:
``SOLC_BINARY`` (a solc of your own for ``landreg contracts build``, ``chain/compile.py``),
``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's multi-process mode, ``registry_service/metrics``)
and ``LANDREG_CRASHPOINT`` (the crash tests' fault injection, ``crashpoints.py``). ``landreg serve``
passes ``LANDREG_SERVICE__RUN_WORKER`` and ``LANDREG_SERVICE__SUPERVISOR_STATUS`` to its own child
processes through the environment.

All local state lives under ``home`` (default ``./.landreg``): the SQLite database, the managed
anvil node's state and log, keystores, the receipt-signing key and reports. Deleting that one
folder starts over.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: anvil's first three development accounts. Public knowledge: anvil prints them at start.
#: Development only: the registrar (hot), the contract admin (cold) and the pauser.
ANVIL_DEV_KEY_0 = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
ANVIL_DEV_KEY_1 = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
ANVIL_DEV_KEY_2 = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a"
ANVIL_DEV_KEYS = {"registrar": ANVIL_DEV_KEY_0, "admin": ANVIL_DEV_KEY_1, "pauser": ANVIL_DEV_KEY_2}
#: the three roles of a DeedRegistry, each its own key
CHAIN_ROLES = ("registrar", "admin", "pauser")


#: the default confirmation depth on a real network: about 2.5 minutes of Ethereum blocks, past
#: nearly every reorganisation seen since the merge (finality, two epochs, comes later still)
REAL_NETWORK_CONFIRMATIONS = 12


class ChainSettings(BaseModel):
    #: ``anvil``: the managed local node; ``eth-tester``: in-process py-evm (tests);
    #: ``rpc``: any JSON-RPC node at ``rpc_url``.
    backend: Literal["anvil", "eth-tester", "rpc"] = "anvil"
    #: the JSON-RPC node, for the `rpc` backend (e.g. https://… of your provider, or a node of your own)
    rpc_url: str | None = None
    #: where the managed anvil node listens (the `anvil` backend)
    anvil_host: str = "127.0.0.1"
    #: the managed anvil node's port: change it when 8545 is taken (another node, another registry)
    anvil_port: int = Field(default=8545, ge=1, le=65535)
    #: an anvil of your own; default: the one the npm packages install (node_modules)
    anvil_binary: Path | None = None
    #: how often the managed anvil dumps its state to disk (a SIGKILL loses at most this much)
    anvil_state_interval_s: int = Field(default=2, ge=1)
    #: blocks on top of the anchoring block (itself included) before a batch counts as anchored;
    #: default 1 on the local backends, 12 on a real network (``rpc``)
    confirmations: int = Field(default=0, ge=0, le=1000)
    #: when an anchored batch is final (no longer re-checked for a reorganisation): ``tag`` is the
    #: node's ``finalized`` block, ``depth`` is ``finality_depth`` blocks on top; ``auto`` takes the
    #: tag on a real network whose node reports one, and the depth on anvil (whose ``finalized``
    #: is only its head minus 64) and eth-tester (whose ``finalized`` is its head)
    finality: Literal["auto", "tag", "depth"] = "auto"
    #: blocks on top of an anchored batch before it is final, where `finality` is `depth`
    finality_depth: int = Field(default=64, ge=1, le=100_000)
    #: fees: a replacement raises both fee fields by at least this much (nodes refuse less than 10 %)
    fee_bump_percent: int = Field(default=20, ge=10, le=500)
    #: never pay more than this per gas, in gwei (a stuck transaction then waits, with a hold)
    fee_ceiling_gwei: float = Field(default=500.0, gt=0)
    #: an attempt unmined for this many blocks is replaced even if its fee cap covers the base fee
    stuck_after_blocks: int = Field(default=5, ge=1, le=10_000)
    #: a transaction the node refuses outright this many times (not for its fees or nonce: e.g.
    #: "insufficient funds") holds anchoring (a ``refused`` hold) ...
    refusals_before_hold: int = Field(default=5, ge=1, le=1000)
    #: ... and is then sent again only this often, until the node takes it and the hold clears
    refused_retry_s: float = Field(default=60.0, gt=0)
    #: the registrar key (hot: the anchoring worker signs with it): a raw hex key (development)
    #: or an encrypted keystore (eth-keyfile)
    registrar_key: SecretStr | None = None
    #: the registrar's encrypted keystore (eth-keyfile), and its password
    registrar_keystore: Path | None = None
    registrar_keystore_password: SecretStr | None = None
    #: the contract admin (cold: grants and revokes roles; only `landreg chain` role commands and
    #: deployments need it). Deploying needs only its address.
    admin_key: SecretStr | None = None
    #: the admin's encrypted keystore (eth-keyfile), its password, and its address (all a deployment needs)
    admin_keystore: Path | None = None
    admin_keystore_password: SecretStr | None = None
    admin_address: str | None = None
    #: the pauser (stops every state change in an emergency)
    pauser_key: SecretStr | None = None
    #: the pauser's encrypted keystore (eth-keyfile), its password, and its address
    pauser_keystore: Path | None = None
    pauser_keystore_password: SecretStr | None = None
    pauser_address: str | None = None
    #: anchor to an existing DeedRegistry instead of deploying one
    contract_address: str | None = None
    #: how often to ask the node about a transaction in flight: 0.05 s on the local backends (they
    #: mine at once), 2 s on a real network (a block takes about 12 s; providers meter calls)
    poll_interval_s: float = Field(default=0.0, ge=0)
    #: how long to wait for a sent transaction to be mined before asking again what became of it
    receipt_timeout_s: float = Field(default=120.0, gt=0)
    #: how long one call waits for the node's answer: a hung node (stopped, or its host gone
    #: silent) costs a command or the worker at most this per call, never minutes
    rpc_timeout_s: float = Field(default=20.0, gt=0, le=600)
    #: tries of one call when the connection is refused or reset or a proxy answers 5xx (a call
    #: that timed out is not tried again: it has waited its full time already); landreg's own
    #: loops (the worker's next step) are the only other retries, so a call costs at most
    #: ``rpc_attempts`` x ``rpc_timeout_s``
    rpc_attempts: int = Field(default=2, ge=1, le=10)
    #: how often the anchoring worker checks that the node is still the registry's chain (chain
    #: id, genesis, the contract's code); it checks after every failed step too
    identity_check_s: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _rpc_needs_url(self) -> ChainSettings:
        if self.backend == "rpc" and not self.rpc_url:
            raise ValueError("chain.backend=rpc needs LANDREG_CHAIN__RPC_URL")
        if self.confirmations == 0:  # not set: a documented default per kind of chain
            self.confirmations = REAL_NETWORK_CONFIRMATIONS if self.backend == "rpc" else 1
        if self.poll_interval_s == 0:
            self.poll_interval_s = 2.0 if self.backend == "rpc" else 0.05
        return self


class AnchoringSettings(BaseModel):
    #: a batch closes when it holds this many records ...
    batch_max_records: int = Field(default=1000, ge=1, le=1_000_000)
    #: ... or when its oldest record has waited this long, whichever comes first
    batch_max_age_s: float = Field(default=2.0, gt=0)
    #: audit entries with no filing to ride along (a key created, a stage signed off) are anchored in
    #: a batch of their own once the oldest has waited this long
    audit_max_age_s: float = Field(default=60.0, gt=0)
    #: anchor the title state (every parcel's head) in every batch; off only for a benchmark's
    #: baseline (bench/migration.py): batches anchored without it leave their records out of the state
    title_state: bool = True


class ServiceSettings(BaseModel):
    #: `landreg serve`: the address it listens on (0.0.0.0 for every interface)
    host: str = "127.0.0.1"
    #: `landreg serve`: the port of the API and the web desk
    port: int = Field(default=8000, ge=1, le=65535)
    #: uvicorn worker processes; exactly one of them runs the anchoring worker (a database lock decides)
    workers: int = Field(default=1, ge=1, le=64)
    #: run the anchoring worker inside ``landreg serve`` (else run ``landreg worker`` on its own)
    run_worker: bool = True
    #: let ``serve``, ``worker`` and the legacy follower run as a PostgreSQL superuser or as the
    #: schema's owner (roles that can switch the append-only triggers off): a one-machine demo only;
    #: they log a loud warning every start
    allow_privileged_db_role: bool = False
    #: the registry's name: on the desk, certificates, receipts and the trust root
    registry_name: str = "Bergen County Clerk, Land Records"
    #: the record fields an unauthenticated verifier sees in a proof bundle; the rest are redacted
    public_fields: frozenset[str] = frozenset()
    #: the largest request body the API accepts (a scanned document goes to the desk, up to 50 MB)
    max_body_bytes: int = Field(default=1_000_000, ge=1024)
    #: a request's head (request line and headers) over either limit is answered 431 at once, before
    #: the server buffers more of it (registry_service/http_head.py)
    max_header_bytes: int = Field(default=32_768, ge=4096)
    max_headers: int = Field(default=100, ge=16)
    #: a server process that dies is always replaced: at once if it had run for
    #: ``restart_window_s``, else waiting twice as long for each death in a row of its kind, from
    #: ``restart_backoff_s`` up to ``restart_backoff_max_s``; /readyz says "degraded" until a
    #: window has passed without a death
    restart_backoff_s: float = Field(default=1.0, ge=0)
    #: (the back-off above: its longest wait)
    restart_backoff_max_s: float = Field(default=30.0, ge=0)
    #: (the back-off above: how long a process must run for its next death to be replaced at once)
    restart_window_s: float = Field(default=60.0, gt=0)
    #: set by ``landreg serve`` for its processes: the supervisor's status file, read by /readyz
    supervisor_status: Path | None = None
    #: folder of the Ed25519 receipt-signing keys, each encrypted at rest (default LANDREG_HOME/keys/receipt)
    receipt_key_dir: Path | None = None
    #: passphrase that encrypts the receipt-signing keys; the service refuses to start without it
    receipt_key_passphrase: SecretStr | None = None
    #: who may read /metrics: everyone (a Prometheus scraper needs no key), or operators only
    metrics_access: Literal["public", "operators"] = "public"
    #: mark the desk's session cookie Secure (sent over HTTPS only): set it wherever the desk is
    #: served over HTTPS, as it should be in production
    secure_cookies: bool = False
    #: signs the web desk's session cookies; default LANDREG_HOME/keys/session.secret (created once)
    session_secret: SecretStr | None = None
    #: how long a verified API key is trusted before it is looked up again (revocation delay)
    key_cache_s: float = Field(default=5.0, ge=0)
    #: good API keys remembered per server process (wrong ones never are)
    key_cache_size: int = Field(default=10_000, ge=1)
    #: failed authentications allowed per minute from one client address, and for one key id from
    #: one address, before that address gets 429 (per server process). Never per key id alone: key
    #: ids are public, and such a limit would let anyone lock a key's holder out
    auth_failures_per_address: int = Field(default=20, ge=1)
    auth_failures_per_address_and_key: int = Field(default=10, ge=1)
    #: failed authentications per minute from all addresses together past which every address's
    #: allowance shrinks fourfold (many addresses guessing at once); a right key still gets in
    auth_failures_global: int = Field(default=1000, ge=1)
    #: reverse proxies whose X-Forwarded-For is believed (IP addresses or networks); from anyone
    #: else the header is ignored, so a client cannot choose the address it is rate-limited by
    trusted_proxies: list[str] = []
    #: how old the chain's last-known state may be before a probe (/readyz, /metrics) asks the node
    #: again, in the background: a probe never waits on the node for more than a second
    chain_probe_s: float = Field(default=5.0, gt=0)
    #: a fee schedule replacing the one shipped for the jurisdiction (docs/fees.md): a county changes
    #: its fees without a release; filings already examined keep the fees worked out then
    fee_schedule: Path | None = None
    #: complete proof bundles kept per server process (about 3 KB each); 0 disables the cache
    proof_cache_size: int = Field(default=20_000, ge=0)
    #: the address the public reaches this registry at (``https://records.example.gov``): the QR code
    #: on a certificate of recording opens ``{public_base_url}/verify/{number}``, and reconciliation
    #: reports link to the desk under it. Unset: ``http://{host}:{port}`` (``127.0.0.1`` for a
    #: wildcard host), which only this machine can open: set it wherever certificates leave the building
    public_base_url: str | None = None

    @field_validator("public_base_url")
    @classmethod
    def _plain_base_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"public_base_url: {value!r} is not an http(s) address such as https://records.example.gov"
            )
        if parts.query or parts.fragment or "?" in value or "#" in value:
            raise ValueError(f"public_base_url: {value!r} carries a query or fragment; give the bare address")
        return value.strip().rstrip("/")

    @property
    def base_url(self) -> str:
        """``public_base_url``, or the address the server listens on (without a trailing slash)."""
        if self.public_base_url:
            return self.public_base_url
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    @field_validator("public_fields")
    @classmethod
    def _known_fields(cls, value: frozenset[str]) -> frozenset[str]:
        from hybrid_store.core.commitment import FIELDS

        unknown = sorted(value - set(FIELDS))
        if unknown:
            raise ValueError(f"public_fields: {unknown[0]!r} is not a record field ({', '.join(FIELDS)})")
        return value


class TrustSettings(BaseModel):
    #: passphrase of the key that signs each version of the trust root (LANDREG_HOME/keys/trust-root)
    signing_key_passphrase: SecretStr | None = None
    #: a receipt signed by a key retired at time T still proves something only if its record was
    #: anchored before T + this grace (the anchoring delay of a record filed just before T)
    receipt_anchor_grace_s: int = Field(default=86_400, ge=0)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="LANDREG_", env_nested_delimiter="__", extra="ignore", populate_by_name=True
    )

    #: all local state: the SQLite database, the managed chain, keys, trust root, manifests and reports
    home: Path = Path(".landreg")
    #: the registry's jurisdiction profile (``hybrid_store.jurisdictions``): its parcels, places and
    #: input limits; named in the trust root
    jurisdiction: str = "bergen"
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
    trust: TrustSettings = TrustSettings()

    @field_validator("jurisdiction")
    @classmethod
    def _known_jurisdiction(cls, value: str) -> str:
        from hybrid_store.jurisdictions import get_profile

        get_profile(value)  # raises naming the known ones
        return value

    @property
    def profile(self):
        from hybrid_store.jurisdictions import get_profile

        return get_profile(self.jurisdiction)

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

    @property
    def trust_dir(self) -> Path:
        """Published trust-root versions (``root.json`` is the newest; ``N.root.json`` each version)."""
        return self.home / "trust"

    @property
    def receipt_keys_dir(self) -> Path:
        return self.service.receipt_key_dir or self.keys_dir / "receipt"

    def ensure_home(self) -> Path:
        for path in (self.home, self.chain_dir, self.keys_dir, self.reports_dir):
            path.mkdir(parents=True, exist_ok=True)
        self.keys_dir.chmod(0o700)
        return self.home


def get_settings(**overrides: object) -> Settings:
    """A fresh Settings from the environment (plus overrides). Callers pass it down explicitly;
    there is no import-time singleton to monkeypatch."""
    return Settings(**overrides)  # type: ignore[arg-type]
