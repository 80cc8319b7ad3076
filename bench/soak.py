"""Soak: `landreg serve` on PostgreSQL under a steady mixed load for minutes, the anchoring worker
running, and what stays bounded.

    python bench/soak.py --minutes 10 --write docs/benchmarks.md

Starts a managed anvil node and `landreg serve --workers 2` (two HTTP processes, one anchoring
worker) on a fresh PostgreSQL database, then holds a steady load from this process: filings,
reads (an instrument, a parcel's history, a search) and proof fetches, each at a fixed rate. Every
few seconds it samples the anchoring lag (the oldest record waiting for a batch) and the resident
memory of the server's process tree. Reported: requests and errors by kind, the lag's p50/p99/max,
and memory growth from the end of the warm-up to the end of the run (target under 10 %).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.service_load import PG_ADMIN, free_port, write_section

MARK = "bench/soak.py"
MUNIS = ["0201", "0209", "0215", "0219", "0223", "0240", "0250", "0261"]


def deed(rng: random.Random) -> dict:
    return {
        "doc_type": "DEED", "grantors": [f"SELLER {rng.randrange(10**6)}"], "grantees": [f"BUYER {rng.randrange(10**6)}"],
        "parcels": [{"municipality_code": rng.choice(MUNIS), "block": str(rng.randrange(1, 3000)),
                     "lot": str(rng.randrange(1, 40))}],
        "consideration": f"{rng.randrange(100_000, 2_000_000)}.00",
        "legal_description": "ALL that certain lot, piece or parcel of land.",
        "document_digest": f"{rng.getrandbits(256):064x}",
        # a deed as examination records it at once: what N.J.S.A. 46:26A-3 asks of a deed, and the
        # findings of landreg's own checks confirmed up front (a load of random parcels is all new)
        "preparer": "ANNA LEE, ESQ.", "grantee_mailing_address": "12 MAIN STREET, HACKENSACK NJ 07601",
        "confirm": ["new_parcel", "possible_duplicate", "grantor_not_owner", "conflicting_conveyance"],
        "confirm_reason": "benchmark load: recorded as filed",
    }  # fmt: skip


class Load:
    """Steady requests of one kind at ``rate`` per second; counts outcomes, keeps latencies."""

    def __init__(self, name: str, rate: float, base: str, key: str, make, stop: threading.Event):
        self.name, self.rate, self.make, self.stop = name, rate, make, stop
        self.client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30)
        self.outcomes: Counter = Counter()
        self.latencies: list[float] = []
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        rng = random.Random(self.name)
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        while not self.stop.is_set():
            next_at += interval
            method, path, body = self.make(rng)
            started = time.perf_counter()
            try:
                r = self.client.request(method, path, json=body)
                self.outcomes[r.status_code] += 1
                self.latencies.append(time.perf_counter() - started)
                if r.status_code >= 500:
                    print(f"{self.name}: {r.status_code} {r.text[:200]}", file=sys.stderr)
            except httpx.HTTPError as exc:
                self.outcomes[type(exc).__name__] += 1
            delay = next_at - time.monotonic()
            if delay > 0:
                self.stop.wait(delay)


def quantile_ms(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


def tree_rss(pid: int) -> tuple[int, int]:
    """(resident memory of the server's own processes, of the anvil node it started): the node is
    the chain, whose state grows with every block by design, not part of the server."""
    server = node = 0
    try:
        root = psutil.Process(pid)
        for p in [root, *root.children(recursive=True)]:
            try:
                rss = p.memory_info().rss
                if "anvil" in p.name():
                    node += rss
                else:
                    server += rss
            except psutil.NoSuchProcess:
                continue
    except psutil.NoSuchProcess:
        pass
    return server, node


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--warmup-s", type=float, default=60)
    parser.add_argument("--filings", type=float, default=15, help="filings per second")
    parser.add_argument("--reads", type=float, default=30, help="reads per second")
    parser.add_argument("--proofs", type=float, default=15, help="proof fetches per second")
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="landreg-soak-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LANDREG_") and k != "DATABASE_URL"}
    env.update({"LANDREG_HOME": str(home), "LANDREG_CHAIN__ANVIL_PORT": str(free_port()),
                # the benchmark's own throwaway registry (never a real one's secrets)
                "LANDREG_SERVICE__RECEIPT_KEY_PASSPHRASE": "benchmark only passphrase",
                "LANDREG_TRUST__SIGNING_KEY_PASSPHRASE": "benchmark only passphrase"})  # fmt: skip
    import psycopg

    dbname = f"landreg_soak_{os.getpid()}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
    env["DATABASE_URL"] = PG_ADMIN.rsplit("/", 1)[0] + "/" + dbname
    landreg = [sys.executable, "-m", "registry_service.cli.main"]
    subprocess.run([*landreg, "db", "upgrade"], env=env, check=True, capture_output=True)
    key = subprocess.run([*landreg, "keys", "create", "clerk", "--name", "soak"], env=env, check=True,
                         capture_output=True, text=True).stdout.strip()  # fmt: skip
    log = open(home / "serve.log", "w")  # noqa: SIM115 - open for the server's lifetime
    server = subprocess.Popen([*landreg, "serve", "--port", str(port), "--workers", "2"], env=env,
                              stdout=subprocess.DEVNULL, stderr=log)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    stop = threading.Event()
    numbers: list[str] = []
    parcels: list[str] = []
    try:
        for _ in range(300):
            try:
                if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30)
        seed = random.Random(1)
        for _ in range(50):  # something to read from the start
            made = client.post("/api/v1/instruments", json=deed(seed)).json()
            numbers.append(made["receipt"]["instrumentNumber"])

        def filing(rng):
            return "POST", "/api/v1/instruments", deed(rng)

        def read(rng):
            n = rng.choice(numbers)
            kind = rng.randrange(3)
            if kind == 0:
                return "GET", f"/api/v1/instruments/{n}", None
            if kind == 1 and parcels:
                return "GET", f"/api/v1/parcels/{rng.choice(parcels)}/history", None
            return "GET", "/api/v1/instruments?type=DEED&from=2020-01-01", None

        def proof(rng):
            return "GET", f"/api/v1/instruments/{rng.choice(numbers)}/proof", None

        loads = [Load("filings", args.filings, base, key, filing, stop), Load("reads", args.reads, base, key, read, stop),
                 Load("proofs", args.proofs, base, key, proof, stop)]  # fmt: skip
        for load in loads:
            load.thread.start()
        started = time.monotonic()
        lags: list[float] = []
        rss: list[tuple[float, int, int]] = []
        end = started + args.minutes * 60
        while time.monotonic() < end:
            time.sleep(5)
            status = client.get("/api/v1/status").json()
            lags.append(status["oldest_pending_age_s"] or 0.0)
            rss.append((time.monotonic() - started, *tree_rss(server.pid)))
            recent = client.get("/api/v1/instruments", params={"limit": 20}).json()
            for item in recent.get("data", []):
                numbers.append(item["instrument_number"]) if len(numbers) < 5000 else None
                for p in item.get("parcels", [])[:1]:
                    key_ = p if isinstance(p, str) else p.get("parcel_key")
                    if key_ and len(parcels) < 2000:
                        parcels.append(key_)
        stop.set()
        for load in loads:
            load.thread.join(60)
        # let the worker catch up, then count what is anchored
        for _ in range(240):
            if client.get("/api/v1/status").json()["pending_records"] == 0:
                break
            time.sleep(0.5)
        final = client.get("/api/v1/status").json()
    finally:
        stop.set()
        server.terminate()
        server.wait(timeout=120)
        log.close()
        subprocess.run([*landreg, "chain", "stop"], env=env, capture_output=True)
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')

    warm = [m for t, m, _ in rss if t >= args.warmup_s]
    node = [n for t, _, n in rss if t >= args.warmup_s]
    growth = (warm[-1] - warm[0]) / warm[0] * 100 if len(warm) >= 2 else float("nan")
    curve = ", ".join(f"{m / 2**20:,.0f}" for t, m, _ in rss[:: max(1, len(rss) // 8)])
    lines = [
        f"Command: `python bench/soak.py --minutes {args.minutes:g} --filings {args.filings:g} --reads {args.reads:g} "
        f"--proofs {args.proofs:g}` ({time.strftime('%Y-%m-%d')}; PostgreSQL, managed anvil, `serve --workers 2` with "
        "its anchoring worker; the load from the same 2-core machine)",
        "",
        "| kind | requests | 2xx | errors (non-2xx or transport) | p50 / p99 latency |",
        "|---|---:|---:|---:|---:|",
    ]
    for load in loads:
        ok = sum(n for k, n in load.outcomes.items() if isinstance(k, int) and 200 <= k < 300)
        total = sum(load.outcomes.values())
        lat = sorted(load.latencies)
        lines.append(f"| {load.name} | {total:,} | {ok:,} | {total - ok:,} | {quantile_ms(lat, 0.5):.0f} / "
                     f"{quantile_ms(lat, 0.99):.0f} ms |")  # fmt: skip
    lines += [
        "",
        f"* anchoring lag (oldest record waiting for a batch, sampled every 5 s): p50 {statistics.median(lags):.1f} s, "
        f"p99 {sorted(lags)[int(0.99 * (len(lags) - 1))]:.1f} s, max {max(lags):.1f} s",
        f"* resident memory of the server's processes: {warm[0] / 2**20:,.0f} MB after the {args.warmup_s:.0f} s "
        f"warm-up, {warm[-1] / 2**20:,.0f} MB at the end: {growth:+.1f} % (target < 10 %); along the run: {curve} MB",
        f"* the anvil node (the chain, growing with its blocks by design; not counted above): "
        f"{node[0] / 2**20:,.0f} MB to {node[-1] / 2**20:,.0f} MB",
        f"* at the end: {final['instruments']:,} instruments, {final['anchored_records']:,} anchored, "
        f"{final['pending_records']} waiting, {final['failed_batches']} failed batches, holds: {final['holds'] or 'none'}",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_section(args.write, MARK, text)


if __name__ == "__main__":
    main()
