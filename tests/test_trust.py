"""The trust root: its format and update rules (pure), how the registry builds and publishes it,
deployments that never switch silently, and signing keys with lifecycles."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hybrid_store import signing_keys
from hybrid_store.chain.connect import eth_tester_chain
from hybrid_store.chain.releases import code_hashes, release_of
from hybrid_store.core import trust as core
from hybrid_store.deployment import active_deployment, adopt, attach, upgrade
from hybrid_store.errors import ChainMismatch, ConfigurationError, Conflict
from hybrid_store.settings import Settings
from hybrid_store.trust import latest, publish
from hybrid_store.verifier.trust import load
from tests.conftest import TEST_TRUST_PASSPHRASE, make_sqlite


def signed_body(version: int = 1, root_keys: list[Ed25519PrivateKey] | None = None, **changes) -> dict:
    keys = root_keys or []
    body = {
        "version": version,
        "issuedAt": "2026-11-28T04:00:00Z",
        "registry": {"name": "Test County", "jurisdiction": "bergen", "commitmentSchemes": ["landreg-commitment/v1"]},
        "chain": {"chainId": 31337, "genesisHash": "0x" + "11" * 32},
        "deployments": [
            {
                "contract": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
                "registryVersion": 2,
                "codeHash": "0x" + "22" * 32,
                "deployTx": None,
                "deployBlock": None,
                "fromBlock": 1,
                "untilBlock": None,
            },
        ],  # fmt: skip
        "receiptKeys": [],
        "receiptAnchorGraceSeconds": 60,
        "rootKeys": [
            {"kid": core.key_id(core.raw_public(k)), "alg": "Ed25519", "x": core.b64url(core.raw_public(k))}
            for k in keys
        ],  # fmt: skip
    }
    body.update(changes)
    return body


def root_of(body: dict, signers: list[Ed25519PrivateKey]) -> core.TrustRoot:
    return core.parse(core.sign(body, signers))


# --- the pure format ----------------------------------------------------------------------------------
def test_a_signed_root_round_trips_and_is_self_signed():
    key = Ed25519PrivateKey.generate()
    doc = core.sign(signed_body(root_keys=[key]), [key])
    root = core.parse(json.loads(json.dumps(doc)))
    core.check_self_signed(root)
    assert root.version == 1 and root.deployments[0].covers(1) and not root.deployments[0].covers(0)
    assert root.deployment("0x5fbdb2315678afecb367f032d93f642f64180aa3") is not None


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b.__setitem__("extra", 1), "signed.extra: is not a member"),
        (lambda b: b.pop("rootKeys"), "signed.rootKeys: is missing"),
        (lambda b: b["deployments"][0].__setitem__("contract", "0x5fbdb2315678afecb367f032d93f642f64180aa3"),
         "must be an EIP-55"),
        (lambda b: b["deployments"][0].__setitem__("untilBlock", 0), "untilBlock: before fromBlock"),
        (lambda b: b.__setitem__("issuedAt", "2026-11-28 04:00"), "must be a UTC time"),
        (lambda b: b["rootKeys"][0].__setitem__("kid", "ed25519-0000000000000000"), "is not the id of key x"),
        (lambda b: b.__setitem__("version", 0), "versions start at 1"),
    ],
)  # fmt: skip
def test_malformed_roots_are_refused_naming_the_member(mutate, message):
    key = Ed25519PrivateKey.generate()
    body = signed_body(root_keys=[key])
    mutate(body)
    with pytest.raises(core.TrustRootError, match=message):
        core.parse(core.sign(body, [key]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_change_to_the_signed_content_breaks_the_signature(data):
    key = Ed25519PrivateKey.generate()
    doc = core.sign(signed_body(root_keys=[key]), [key])
    changed = copy.deepcopy(doc)
    target = data.draw(st.sampled_from(["name", "chainId", "fromBlock", "codeHash", "grace"]))
    if target == "name":
        changed["signed"]["registry"]["name"] += data.draw(st.text(min_size=1, max_size=3))
    elif target == "chainId":
        changed["signed"]["chain"]["chainId"] = data.draw(st.integers(0, 10**6).filter(lambda n: n != 31337))
    elif target == "fromBlock":
        changed["signed"]["deployments"][0]["fromBlock"] = data.draw(st.integers(2, 10**6))
    elif target == "codeHash":
        changed["signed"]["deployments"][0]["codeHash"] = "0x" + "33" * 32
    else:
        changed["signed"]["receiptAnchorGraceSeconds"] = data.draw(st.integers(61, 10**7))
    with pytest.raises(core.TrustRootError, match="not signed by any of its own root keys"):
        core.check_self_signed(core.parse(changed))


def test_updates_follow_the_previous_versions_root_keys():
    old_key, new_key, mallory = (Ed25519PrivateKey.generate() for _ in range(3))
    v1 = root_of(signed_body(1, [old_key]), [old_key])
    # a rotation of the root key: v2 lists the new key and is signed by the old and the new
    v2 = root_of(signed_body(2, [new_key]), [old_key, new_key])
    core.check_update(v1, v2)
    v3 = root_of(signed_body(3, [new_key]), [new_key])
    assert core.follow(v1, [v3, v2]).version == 3
    with pytest.raises(core.TrustRootError, match="not signed by a root key of v1"):
        core.check_update(v1, root_of(signed_body(2, [mallory]), [mallory]))
    with pytest.raises(core.TrustRootError, match="not signed by any of its own root keys"):
        core.check_update(v1, root_of(signed_body(2, [new_key]), [old_key]))  # no proof of the new key
    with pytest.raises(core.TrustRootError, match="does not follow v1"):
        core.check_update(v1, root_of(signed_body(3, [old_key]), [old_key]))
    with pytest.raises(core.TrustRootError, match="names chain 1"):
        core.check_update(v1, root_of(signed_body(2, [old_key], chain={"chainId": 1, "genesisHash": "0x" + "11" * 32}),
                                      [old_key]))  # fmt: skip
    with pytest.raises(core.TrustRootError, match="drops or rewrites deployment"):
        core.check_update(v1, root_of(signed_body(2, [old_key], deployments=[]), [old_key]))


def test_both_releases_are_known_by_their_code():
    assert sorted(code_hashes().values()) == [1, 2]
    assert release_of("0x" + "00" * 32) is None


# --- the registry's trust root --------------------------------------------------------------------------
def cfg_for(tmp_path: Path, **trust) -> Settings:
    cfg = Settings(home=tmp_path / "home", trust={"signing_key_passphrase": TEST_TRUST_PASSPHRASE, **trust})
    cfg.ensure_home()
    return cfg


def test_publishing_is_versioned_signed_and_only_when_something_changed(tmp_path):
    db = make_sqlite(tmp_path)
    chain = eth_tester_chain()
    deployment = attach(db, chain)
    cfg = cfg_for(tmp_path)
    v1, new = publish(cfg, db)
    assert new and v1.version == 1 and v1.deployments[0].contract == deployment.contract_address
    assert v1.deployments[0].code_hash == chain.code_hash() and v1.deployments[0].registry_version == 2
    assert v1.genesis_hash == chain.genesis_hash() and v1.chain_id == chain.chain_id
    assert publish(cfg, db) == (v1, False)  # nothing changed, no new version
    # a receipt key appears: version 2, signed by v1's root key; both versions stay published
    signing_keys.active_key(db, signing_keys.KeySource("receipt", tmp_path / "rk", "receipt passphrase!", "X"))
    v2, new = publish(cfg, db)
    assert new and v2.version == 2 and len(v2.receipt_keys) == 1
    core.check_update(load(cfg.trust_dir / "1.root.json"), load(cfg.trust_dir / "2.root.json"))
    # rotating the trust-root key: v3 lists only the new key, and v2's holders still accept it
    signing_keys.rotate(
        db, signing_keys.KeySource("trust-root", cfg.keys_dir / "trust-root", TEST_TRUST_PASSPHRASE, "X")
    )
    v3, _ = publish(cfg, db)
    assert {k.kid for k in v3.root_keys}.isdisjoint({k.kid for k in v2.root_keys})
    core.check_update(v2, v3)


def test_no_passphrase_no_trust_root(tmp_path):
    db = make_sqlite(tmp_path)
    attach(db, eth_tester_chain())
    cfg = Settings(home=tmp_path / "home", trust={"signing_key_passphrase": None})
    with pytest.raises(ConfigurationError, match="LANDREG_TRUST__SIGNING_KEY_PASSPHRASE is not set"):
        publish(cfg, db)
    assert latest(cfg) is None


def test_the_contract_never_switches_silently(tmp_path):
    db = make_sqlite(tmp_path)
    chain = eth_tester_chain()
    first = attach(db, chain)
    other = eth_tester_chain()  # a DeedRegistry deployed on another chain object; same code
    other.w3 = chain.w3
    other.deploy()
    chain.address = other.address  # LANDREG_CHAIN__CONTRACT_ADDRESS changed behind our back
    with pytest.raises(ChainMismatch, match="switching contracts is never silent"):
        attach(db, chain)
    chain.address = None
    head = chain.head()
    moved = adopt(db, chain, other.address)
    assert moved.active_from_block == head + 1 and chain.address == other.address
    with db.read() as s:
        old = s.get(type(first), first.id)
        assert old.active_until_block == head and active_deployment(s).contract_address == other.address
    assert attach(db, chain).contract_address == other.address


def test_an_upgrade_continues_token_numbering_and_closes_the_old_range(tmp_path):
    from hybrid_store.anchoring import Anchorer
    from hybrid_store.filing import record_instruments
    from hybrid_store.intake import validate
    from tests.conftest import deed

    db = make_sqlite(tmp_path)
    chain = eth_tester_chain()
    first = attach(db, chain)
    with db.write() as s:
        record_instruments(s, [validate(deed())])
    Anchorer(db, chain, first).drain()
    next_token = chain.next_token_id()
    assert next_token > 1
    second = upgrade(db, chain)
    assert chain.address == second.contract_address and chain.next_token_id() == next_token
    with db.write() as s:
        record_instruments(s, [validate(deed(parcels=[{"municipality_code": "0223", "block": "9", "lot": "9"}]))])
    Anchorer(db, chain, second).drain()
    assert chain.batch_count() == 1 and chain.next_token_id() == next_token + 1
    root = publish(cfg_for(tmp_path), db)[0]
    assert [d.until_block is None for d in root.deployments] == [False, True]


# --- signing keys -----------------------------------------------------------------------------------
def test_signing_keys_rotate_with_windows_and_compromise_needs_a_retired_key(tmp_path):
    db = make_sqlite(tmp_path)
    source = signing_keys.KeySource("receipt", tmp_path / "keys", "receipt passphrase!", "X")
    first, _ = signing_keys.active_key(db, source)
    with pytest.raises(Conflict, match="rotate it first"):
        signing_keys.mark_compromised(db, first, "stolen")
    old, new = signing_keys.rotate(db, source)
    assert old == first and new != first
    rows = {k.kid: k for k in signing_keys.keys_of(db, "receipt")}
    assert rows[first].status == "retired" and rows[first].valid_until == rows[new].valid_from
    signing_keys.mark_compromised(db, first, "stolen")
    assert {k.kid: k.status for k in signing_keys.keys_of(db, "receipt")} == {first: "compromised", new: "active"}
    assert source.load(first) is not None  # kept (encrypted) for the record; never used again


def test_keys_are_encrypted_and_a_plaintext_one_is_adopted(tmp_path):
    db = make_sqlite(tmp_path)
    legacy = tmp_path / "receipt-ed25519.pem"  # what earlier landreg versions wrote
    key = Ed25519PrivateKey.generate()
    legacy.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()))  # fmt: skip
    source = signing_keys.KeySource("receipt", tmp_path / "keys", "receipt passphrase!", "X")
    kid, adopted = signing_keys.active_key(db, source, legacy_plaintext=legacy)
    assert kid == core.key_id(core.raw_public(key)) and not legacy.exists()
    stored = (tmp_path / "keys" / f"{kid}.pem").read_bytes()
    assert stored.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    wrong = signing_keys.KeySource("receipt", tmp_path / "keys", "not the passphrase", "X")
    with pytest.raises(ConfigurationError, match="cannot decrypt"):
        wrong.load(kid)
    with pytest.raises(ConfigurationError, match="too short"):
        signing_keys.KeySource("receipt", tmp_path / "keys", "short", "X").load(kid)


def test_the_service_refuses_to_start_without_the_receipt_passphrase(tmp_path, monkeypatch):
    from registry_service.app import create_app

    monkeypatch.delenv("LANDREG_SERVICE__RECEIPT_KEY_PASSPHRASE")
    db = make_sqlite(tmp_path)
    cfg = Settings(home=tmp_path / "home", chain={"backend": "eth-tester"})
    with pytest.raises(ConfigurationError, match="LANDREG_SERVICE__RECEIPT_KEY_PASSPHRASE is not set"):
        create_app(cfg, db=db, chain_factory=eth_tester_chain, run_worker=False)
