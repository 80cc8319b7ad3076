"""docker-compose.yml brought up natively (no Docker engine here): the local PostgreSQL plays the
postgres service with the roles its init script makes, anvil runs with the chain service's
command, the migrate step runs as the owner role, and the api (`serve --no-worker --workers 2`)
and the worker run as separate processes with the compose environment. A clerk files a deed; the
worker anchors it; an auditor who holds nothing but the trust root fetched from the service
verifies its bundle VALID."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from hybrid_store.chain.anvil import ManagedAnvil
from hybrid_store.settings import Settings
from tests.conftest import PASSPHRASE_ENV, filing, free_port, pg_admin
from tests.processes import Server, landreg, wait_until
from tests.test_compose import compose

pytestmark = [pytest.mark.postgres, pytest.mark.anvil, pytest.mark.slow]


def test_the_compose_topology_runs_natively_and_an_auditor_verifies_a_filing(pg_template, tmp_path):
    spec = compose()
    tag = uuid.uuid4().hex[:8]
    names = {"landreg_owner": f"landreg_owner_{tag}", "landreg_app": f"landreg_app_{tag}"}
    database = f"landreg_compose_{tag}"

    def local(url: str) -> str:  # the compose hosts and names, on this machine
        u = make_url(url)
        return u.set(host="127.0.0.1", port=5432, database=database, username=names[u.username],
                     password=None).render_as_string(hide_password=False)  # fmt: skip

    # postgres: the database and the two roles, exactly as the init script makes them
    pg_admin(f'CREATE DATABASE "{database}"')
    roles = spec["configs"]["landreg-roles"]["content"]
    for old, new in names.items():
        roles = roles.replace(old, new)
    roles = roles.replace("ALTER DATABASE landreg ", f'ALTER DATABASE "{database}" ')
    import psycopg

    admin_url = f"postgresql://postgres@127.0.0.1:5432/{database}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for statement in filter(None, (part.strip() for part in roles.split(";"))):
            conn.execute(statement)

    # chain: the chain service's own command, on a free port, its state in a temporary folder
    chain_port = free_port()
    command = list(spec["services"]["chain"]["command"])
    command[command.index("--host") + 1] = "127.0.0.1"
    command[command.index("--port") + 1] = str(chain_port)
    command[command.index("--state") + 1] = str(tmp_path / "anvil-state.json")
    anvil = subprocess.Popen([str(ManagedAnvil(Settings(home=tmp_path)).binary()), *command],
                             stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)  # fmt: skip

    base = {k: v for k, v in os.environ.items() if not k.startswith("LANDREG_") and k != "DATABASE_URL"}
    base["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{base.get('PATH', '')}"  # `landreg` as the image has it
    env = {**base, **{k: str(v) for k, v in spec["x-landreg-env"].items()}, **PASSPHRASE_ENV}
    env.update(DATABASE_URL=local(env["DATABASE_URL"]), LANDREG_CHAIN__RPC_URL=f"http://127.0.0.1:{chain_port}",
               LANDREG_HOME=str(tmp_path / "home"), LANDREG_MANIFEST_DIR=str(tmp_path / "manifests"))  # fmt: skip
    migrate_env = {**env, "DATABASE_URL": local(spec["services"]["migrate"]["environment"]["DATABASE_URL"])}
    api = worker = None
    try:
        # migrate: its entrypoint, as the owner role
        entrypoint = spec["services"]["migrate"]["entrypoint"]
        step = entrypoint[2].replace("landreg_app", names["landreg_app"])
        done = subprocess.run([*entrypoint[:2], step], env=migrate_env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr

        api_args = list(spec["services"]["api"]["command"])
        api_args[api_args.index("--host") + 1] = "127.0.0.1"
        del api_args[api_args.index("--port") : api_args.index("--port") + 2]
        api = Server(env, tmp_path, *api_args[1:])
        worker_log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115 - the child writes it
        worker = subprocess.Popen(["landreg", *spec["services"]["worker"]["command"]], env=env, stdout=worker_log,
                                  stderr=subprocess.STDOUT)  # fmt: skip
        assert wait_until(lambda: "anchoring to" in (tmp_path / "worker.log").read_text(), 90, 0.3), (
            tmp_path / "worker.log"
        ).read_text()
        api.start()

        # key administration runs as the owner (as the compose file's header says): the runtime role may not
        refused = landreg(env, "keys", "create", "clerk", "--name", "Mallory")
        assert refused.returncode == 1 and "run as the owner role" in refused.stderr, refused.stdout + refused.stderr
        key = landreg(migrate_env, "keys", "create", "clerk", "--name", "Pat Clerk", check=True).stdout.split()[-1]
        headers = {"Authorization": f"Bearer {key}"}
        filed = httpx.post(api.base + "/api/v1/instruments", json=filing(), headers=headers, timeout=30)
        assert filed.status_code == 201, filed.text
        number = filed.json()["receipt"]["instrumentNumber"]

        def bundle() -> dict | None:
            r = httpx.get(f"{api.base}/api/v1/instruments/{number}/proof", headers=headers, timeout=30)
            return r.json() if r.status_code == 200 and r.json().get("anchor") else None

        assert wait_until(lambda: bundle() is not None, 60, 0.5), (tmp_path / "worker.log").read_text()
        (tmp_path / "bundle.json").write_text(json.dumps(bundle()))
        # the auditor's machine: nothing of the county's but the trust root, fetched from the service
        auditor = {**base, "LANDREG_HOME": str(tmp_path / "auditor")}
        verdict = landreg(auditor, "verify", str(tmp_path / "bundle.json"), "--rpc", f"http://127.0.0.1:{chain_port}",
                          "--trust", f"{api.base}/.well-known/landreg-trust-root.json")  # fmt: skip
        assert verdict.returncode == 0 and verdict.stdout.startswith("VALID:"), verdict.stdout + verdict.stderr
        assert any((tmp_path / "manifests").glob("*.json"))  # the worker's manifests, where compose mounts them
        # one anchoring worker, and the api processes are not it: without it, a filing waits
        worker.terminate()
        worker.wait(60)
        again = httpx.post(api.base + "/api/v1/instruments", json=filing(), headers=headers, timeout=30)
        assert again.status_code == 201
        status = lambda: httpx.get(api.base + "/api/v1/status", headers=headers, timeout=30).json()  # noqa: E731
        assert not wait_until(lambda: status()["pending_records"] == 0, 5, 0.5) and status()["anchored_records"] == 1
    finally:
        if api is not None:
            api.stop()
        if worker is not None:
            worker.terminate()
            worker.wait(60)
        anvil.terminate()
        anvil.wait(60)
        pg_admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        for role in (names["landreg_app"], names["landreg_owner"]):
            pg_admin(f'DROP ROLE IF EXISTS "{role}"')
