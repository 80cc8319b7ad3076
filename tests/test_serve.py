"""`landreg serve --workers 2` as production runs it: HTTP processes sharing the port, one
anchoring process, graceful shutdown."""

from __future__ import annotations

import signal
import subprocess
import threading
import time

import httpx
import pytest

from hybrid_store.files import create_once
from tests.conftest import filing, free_port
from tests.processes import landreg_out, spawn

pytestmark = [pytest.mark.anvil, pytest.mark.slow]


def test_several_processes_one_anchoring_worker_graceful_stop(landreg_env, tmp_path):
    env = {**landreg_env, "LANDREG_ANCHORING__BATCH_MAX_AGE_S": "0.3"}
    key = landreg_out(env, "keys", "create", "clerk", "--name", "c")
    port = free_port()
    server = spawn(
        env, "serve", "--port", str(port), "--workers", "2", stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        children = subprocess.run(["pgrep", "-P", str(server.pid)], capture_output=True, text=True).stdout.split()
        assert len(children) >= 3  # two HTTP processes, one anchoring process (+ multiprocessing's tracker)
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
            numbers = [client.post("/api/v1/instruments", json=filing()).json()["receipt"]["instrumentNumber"]
                       for _ in range(20)]  # fmt: skip
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                states = {client.get(f"/api/v1/instruments/{n}").json()["anchoring"]["status"] for n in numbers}
                if states == {"anchored"}:
                    break
                time.sleep(0.2)
            assert states == {"anchored"}
            assert all(not r["checks"]["anchoring"]["worker_here"]
                       for r in (client.get("/readyz").json() for _ in range(6)))  # fmt: skip
    finally:
        server.send_signal(signal.SIGTERM)
        output = server.communicate(timeout=90)[0].decode()
        landreg_out(env, "chain", "stop")
    assert server.returncode == 0, output
    left = subprocess.run(["pgrep", "-f", f"--port {port}"], capture_output=True, text=True).stdout.split()
    assert left == []


def test_create_once_is_safe_under_a_race(tmp_path):
    path = tmp_path / "key.pem"
    results = []
    barrier = threading.Barrier(8)

    def racer(i: int) -> None:
        barrier.wait()
        results.append(create_once(path, f"content {i}".encode() * 1000))

    threads = [threading.Thread(target=racer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1 and results[0] == path.read_bytes()  # everyone reads the one complete winner
    assert (path.stat().st_mode & 0o777) == 0o600
