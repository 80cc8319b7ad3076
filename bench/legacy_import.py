"""Benchmark: `landreg legacy import synthetic` from the CLI, as IT staff run it, beside the naive rate.

    python bench/legacy_import.py --instruments 370000 --naive 300              # PostgreSQL
    python bench/legacy_import.py --instruments 370000 --db sqlite
    python bench/ab.py --a ../before --b . --rounds 2 -- legacy_import.py --instruments 370000 --naive 300

Into a fresh database (PostgreSQL: ``--database`` on ``--server``, dropped and made again, brought
to the schema by ``landreg db upgrade``; SQLite: a fresh LANDREG_HOME), **timed**: ``landreg legacy
import synthetic --instruments N --seed 2026``. Reported: wall time, the CPU time of the command's
process tree, its peak resident set (sampled every 0.1 s), the CPU time of the PostgreSQL backends
serving it (sampled likewise), and the load average before and after. With ``--naive K``, K records
of the same book are then anchored the naive way (one transaction each: the record's commitment as
a one-leaf root and its parcels' ERC-721 mints) on the managed anvil node, in the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
LANDREG = [sys.executable, "-m", "registry_service.cli.main"]
SEED = 2026


class Sampler:
    """While a command runs: the peak resident set of its process tree, and the CPU time of the
    PostgreSQL backends whose command line names ``database`` (each backend's last reading kept)."""

    def __init__(self, pid: int, database: str | None) -> None:
        self.root, self.database, self.peak = psutil.Process(pid), database, 0
        self.backends: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error):
                total = 0
                for p in [self.root, *self.root.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):  # a process that just ended
                        total += p.memory_info().rss
                self.peak = max(self.peak, total)
            if self.database:
                for p in psutil.process_iter(["name", "cmdline"]):
                    cmd = " ".join(p.info["cmdline"] or [])
                    if cmd.startswith("postgres:") and f" {self.database} " in cmd:
                        with contextlib.suppress(psutil.Error):
                            t = p.cpu_times()
                            self.backends[p.pid] = t.user + t.system
            time.sleep(0.1)

    def stop(self) -> tuple[float, float]:
        self._stop.set()
        self._thread.join()
        return self.peak / 2**20, sum(self.backends.values())


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def landreg(env: dict, *args: str, database: str | None = None) -> dict:
    """Run one landreg command; its seconds, CPU seconds, peak MB and its PostgreSQL backends' CPU seconds."""
    cpu, started = children_cpu(), time.perf_counter()
    proc = subprocess.Popen([*LANDREG, *args], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    sampler = Sampler(proc.pid, database)
    out, err = proc.communicate()
    seconds = time.perf_counter() - started
    mb, server_cpu = sampler.stop()
    if proc.returncode:
        raise SystemExit(f"landreg {' '.join(args)} failed ({proc.returncode}):\n{err[-3000:]}")
    return {"seconds": seconds, "cpu_s": children_cpu() - cpu, "peak_mb": mb, "server_cpu_s": server_cpu, "out": out}


def pg_admin(server: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(server.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        conn.execute(sql)


def naive_rate(home: Path, env: dict, sample: int) -> dict:
    """``sample`` records the naive way on the managed anvil node of ``home`` (started and stopped here)."""
    from migration import free_port, naive_sample

    env = {**env, "LANDREG_CHAIN__ANVIL_PORT": str(free_port())}
    landreg(env, "chain", "start")
    try:
        got = naive_sample(home, env, sample)
    finally:
        landreg(env, "chain", "stop")
    return got | {"rate": got["records"] / got["seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instruments", type=int, default=370_000)
    parser.add_argument("--db", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--server", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--database", default="importpg_bench", help="the PostgreSQL database (dropped, made again)")
    parser.add_argument("--naive", type=int, default=0, help="measure the naive rate on this many records (0: not)")
    args = parser.parse_args()
    result: dict = {"instruments": args.instruments, "db": args.db, "load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="landreg-import-bench-") as tmp:
        home = Path(tmp) / "home"
        env = {k: v for k, v in os.environ.items() if not k.startswith("LANDREG_") and k != "DATABASE_URL"}
        env.update({"LANDREG_HOME": str(home), "COLUMNS": "120",
                    "LANDREG_TRUST__SIGNING_KEY_PASSPHRASE": "benchmark only passphrase"})  # fmt: skip
        database = None
        if args.db == "postgres":
            database = args.database
            pg_admin(args.server, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            pg_admin(args.server, f'CREATE DATABASE "{database}"')
            env["LANDREG_DATABASE_URL"] = args.server.rsplit("/", 1)[0] + f"/{database}"
            landreg(env, "db", "upgrade")
        try:
            print(f"[{args.instruments:,}] legacy import synthetic on {args.db} …", flush=True)
            run = landreg(env, "legacy", "import", "synthetic", "--instruments", str(args.instruments), "--seed",
                          str(SEED), database=database)  # fmt: skip
            result["load_after"] = os.getloadavg()
            print(run.pop("out")[-1500:], flush=True)
            result |= run
            result["rate"] = args.instruments / run["seconds"]
            if args.naive:
                print(f"naive: {args.naive} records one transaction each …", flush=True)
                result["naive"] = naive_rate(home, env, args.naive)
                result["x_naive"] = result["rate"] / result["naive"]["rate"]
        finally:
            if database:
                pg_admin(args.server, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    naive = f", {result['x_naive']:.0f}× the naive rate ({result['naive']['rate']:.1f}/s)" if args.naive else ""
    print(f"[{args.instruments:,}] {args.db}: {result['seconds']:.1f} s wall ({result['rate']:,.0f}/s{naive}), "
          f"{result['cpu_s']:.1f} s CPU (landreg), {result['server_cpu_s']:.1f} s CPU (its PostgreSQL backends), "
          f"peak {result['peak_mb']:,.0f} MB, load {result['load_before'][0]:.2f} → {result['load_after'][0]:.2f}")  # fmt: skip
    print(json.dumps(result))


if __name__ == "__main__":
    main()
