"""The registry's trust root (format ``landreg-trust-root/v1``, spec in docs/proof-bundle.md).

An auditor trusts nothing of the county's but this document, obtained out of band the first time
(the county publishes it). It names the registry, the chain, every DeedRegistry deployment with
the block range in which it was the registry's and its code hash, and the receipt-signing keys
with their validity windows. A verifier never trusts an address or a key that arrives inside the
artefact it verifies; it looks both up here (the model is Sigstore's ``trusted_root.json`` and TUF's
root metadata).

Each version is signed (Ed25519 over the RFC 8785 form of ``signed``, domain-separated) by a key
listed in the *previous* version's ``rootKeys`` and by one of its own, so a verifier holding any
old version can follow the chain of updates and refuses a version signed by anyone else.

Pure: parsing, signing and checking; no file, network or chain access.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from hybrid_store.core.hashing import is_checksum_address, is_hex32
from hybrid_store.errors import LandregError

FORMAT = "landreg-trust-root/v1"
#: prefixed to the signed bytes so a trust-root signature can never be replayed as another message
SIGNING_DOMAIN = b"landreg-trust-root/v1\n"
KEY_STATUSES = ("active", "retired", "compromised")
MAX_ENTRIES = 1000  # deployments or keys; a registry has a handful
#: what a trust root that lists no commitment scheme vouches for (the only scheme there was)
LEGACY_SCHEME = "landreg-commitment/v1"


class TrustRootError(LandregError, ValueError):
    """A trust root is malformed, or an update to it is not signed by a key the previous one lists."""

    hint = "obtain the registry's trust root from the county (out of band), then pass it with --trust"


# --- keys -------------------------------------------------------------------------------------------
def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def raw_public(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes_raw()  # not through `serialization`, whose SSH and PKCS12 code a verifier never needs


def key_id(public_raw: bytes) -> str:
    """``ed25519-`` + the first 16 hex digits of SHA-256 of the raw public key."""
    return "ed25519-" + hashlib.sha256(public_raw).hexdigest()[:16]


def parse_time(text: str) -> datetime:
    """``YYYY-MM-DDTHH:MM:SSZ`` (UTC, whole seconds), the only spelling the format allows."""
    try:
        value = datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
    except (TypeError, ValueError):
        raise ValueError("must be a UTC time like 2026-11-28T04:00:00Z") from None
    return value.replace(tzinfo=UTC)


def format_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the parsed document ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Deployment:
    contract: str  # EIP-55
    registry_version: int
    code_hash: str
    deploy_tx: str | None
    deploy_block: int | None
    from_block: int
    until_block: int | None  # None: still the registry's contract

    def covers(self, block: int) -> bool:
        return block >= self.from_block and (self.until_block is None or block <= self.until_block)

    def describe_range(self) -> str:
        return f"blocks {self.from_block}–{'now' if self.until_block is None else self.until_block}"


@dataclass(frozen=True)
class KeyEntry:
    kid: str
    public_raw: bytes
    valid_from: datetime | None
    valid_until: datetime | None
    status: str

    def public_key(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(self.public_raw)


@dataclass(frozen=True)
class TrustRoot:
    version: int
    issued_at: datetime
    registry_name: str
    jurisdiction: str
    commitment_schemes: tuple[str, ...]
    chain_id: int
    genesis_hash: str
    deployments: tuple[Deployment, ...]
    receipt_keys: tuple[KeyEntry, ...]
    receipt_anchor_grace_s: int
    root_keys: tuple[KeyEntry, ...]
    document: Mapping[str, Any]  # the whole signed document, as parsed

    def lists_scheme(self, scheme: str) -> bool:
        """Whether this registry commits records under ``scheme``. A trust root that lists no scheme
        predates the list's use: its registry committed under v1 only."""
        return scheme in (self.commitment_schemes or (LEGACY_SCHEME,))

    def deployment(self, contract: str) -> Deployment | None:
        return next((d for d in self.deployments if d.contract.lower() == contract.lower()), None)

    def receipt_key(self, kid: str) -> KeyEntry | None:
        return next((k for k in self.receipt_keys if k.kid == kid), None)

    def describe(self) -> str:
        return f"trust root v{self.version} of {self.registry_name} (chain {self.chain_id})"


# --- parsing ----------------------------------------------------------------------------------------
def _obj(value: Any, where: str, required: set[str], optional: frozenset[str] = frozenset()) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise TrustRootError(f"malformed trust root: {where}: must be a JSON object")
    for key in value:
        if key not in required and key not in optional:
            raise TrustRootError(f"malformed trust root: {where}.{key}: is not a member of this format")
    for key in sorted(required):
        if key not in value:
            raise TrustRootError(f"malformed trust root: {where}.{key}: is missing")
    return value


