"""The forgery set: every way we know to make a verifier say VALID about something the county's
registry never recorded, tried against real processes.

One county registry runs for the whole module, as production would: a managed anvil node, a
version-1 DeedRegistry it started on, an upgrade to version 2 (`landreg chain upgrade`), `landreg
serve` filing deeds through the API and anchoring them, a receipt-key rotation and a compromise
(`landreg signing-keys`). Attackers then hold the well-known anvil development keys (public, for
development only) of their own, the registry's retired registrar key, its retired receipt key,
and a second node. Each forgery goes through the three verification paths an auditor has:
`landreg verify` (an auditor's machine holding only the trust root), `POST /api/v1/proofs/verify`
and the desk's upload. Each must be rejected with its reason; the genuine bundles verify.
"""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account

from hybrid_store.chain.client import RegistryChain, account_from_key
from hybrid_store.chain.connect import http_web3
from hybrid_store.chain.releases import release_artifact
from hybrid_store.core import bundle as bundles
from hybrid_store.core import merkle
from hybrid_store.core import trust as trust_core
from hybrid_store.core.commitment import Disclosure
from hybrid_store.core.hashing import keccak256, to_hex
from hybrid_store.keyfiles import load_key
from hybrid_store.settings import ANVIL_DEV_KEY_0, ANVIL_DEV_KEY_1, ANVIL_DEV_KEY_2
from hybrid_store.verifier.receipts import signed_bytes
from tests.conftest import PASSPHRASE_ENV, TEST_RECEIPT_PASSPHRASE, filing, free_port
from tests.processes import landreg, spawn

pytestmark = [pytest.mark.anvil, pytest.mark.slow]

# anvil's development accounts 5-7: public keys anyone has, used here by the attacker (tests only)
ATTACKER_KEYS = [
    "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
    "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",
    "0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356",
]


def ok(env: dict[str, str], *args: str) -> str:
    done = landreg(env, *args)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


