"""Benchmark (issue 25): filing and proof-fetch latency at an offered rate, on PostgreSQL as
production runs it, beside a bare filing endpoint served the same way.

    python bench/offered_load.py                       # 100 filings/s, 300 proofs/s, 30 s each
    python bench/offered_load.py --write docs/benchmarks.md

One server (``bench/bare_filing.py``: `landreg serve --workers 2` with its anchoring process and
a managed anvil node, plus the benchmark-only bare endpoint) on a fresh PostgreSQL database,
connected as a least-privilege runtime role (``landreg db grant-runtime``), with
synchronous_commit on. Load comes from ``bench/open_loop.py`` in a process of its own:

1. filings offered at ``--filing-rate`` over ``--filing-connections`` (open loop: latency from
   each request's due time), then the bare endpoint offered the same;
2. the saturated rate: each endpoint closed-loop over the same connections, alternating, for
   ``--rounds`` rounds (the ratio is taken round by round, so a neighbour's load moves both);
3. once the anchoring worker has drained, proof fetches of anchored instruments offered at
   ``--proof-rate``: a first pass (each server process builds bundles) and a second (cached).

Every figure carries the load average (1 min) read when its phase ended.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from service_load import free_port, write_section  # noqa: E402  (the service benchmark's own helpers)

MARK = "bench/offered_load.py"
PG = "postgresql://{user}@127.0.0.1:5432/{db}"
PG_ADMIN = PG.format(user="postgres", db="postgres")
PY_SPY = str(Path(sys.executable).parent / "py-spy")
BARE_MUNIS = "0203,0205,0207,0211,0213,0217,0221,0225"  # the bare endpoint's parcels: none of the filings'


def run(cmd: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def load(env: dict[str, str], base: str, **kw: object) -> dict:
    """One open_loop.py run in its own process; its JSON result with the load average after it."""
    cmd = [sys.executable, str(ROOT / "bench" / "open_loop.py"), "--url", base]
    for name, value in kw.items():
        if value is True:
            cmd.append(f"--{name.replace('_', '-')}")
        elif value is not None and value is not False:
            cmd += [f"--{name.replace('_', '-')}", str(value)]
    result = json.loads(run(cmd, env).strip().splitlines()[-1])
    result["load_1m"] = round(os.getloadavg()[0], 2)
    print(json.dumps({k: v for k, v in kw.items() if k not in ("numbers",)}), "->", json.dumps(result),
          file=sys.stderr, flush=True)  # fmt: skip
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--saturated-seconds", type=float, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--filing-rate", type=float, default=100)
    parser.add_argument("--filing-connections", type=int, default=6)
    parser.add_argument("--proof-rate", type=float, default=300)
    parser.add_argument("--proof-connections", type=int, default=16)
    parser.add_argument("--label", default="", help="named in the output (e.g. which checkout)")
    parser.add_argument("--json", type=Path, help="also write every result here")
    parser.add_argument("--write", type=Path)
    parser.add_argument(
        "--profile",
        type=Path,
        help="py-spy the server's processes during the first saturated "
        "filing and the first proof pass; raw stacks into this folder",
    )
    args = parser.parse_args()

    import psycopg

    tag = f"{os.getpid()}"
    dbname, role = f"latency_bench_{tag}", f"latency_rt_{tag}"
    home = Path(tempfile.mkdtemp(prefix="landreg-offered-"))
    port = free_port()
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
        conn.execute(f'CREATE ROLE "{role}" LOGIN NOSUPERUSER')
    env = {k: v for k, v in os.environ.items() if not k.startswith("LANDREG_") and k != "DATABASE_URL"}
    env.update({"LANDREG_HOME": str(home), "LANDREG_CHAIN__ANVIL_PORT": str(free_port()),
                "LANDREG_ANCHORING__BATCH_MAX_RECORDS": "2000",
                # the benchmark's own throwaway registry (never a real one's secrets)
                "LANDREG_SERVICE__RECEIPT_KEY_PASSPHRASE": "benchmark only passphrase",
                "LANDREG_TRUST__SIGNING_KEY_PASSPHRASE": "benchmark only passphrase",
                "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'bench'}"})  # fmt: skip
    owner = {**env, "DATABASE_URL": PG.format(user="postgres", db=dbname)}
    runtime = {**env, "DATABASE_URL": PG.format(user=role, db=dbname)}
    landreg = [sys.executable, "-m", "registry_service.cli.main"]
    server = None
    results: dict[str, object] = {"label": args.label, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    try:
        run([*landreg, "db", "upgrade"], owner)
        run([*landreg, "db", "grant-runtime", role], owner)
        run([*landreg, "signing-keys", "init"], owner)
        key = run([*landreg, "keys", "create", "clerk", "--name", "load generator"], owner).strip()
        log = (home / "serve.log").open("w")
        server = subprocess.Popen([sys.executable, "-m", "bare_filing", "--port", str(port), "--workers",
                                   str(args.workers)], env=runtime, cwd=ROOT, stdout=log, stderr=log)  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None:
                sys.exit(f"the server exited: {(home / 'serve.log').read_text()[-3000:]}")
            time.sleep(0.2)
        client = {**env, "LANDREG_BENCH_KEY": key}
        meter = Meter(server.pid, owner["DATABASE_URL"], dbname)
        bare_path = "/bench/bare/instruments"
        # warm-up: every process opens its pool's connections and fills its caches
        load(client, base, kind="filing", closed=True, connections=args.filing_connections, seconds=5)
        load(client, base, kind="filing", closed=True, connections=args.filing_connections, seconds=5,
             path=bare_path, municipalities=BARE_MUNIS)  # fmt: skip
        offered = {"filing": [], "bare": []}
        saturated = {"filing": [], "bare": []}
        for r in range(args.rounds):
            if r == 0 and args.profile:
                spies = spy(server.pid, args.profile, "filing", args.saturated_seconds)
                # profiled, so not counted: py-spy takes CPU from the server
                load(client, base, kind="filing", closed=True, connections=args.filing_connections,
                     seconds=args.saturated_seconds)  # fmt: skip
                for p in spies:
                    p.wait()
            offered["filing"].append(load(client, base, kind="filing", rate=args.filing_rate,
                                          connections=args.filing_connections, seconds=args.seconds))  # fmt: skip
            offered["bare"].append(load(client, base, kind="filing", rate=args.filing_rate, path=bare_path,
                                        municipalities=BARE_MUNIS, connections=args.filing_connections,
                                        seconds=args.seconds))  # fmt: skip
            before = meter.snapshot()
            saturated["filing"].append(load(client, base, kind="filing", closed=True,
                                            connections=args.filing_connections, seconds=args.saturated_seconds))  # fmt: skip
            middle = meter.snapshot()
            saturated["bare"].append(load(client, base, kind="filing", closed=True, path=bare_path,
                                          municipalities=BARE_MUNIS, connections=args.filing_connections,
                                          seconds=args.saturated_seconds))  # fmt: skip
            after = meter.snapshot()
            saturated["filing"][-1]["cpu_ms"] = Meter.per_request(before, middle, saturated["filing"][-1]["completed"])
            saturated["bare"][-1]["cpu_ms"] = Meter.per_request(middle, after, saturated["bare"][-1]["completed"])
        results.update(offered=offered, saturated=saturated)
        headers = {"Authorization": f"Bearer {key}"}
        for _ in range(600):  # the anchoring worker drains what was filed
            status = httpx.get(base + "/api/v1/status", headers=headers, timeout=10).json()
            if status["pending_records"] == 0 and all(b["state"] == "confirmed" for b in status["recent_batches"]):
                break
            time.sleep(0.5)
        numbers = home / "numbers.txt"
        numbers.write_text("\n".join(anchored_numbers(owner["DATABASE_URL"])) + "\n")
        proofs = []
        for i in range(2):  # first pass: bundles built in each process; then served from its cache
            spies = spy(server.pid, args.profile, f"proofs{i}", args.seconds) if args.profile else []
            before = meter.snapshot()
            proofs.append(load(client, base, kind="proof", numbers=numbers, rate=args.proof_rate,
                               connections=args.proof_connections, seconds=args.seconds))  # fmt: skip
            proofs[-1]["cpu_ms"] = Meter.per_request(before, meter.snapshot(), proofs[-1]["completed"])
            for p in spies:
                p.wait()
        results["proofs"] = proofs
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=120)
            except subprocess.TimeoutExpired:
                server.kill()
        subprocess.run([*landreg, "chain", "stop"], env=owner, capture_output=True, cwd=ROOT)
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')
        shutil.rmtree(home, ignore_errors=True)  # a throwaway registry's keys and chain state
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    text = render(args, results)
    print(text)
    if args.write:
        write_section(args.write, MARK, text)


class Meter:
    """CPU seconds used by each part of the system under test (utime + stime from /proc): the HTTP
    processes, the anchoring process, the anvil node and this database's PostgreSQL backends. On
    a machine shared with other benchmarks a rate moves with the neighbours' load; the CPU each
    request costs does much less, so it is reported beside the rates."""

    def __init__(self, server: int, pg_url: str, dbname: str):
        self.server, self.pg_url, self.dbname = server, pg_url, dbname
        self.tick = os.sysconf("SC_CLK_TCK")

    def _groups(self) -> dict[str, list[int]]:
        groups: dict[str, list[int]] = {"http": [], "anchoring": [], "anvil": [], "postgres": []}
        children = Path(f"/proc/{self.server}/task/{self.server}/children").read_text().split()
        for pid in children:
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                environ = Path(f"/proc/{pid}/environ").read_bytes()
            except OSError:
                continue
            if b"anvil" in cmdline:
                groups["anvil"].append(int(pid))
            for var in environ.split(b"\0"):
                if var.startswith(b"LANDREG_SERVICE__SUPERVISOR_STATUS="):
                    status = Path(var.split(b"=", 1)[1].decode())
                    for p in json.loads(status.read_text())["processes"]:
                        if p["pid"] == int(pid):
                            groups["http" if p["kind"] == "http" else "anchoring"].append(int(pid))
        import psycopg

        with psycopg.connect(self.pg_url, autocommit=True) as conn:
            groups["postgres"] = [r[0] for r in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (self.dbname,))]  # fmt: skip
        return groups

    def snapshot(self) -> dict[str, dict[int, float]]:
        out: dict[str, dict[int, float]] = {}
        for group, pids in self._groups().items():
            out[group] = {}
            for pid in pids:
                try:
                    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
                except OSError:
                    continue
                out[group][pid] = (int(fields[11]) + int(fields[12])) / self.tick
        return out

    @staticmethod
    def per_request(before: dict, after: dict, requests: int) -> dict[str, float]:
        """CPU ms per request by group (a process that started or ended between counts from 0)."""
        return {group: round(sum(t - before.get(group, {}).get(pid, 0.0) for pid, t in pids.items())
                             * 1000 / max(requests, 1), 2) for group, pids in after.items()}  # fmt: skip


def spy(parent: int, folder: Path, tag: str, seconds: float) -> list[subprocess.Popen]:
    """py-spy (``pip install py-spy``; not a dependency) on each Python child of the server."""
    folder.mkdir(parents=True, exist_ok=True)
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    spies = []
    for pid in children:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        if b"python" not in cmdline:
            continue  # the anvil node
        spies.append(subprocess.Popen([PY_SPY, "record", "--pid", pid, "--duration", str(int(seconds)),
                                       "--format", "raw", "--rate", "200", "--output",
                                       str(folder / f"{tag}-{pid}.txt")],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))  # fmt: skip
    return spies


def anchored_numbers(url: str, n: int = 3000) -> list[str]:
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT i.instrument_number FROM instruments i JOIN batch_records r ON r.instrument_id = i.id "
            "JOIN anchor_batches b ON b.id = r.batch_id WHERE b.state = 'confirmed' ORDER BY random() LIMIT %s",
            (n,),
        ).fetchall()
    return [r[0] for r in rows]


def _row(label: str, r: dict) -> str:
    bad = sum(v for k, v in r["statuses"].items() if not k.startswith("2")) + r["errors"]
    offered = f"{r['offered_per_s']:.0f}/s" if r["offered_per_s"] else "closed loop"
    return (f"| {label} | {offered}, {r['connections']} conn. | {r['achieved_per_s']:,.1f} | {r['p50_ms']:.1f} | "
            f"{r['p99_ms']:.1f} | {r['max_ms']:.0f} | {bad} | {r['load_1m']:.1f} | {_cpu(r)} |")  # fmt: skip


def _cpu(r: dict) -> str:
    c = r.get("cpu_ms")
    if not c:
        return ""
    return f"{c['http']:.1f} / {c['anchoring']:.1f} / {c['anvil']:.1f} / {c['postgres']:.1f} (Σ {sum(c.values()):.1f})"


def render(args: argparse.Namespace, results: dict) -> str:
    lines = [
        f"Command: `python bench/offered_load.py --seconds {args.seconds:g} --saturated-seconds "
        f"{args.saturated_seconds:g} --rounds {args.rounds} --workers {args.workers} --filing-rate "
        f"{args.filing_rate:g} --filing-connections {args.filing_connections} --proof-rate {args.proof_rate:g} "
        f"--proof-connections {args.proof_connections}` ({results['date']}{', ' + args.label if args.label else ''}; "
        "PostgreSQL as the runtime role, synchronous_commit on; open-loop generator in its own process on "
        "the same 2-core machine)",
        "",
        "| run | offered | achieved/s | p50 ms | p99 ms | max ms | non-2xx + errors | load (1 min) "
        "| CPU ms a request: HTTP / anchoring / anvil / PostgreSQL |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for i, (f, b) in enumerate(zip(results["offered"]["filing"], results["offered"]["bare"], strict=True), 1):
        lines += [_row(f"filing, round {i}", f), _row(f"bare endpoint, round {i}", b)]
    ratios = []
    for i, (f, b) in enumerate(zip(results["saturated"]["filing"], results["saturated"]["bare"], strict=True), 1):
        lines += [_row(f"filing saturated, round {i}", f), _row(f"bare endpoint saturated, round {i}", b)]
        ratios.append(f["achieved_per_s"] / b["achieved_per_s"])
    for label, r in zip(("proofs, first pass", "proofs, cached"), results["proofs"], strict=False):
        lines.append(_row(label, r))
    lines += ["", "Saturated filing rate ÷ the bare endpoint's, by round: "
              + ", ".join(f"{x:.0%}" for x in ratios) + " (target ≥ 60 %)"]  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    main()
