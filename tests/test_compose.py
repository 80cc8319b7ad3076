"""docker-compose.yml cannot run here (no Docker engine); check everything that can be checked."""

from __future__ import annotations

import json
import os

import pytest
import yaml

from hybrid_store.chain import keys
from hybrid_store.settings import Settings
from tests.conftest import REPO
from tests.processes import landreg


def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_services_and_dependencies_are_consistent():
    services = compose()["services"]
    assert {"postgres", "chain", "migrate", "api", "worker"} <= set(services)
    for name, service in services.items():
        for dep in service.get("depends_on", {}):
            assert dep in services, f"{name} depends on unknown {dep}"
    for name in ("api", "worker"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert "--no-worker" in services["api"]["command"]  # the worker service is the one anchoring worker


def test_the_image_builds_from_files_that_exist():
    for line in (REPO / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (REPO / source).exists(), source


@pytest.mark.subprocess
def test_landreg_commands_exist():
    import shlex

    for name, service in compose()["services"].items():
        if service.get("build") != ".":
            continue
        if "entrypoint" in service:  # sh -c "landreg a && landreg b"
            commands = [shlex.split(part)[1:] for part in service["entrypoint"][2].split("&&")]
        else:
            commands = [service["command"]]
        for command in commands:
            done = landreg(dict(os.environ), *command, "--help")
            assert done.returncode == 0, (name, command, done.stderr)


def test_migrations_run_as_the_owner_and_services_as_the_runtime_role():
    from sqlalchemy.engine import make_url

    c = compose()
    owner = make_url(c["services"]["migrate"]["environment"]["DATABASE_URL"]).username
    runtime = {make_url(c["services"][n]["environment"]["DATABASE_URL"]).username for n in ("api", "worker")}
    assert owner == "landreg_owner" and runtime == {"landreg_app"}
    assert "grant-runtime landreg_app" in " ".join(c["services"]["migrate"]["entrypoint"])
    # the first signing keys are made by the owner, where the services read them: the runtime role may not
    assert "signing-keys init" in " ".join(c["services"]["migrate"]["entrypoint"])
    assert "landreg-home:/var/lib/landreg" in c["services"]["migrate"]["volumes"]
    assert c["services"]["migrate"]["environment"]["LANDREG_HOME"] == c["x-landreg-env"]["LANDREG_HOME"]
    roles = c["configs"]["landreg-roles"]["content"]
    assert "CREATE ROLE landreg_owner" in roles and "CREATE ROLE landreg_app" in roles
    assert "SUPERUSER" not in roles.upper().replace("NOSUPERUSER", "")


def test_environment_is_understood_by_the_settings(monkeypatch, tmp_path):
    env = compose()["services"]["worker"]["environment"]
    for key, value in env.items():
        if str(value).startswith("${"):  # a secret compose takes from the operator's environment
            assert ":?" in value, f"{key} must be required, never defaulted"
            value = "from the secret store"
        monkeypatch.setenv(key, str(value))
    cfg = Settings(home=tmp_path)
    assert cfg.db_url.startswith("postgresql+psycopg://landreg_app:")
    assert cfg.chain.backend == "rpc" and cfg.chain.rpc_url == "http://chain:8545"
    assert cfg.anchoring.batch_max_records == 1000 and cfg.chain.confirmations == 1
    assert keys.registrar_key_hex(cfg).startswith("0x")
    # three distinct keys: the hot registrar is neither the admin nor the pauser
    registrar = keys.role_address(cfg, "registrar")
    assert len({registrar, keys.role_address(cfg, "admin"), keys.role_address(cfg, "pauser")}) == 3
    assert cfg.service.receipt_key_passphrase is not None and cfg.trust.signing_key_passphrase is not None


def test_the_chain_container_persists_state_like_the_managed_node():
    chain = compose()["services"]["chain"]
    assert "--state" in chain["command"] and "--state-interval" in chain["command"]
    anvil_version = json.loads((REPO / "package.json").read_text())["dependencies"]["@foundry-rs/anvil"]
    assert chain["image"].endswith(":v" + anvil_version)


def test_keys_session_secret_and_manifests_live_on_volumes():
    c = compose()
    env = c["x-landreg-env"]
    mounts = {name: {m.split(":")[1] for m in c["services"][name]["volumes"]} for name in ("api", "worker")}
    assert env["LANDREG_HOME"] in mounts["api"] & mounts["worker"]  # keys/ (receipt key, session secret)
    assert env["LANDREG_MANIFEST_DIR"] in mounts["worker"]
    ro = [m for m in c["services"]["api"]["volumes"] if env["LANDREG_MANIFEST_DIR"] in m]
    assert ro and ro[0].endswith(":ro")  # only the worker writes manifests
    assert {"landreg-home", "manifests", "pgdata", "chaindata"} <= set(c["volumes"])