class Server:
    """`landreg serve` (with its anchoring worker) as a real process."""

    def __init__(self, env: dict[str, str]):
        self.env = env
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Server:
        self.proc = spawn(self.env, "serve", "--port", str(self.port), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for _ in range(300):
            try:
                if httpx.get(self.base + "/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            assert self.proc.poll() is None, self.proc.stdout.read().decode() if self.proc.stdout else ""
            time.sleep(0.2)
        raise AssertionError("landreg serve did not come up")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)
        self.proc = None


@dataclass
class County:
    env: dict[str, str]
    auditor_env: dict[str, str]  # an auditor's machine: no registry, only the trust root it was handed
    server: Server
    rpc: str
    trust_file: Path  # the newest trust root, as the county publishes it
    first_trust: Path  # version 1, as an auditor obtained it at the start
    clerk: str
    auditor: str
    bundles: dict[str, dict[str, Any]]  # name -> genuine bundle
    receipts: dict[str, dict[str, Any]]  # name -> receipt as handed out
    v1: RegistryChain  # the first (version 1) deployment, retired by the upgrade
    v2: RegistryChain
    retired_receipt_kid: str
    compromised_kid: str
    other_node: str  # another chain: anvil with chain id 4242


def file_deed(server: Server, clerk: str, **overrides: Any) -> dict[str, Any]:
    r = httpx.post(server.base + "/api/v1/instruments", json=filing(**overrides),
                   headers={"Authorization": f"Bearer {clerk}"}, timeout=30)  # fmt: skip
    assert r.status_code == 201, r.text
    return r.json()["receipt"]


def anchored_bundle(server: Server, clerk: str, number: str) -> dict[str, Any]:
    for _ in range(300):
        r = httpx.get(f"{server.base}/api/v1/instruments/{number}/proof", headers={"Authorization": f"Bearer {clerk}"},
                      timeout=30)  # fmt: skip
        if r.status_code == 200:
            return r.json()
        time.sleep(0.1)
    raise AssertionError(f"{number} was not anchored")


def lot(n: int) -> list[dict[str, str]]:
    return [{"municipality_code": "0223", "block": "900", "lot": str(n)}]


def deploy_v1(rpc: str) -> str:
    """A DeedRegistry version 1, as a county that started before version 2 runs (registrar: anvil
    dev key 0, admin: dev key 1)."""
    chain = RegistryChain(http_web3(rpc), account_from_key(ANVIL_DEV_KEY_0))
    v1 = release_artifact(1)
    factory = chain.w3.eth.contract(abi=v1["abi"], bytecode=v1["bytecode"])
    admin = Account.from_key(ANVIL_DEV_KEY_1).address
    tx = factory.constructor("Landreg Parcel", "PARCEL", admin, chain.registrar.address).build_transaction(
        chain.base_transaction(chain.pending_nonce())
    )
    return str(chain.wait(chain.broadcast(chain.sign_transaction(tx))).contract_address)


@pytest.fixture(scope="module")
def county(tmp_path_factory: pytest.TempPathFactory):
    from hybrid_store.chain.anvil import ManagedAnvil
    from hybrid_store.settings import Settings

    tmp = tmp_path_factory.mktemp("county")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LANDREG_") and k != "DATABASE_URL"}
    env.update({"LANDREG_HOME": str(tmp / "home"), "LANDREG_CHAIN__ANVIL_PORT": str(free_port()), **PASSPHRASE_ENV,
                "LANDREG_SERVICE__KEY_CACHE_S": "0", "LANDREG_ANCHORING__BATCH_MAX_AGE_S": "1.5",
                # a retired key's receipts prove something only for records anchored before it retired
                "LANDREG_TRUST__RECEIPT_ANCHOR_GRACE_S": "0"})  # fmt: skip
    auditor_env = {k: v for k, v in env.items() if not k.startswith("LANDREG_")}
    auditor_env["LANDREG_HOME"] = str(tmp / "auditor")
    cfg = Settings(home=Path(env["LANDREG_HOME"]), chain={"anvil_port": int(env["LANDREG_CHAIN__ANVIL_PORT"])})
    node = ManagedAnvil(cfg)
    server = Server(env)
    other_port = free_port()
    other = subprocess.Popen([str(node.binary()), "--port", str(other_port), "--chain-id", "4242", "--silent"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        rpc = node.start().url
        v1_address = deploy_v1(rpc)
        # the county attaches to the contract it has used so far; trust root v1 lists it
        assert v1_address in ok({**env, "LANDREG_CHAIN__CONTRACT_ADDRESS": v1_address}, "chain", "deploy")
        first_trust = tmp / "trust-v1.json"
        first_trust.write_text((cfg.trust_dir / "root.json").read_text())
        clerk = ok(env, "keys", "create", "clerk", "--name", "Pat Clerk").strip()
        auditor = ok(env, "keys", "create", "auditor", "--name", "County auditor").strip()

        server.start()
        receipts = {name: file_deed(server, clerk, parcels=lot(i)) for i, name in enumerate(("a", "b", "c"), 1)}
        found = {name: anchored_bundle(server, clerk, r["instrumentNumber"]) for name, r in receipts.items()}
        assert {b["anchor"]["contract"] for b in found.values()} == {v1_address}
        server.stop()

        # the county moves to DeedRegistry version 2; version 1 stays listed with its closed range
        upgraded = ok(env, "chain", "upgrade", "--confirm")
        v2_address = re.search(r"anchors to (0x[0-9a-fA-F]{40})", upgraded).group(1)
        server.start()
        receipts["d"] = file_deed(server, clerk, parcels=lot(4))
        found["d"] = anchored_bundle(server, clerk, receipts["d"]["instrumentNumber"])
        assert found["d"]["anchor"]["contract"] == v2_address

        # receipt key K1 retires; K2 signs the next filing; then K2 retires and is marked compromised
        retired = receipts["d"]["signature"]["kid"]
        ok(env, "signing-keys", "rotate", "receipt")
        time.sleep(1.2)  # the next record is anchored in a later second than K1's window closed
        receipts["e"] = file_deed(server, clerk, parcels=lot(5))
        found["e"] = anchored_bundle(server, clerk, receipts["e"]["instrumentNumber"])
        compromised = receipts["e"]["signature"]["kid"]
        assert compromised != retired
        time.sleep(1.2)
        receipts["f"] = file_deed(server, clerk, parcels=lot(6))
        found["f"] = anchored_bundle(server, clerk, receipts["f"]["instrumentNumber"])
        ok(env, "signing-keys", "rotate", "receipt")
        ok(env, "signing-keys", "compromise", compromised, "--reason", "laptop stolen")

        registrar = account_from_key(ANVIL_DEV_KEY_0)
        yield County(
            env=env, auditor_env=auditor_env, server=server, rpc=rpc, trust_file=cfg.trust_dir / "root.json",
            first_trust=first_trust, clerk=clerk, auditor=auditor, bundles=found, receipts=receipts,
            v1=RegistryChain(http_web3(rpc), registrar, v1_address), v2=RegistryChain(http_web3(rpc), registrar, v2_address),
            retired_receipt_kid=retired, compromised_kid=compromised, other_node=f"http://127.0.0.1:{other_port}",
        )  # fmt: skip
    finally:
        server.stop()
        node.stop()
        other.kill()
        other.wait()


# --- the forgeries ----------------------------------------------------------------------------------
def forge(genuine: dict[str, Any], chain: RegistryChain, **changes: Any) -> dict[str, Any]:
    """What a forger does: take a county bundle, change disclosed values (same instrument number,
    another grantee and price), recompute the commitment, put it in a tree and anchor that root with
    ``chain``'s contract and key. The result is self-consistent: only the trust root can tell."""
    parsed = bundles.parse(genuine)
    opened = dict(parsed.disclosure.opened)
    for name, value in changes.items():
        opened[name] = (opened[name][0], value)
    disclosure = Disclosure(opened=opened, redacted=dict(parsed.disclosure.redacted), scheme=parsed.disclosure.scheme)
    commitment = disclosure.commitment()
    tree = merkle.StandardTree.of([[to_hex(commitment)], [to_hex(keccak256(b"filler"))]], merkle.COMMITMENT_ENCODING)
    batch_id = chain.batch_count()
    signed = chain.sign_anchor(batch_id, tree.root, 2, None, 0, nonce=chain.pending_nonce())
    receipt = chain.wait(chain.broadcast(signed))
    assert chain.address is not None
    return bundles.ProofBundle(
        disclosure=disclosure, commitment=commitment,
        tree=bundles.TreeProof(merkle.COMMITMENT_ENCODING, (to_hex(commitment),), tuple(tree.proof(0)), tree.root),
        anchor=bundles.Anchor(chain.chain_id, chain.address, batch_id, receipt.tx_hash, receipt.block_number),
    ).to_json()  # fmt: skip


FORGED = {"grantees": ["MALLORY FORGER"], "consideration": 100}


def look_alike(county: County) -> RegistryChain:
    """DeedRegistry deployed by an attacker from the very same bytecode, on the same chain."""
    registrar, admin, pauser = (account_from_key(k) for k in ATTACKER_KEYS)
    chain = RegistryChain(http_web3(county.rpc), registrar, role_addresses={"admin": admin.address,
                                                                             "pauser": pauser.address})  # fmt: skip
    chain.deploy()
    assert chain.code_hash() == county.v2.code_hash()  # byte for byte the county's code
    return chain


def inner_node_as_leaf(genuine: dict[str, Any]) -> dict[str, Any]:
    b = copy.deepcopy(genuine)
    leaf = merkle.commitment_leaf(bytes.fromhex(b["record"]["commitment"][2:]))
    inner = merkle.process_proof(leaf, [bytes.fromhex(b["tree"]["proof"][0][2:])])
    b["tree"]["value"] = [to_hex(inner)]
    b["tree"]["proof"] = b["tree"]["proof"][1:]
    return b


def root_as_leaf(genuine: dict[str, Any]) -> dict[str, Any]:
    b = copy.deepcopy(genuine)
    b["tree"]["value"] = [b["tree"]["root"]]
    b["tree"]["proof"] = []
    return b


def with_proof_of(genuine: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    b = copy.deepcopy(genuine)
    b["tree"]["proof"] = other["tree"]["proof"]
    return b


def with_anchor(bundle: dict[str, Any], **anchor: Any) -> dict[str, Any]:
    b = copy.deepcopy(bundle)
    b["anchor"].update(anchor)
    return b


def revoked(county: County) -> dict[str, Any]:
    """Record c, superseded: its leaf revoked in its batch (the registrar key of version 1)."""
    b = county.bundles["c"]
    leaf = merkle.commitment_leaf(bytes.fromhex(b["record"]["commitment"][2:]))
    chain = county.v1
    chain.wait(chain.broadcast(chain.sign_revoke(b["anchor"]["batchId"], [leaf], b"ROLLBACK".ljust(32, b"\0"),
                                                 chain.pending_nonce())))  # fmt: skip
    return b


def outside_range(county: County) -> dict[str, Any]:
    """The retired registrar key anchors into the retired version-1 contract after the upgrade:
    a listed contract, but a block after its range closed."""
    return forge(county.bundles["a"], county.v1, **FORGED)


# name -> (how the bundle is built, the reason it must be rejected with)
CASES = {
    "look-alike contract": (lambda c: forge(c.bundles["a"], look_alike(c), **FORGED), "is not a DeedRegistry of"),
    "forged root": (
        lambda c: with_anchor(
            forge(c.bundles["a"], look_alike(c), **FORGED),
            **{k: c.bundles["a"]["anchor"][k] for k in ("contract", "batchId", "txHash", "blockNumber")},
        ),
        "did not anchor root",
    ),  # fmt: skip
    "proof of another record": (
        lambda c: with_proof_of(c.bundles["a"], c.bundles["b"]),
        "does not lead to the stated root",
    ),
    "inner node as leaf": (
        lambda c: inner_node_as_leaf(c.bundles["a"]),
        "Merkle leaf value is not the record's commitment",
    ),
    "root as leaf": (lambda c: root_as_leaf(c.bundles["a"]), "Merkle leaf value is not the record's commitment"),
    "revoked record": (revoked, "revoked (superseded)"),
    "another chain id": (lambda c: with_anchor(c.bundles["a"], chainId=4242), "anchored on chain 4242, but trust root"),
    "outside the deployment's block range": (outside_range, "outside the range in which"),
}


@pytest.fixture(scope="module")
def forgeries(county: County) -> dict[str, dict[str, Any]]:
    return {name: build(county) for name, (build, _reason) in CASES.items()}


def via_cli(county: County, tmp_path: Path, bundle: dict[str, Any], rpc: str | None = None) -> tuple[str, str]:
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    done = landreg(county.auditor_env, "verify", str(path), "--rpc", rpc or county.rpc, "--trust",
                   str(county.trust_file), "--json")  # fmt: skip
    verdict = json.loads(done.stdout)
    assert done.returncode == (0 if verdict["valid"] else 1), done.stdout
    return verdict["status"], verdict["reason"]


def via_api(county: County, bundle: dict[str, Any]) -> tuple[str, str]:
    r = httpx.post(county.server.base + "/api/v1/proofs/verify", json=bundle, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()["status"], r.json()["reason"]


def via_desk(county: County, bundle: dict[str, Any]) -> tuple[str, str]:
    return desk_upload(county, "/desk/audit/verify", {"bundle_file": bundle})


def desk_upload(county: County, action: str, uploads: dict[str, dict[str, Any]]) -> tuple[str, str]:
    """An auditor signs in to the desk and uploads documents to ``action``; returns the verdict shown."""
    with httpx.Client(base_url=county.server.base, timeout=60, follow_redirects=True) as web:
        form = web.get("/desk/login").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
        assert web.post("/desk/login", data={"api_key": county.auditor, "csrf": csrf}).status_code == 200
        csrf = re.search(r'name="csrf" value="([^"]+)"', web.get("/desk/audit").text).group(1)
        files = {name: (f"{name}.json", json.dumps(doc).encode(), "application/json") for name, doc in uploads.items()}
        page = web.post(action, data={"csrf": csrf}, files=files)
    reason = re.search(r'<p class="reason">(.*?)</p>', page.text, re.S).group(1)
    import html

    status = "valid" if "✔ Verified" in page.text else "invalid"
    assert page.status_code == (200 if status == "valid" else 422)
    return status, html.unescape(reason)


PATHS = ["cli", "api", "desk"]


def verdict_via(path: str, county: County, tmp_path: Path, bundle: dict[str, Any]) -> tuple[str, str]:
    if path == "cli":
        return via_cli(county, tmp_path, bundle)
    if path == "api":
        return via_api(county, bundle)
    return via_desk(county, bundle)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", sorted(CASES))
def test_each_forgery_is_rejected_with_its_reason(county, forgeries, name, path, tmp_path):
    status, reason = verdict_via(path, county, tmp_path, forgeries[name])
    assert status == "invalid", (name, path, reason)
    assert CASES[name][1] in reason, (name, path, reason)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", ["a", "d"])  # anchored in version 1 (before the upgrade) and in version 2
def test_genuine_bundles_verify_on_every_path(county, forgeries, name, path, tmp_path):
    status, reason = verdict_via(path, county, tmp_path, county.bundles[name])
    assert status == "valid", reason


def test_a_bundle_checked_on_another_network_fails(county, tmp_path):
    status, reason = via_cli(county, tmp_path, county.bundles["a"], rpc=county.other_node)
    assert status == "invalid" and "the node is chain 4242, but trust root" in reason


def test_without_a_trust_root_nothing_is_valid(county, tmp_path):
    path = tmp_path / "a.json"
    path.write_text(json.dumps(county.bundles["a"]))
    done = landreg(county.auditor_env, "verify", str(path), "--rpc", county.rpc)
    assert done.returncode == 3 and "no trust root" in done.stdout and "VALID:" not in done.stdout
    unreadable = landreg(
        county.auditor_env, "verify", str(path), "--rpc", county.rpc, "--trust", str(tmp_path / "none")
    )
    assert unreadable.returncode == 1 and "cannot read trust root" in unreadable.stdout


def test_the_old_trust_root_follows_the_published_updates(county, tmp_path):
    held = tmp_path / "held.json"
    held.write_text(county.first_trust.read_text())
    newest = trust_core.parse(json.loads(county.trust_file.read_text()))
    out = ok(county.auditor_env, "trust", "update", str(held), "--from",
             county.server.base + "/.well-known/landreg-trust-root")  # fmt: skip
    assert f"updated from v1 to v{newest.version}" in out
    assert json.loads(held.read_text()) == json.loads(county.trust_file.read_text())


def test_a_trust_root_update_signed_by_an_unlisted_key_is_refused(county, tmp_path):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    current = json.loads(county.trust_file.read_text())
    signed = copy.deepcopy(current["signed"])
    mallory = Ed25519PrivateKey.generate()
    raw = trust_core.raw_public(mallory)
    signed["version"] += 1
    signed["rootKeys"] = [{"kid": trust_core.key_id(raw), "alg": "Ed25519", "x": trust_core.b64url(raw)}]
    signed["deployments"].append({**signed["deployments"][-1], "contract": look_alike(county).address})
    forged = tmp_path / "next.json"
    forged.write_text(json.dumps(trust_core.sign(signed, [mallory])))
    done = landreg(county.auditor_env, "trust", "check-update", str(county.trust_file), str(forged))
    assert done.returncode == 1 and f"is not signed by a root key of v{current['signed']['version']}" in done.stderr
    genuine_next = landreg(county.auditor_env, "trust", "check-update", str(county.first_trust),
                           str(county.trust_file.parent / "2.root.json"))  # fmt: skip
    assert genuine_next.returncode == 0 and "VALID: v2 follows v1" in genuine_next.stdout


# --- receipts -----------------------------------------------------------------------------------------
def receipt_verdict(county: County, tmp_path: Path, receipt: dict[str, Any], bundle: dict[str, Any]) -> tuple[str, str]:
    (tmp_path / "r.json").write_text(json.dumps(receipt))
    (tmp_path / "b.json").write_text(json.dumps(bundle))
    done = landreg(county.auditor_env, "receipt", "verify", str(tmp_path / "r.json"), "--bundle", str(tmp_path / "b.json"),
                   "--rpc", county.rpc, "--trust", str(county.trust_file), "--json")  # fmt: skip
    cli = json.loads(done.stdout)
    api = httpx.post(county.server.base + "/api/v1/receipts/verify", json={"receipt": receipt, "bundle": bundle},
                     timeout=60).json()  # fmt: skip
    assert (cli["status"], cli["reason"]) == (api["status"], api["reason"])
    desk = desk_upload(county, "/desk/audit/receipt", {"receipt_file": receipt, "bundle_file": bundle})
    assert desk == (cli["status"], cli["reason"])
    return cli["status"], cli["reason"]


def resign(receipt: dict[str, Any], key: Any, kid: str) -> dict[str, Any]:
    body = {k: v for k, v in receipt.items() if k != "signature"}
    return {
        **body,
        "signature": {"alg": "Ed25519", "kid": kid, "value": trust_core.b64url(key.sign(signed_bytes(body)))},
    }


def test_receipts_signed_before_a_rotation_keep_verifying(county, tmp_path):
    # d was signed by the key retired afterwards, and anchored before it retired
    assert county.receipts["d"]["signature"]["kid"] == county.retired_receipt_kid
    status, reason = receipt_verdict(county, tmp_path, county.receipts["d"], county.bundles["d"])
    assert status == "valid", reason
    assert receipt_verdict(county, tmp_path, county.receipts["f"], county.bundles["f"])[0] == "invalid"  # compromised


def test_a_stolen_retired_key_cannot_backdate_a_receipt(county, tmp_path):
    stolen = load_key(Path(county.env["LANDREG_HOME"]) / "keys" / "receipt", county.retired_receipt_kid,
                      TEST_RECEIPT_PASSPHRASE, "test")  # fmt: skip
    forged = resign(county.receipts["e"], stolen, county.retired_receipt_kid)  # e was anchored after it retired
    status, reason = receipt_verdict(county, tmp_path, forged, county.bundles["e"])
    assert status == "invalid" and "after the key's window closed" in reason


def test_a_compromised_key_never_verifies(county, tmp_path):
    assert county.receipts["e"]["signature"]["kid"] == county.compromised_kid
    status, reason = receipt_verdict(county, tmp_path, county.receipts["e"], county.bundles["e"])
    assert status == "invalid" and "marks compromised" in reason


def test_a_receipt_needs_its_own_record(county, tmp_path):
    status, reason = receipt_verdict(county, tmp_path, county.receipts["d"], county.bundles["a"])
    assert status == "invalid" and "not the bundle's" in reason


def test_no_plaintext_private_key_in_the_data_directory(county):
    """No private key and no passphrase lies in LANDREG_HOME in the clear. The one exception is the
    managed anvil node's own log: anvil prints its public development keys at start, to anyone who
    runs it; a production registry uses an RPC node and an encrypted registrar keystore instead."""
    home = Path(county.env["LANDREG_HOME"])
    dev_keys = [k[2:].lower() for k in (ANVIL_DEV_KEY_0, ANVIL_DEV_KEY_1, ANVIL_DEV_KEY_2)]
    passphrases = [p.lower() for p in PASSPHRASE_ENV.values()]
    pems = 0
    for path in home.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        text = data.decode("latin-1").lower()
        assert not re.search(rb"-----BEGIN (RSA |EC |OPENSSH )?PRIVATE KEY-----", data), path  # unencrypted
        assert not any(p in text for p in passphrases), path
        if path != home / "chain" / "anvil.log":
            assert not any(k in text for k in dev_keys), path
        pems += b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in data
    assert pems >= 4  # three receipt keys and the trust-root key, each encrypted


def test_verify_with_the_trust_root_fetched_from_the_registry(county, tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps(county.bundles["d"]))
    url = county.server.base + "/.well-known/landreg-trust-root.json"
    done = landreg(county.auditor_env, "verify", str(path), "--rpc", county.rpc, "--trust", url)
    assert done.returncode == 0 and done.stdout.startswith("VALID:"), done.stdout
    assert httpx.get(county.server.base + "/.well-known/landreg-trust-root/1.json").json() == json.loads(
        county.first_trust.read_text()
    )
    assert httpx.get(county.server.base + "/.well-known/landreg-trust-root/999.json").status_code == 404


def test_a_tampered_receipt_is_refused_through_the_trust_root_path(county, tmp_path):
    """The signature check of `landreg receipt verify`, the API and the desk (the trust-root path):
    a receipt whose field, signature or key id was changed is refused on every path, with the reason."""
    genuine = county.receipts["d"]
    assert receipt_verdict(county, tmp_path, genuine, county.bundles["d"])[0] == "valid"
    another_parcel = {**genuine, "parcels": ["0223_900_999"]}  # a field no bundle check compares
    bad_signature = copy.deepcopy(genuine)
    raw = bytearray(trust_core.unb64url(bad_signature["signature"]["value"]))
    raw[0] ^= 1
    bad_signature["signature"]["value"] = trust_core.b64url(bytes(raw))
    for tampered in (another_parcel, bad_signature):
        status, reason = receipt_verdict(county, tmp_path, tampered, county.bundles["d"])
        assert status == "invalid" and "signature does not match it" in reason, reason
    # a receipt the active key signed, relabelled as signed by the retired key (or by one never listed)
    newest = file_deed(county.server, county.clerk, parcels=lot(40))
    bundle = anchored_bundle(county.server, county.clerk, newest["instrumentNumber"])
    assert receipt_verdict(county, tmp_path, newest, bundle)[0] == "valid"
    relabelled = {**newest, "signature": {**newest["signature"], "kid": county.retired_receipt_kid}}
    status, reason = receipt_verdict(county, tmp_path, relabelled, bundle)
    assert status == "invalid" and "signature does not match it" in reason, reason
    unknown = {**newest, "signature": {**newest["signature"], "kid": "ed25519-00000000deadbeef"}}
    status, reason = receipt_verdict(county, tmp_path, unknown, bundle)
    assert status == "invalid" and "ed25519-00000000deadbeef, which is not a receipt key of" in reason, reason


# --- verdicts a database (or the registrar key on the registry's servers) could fake --------------------
def insert_flag(county: County, instrument: str, successor: str | None) -> None:
    """What an attacker who holds only landreg's database does: one `mirror_flags` row saying the
    county's recorder system replaced ``instrument`` by ``successor`` (None: deleted it), written
    straight into the database file (sqlite3 leaves foreign keys unchecked: no legacy source needed,
    so the registry still takes filings)."""
    import sqlite3

    conn = sqlite3.connect(Path(county.env["LANDREG_HOME"]) / "landreg.db")
    try:
        ids = dict(conn.execute("SELECT instrument_number, id FROM instruments WHERE instrument_number IN (?, ?)",
                                (instrument, successor or "")).fetchall())  # fmt: skip
        conn.execute(
            "INSERT INTO mirror_flags (source_id, legacy_key, instrument_id, kind, successor_id, created_at) "
            "VALUES (1, ?, ?, ?, ?, '2026-12-01 09:00:00.000000')",
            (instrument, ids[instrument], "changed_in_legacy" if successor else "deleted_in_legacy",
             ids.get(successor) if successor else None),
        )  # fmt: skip
        conn.commit()
    finally:
        conn.close()


def leaf_of(bundle: dict[str, Any]) -> bytes:
    return merkle.commitment_leaf(bytes.fromhex(bundle["record"]["commitment"][2:]))


def test_a_mirror_flag_inserted_in_the_database_revokes_nothing(county, tmp_path):
    """A current record flagged as replaced by an unrelated record, and one flagged as deleted in
    the legacy system: the anchoring worker refuses both (the flags stay, visible, with the reason),
    and both records still verify VALID and current on every path."""
    victim, unrelated, deleted = (file_deed(county.server, county.clerk, parcels=lot(n))["instrumentNumber"]
                                  for n in (21, 22, 23))  # fmt: skip
    found = {n: anchored_bundle(county.server, county.clerk, n) for n in (victim, unrelated, deleted)}
    insert_flag(county, victim, unrelated)
    insert_flag(county, deleted, None)
    # two more filings anchored one after the other: the worker revoked (or refused) between batches
    for n in (24, 25):
        anchored_bundle(county.server, county.clerk, file_deed(county.server, county.clerk, parcels=lot(n))
                        ["instrumentNumber"])  # fmt: skip
    for number in (victim, deleted):
        b = found[number]
        assert county.v2.revoked_at(b["anchor"]["batchId"], leaf_of(b)) == 0, f"{number} was revoked on the chain"
        for path in PATHS:
            status, reason = verdict_via(path, county, tmp_path, b)
            assert status == "valid" and "and not revoked" in reason, (number, path, reason)
        detail = httpx.get(f"{county.server.base}/api/v1/instruments/{number}",
                           headers={"Authorization": f"Bearer {county.clerk}"}, timeout=30).json()  # fmt: skip
        [flag] = detail["mirror_flags"]
        assert not flag["revoked_on_chain"]
        assert "did not come from the legacy database" in flag["revocation_held"], flag


def revoke_with_registrar(county: County, bundle: dict[str, Any], reason: bytes) -> None:
    """The registry's own (hot) registrar key revokes a current record's leaf with ``reason``."""
    chain = county.v2
    chain.wait(chain.broadcast(chain.sign_revoke(bundle["anchor"]["batchId"], [leaf_of(bundle)], reason,
                                                 chain.pending_nonce())))  # fmt: skip


def test_a_superseded_tag_on_the_chain_is_not_taken_on_its_word(county, tmp_path):
    """The registrar key revokes a current record with an `LRS1` tag naming an unrelated record (which
    itself verifies current): no path says SUPERSEDED, with the unrelated bundle attached as the
    "successor" or without; a `LRD1` deletion is reported as resting on the registry's word."""
    from hybrid_store.core import standing

    victim, unrelated, deleted = (file_deed(county.server, county.clerk, parcels=lot(n))["instrumentNumber"]
                                  for n in (31, 32, 33))  # fmt: skip
    found = {n: anchored_bundle(county.server, county.clerk, n) for n in (victim, unrelated, deleted)}
    named = bytes.fromhex(found[unrelated]["record"]["commitment"][2:])
    revoke_with_registrar(county, found[victim], standing.revocation_reason(named))
    revoke_with_registrar(county, found[deleted], standing.DELETED_IN_LEGACY)
    with_evidence = {**found[victim], "format": "landreg-proof-bundle/v2", "successor": found[unrelated]}
    for path in PATHS:
        status, reason = verdict_via(path, county, tmp_path, found[victim])
        assert status == "invalid" and "SUPERSEDED" not in reason and "could not be shown" in reason, (path, reason)
        status, reason = verdict_via(path, county, tmp_path, with_evidence)
        assert status == "invalid" and "does not name this record on parcel 0223_900_31" in reason, (path, reason)
        status, reason = verdict_via(path, county, tmp_path, found[unrelated])
        assert status == "valid" and "and not revoked" in reason, (path, reason)
        status, reason = verdict_via(path, county, tmp_path, found[deleted])
        assert status == "valid" and "the registry's word: not provable from the chain" in reason, (path, reason)
    # an auditor who holds the unrelated bundle and hands it over as the newer version
    (tmp_path / "victim.json").write_text(json.dumps(found[victim]))
    (tmp_path / "newer.json").write_text(json.dumps(found[unrelated]))
    done = landreg(county.auditor_env, "verify", str(tmp_path / "victim.json"), "--successor", str(tmp_path / "newer.json"),
                   "--rpc", county.rpc, "--trust", str(county.trust_file), "--json")  # fmt: skip
    verdict = json.loads(done.stdout)
    assert done.returncode == 1 and verdict["standing"] != "superseded", verdict
    assert "does not name this record on parcel 0223_900_31" in verdict["reason"], verdict


# --- the standing a single bundle tells ---------------------------------------------------------------
def file_correction(county: County, number: str, n: int) -> str:
    r = httpx.post(f"{county.server.base}/api/v1/instruments/{number}/corrections", timeout=30,
                   json=filing(doc_type="CORRECTION", parcels=lot(n), legal_description="Lot 5, not lot 6."),
                   headers={"Authorization": f"Bearer {county.clerk}"})  # fmt: skip
    assert r.status_code == 201, r.text
    return r.json()["receipt"]["instrumentNumber"]


def cli_verdict(county: County, tmp_path: Path, bundle: dict[str, Any], *args: str) -> tuple[int, dict[str, Any]]:
    (tmp_path / "bundle.json").write_text(json.dumps(bundle))
    done = landreg(county.auditor_env, "verify", str(tmp_path / "bundle.json"), "--rpc", county.rpc, "--trust",
                   str(county.trust_file), "--json", *args)  # fmt: skip
    return done.returncode, json.loads(done.stdout)


def test_a_corrected_original_says_corrected_by_n_on_every_path_and_a_forged_correction_is_not_believed(
    county, tmp_path
):
    original, other = (file_deed(county.server, county.clerk, parcels=lot(n))["instrumentNumber"] for n in (41, 42))
    before = anchored_bundle(county.server, county.clerk, original)  # made before the correction: carries none
    fix, other_fix = file_correction(county, original, 41), file_correction(county, other, 42)
    fixed, other_fixed = (anchored_bundle(county.server, county.clerk, n) for n in (fix, other_fix))
    (tmp_path / "fix.json").write_text(json.dumps(fixed))
    (tmp_path / "other-fix.json").write_text(json.dumps(other_fixed))
    code, alone = cli_verdict(county, tmp_path, before)
    assert code == 0 and alone["standing"] == "current" and alone["standingShown"].startswith("current as far as")
    code, shown = cli_verdict(county, tmp_path, before, "--corrected-by", str(tmp_path / "fix.json"))
    assert code == 0 and shown["standing"] == "corrected" and [c["number"] for c in shown["correctedBy"]] == [fix]
    carried = anchored_bundle(county.server, county.clerk, original)  # the registry attaches it now
    assert carried["format"] == "landreg-proof-bundle/v3"
    for path in PATHS:
        status, reason = verdict_via(path, county, tmp_path, carried)
        assert status == "valid" and f"corrected by {fix}" in reason, (path, reason)
    # the readable verdict says it in words
    (tmp_path / "carried.json").write_text(json.dumps(carried))
    done = landreg(county.auditor_env, "verify", str(tmp_path / "carried.json"), "--rpc", county.rpc, "--trust",
                   str(county.trust_file))  # fmt: skip
    assert done.returncode == 0 and done.stdout.startswith("VALID, CORRECTED:"), done.stdout
    assert f"standing: corrected by {fix} (shown by its verified, anchored bundle naming this record)" in done.stdout
    # another record's correction, handed over as this one's: VALID, not corrected, and said why
    code, forged = cli_verdict(county, tmp_path, before, "--corrected-by", str(tmp_path / "other-fix.json"))
    assert code == 0 and forged["standing"] == "current" and forged["correctedBy"] == [], forged
    assert f"names {other}, not {original}" in forged["warnings"][0], forged["warnings"]
    # the same correction, anchored in a look-alike contract: not the registry's
    copied = forge(fixed, look_alike(county))
    (tmp_path / "look-alike-fix.json").write_text(json.dumps(copied))
    code, forged = cli_verdict(county, tmp_path, before, "--corrected-by", str(tmp_path / "look-alike-fix.json"))
    assert code == 0 and forged["standing"] == "current" and "is not a DeedRegistry of" in forged["warnings"][0]
    # the correction itself deleted in the county's recorder system (revoked with LRD1): it corrects nothing now
    from hybrid_store.core import standing

    revoke_with_registrar(county, fixed, standing.DELETED_IN_LEGACY)
    code, gone = cli_verdict(county, tmp_path, before, "--corrected-by", str(tmp_path / "fix.json"))
    assert code == 0 and gone["standing"] == "current" and gone["correctedBy"] == [], gone
    assert "deleted in the county's recorder system" in gone["warnings"][0], gone["warnings"]


def test_a_young_record_is_pending_under_a_12_block_depth_and_valid_once_deep_enough(county, tmp_path):
    number = file_deed(county.server, county.clerk, parcels=lot(51))["instrumentNumber"]
    bundle = anchored_bundle(county.server, county.clerk, number)
    code, young = cli_verdict(county, tmp_path, bundle, "--confirmations", "12")
    assert code == 5 and young["status"] == "pending" and young["reason"].startswith("PENDING"), young
    have = young["details"]["confirmations"]
    assert have < 12 and young["details"]["depthRequired"] == 12
    done = landreg(county.auditor_env, "verify", str(tmp_path / "bundle.json"), "--rpc", county.rpc, "--trust",
                   str(county.trust_file), "--confirmations", "12")  # fmt: skip
    assert done.returncode == 5 and done.stdout.startswith("PENDING: the record's proof verifies"), done.stdout
    county.v2.rpc("anvil_mine", [hex(12 - have)])
    code, deep = cli_verdict(county, tmp_path, bundle, "--confirmations", "12")
    assert code == 0 and deep["status"] == "valid" and deep["details"]["confirmations"] >= 12, deep
