"""Benchmark: Bergen's book through the whole migration on PostgreSQL, as IT staff run it, beside the naive rate.

    python bench/pg_pipeline.py                                   # 370,000 instruments
    python bench/pg_pipeline.py --instruments 1000000
    python bench/pg_pipeline.py --instruments 20000 --tree /tmp/before --tree .   # before and after, one run

For each tree (default: this one), in a fresh PostgreSQL database and a fresh ``LANDREG_HOME``, each
command timed from the outside, with the peak resident set of its whole process tree (it and its
hashing processes; the PostgreSQL server and the node are not counted):

1. ``landreg db upgrade`` (not timed), then ``landreg legacy import synthetic --instruments N --seed 2026``;
2. ``landreg chain start`` (the managed anvil node), ``landreg migrate plan all --batch-size 10000``,
   then ``landreg migrate run all --workers 2``;
3. ``landreg reconcile --workers 2 --json R`` (its report must be clean).

The **naive** approach is measured on the same node in the same run, after the first tree: one
transaction per deed (its commitment as a one-leaf root, plus the ERC-721 mint of its parcel when new),
on a sample of 300 (``bench/anchoring.py``'s ``naive``). Issue 25's targets are multiples of that rate:
import ≥ 200×, migrate ≥ 185×, reconcile ≥ 490×, the three together ≥ 80×.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from migration import PeakRSS, anvil_process, free_port, naive_sample  # noqa: E402

SEED = 2026
BATCH = 10_000
TARGETS = {"import": 200, "migrate": 185, "reconcile": 490, "all three": 80}


def command(tree: Path, env: dict, *args: str) -> tuple[float, float, str]:
    """One landreg command of ``tree``; (seconds, peak MB of its process tree, stdout)."""
    import subprocess

    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "registry_service.cli.main", *args], env={**env, "PYTHONPATH": str(tree)},
                            cwd=tree, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    peak = PeakRSS(proc.pid)
    out, err = proc.communicate()
    seconds, mb = time.perf_counter() - started, peak.stop()
    if proc.returncode != 0:
        raise SystemExit(f"landreg {' '.join(args)} failed ({proc.returncode}):\n{err[-3000:]}")
    return seconds, mb, out


def pipeline(tree: Path, n: int, server: str, work: Path, naive: bool) -> dict:
    url = make_url(server)
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    name = f"landreg_bench_pipeline_{uuid.uuid4().hex[:8]}"
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    home = work / name
    env = {k: v for k, v in os.environ.items() if not k.startswith("LANDREG_") and k != "DATABASE_URL"}
    env.update({"LANDREG_HOME": str(home), "LANDREG_CHAIN__ANVIL_PORT": str(free_port()), "COLUMNS": "120",
                "LANDREG_DATABASE_URL": url.set(database=name).render_as_string(hide_password=False),
                # the benchmark's own throwaway registry (never a real one's secrets)
                "LANDREG_TRUST__SIGNING_KEY_PASSPHRASE": "benchmark only passphrase"})  # fmt: skip
    out: dict = {"tree": str(tree), "instruments": n}
    try:
        command(tree, env, "db", "upgrade")
        print(f"[{tree}] import {n:,} …", file=sys.stderr, flush=True)
        out["import_s"], out["import_mb"], _ = command(tree, env, "legacy", "import", "synthetic", "--instruments",
                                                       str(n), "--seed", str(SEED))  # fmt: skip
        command(tree, env, "chain", "start")
        try:
            node = anvil_process(home)
            node_peak = PeakRSS(node.pid) if node else None
            command(tree, env, "migrate", "plan", "all", "--batch-size", str(BATCH))
            print(f"[{tree}] migrate run …", file=sys.stderr, flush=True)
            out["migrate_s"], out["migrate_mb"], _ = command(tree, env, "migrate", "run", "all", "--workers", "2")
            print(f"[{tree}] reconcile …", file=sys.stderr, flush=True)
            report = home / "reconcile.json"
            out["reconcile_s"], out["reconcile_mb"], _ = command(tree, env, "reconcile", "--workers", "2", "--json",
                                                                 str(report))  # fmt: skip
            result = json.loads(report.read_text())
            out["verified"], out["clean"] = result["counts"]["verified"], result["clean"]
            out["node_mb"] = node_peak.stop() if node_peak else 0.0
            if naive:
                out["naive"] = naive_sample(home, env)
        finally:
            command(tree, env, "chain", "stop")
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    return out


def render(runs: list[dict], naive_rate: float) -> str:
    lines = [
        f"PostgreSQL (local), {platform.python_implementation()} {platform.python_version()}, {platform.machine()}, "
        f"{os.cpu_count()} cores; naive rate {naive_rate:.1f} deeds/s (one transaction per deed, same node, same run)",
        "",
        "| tree | step | seconds | peak MB | × naive rate | target × |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in runs:
        n = r["instruments"]
        steps = {"import": r["import_s"], "migrate": r["migrate_s"], "reconcile": r["reconcile_s"]}
        steps["all three"] = sum(steps.values())
        mbs = {"import": r["import_mb"], "migrate": r["migrate_mb"], "reconcile": r["reconcile_mb"]}
        for step, seconds in steps.items():
            times = n / seconds / naive_rate
            mb = f"{mbs[step]:,.0f}" if step in mbs else ""
            lines.append(f"| {r['tree']} | {step} | {seconds:.1f} | {mb} | {times:.0f}× | ≥ {TARGETS[step]}× |")
        lines.append(f"| {r['tree']} | (reconcile: {r['verified']:,} verified, clean {r['clean']}; "
                     f"node peak {r['node_mb']:,.0f} MB) | | | | |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--instruments", type=int, default=370_000)
    ap.add_argument(
        "--url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
        help="a PostgreSQL server (a database URL; each run creates and drops a database of its own)",
    )
    ap.add_argument(
        "--tree",
        type=Path,
        action="append",
        help="a landreg source tree to run (repeat for before/after in one run); default: this one",
    )
    args = ap.parse_args()
    trees = [t.resolve() for t in (args.tree or [ROOT])]
    runs = []
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="landreg-bench-pipeline-") as tmp:
        for k, tree in enumerate(trees):
            runs.append(pipeline(tree, args.instruments, args.url, Path(tmp), naive=k == 0))
            load.append(os.getloadavg()[0])
    naive = runs[0]["naive"]
    naive_rate = naive["records"] / naive["seconds"]
    print(render(runs, naive_rate))
    print(
        f"\nload average (1 min) at the start and after each tree: {', '.join(f'{x:.1f}' for x in load)}; "
        f"peak memory of the machine's other processes is not counted; {psutil.virtual_memory().total / 2**30:.0f} GiB"
    )
    print(json.dumps({"runs": runs, "naive_rate": naive_rate, "load": load}), file=sys.stderr)


if __name__ == "__main__":
    main()
