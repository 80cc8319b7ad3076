"""Benchmark: staged migration and reconciliation at Bergen County scale, beside the naive approach.

    python bench/migration.py                                   # 10k, 100k, 370k on anvil; 370k on eth-tester
    python bench/migration.py --sizes 10000,100000,370000,1000000 --write docs/benchmarks.md
    python bench/migration.py --sizes 20000 --eth-tester 20000  # a quick look

For each size, in a fresh LANDREG_HOME on SQLite, exactly as IT staff would run it:
``landreg legacy import synthetic``, ``landreg chain start`` (the managed anvil node),
``landreg migrate plan all``, then **timed**: ``landreg migrate run all --workers 2`` and
``landreg reconcile --json``. Peak memory is the largest resident set of the command's whole
process tree (it and its hashing processes), sampled every 0.1 s; the node is reported apart.

The eth-tester row runs the same stage in one process (the in-process chain cannot outlive it).
The **naive** approach (one transaction per record: its commitment as a one-leaf root, plus the
ERC-721 mint of its parcel when new) is measured on a sample on the same anvil node, per record.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
LANDREG = [sys.executable, "-m", "registry_service.cli.main"]
BATCH = 10_000
SEED = 2026
MARK_BEGIN = "<!-- bench/migration.py:begin -->"
MARK_END = "<!-- bench/migration.py:end -->"


@dataclass
class Run:
    backend: str
    records: int
    import_s: float = 0.0
    migrate_s: float = 0.0
    migrate_peak_mb: float = 0.0
    node_peak_mb: float = 0.0
    gas: int = 0
    batches: int = 0
    reconcile_s: float = 0.0
    reconcile_peak_mb: float = 0.0
    verified: int = 0
    clean: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.records / self.migrate_s

    @property
    def gas_per_record(self) -> float:
        return self.gas / self.records


class PeakRSS:
    """Largest total resident set of a process and its descendants while it runs."""

    def __init__(self, pid: int) -> None:
        self.root, self.peak = psutil.Process(pid), 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
                total = 0
                for p in procs:
                    with contextlib.suppress(psutil.Error):  # a process that just ended
                        total += p.memory_info().rss
                self.peak = max(self.peak, total)
            except psutil.Error:
                return
            time.sleep(0.1)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak / 2**20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def landreg(env: dict, *args: str, measure: bool = False) -> tuple[float, float, str]:
    """Run one landreg command; (seconds, peak MB of its process tree, stdout)."""
    started = time.perf_counter()
    proc = subprocess.Popen([*LANDREG, *args], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    peak = PeakRSS(proc.pid) if measure else None
    out, err = proc.communicate()
    seconds = time.perf_counter() - started
    mb = peak.stop() if peak else 0.0
    if proc.returncode not in (0,) and not (args[0] == "reconcile" and proc.returncode == 1):
        raise SystemExit(f"landreg {' '.join(args)} failed ({proc.returncode}):\n{err[-3000:]}")
    return seconds, mb, out


def anvil_run(n: int, workdir: Path) -> Run:
    home = workdir / f"anvil-{n}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LANDREG_") and k != "DATABASE_URL"}
    env.update({"LANDREG_HOME": str(home), "LANDREG_CHAIN__ANVIL_PORT": str(free_port()), "COLUMNS": "120",
                # the benchmark's own throwaway registry (never a real one's secrets)
                "LANDREG_TRUST__SIGNING_KEY_PASSPHRASE": "benchmark only passphrase"})  # fmt: skip
    run = Run("anvil (managed)", n)
    print(f"[{n:,}] importing the synthetic book …", flush=True)
    run.import_s, _, _ = landreg(env, "legacy", "import", "synthetic", "--instruments", str(n), "--seed", str(SEED))
    landreg(env, "chain", "start")
    try:
        node = anvil_process(home)
        node_peak = PeakRSS(node.pid) if node else None
        landreg(env, "migrate", "plan", "all", "--batch-size", str(BATCH))
        print(f"[{n:,}] migrate run …", flush=True)
        run.migrate_s, run.migrate_peak_mb, _ = landreg(env, "migrate", "run", "all", "--workers", "2", measure=True)
        print(f"[{n:,}] reconcile …", flush=True)
        report = home / "reconcile.json"
        run.reconcile_s, run.reconcile_peak_mb, _ = landreg(env, "reconcile", "--json", str(report), "--workers", "2",
                                                            measure=True)  # fmt: skip
        run.node_peak_mb = node_peak.stop() if node_peak else 0.0
        _fill_from_db(run, home)
        result = json.loads(report.read_text())
        run.verified, run.clean = result["counts"]["verified"], result["clean"]
        run.extra["naive"] = naive_sample(home, env) if n == _naive_at else None
    finally:
        landreg(env, "chain", "stop")
    print(f"[{n:,}] {run.migrate_s:.1f} s, {run.gas_per_record:.1f} gas/record, reconcile {run.reconcile_s:.1f} s",
          flush=True)  # fmt: skip
    return run


def anvil_process(home: Path) -> psutil.Process | None:
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if "anvil" in cmd and str(home) in cmd:
            return p
    return None


def _fill_from_db(run: Run, home: Path) -> None:
    from sqlalchemy import func, select

    from hybrid_store.db.engine import Database
    from hybrid_store.db.models import AnchorBatch, BatchState
    from hybrid_store.settings import Settings

    db = Database(Settings(home=home).db_url)
    with db.read() as s:
        run.gas, run.batches = s.execute(
            select(func.coalesce(func.sum(AnchorBatch.gas_used), 0), func.count()).where(
                AnchorBatch.state == BatchState.CONFIRMED
            )
        ).one()
    db.dispose()


_naive_at = 370_000


def naive_sample(home: Path, env: dict, sample: int = 300) -> dict:
    """One transaction (and one parcel mint) per record, on a fresh contract on the same node."""
    from anchoring import naive, records_of

    from hybrid_store.chain.connect import open_chain
    from hybrid_store.settings import Settings

    print(f"naive: {sample} records one transaction each …", flush=True)
    cfg = Settings(home=home, chain={"anvil_port": int(env["LANDREG_CHAIN__ANVIL_PORT"])})
    chain = open_chain(cfg)
    chain.deploy()
    row = naive(chain, records_of(sample, SEED), "anvil")
    return {"records": row.records, "seconds": row.seconds, "gas": row.gas}


def eth_tester_run(n: int) -> Run:
    """The same stage on the in-process chain, in a child process (so its memory is its own)."""
    print(f"[{n:,}] eth-tester (in process) …", flush=True)
    out = subprocess.run([sys.executable, __file__, "--inproc", str(n)], cwd=ROOT, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    d = json.loads(out.stdout.strip().splitlines()[-1])
    run = Run("eth-tester (in-process)", n, **{k: v for k, v in d.items() if k in Run.__dataclass_fields__})
    print(f"[{n:,}] eth-tester {run.migrate_s:.1f} s", flush=True)
    return run


def inproc(n: int) -> None:
    from sqlalchemy import func, select

    from hybrid_store.chain.connect import eth_tester_chain
    from hybrid_store.db.engine import Database
    from hybrid_store.db.models import AnchorBatch, BatchState
    from hybrid_store.deployment import attach
    from hybrid_store.settings import Settings
    from migration_tools.legacy.importer import import_records, synthetic_source
    from migration_tools.reconciliation.run import reconcile
    from migration_tools.stages import Selector, StageRunner, plan_stage

    with tempfile.TemporaryDirectory() as tmp:
        cfg = Settings(home=Path(tmp))
        cfg.ensure_home()
        db = Database(cfg.db_url)
        db.migrate()
        started = time.perf_counter()
        import_records(db, synthetic_source(n, SEED), name="synthetic", quarantine=Path(tmp) / "q.csv")
        import_s = time.perf_counter() - started
        chain = eth_tester_chain()
        deployment = attach(db, chain)
        plan_stage(db, chain, "all", Selector(), batch_size=BATCH, actor="bench")
        me = psutil.Process()
        peak = PeakRSS(me.pid)
        started = time.perf_counter()
        StageRunner(db, chain, deployment, manifest_dir=cfg.manifests_dir, workers=2).run("all")
        migrate_s = time.perf_counter() - started
        started = time.perf_counter()
        result = reconcile(db, chain, manifest_dir=cfg.manifests_dir, workers=2)
        reconcile_s = time.perf_counter() - started
        mb = peak.stop()
        with db.read() as s:
            gas, batches = s.execute(
                select(func.coalesce(func.sum(AnchorBatch.gas_used), 0), func.count()).where(
                    AnchorBatch.state == BatchState.CONFIRMED
                )
            ).one()
        print(json.dumps({"import_s": import_s, "migrate_s": migrate_s, "migrate_peak_mb": mb, "gas": gas,
                          "batches": batches, "reconcile_s": reconcile_s, "verified": result.counts["verified"],
                          "clean": result.clean}))  # fmt: skip


def title_ab(n: int, url: str | None = None) -> dict:
    """The same stage four times on one imported book (copied), in this process on eth-tester, in
    the order without, with, with, without the title state (``title_state=False`` is the baseline),
    so that a machine growing busier or quieter weighs on both alike. Each run's wall time and CPU
    time (this process and its hashing processes) are kept; the ratios compare the sums. With
    ``url`` (a PostgreSQL server, e.g. ``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``)
    the book is imported once into a database of its own and each run gets a copy of it
    (``CREATE DATABASE … TEMPLATE``); without, SQLite files copied."""
    import resource
    import shutil

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from hybrid_store.anchoring import Anchorer
    from hybrid_store.chain.connect import eth_tester_chain
    from hybrid_store.db.engine import Database
    from hybrid_store.deployment import attach
    from hybrid_store.settings import Settings
    from migration_tools.legacy.importer import import_records, synthetic_source
    from migration_tools.stages import Selector, StageRunner, plan_stage

    def cpu() -> float:
        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime

    out: dict = {"records": n, "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        imported = Settings(home=Path(tmp) / "imported")
        imported.ensure_home()
        server = make_url(url) if url else None
        admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT") if server else None

        def pg_db(name: str, template: str | None = None) -> str:
            assert admin is not None and server is not None
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                c.execute(text(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")))
            return server.set(database=name).render_as_string(hide_password=False)

        book_url = pg_db("landreg_bench_title_book") if server else imported.db_url
        first = Database(book_url)
        first.migrate()
        print(f"[{n:,}] importing once for every run …", flush=True)
        import_records(first, synthetic_source(n, SEED), name="synthetic", quarantine=Path(tmp) / "q.csv")
        first.dispose()
        for k, title in enumerate((False, True, True, False)):
            cfg = Settings(home=Path(tmp) / f"run{k}")
            cfg.ensure_home()
            if server:
                run_url = pg_db(f"landreg_bench_title_run{k}", template="landreg_bench_title_book")
            else:
                run_url = cfg.db_url
                shutil.copy(imported.db_url.removeprefix("sqlite:///"), cfg.db_url.removeprefix("sqlite:///"))
            db = Database(run_url)
            chain = eth_tester_chain()
            deployment = attach(db, chain)
            plan_stage(db, chain, "all", Selector(), batch_size=BATCH, actor="bench")
            anchorer = Anchorer(db, chain, deployment, manifest_dir=cfg.manifests_dir, title_state=title)
            wall, used, written = time.perf_counter(), cpu(), _written()
            StageRunner(db, chain, deployment, workers=2, anchorer=anchorer).run("all")
            wall, used, written = time.perf_counter() - wall, cpu() - used, _written() - written
            out["runs"].append({"title": title, "wall_s": wall, "cpu_s": used, "written_mb": written / 1e6,
                                "load": os.getloadavg()[0]})  # fmt: skip
            print(f"[{n:,}] {'with' if title else 'without'} the title state: {wall:.1f} s wall, {used:.1f} s CPU, "
                  f"{written / 1e6:,.0f} MB written, load {os.getloadavg()[0]:.2f}", flush=True)  # fmt: skip
            db.dispose()
            if server:
                pg_db(f"landreg_bench_title_run{k}")  # emptied: the next copy needs the disk
            else:
                Path(cfg.db_url.removeprefix("sqlite:///")).unlink()
    for what in ("wall_s", "cpu_s", "written_mb"):
        on = sum(r[what] for r in out["runs"] if r["title"])
        off = sum(r[what] for r in out["runs"] if not r["title"])
        out[f"ratio_{what.rpartition('_')[0]}"] = on / off if off else 0.0
    return out


def _written() -> int:
    """Bytes this process has had written to storage (/proc/self/io): SQLite writes from here; a
    PostgreSQL server writes from its own processes, so there it counts only the manifests."""
    return psutil.Process().io_counters().write_bytes


def _mb(value: float) -> str:
    return f"{value:,.0f}" if value else "– (in one process)"


def render(args: argparse.Namespace, runs: list[Run]) -> str:
    lines = [
        f"Command: `python bench/migration.py --sizes {args.sizes} --eth-tester {args.eth_tester}` "
        f"({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, Python {sys.version.split()[0]}, SQLite, "
        f"batches of {BATCH:,}, 2 hashing processes)",
        "",
        "| chain | records | `migrate run` s | records/s | gas/record | batches | peak MB (migrate) | node peak MB "
        "| `reconcile` s | peak MB (reconcile) | verified | import s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        lines.append(
            f"| {r.backend} | {r.records:,} | {r.migrate_s:.1f} | {r.rate:,.0f} | {r.gas_per_record:.1f} | {r.batches} "
            f"| {r.migrate_peak_mb:,.0f} | {_mb(r.node_peak_mb)} | {r.reconcile_s:.1f} | {_mb(r.reconcile_peak_mb)} "
            f"| {r.verified:,}{'' if r.clean else ' (NOT clean)'} | {r.import_s:.0f} |"
        )
    naive = next((r.extra["naive"] for r in runs if r.extra.get("naive")), None)
    batched = next((r for r in runs if r.extra.get("naive")), None)
    if naive and batched:
        rate = naive["records"] / naive["seconds"]
        gas = naive["gas"] / naive["records"]
        lines += [
            "",
            f"Naive, same node, {naive['records']} records one transaction each (the record's commitment as a one-leaf "
            f"root and the ERC-721 mint of its parcel when new): **{rate:,.1f} records/s, {gas:,.0f} gas/record**; "
            f"{batched.records:,} records that way would take about {batched.records / rate / 3600:,.1f} h. "
            f"Batched migration: **{batched.rate / rate:,.0f}× faster, {gas / batched.gas_per_record:,.0f}× less gas** "
            f"per record.",
        ]
    return "\n".join(lines)


def main() -> None:
    global _naive_at
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,370000", help="records per anvil run, comma-separated")
    parser.add_argument("--eth-tester", type=int, default=370_000, help="records on eth-tester (0: skip)")
    parser.add_argument("--naive-at", type=int, default=None, help="measure the naive sample beside this size")
    parser.add_argument("--write", type=Path, help="update this Markdown file between the bench markers")
    parser.add_argument("--inproc", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--title-ab", type=int, help="only: the migration with and without the title state, N records")
    parser.add_argument("--url", help="--title-ab on this PostgreSQL server (a database URL) instead of SQLite")
    args = parser.parse_args()
    if args.inproc:
        inproc(args.inproc)
        return
    if args.title_ab:
        print(json.dumps(title_ab(args.title_ab, args.url)))
        return
    sizes = [int(x) for x in args.sizes.split(",") if x]
    _naive_at = args.naive_at or (370_000 if 370_000 in sizes else max(sizes))
    runs = []
    with tempfile.TemporaryDirectory(prefix="landreg-bench-") as tmp:
        for n in sizes:
            runs.append(anvil_run(n, Path(tmp)))
    if args.eth_tester:
        runs.append(eth_tester_run(args.eth_tester))
    text = render(args, runs)
    print(text)
    if args.write:
        doc = args.write.read_text() if args.write.exists() else "# Benchmarks\n"
        if MARK_BEGIN in doc:
            head, _, rest = doc.partition(MARK_BEGIN)
            _, _, tail = rest.partition(MARK_END)
            doc = f"{head}{MARK_BEGIN}\n{text}\n{MARK_END}{tail}"
        else:
            doc += f"\n## Staged migration and reconciliation (issue 4)\n\n{MARK_BEGIN}\n{text}\n{MARK_END}\n"
        args.write.write_text(doc)


if __name__ == "__main__":
    main()