def _uint(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise TrustRootError(f"malformed trust root: {where}: must be a non-negative integer")
    return value


def _str(value: Any, where: str, max_len: int = 200) -> str:
    if not isinstance(value, str) or not value or len(value) > max_len:
        raise TrustRootError(f"malformed trust root: {where}: must be a non-empty string of at most {max_len}")
    return value


def _hex32(value: Any, where: str) -> str:
    if not is_hex32(value):
        raise TrustRootError(f"malformed trust root: {where}: must be 0x followed by 64 lowercase hex digits")
    return str(value)


def _time(value: Any, where: str) -> datetime:
    try:
        return parse_time(value)
    except ValueError as exc:
        raise TrustRootError(f"malformed trust root: {where}: {exc}") from None


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list) or len(value) > MAX_ENTRIES:
        raise TrustRootError(f"malformed trust root: {where}: must be a list of at most {MAX_ENTRIES} entries")
    return value


def _key(value: Any, where: str, *, windowed: bool) -> KeyEntry:
    members = {"kid", "alg", "x"} | ({"validFrom", "validUntil", "status"} if windowed else set())
    k = _obj(value, where, members)
    if k["alg"] != "Ed25519":
        raise TrustRootError(f"malformed trust root: {where}.alg: must be 'Ed25519'")
    try:
        raw = unb64url(_str(k["x"], f"{where}.x"))
        Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, TypeError):
        raise TrustRootError(f"malformed trust root: {where}.x: not a base64url Ed25519 public key") from None
    kid = _str(k["kid"], f"{where}.kid", 64)
    if kid != key_id(raw):
        raise TrustRootError(f"malformed trust root: {where}.kid: is not the id of key x ({key_id(raw)})")
    if not windowed:
        return KeyEntry(kid, raw, None, None, "active")
    if k["status"] not in KEY_STATUSES:
        raise TrustRootError(f"malformed trust root: {where}.status: must be one of {', '.join(KEY_STATUSES)}")
    until = None if k["validUntil"] is None else _time(k["validUntil"], f"{where}.validUntil")
    return KeyEntry(kid, raw, _time(k["validFrom"], f"{where}.validFrom"), until, k["status"])


def parse(document: Any) -> TrustRoot:
    """Parse a decoded trust-root document strictly (signatures are checked separately)."""
    top = _obj(document, "(trust root)", {"format", "signed", "signatures"})
    if top["format"] != FORMAT:
        raise TrustRootError(f"malformed trust root: format: must be {FORMAT!r}")
    s = _obj(
        top["signed"],
        "signed",
        {"version", "issuedAt", "registry", "chain", "deployments", "receiptKeys", "receiptAnchorGraceSeconds",
         "rootKeys"},
    )  # fmt: skip
    reg = _obj(s["registry"], "signed.registry", {"name", "jurisdiction", "commitmentSchemes"})
    schemes = tuple(_str(x, f"signed.registry.commitmentSchemes[{i}]", 64)
                    for i, x in enumerate(_list(reg["commitmentSchemes"], "signed.registry.commitmentSchemes")))  # fmt: skip
    ch = _obj(s["chain"], "signed.chain", {"chainId", "genesisHash"})
    deployments = []
    for i, d in enumerate(_list(s["deployments"], "signed.deployments")):
        where = f"signed.deployments[{i}]"
        d = _obj(d, where, {"contract", "registryVersion", "codeHash", "deployTx", "deployBlock", "fromBlock",
                            "untilBlock"})  # fmt: skip
        if not isinstance(d["contract"], str) or not is_checksum_address(d["contract"]):
            raise TrustRootError(f"malformed trust root: {where}.contract: must be an EIP-55 checksummed address")
        entry = Deployment(
            contract=d["contract"],
            registry_version=_uint(d["registryVersion"], f"{where}.registryVersion"),
            code_hash=_hex32(d["codeHash"], f"{where}.codeHash"),
            deploy_tx=None if d["deployTx"] is None else _hex32(d["deployTx"], f"{where}.deployTx"),
            deploy_block=None if d["deployBlock"] is None else _uint(d["deployBlock"], f"{where}.deployBlock"),
            from_block=_uint(d["fromBlock"], f"{where}.fromBlock"),
            until_block=None if d["untilBlock"] is None else _uint(d["untilBlock"], f"{where}.untilBlock"),
        )
        if entry.until_block is not None and entry.until_block < entry.from_block:
            raise TrustRootError(f"malformed trust root: {where}.untilBlock: before fromBlock")
        deployments.append(entry)
    receipt_keys = [_key(k, f"signed.receiptKeys[{i}]", windowed=True)
                    for i, k in enumerate(_list(s["receiptKeys"], "signed.receiptKeys"))]  # fmt: skip
    root_keys = [_key(k, f"signed.rootKeys[{i}]", windowed=False)
                 for i, k in enumerate(_list(s["rootKeys"], "signed.rootKeys"))]  # fmt: skip
    if not root_keys:
        raise TrustRootError("malformed trust root: signed.rootKeys: must list at least one key")
    version = _uint(s["version"], "signed.version")
    if version < 1:
        raise TrustRootError("malformed trust root: signed.version: versions start at 1")
    _list(top["signatures"], "signatures")
    for i, sig in enumerate(top["signatures"]):
        sig = _obj(sig, f"signatures[{i}]", {"kid", "sig"})
        _str(sig["kid"], f"signatures[{i}].kid", 64)
        _str(sig["sig"], f"signatures[{i}].sig", 128)
    return TrustRoot(
        version=version,
        issued_at=_time(s["issuedAt"], "signed.issuedAt"),
        registry_name=_str(reg["name"], "signed.registry.name"),
        jurisdiction=_str(reg["jurisdiction"], "signed.registry.jurisdiction", 64),
        commitment_schemes=schemes,
        chain_id=_uint(ch["chainId"], "signed.chain.chainId"),
        genesis_hash=_hex32(ch["genesisHash"], "signed.chain.genesisHash"),
        deployments=tuple(deployments),
        receipt_keys=tuple(receipt_keys),
        receipt_anchor_grace_s=_uint(s["receiptAnchorGraceSeconds"], "signed.receiptAnchorGraceSeconds"),
        root_keys=tuple(root_keys),
        document=document,
    )


