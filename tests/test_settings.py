"""Settings: one object, the environment, the data directory and the registrar key sources."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account import Account

from hybrid_store.chain import keys
from hybrid_store.errors import ConfigurationError
from hybrid_store.settings import ANVIL_DEV_KEY_0, Settings, get_settings


def test_defaults_keep_everything_under_one_home(monkeypatch, tmp_path):
    for var in ("LANDREG_HOME", "DATABASE_URL", "LANDREG_DATABASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    cfg = get_settings()
    assert cfg.home == tmp_path / ".landreg"
    assert cfg.db_url == f"sqlite:///{tmp_path / '.landreg' / 'landreg.db'}"
    assert {cfg.chain_dir.parent, cfg.keys_dir.parent, cfg.reports_dir.parent} == {cfg.home}
    assert cfg.chain.backend == "anvil" and keys.registrar_key_hex(cfg) == ANVIL_DEV_KEY_0


def test_environment_and_database_url(monkeypatch, tmp_path):
    monkeypatch.setenv("LANDREG_HOME", str(tmp_path / "h"))
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/x")
    monkeypatch.setenv("LANDREG_CHAIN__CONFIRMATIONS", "12")
    monkeypatch.setenv("LANDREG_ANCHORING__BATCH_MAX_AGE_S", "0.5")
    cfg = get_settings()
    assert cfg.home == tmp_path / "h"
    assert cfg.db_url == "postgresql+psycopg://postgres@127.0.0.1:5432/x"
    assert cfg.chain.confirmations == 12 and cfg.anchoring.batch_max_age_s == 0.5


def test_rpc_needs_a_url_and_a_key(tmp_path):
    with pytest.raises(ValueError, match="RPC_URL"):
        Settings(home=tmp_path, chain={"backend": "rpc"})
    cfg = Settings(home=tmp_path, chain={"backend": "rpc", "rpc_url": "http://node:8545"})
    with pytest.raises(ConfigurationError, match="no registrar key"):
        keys.registrar_key_hex(cfg)


def test_registrar_key_from_an_encrypted_keystore(tmp_path):
    account = Account.create()
    path = tmp_path / "registrar.json"
    path.write_text(json.dumps(Account.encrypt(account.key, "correct horse", kdf="scrypt", iterations=2**10)))
    cfg = Settings(home=tmp_path, chain={"backend": "rpc", "rpc_url": "http://x", "registrar_keystore": path,
                                         "registrar_keystore_password": "correct horse"})  # fmt: skip
    assert Account.from_key(keys.registrar_key_hex(cfg)).address == account.address
    wrong = Settings(home=tmp_path, chain={"backend": "rpc", "rpc_url": "http://x", "registrar_keystore": path,
                                           "registrar_keystore_password": "wrong"})  # fmt: skip
    with pytest.raises(ConfigurationError, match="cannot open registrar keystore"):
        keys.registrar_key_hex(wrong)
    no_password = Settings(home=tmp_path, chain={"backend": "rpc", "rpc_url": "http://x", "registrar_keystore": path})
    with pytest.raises(ConfigurationError, match="PASSWORD"):
        keys.registrar_key_hex(no_password)


def test_secrets_do_not_leak_into_reprs(tmp_path):
    cfg = Settings(home=tmp_path, chain={"backend": "rpc", "rpc_url": "http://x", "registrar_key": "0x" + "ab" * 32})
    assert "abab" not in repr(cfg) and "abab" not in str(cfg.model_dump())


def test_home_is_created_with_private_keys_dir(tmp_path):
    cfg = Settings(home=tmp_path / "new")
    cfg.ensure_home()
    assert (cfg.keys_dir.stat().st_mode & 0o777) == 0o700
    assert Path(cfg.home).is_dir()


def test_anvil_dev_roles_are_anvils_first_three_accounts_and_distinct():
    """The development defaults: anvil's published accounts 0, 1, 2 as registrar, admin, pauser."""
    from hybrid_store.settings import CHAIN_ROLES

    cfg = Settings(chain={"backend": "anvil"})
    addresses = {role: keys.role_address(cfg, role) for role in CHAIN_ROLES}
    assert addresses == {
        "registrar": "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
        "admin": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
        "pauser": "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
    }
    rpc = Settings(chain={"backend": "rpc", "rpc_url": "http://node:8545", "registrar_key": ANVIL_DEV_KEY_0})
    assert (
        keys.role_address(rpc, "admin") is None and keys.role_key_hex(rpc, "pauser") is None
    )  # never guessed off anvil


def test_the_public_base_url_is_a_bare_http_address_or_derived_from_where_the_server_listens(monkeypatch, tmp_path):
    monkeypatch.setenv("LANDREG_SERVICE__PUBLIC_BASE_URL", "https://records.example.gov/landreg/")
    assert get_settings(home=tmp_path).service.base_url == "https://records.example.gov/landreg"
    monkeypatch.delenv("LANDREG_SERVICE__PUBLIC_BASE_URL")
    assert get_settings(home=tmp_path).service.base_url == "http://127.0.0.1:8000"
    assert (
        Settings(home=tmp_path, service={"host": "0.0.0.0", "port": 8080}).service.base_url == "http://127.0.0.1:8080"
    )
    assert Settings(home=tmp_path, service={"host": "records.lan"}).service.base_url == "http://records.lan:8000"
    for bad, words in [("ftp://records.example.gov", "is not an http"), ("records.example.gov", "not an http"),
                       ("https://records.example.gov/?x=1", "query or fragment"),
                       ("https://records.example.gov/#top", "query or fragment")]:  # fmt: skip
        with pytest.raises(ValueError, match=words):
            Settings(home=tmp_path, service={"public_base_url": bad})


def test_the_settings_table_in_the_docs_is_current_and_complete() -> None:
    """docs/settings.md lists every setting a user may change, made from the settings object: a
    setting added, renamed or re-described without `settings_table --write` fails here."""
    from pathlib import Path

    from registry_service.cli import settings_table

    doc = Path(__file__).resolve().parents[1] / "docs" / "settings.md"
    assert settings_table.render(doc.read_text()) == doc.read_text(), (
        "run python -m registry_service.cli.settings_table --write"
    )
    listed = {v for v, _, _ in settings_table.rows()}
    names = settings_table.dotted_names()
    assert set(settings_table.DERIVED) | settings_table.NOT_USERS <= set(names)  # no stale entry
    assert len(listed) == len(names) - len(settings_table.NOT_USERS)
    for v in ("`LANDREG_CHAIN__ANVIL_PORT`", "`LANDREG_SERVICE__PORT`", "`LANDREG_HOME`",
              "`LANDREG_DATABASE_URL` or `DATABASE_URL`", "`LANDREG_TRUST__SIGNING_KEY_PASSPHRASE`"):  # fmt: skip
        assert v in listed
    assert all(meaning for _, _, meaning in settings_table.rows()), "every setting says what it is (#: comment)"
    assert settings_table.main(["--check"]) == 0
