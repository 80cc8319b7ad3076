"""Production wiring: any JSON-RPC node, the registrar key from an encrypted keystore."""

from __future__ import annotations

import json

import pytest
from eth_account import Account

from hybrid_store.anchoring import Anchorer
from hybrid_store.chain.connect import open_chain
from hybrid_store.db.engine import Database
from hybrid_store.deployment import attach
from hybrid_store.filing import record_instruments
from hybrid_store.intake import validate
from hybrid_store.proofs import export_bundle
from hybrid_store.settings import ANVIL_DEV_KEY_0, ANVIL_DEV_KEY_2, Settings
from hybrid_store.verifier.verdicts import verify_document
from tests.conftest import NOW, deed, trust_of

pytestmark = pytest.mark.anvil

# anvil's second development account: public, printed by anvil at every start; development only
ANVIL_DEV_KEY_1 = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"


def test_anchor_through_json_rpc_with_a_keystore(anvil, anvil_settings, tmp_path):
    keystore = tmp_path / "registrar.json"
    keystore.write_text(json.dumps(Account.encrypt(ANVIL_DEV_KEY_1, "s3cret", kdf="scrypt", iterations=2**10)))
    cfg = Settings(
        home=anvil_settings.home,
        chain={"backend": "rpc", "rpc_url": anvil.url, "registrar_keystore": keystore,
               "registrar_keystore_password": "s3cret", "confirmations": 2,
               # anvil's dev accounts 0 and 2 (public, development only) as the cold admin and the pauser
               "admin_address": Account.from_key(ANVIL_DEV_KEY_0).address,
               "pauser_address": Account.from_key(ANVIL_DEV_KEY_2).address},
    )  # fmt: skip
    db = Database(cfg.db_url)
    db.migrate()
    chain = open_chain(cfg)
    assert chain.registrar.address == Account.from_key(ANVIL_DEV_KEY_1).address
    dep = attach(db, chain)
    assert dep.registrar == chain.registrar.address
    with db.write() as s:
        [made] = record_instruments(s, [validate(deed(), now=NOW)], now=NOW)
    anchorer = Anchorer(db, chain, dep, confirmations=cfg.chain.confirmations)
    assert anchorer.step(force=True).state == "mined"  # 1 of 2 confirmations
    chain.w3.provider.make_request("evm_mine", [])
    anchorer.settle()
    with db.read() as s:
        bundle = export_bundle(s, made.instrument_number).to_json()
    verdict = verify_document(bundle, rpc_url=anvil.url, trust=trust_of(db))
    assert verdict.valid and verdict.details["confirmations"] == 2, verdict.reason
