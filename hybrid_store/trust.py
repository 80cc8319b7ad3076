"""The registry's trust root, built from what the registry knows and published as signed files.

``publish`` assembles the next version (deployments with their block ranges and code hashes,
receipt keys with their windows, the trust-root keys), and writes it signed to
``LANDREG_HOME/trust`` when anything changed: ``root.json`` is the newest, ``N.root.json`` each
version, so a verifier holding version N can fetch N+1, N+2, ... and check each step.

Reading a trust root for a verifier (from its pinned file or a URL, never from the database) is the
verifier's: ``hybrid_store.verifier.trust``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from hybrid_store import signing_keys
from hybrid_store.core import trust as core
from hybrid_store.core.commitment import SCHEME, SCHEMES
from hybrid_store.db.engine import Database
from hybrid_store.db.models import ChainDeployment, Commitment, KeyStatus
from hybrid_store.errors import ConfigurationError
from hybrid_store.files import write_atomic
from hybrid_store.pins import pinned_jurisdiction
from hybrid_store.settings import Settings
from hybrid_store.verifier.trust import read_file, read_json

if TYPE_CHECKING:  # the chain client pulls in eth-account and more: commands that never touch the chain skip it
    from hybrid_store.chain.client import RegistryChain

LATEST = "root.json"


def key_source(settings: Settings) -> signing_keys.KeySource:
    secret = settings.trust.signing_key_passphrase
    return signing_keys.KeySource(
        purpose="trust-root",
        folder=settings.keys_dir / "trust-root",
        passphrase=secret.get_secret_value() if secret else None,
        setting="LANDREG_TRUST__SIGNING_KEY_PASSPHRASE",
    )


def _key_json(row: Any, windowed: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"kid": row.kid, "alg": "Ed25519", "x": row.public_key}
    if windowed:
        out |= {
            "validFrom": core.format_time(row.valid_from),
            "validUntil": None if row.valid_until is None else core.format_time(row.valid_until),
            "status": row.status,
        }
    return out


def signed_content(settings: Settings, db: Database) -> dict[str, Any]:
    """The ``signed`` member of the next version, without ``version`` and ``issuedAt``."""
    with db.read() as s:
        deployments = list(s.scalars(select(ChainDeployment).order_by(ChainDeployment.id)))
        jurisdiction = pinned_jurisdiction(s) or settings.jurisdiction
        used = set(s.scalars(select(Commitment.scheme).distinct()))
    if not deployments:
        raise ConfigurationError(
            "no DeedRegistry deployed yet: nothing to put in a trust root (`landreg chain deploy`)"
        )
    missing = [d.contract_address for d in deployments if d.code_hash is None or d.active_from_block is None]
    if missing:
        raise ConfigurationError(
            f"deployment {missing[0]} has no recorded code hash or block range yet: "
            "run `landreg chain status` against the node once to record them"
        )
    first = deployments[0]
    root_keys = [k for k in signing_keys.keys_of(db, "trust-root") if k.status == KeyStatus.ACTIVE]
    return {
        "registry": {
            "name": settings.service.registry_name,
            "jurisdiction": jurisdiction,
            # the schemes of the records it holds and the one it commits new records under: a verifier
            # refuses a bundle of any other (a registry moving to a new scheme publishes a new version)
            "commitmentSchemes": [name for name in SCHEMES if name in used | {SCHEME}],
        },
        "chain": {"chainId": first.chain_id, "genesisHash": first.genesis_hash},
        "deployments": [
            {
                "contract": d.contract_address,
                "registryVersion": d.registry_version,
                "codeHash": d.code_hash,
                "deployTx": d.deploy_tx,
                "deployBlock": d.deploy_block,
                "fromBlock": d.active_from_block,
                "untilBlock": d.active_until_block,
            }
            for d in deployments
        ],
        "receiptKeys": [_key_json(k, True) for k in signing_keys.keys_of(db, "receipt")],
        "receiptAnchorGraceSeconds": settings.trust.receipt_anchor_grace_s,
        "rootKeys": [_key_json(k, False) for k in root_keys],
    }


def latest(settings: Settings) -> core.TrustRoot | None:
    """The newest version this registry published (its own copy, under LANDREG_HOME/trust)."""
    path = settings.trust_dir / LATEST
    if not path.exists():
        return None
    return core.parse(read_json(read_file(path), str(path)))


def publish(settings: Settings, db: Database) -> tuple[core.TrustRoot, bool]:
    """Write the next version if anything changed; returns (newest root, whether it is new)."""
    source = key_source(settings)
    signing_keys.active_key(db, source)  # the first trust-root key is made on first publication
    content = signed_content(settings, db)
    previous = latest(settings)
    if previous is not None:
        before = {k: v for k, v in previous.document["signed"].items() if k not in ("version", "issuedAt")}
        if before == content:
            return previous, False
    version = 1 if previous is None else previous.version + 1
    signed = {"version": version, "issuedAt": core.format_time(_now()), **content}
    # sign with every key we hold that the previous version or this one lists, so that a verifier
    # holding the previous version accepts it even across a rotation of the trust-root key
    listed = {k["kid"] for k in content["rootKeys"]} | (
        {k.kid for k in previous.root_keys} if previous is not None else set()
    )
    usable = [
        k for k in signing_keys.keys_of(db, "trust-root") if k.kid in listed and k.status != KeyStatus.COMPROMISED
    ]
    keys = [source.load(k.kid) for k in usable]
    document = core.sign(signed, keys)
    root = core.parse(document)
    if previous is not None:
        core.check_update(previous, root)
    else:
        core.check_self_signed(root)
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    _write(settings.trust_dir / f"{version}.root.json", text)
    _write(settings.trust_dir / LATEST, text)
    return root, True


def attach_published(settings: Settings, db: Database, chain: RegistryChain, *, deploy_if_missing: bool = True):
    """``deployment.attach``, keeping the trust root current: a new deployment is published at once,
    so a first deployment needs the trust-root passphrase (checked before anything is deployed)."""
    from hybrid_store.deployment import active_deployment, attach

    with db.read() as session:
        first_use = active_deployment(session) is None
    if first_use and deploy_if_missing and settings.trust.signing_key_passphrase is None:
        raise ConfigurationError(
            "deploying a DeedRegistry publishes the registry's trust root, which needs "
            "LANDREG_TRUST__SIGNING_KEY_PASSPHRASE (a secret of at least 12 characters)"
        )
    deployment = attach(db, chain, deploy_if_missing=deploy_if_missing)
    published = latest(settings)
    stale = (
        published is None
        or published.deployment(deployment.contract_address) is None
        or not published.lists_scheme(SCHEME)  # the registry now commits under a scheme its trust root lacks
    )
    if stale and settings.trust.signing_key_passphrase is not None:
        publish(settings, db)
    return deployment


def version_file(settings: Settings, version: int) -> Path:
    return settings.trust_dir / f"{version}.root.json"


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _write(path: Path, text: str) -> None:
    write_atomic(path, text.encode(), 0o644)  # published: anyone may read it