# --- signing and checking ---------------------------------------------------------------------------
def signed_bytes(signed: Mapping[str, Any]) -> bytes:
    return SIGNING_DOMAIN + rfc8785.dumps(dict(signed))


def sign(signed: Mapping[str, Any], keys: Sequence[Ed25519PrivateKey]) -> dict[str, Any]:
    """The full document: ``signed`` with one signature per key (sorted by key id)."""
    message = signed_bytes(signed)
    signatures = sorted(
        ({"kid": key_id(raw_public(k)), "sig": b64url(k.sign(message))} for k in keys), key=lambda s: s["kid"]
    )
    return {"format": FORMAT, "signed": dict(signed), "signatures": signatures}


def signers(root: TrustRoot, keys: Iterable[KeyEntry]) -> set[str]:
    """Ids of ``keys`` that validly signed ``root``."""
    message = signed_bytes(root.document["signed"])
    by_kid = {k.kid: k for k in keys}
    valid = set()
    for sig in root.document["signatures"]:
        key = by_kid.get(sig["kid"])
        if key is None:
            continue
        try:
            key.public_key().verify(unb64url(sig["sig"]), message)
        except (InvalidSignature, ValueError):
            continue
        valid.add(key.kid)
    return valid


def check_self_signed(root: TrustRoot) -> None:
    """A root obtained out of band must at least be signed by one of its own root keys (a corrupt or
    hand-edited file fails here)."""
    if not signers(root, root.root_keys):
        raise TrustRootError(f"{root.describe()} is not signed by any of its own root keys (altered or corrupt)")


def check_update(current: TrustRoot, update: TrustRoot) -> None:
    """Accept ``update`` as the next version after ``current``, or raise ``TrustRootError``."""
    if update.version != current.version + 1:
        raise TrustRootError(
            f"trust root v{update.version} does not follow v{current.version} (expected v{current.version + 1})"
        )
    if update.chain_id != current.chain_id or update.genesis_hash != current.genesis_hash:
        raise TrustRootError(
            f"trust root v{update.version} names chain {update.chain_id} ({update.genesis_hash}), "
            f"but v{current.version} names chain {current.chain_id} ({current.genesis_hash})"
        )
    if update.jurisdiction != current.jurisdiction:
        raise TrustRootError(
            f"trust root v{update.version} names jurisdiction {update.jurisdiction!r}, but v{current.version} names "
            f"{current.jurisdiction!r}: a registry never changes how its parcels are named"
        )
    if not signers(update, current.root_keys):
        listed = ", ".join(k.kid for k in current.root_keys)
        found = ", ".join(s["kid"] for s in update.document["signatures"]) or "none"
        raise TrustRootError(
            f"trust root v{update.version} is not signed by a root key of v{current.version} "
            f"(expected one of {listed}; signed by {found})"
        )
    if not signers(update, update.root_keys):
        raise TrustRootError(f"trust root v{update.version} is not signed by any of its own root keys")
    for old in current.deployments:
        new = update.deployment(old.contract)
        if new is None or new.code_hash != old.code_hash or new.from_block != old.from_block:
            raise TrustRootError(
                f"trust root v{update.version} drops or rewrites deployment {old.contract} of v{current.version}"
            )


def follow(pinned: TrustRoot, updates: Iterable[TrustRoot]) -> TrustRoot:
    """The newest root reachable from ``pinned`` through ``updates`` (in version order)."""
    current = pinned
    for update in sorted(updates, key=lambda r: r.version):
        if update.version <= current.version:
            continue
        check_update(current, update)
        current = update
    return current
