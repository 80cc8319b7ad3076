"""Benchmark: `landreg serve` under load from a second process (wrk) on loopback.

    python bench/service_load.py --db postgres      # the production shape
    python bench/service_load.py --db sqlite
    python bench/service_load.py --db postgres --write docs/benchmarks.md

Starts a managed anvil node, `landreg serve` (its anchoring worker inside, batches closing on
size or on age, 2 s by default) on the chosen database, then drives it with wrk (Debian package
`wrk`; `apt-get install wrk`):

1. filings: POST /api/v1/instruments, deeds over many parcels, for --seconds;
2. proof fetches: GET /api/v1/instruments/{n}/proof over the anchored instruments;

and reads filing -> anchored latency from the database: each record's anchoring batch's
confirmation time minus its recording time (both taken by the server).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MARK = "bench/service_load.py"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"

FILING_LUA = r"""
math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
local munis = {"0201","0209","0215","0219","0223","0240","0250","0261"}
local key = os.getenv("LANDREG_BENCH_KEY")
request = function()
  local body = string.format([[{"doc_type":"DEED","grantors":["SELLER %d"],"grantees":["BUYER %d","CO-BUYER %d"],
    "parcels":[{"municipality_code":"%s","block":"%d","lot":"%d"}],"consideration":"%d.00",
    "legal_description":"ALL that certain lot, piece or parcel of land.","document_digest":"%064x",
    "preparer":"ANNA LEE, ESQ.","grantee_mailing_address":"12 MAIN STREET, HACKENSACK NJ 07601",
    "confirm":["new_parcel","possible_duplicate","grantor_not_owner","conflicting_conveyance"],
    "confirm_reason":"benchmark load: recorded as filed"}]],
    math.random(1e6), math.random(1e6), math.random(1e6), munis[math.random(#munis)], math.random(1, 3000),
    math.random(1, 40), math.random(100000, 2000000), math.random(1, 2^31))
  return wrk.format("POST", "/api/v1/instruments",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. key}, body)
end
response = function(status, headers, body)
  if status >= 300 then io.stderr:write("non-2xx " .. status .. " " .. body .. "\n") end
end
"""

PROOF_LUA = r"""
math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
local numbers = {}
for line in io.lines(os.getenv("LANDREG_BENCH_NUMBERS")) do numbers[#numbers + 1] = line end
local key = os.getenv("LANDREG_BENCH_KEY")
request = function()
  return wrk.format("GET", "/api/v1/instruments/" .. numbers[math.random(#numbers)] .. "/proof",
    {["Authorization"] = "Bearer " .. key})
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd: list[str], env: dict[str, str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, **kw)


def wrk(url: str, script: Path, seconds: int, connections: int, threads: int, env: dict[str, str]) -> dict:
    done = run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
               env=env, timeout=seconds + 60)  # fmt: skip
    out = done.stdout
    for line in done.stderr.splitlines()[:5]:
        print(line, file=sys.stderr)

    def ms(label: str) -> float:
        m = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    requests = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": requests,
        "p50_ms": ms("50"),
        "p99_ms": ms("99"),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": errors.group(1) if errors else "",
        "raw": out,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--filing-connections", type=int, default=16)
    parser.add_argument("--proof-connections", type=int, default=32)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")

    home = Path(tempfile.mkdtemp(prefix="landreg-load-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LANDREG_") and k != "DATABASE_URL"}
    env.update({"LANDREG_HOME": str(home), "LANDREG_CHAIN__ANVIL_PORT": str(free_port()),
                "LANDREG_ANCHORING__BATCH_MAX_RECORDS": "2000",
                # the benchmark's own throwaway registry (never a real one's secrets)
                "LANDREG_SERVICE__RECEIPT_KEY_PASSPHRASE": "benchmark only passphrase",
                "LANDREG_TRUST__SIGNING_KEY_PASSPHRASE": "benchmark only passphrase"})  # fmt: skip
    dbname = None
    if args.db == "postgres":
        import psycopg

        dbname = f"landreg_bench_{os.getpid()}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{dbname}"')
        env["DATABASE_URL"] = PG_ADMIN.rsplit("/", 1)[0] + "/" + dbname
    landreg = [sys.executable, "-m", "registry_service.cli.main"]
    run([*landreg, "db", "upgrade"], env)
    key = run([*landreg, "keys", "create", "clerk", "--name", "load generator"], env).stdout.strip()
    server_log = open(home / "serve.log", "w")  # noqa: SIM115 - open for the server's lifetime, closed below
    server = subprocess.Popen([*landreg, "serve", "--port", str(port), "--workers", str(args.workers)], env=env,
                              stdout=subprocess.DEVNULL, stderr=server_log)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        bench_env = {**env, "LANDREG_BENCH_KEY": key}
        filing_lua, proof_lua = home / "filing.lua", home / "proof.lua"
        filing_lua.write_text(FILING_LUA)
        proof_lua.write_text(PROOF_LUA)
        started = time.time()
        filings = wrk(base, filing_lua, args.seconds, args.filing_connections, 2, bench_env)
        print(f"filings: {filings['rps']:.0f}/s p50 {filings['p50_ms']:.1f} ms p99 {filings['p99_ms']:.1f} ms "
              f"non-2xx {filings['non_2xx']}", file=sys.stderr)  # fmt: skip
        # wait for the anchoring worker to drain what was filed
        headers = {"Authorization": f"Bearer {key}"}
        for _ in range(600):
            status = httpx.get(base + "/api/v1/status", headers=headers, timeout=10).json()
            if status["pending_records"] == 0 and all(b["state"] == "confirmed" for b in status["recent_batches"]):
                break
            time.sleep(0.5)
        latencies = anchoring_latencies(env, started)
        numbers_file = home / "numbers.txt"
        numbers_file.write_text("\n".join(sample_numbers(env)) + "\n")
        proof_env = {**bench_env, "LANDREG_BENCH_NUMBERS": str(numbers_file)}
        # first pass: every server process builds each bundle once (cold); second: served from its cache
        proofs = wrk(base, proof_lua, args.seconds, args.proof_connections, 2, proof_env)
        warm = wrk(base, proof_lua, args.seconds, args.proof_connections, 2, proof_env)
        for label, r in (("proofs (first pass)", proofs), ("proofs (cached)", warm)):
            print(f"{label}: {r['rps']:.0f}/s p50 {r['p50_ms']:.1f} ms p99 {r['p99_ms']:.1f} ms "
                  f"non-2xx {r['non_2xx']}", file=sys.stderr)  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=120)
        server_log.close()
        run([*landreg, "chain", "stop"], env)
        if dbname:
            import psycopg

            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
    text = render(args, filings, proofs, warm, latencies)
    print(text)
    if args.write:
        write_section(args.write, f"{MARK}:{args.db}", text)


def _db(env: dict[str, str]):
    from hybrid_store.db.engine import Database
    from hybrid_store.settings import Settings

    url = env.get("DATABASE_URL") or f"sqlite:///{env['LANDREG_HOME']}/landreg.db"
    return Database(Settings(home=Path(env["LANDREG_HOME"]), database_url=url).db_url)


def anchoring_latencies(env: dict[str, str], since: float) -> list[float]:
    from datetime import UTC, datetime

    from sqlalchemy import select

    from hybrid_store.db.models import AnchorBatch, BatchRecord, BatchState, Instrument

    db = _db(env)
    with db.read() as s:
        rows = s.execute(
            select(Instrument.created_at, AnchorBatch.confirmed_at)
            .join(BatchRecord, BatchRecord.instrument_id == Instrument.id)
            .join(AnchorBatch, AnchorBatch.id == BatchRecord.batch_id)
            .where(AnchorBatch.state == BatchState.CONFIRMED)
            .where(Instrument.created_at >= datetime.fromtimestamp(since, UTC))
        ).all()
    db.dispose()
    return sorted((confirmed - created).total_seconds() for created, confirmed in rows)


def sample_numbers(env: dict[str, str], n: int = 2000) -> list[str]:
    from sqlalchemy import select

    from hybrid_store.db.models import Instrument

    db = _db(env)
    with db.read() as s:
        numbers = list(s.scalars(select(Instrument.instrument_number).limit(n)))
    db.dispose()
    return numbers


def pct(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1] if len(values) > 1 else values[0]


def render(args, filings: dict, proofs: dict, warm: dict, latencies: list[float]) -> str:
    lines = [
        f"Command: `python bench/service_load.py --db {args.db} --seconds {args.seconds} --workers {args.workers} "
        f"--filing-connections {args.filing_connections} --proof-connections {args.proof_connections}` "
        f"({time.strftime('%Y-%m-%d')}; wrk on the same 2-core machine; managed anvil; "
        f"batches close at 2,000 records or 2 s)",
        "",
        "| measure | result | target |",
        "|---|---:|---:|",
        f"| filings/s sustained ({args.seconds} s, {args.filing_connections} connections) | {filings['rps']:,.0f} | ≥ 300 |",
        f"| filing latency p50 / p99 | {filings['p50_ms']:.1f} / {filings['p99_ms']:.1f} ms | p99 ≤ 100 ms |",
        f"| filings answered non-2xx | {filings['non_2xx']} of {filings['requests']:,} | 0 |",
        f"| proof fetches/s, first pass: bundles built ({args.proof_connections} connections) | "
        f"{proofs['rps']:,.0f} | |",
        f"| proof fetch latency p50 / p99, first pass | {proofs['p50_ms']:.1f} / {proofs['p99_ms']:.1f} ms | |",
        f"| proof fetches/s, second pass: bundles cached | {warm['rps']:,.0f} | ≥ 1,000 |",
        f"| proof fetch latency p50 / p99, second pass | {warm['p50_ms']:.1f} / {warm['p99_ms']:.1f} ms | |",
        f"| filing → anchored p50 / p99 ({len(latencies):,} records) | "
        f"{pct(latencies, 50):.2f} / {pct(latencies, 99):.2f} s | p99 ≤ 3 s |"
        if latencies
        else "| filing → anchored | no data | |",
    ]
    return "\n".join(lines)


def write_section(path: Path, mark: str, text: str) -> None:
    begin, end = f"<!-- {mark}:begin -->", f"<!-- {mark}:end -->"
    doc = path.read_text() if path.exists() else ""
    if begin in doc:
        head, _, rest = doc.partition(begin)
        _, _, tail = rest.partition(end)
        doc = head + begin + "\n" + text + "\n" + end + tail
    else:
        doc += f"\n{begin}\n{text}\n{end}\n"
    path.write_text(doc)


if __name__ == "__main__":
    main()
