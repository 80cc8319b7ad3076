"""Benchmark: a live parallel run on a 370,000-document legacy database, beside the naive way.

    python bench/parallel_run.py                          # 370,000 documents, MariaDB and PostgreSQL
    python bench/parallel_run.py --documents 20000 --changes 60
    python bench/parallel_run.py --write docs/benchmarks.md

For each legacy server (the local MariaDB and PostgreSQL), a database of its own is filled with the
synthetic Bergen County book in the ``landreg-export`` tables, plus a ``modified_at`` column the
watermark method reads (a layout file written here adds it). In a fresh ``LANDREG_HOME`` on
SQLite with the managed anvil node, as IT staff would run it: ``legacy attach``, ``legacy sync``,
``migrate plan all`` and ``migrate run all`` (unless ``--no-migrate``: a parallel run comes after the
migration, so the three-way check verifies every record on chain as well), ``legacy
install-capture``, then for each capture method:

* ``landreg legacy sync --follow --anchor --interval 0.5`` runs (its start-up sweep of every
  document is timed), while this script plays the recorder: ``--changes`` edits, inserts and
  deletions, one transaction each, a few a second. **Latency** is from the recorder's commit to the
  confirmed anchoring batch of the record (new or new version) landreg made of it, read from
  landreg's database; a deletion's latency is to its ``deleted_in_legacy`` flag.
* then, timed: ``landreg reconcile --legacy`` (three-way, every document of the legacy database)
  and the **naive** alternative: export the whole book to CSV files and ``legacy import csv`` it
  into a fresh registry, to be compared with the previous export (the comparison itself not timed).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path

from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from legacy_sync import LANDREG, SERVERS, export_csv, fill, home_env, timed  # noqa: E402

MARK = "bench/parallel_run.py"


def layout_file(folder: Path) -> Path:
    """The shipped landreg-export layout, with the documents' modified column named."""
    shipped = (ROOT / "migration_tools" / "legacy" / "layouts" / "landreg-export.toml").read_text()
    text_ = shipped.replace('name = "landreg-export"', 'name = "landreg-export-watermark"').replace(
        '[documents]\ntable = "documents"\nkey = "doc_id"', '[documents]\ntable = "documents"\nkey = "doc_id"\n'
        'modified = "modified_at"')  # fmt: skip
    assert "modified_at" in text_
    path = folder / "export-watermark.toml"
    path.write_text(text_)
    return path


def add_modified_column(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE documents ADD COLUMN modified_at VARCHAR(26)")
        conn.exec_driver_sql("UPDATE documents SET modified_at = '2026-01-01 00:00:00.000000'")
        conn.exec_driver_sql("CREATE INDEX ix_documents_modified ON documents (modified_at)")
    engine.dispose()


class Recorder:
    """Edits, inserts and deletes in the legacy database; remembers what it did and when it committed."""

    def __init__(self, url: str, documents: int, seed: int):
        self.engine = create_engine(url)
        self.rng = random.Random(seed)
        self.documents = documents
        self.done: list[dict] = []
        self.deleted: set[str] = set()

    def now(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()) + f".{int(time.time() * 1e6) % 1_000_000:06d}"

    def change(self, i: int) -> None:
        op = self.rng.choices(["edit", "insert", "delete"], weights=[6, 3, 1])[0]
        key = f"D{self.rng.randrange(1, self.documents + 1):07d}"
        while key in self.deleted:
            key = f"D{self.rng.randrange(1, self.documents + 1):07d}"
        with self.engine.begin() as conn:
            if op == "edit":
                conn.execute(text("UPDATE documents SET consideration = :c, modified_at = :m WHERE doc_id = :k"),
                             {"c": str(self.rng.randrange(1_000, 9_000_000)), "m": self.now(), "k": key})  # fmt: skip
            elif op == "insert":
                key = f"P{os.getpid() % 100:02d}{i:06d}"
                conn.execute(text(
                    "INSERT INTO documents (doc_id, instrument_number, doc_type, book, page, recorded_at, consideration, "
                    "legal_description, document_sha256, modified_at) VALUES (:k, :n, 'DEED', '9001', :p, "
                    "'2026-12-01 09:30:00', '250000', '', :sha, :m)"),
                    {"k": key, "n": f"2026-{8_000_000 + i:07d}", "p": str(i), "sha": "ab" * 32, "m": self.now()})  # fmt: skip
                conn.execute(text("INSERT INTO parties (doc_id, role, seq, name, address) VALUES "
                                  "(:k, 'GRANTOR', 1, :a, ''), (:k, 'GRANTEE', 1, :b, '')"),
                             {"k": key, "a": f"SELLER{i}, ANN", "b": f"BUYER{i}, BOB"})  # fmt: skip
                conn.execute(text("INSERT INTO parcels (doc_id, seq, municipality_code, block, lot, qualifier) VALUES "
                                  "(:k, 1, '0223', :b, :l, '')"), {"k": key, "b": str(9000 + i), "l": "1"})  # fmt: skip
            else:
                for table in ("xrefs", "parcels", "parties", "documents"):
                    conn.execute(text(f"DELETE FROM {table} WHERE doc_id = :k"), {"k": key})
                self.deleted.add(key)
        self.done.append({"op": op, "key": key, "committed": time.time()})


def latencies(db_path: Path, done: list[dict], timeout: float) -> tuple[list[float], dict[str, int]]:
    """Seconds from each change's commit to its record's confirmed batch (a deletion: its flag)."""
    from hybrid_store.db.engine import Database

    db = Database(f"sqlite:///{db_path}")
    deadline = time.monotonic() + timeout
    found: dict[int, float] = {}
    sql_anchor = text(
        "SELECT b.confirmed_at FROM legacy_documents d JOIN batch_records r ON r.instrument_id = d.instrument_id "
        "JOIN anchor_batches b ON b.id = r.batch_id WHERE d.legacy_key = :k AND b.state = 'confirmed' "
        "AND d.synced_at IS NOT NULL AND b.confirmed_at IS NOT NULL ORDER BY b.confirmed_at DESC LIMIT 1"
    )
    sql_flag = text("SELECT f.created_at FROM mirror_flags f WHERE f.legacy_key = :k AND f.kind = 'deleted_in_legacy'")
    while len(found) < len(done) and time.monotonic() < deadline:
        with db.read() as s:
            for i, d in enumerate(done):
                if i in found:
                    continue
                at = s.execute(sql_flag if d["op"] == "delete" else sql_anchor, {"k": d["key"]}).scalar()
                if at is not None:
                    stamp = at.timestamp() if hasattr(at, "timestamp") else _parse(str(at))
                    if stamp >= d["committed"] - 0.001:  # an older version's batch is not this change's
                        found[i] = stamp - d["committed"]
        time.sleep(0.2)
    db.dispose()
    missing: dict[str, int] = {}
    for i, d in enumerate(done):
        if i not in found:
            missing[d["op"]] = missing.get(d["op"], 0) + 1
    return [found[i] for i in sorted(found)], missing


def _parse(value: str) -> float:
    from datetime import UTC, datetime

    parsed = datetime.fromisoformat(value)
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def follow_run(env: dict[str, str], method: str, recorder: Recorder, changes: int, rate: float,
               home: Path) -> dict:  # fmt: skip
    log = open(home / f"follow-{method}.log", "w")  # noqa: SIM115 - the child writes it
    started = time.perf_counter()
    proc = subprocess.Popen([*LANDREG, "legacy", "sync", "--follow", "--anchor", "--interval", "0.5",
                             "--capture", method, "--sweep-every", "0"], env=env, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    # the start-up sweep compares every document; the first poll line follows it
    while "new," not in (home / f"follow-{method}.log").read_text():
        if proc.poll() is not None:
            sys.exit(f"the follower stopped: {(home / f'follow-{method}.log').read_text()[-2000:]}")
        time.sleep(0.2)
    sweep_s = time.perf_counter() - started
    first = len(recorder.done)
    for _ in range(changes):
        recorder.change(len(recorder.done))
        time.sleep(1 / rate)
    waits, missing = latencies(home / "landreg.db", recorder.done[first:], timeout=120)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    log.close()
    waits.sort()
    return {"method": method, "sweep_s": sweep_s, "changes": changes, "missing": missing,
            "ops": {op: sum(1 for d in recorder.done[first:] if d["op"] == op) for op in ("insert", "edit", "delete")},
            "p50": statistics.median(waits) if waits else float("nan"),
            "p99": waits[min(len(waits) - 1, int(len(waits) * 0.99))] if waits else float("nan"),
            "max": waits[-1] if waits else float("nan")}  # fmt: skip


def run_server(server: str, admin_url: str, args: argparse.Namespace, base: Path) -> dict:
    name = f"landreg_bench_parallel_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    url = admin_url.rsplit("/", 1)[0] + "/" + name
    out: dict = {"server": server, "documents": args.documents}
    try:
        fill(url, args.documents)
        add_modified_column(url)
        home = base / f"{server}-home"
        env = home_env(base, f"{server}-home", {"BENCH_LEGACY_URL": url, "LANDREG_CHAIN__ANVIL_PORT": str(args.port)})
        subprocess.run([*LANDREG, "chain", "start"], env=env, check=True, capture_output=True)
        try:
            timed(
                ["legacy", "attach", "--layout", str(layout_file(base)), "--url-env", "BENCH_LEGACY_URL"], env, "attach"
            )
            out["sync_s"], _ = timed(["legacy", "sync"], env, "sync")
            if args.migrate:  # a parallel run after the migration: the three-way check verifies the chain too
                timed(["migrate", "plan", "all", "--batch-size", "10000"], env, "migrate plan")
                out["migrate_s"], _ = timed(["migrate", "run", "all", "--workers", "2"], env, "migrate run")
            timed(["legacy", "install-capture", "--ddl-url-env", "BENCH_LEGACY_URL"], env, "install-capture")
            recorder = Recorder(url, args.documents, seed=7)
            out["runs"] = [
                follow_run(env, m, recorder, args.changes, args.rate, home) for m in ("trigger", "watermark")
            ]
            report = base / f"{server}-three-way.json"
            started = time.perf_counter()
            done = subprocess.run([*LANDREG, "reconcile", "--legacy", "--workers", "2", "--json", str(report)], env=env,
                                  capture_output=True, text=True)  # fmt: skip
            out["three_way_s"] = time.perf_counter() - started
            found = json.loads(report.read_text())
            out["three_way_exit"] = done.returncode
            out["three_way_kinds"] = found["kinds"]
            out["legacy_documents"] = found["legacy"]["counts"].get("legacy_documents", 0)
            out["verified"] = found["counts"].get("verified", 0)
        finally:
            subprocess.run([*LANDREG, "chain", "stop"], env=env, capture_output=True)
        started = time.perf_counter()
        export_csv(url, base / f"{server}-csv")
        out["naive_export_s"] = time.perf_counter() - started
        out["naive_import_s"], _ = timed(["legacy", "import", "csv", str(base / f"{server}-csv")],
                                         home_env(base, f"{server}-naive"), "import csv")  # fmt: skip
    finally:
        with admin.connect() as conn:
            force = " WITH (FORCE)" if "postgresql" in admin_url else ""
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}{force}")
        admin.dispose()
    print(json.dumps(out), file=sys.stderr)
    return out


def render(args: argparse.Namespace, runs: list[dict]) -> str:
    lines = [
        f"Command: `python bench/parallel_run.py --documents {args.documents} --changes {args.changes} --rate "
        f"{args.rate:g}{'' if args.migrate else ' --no-migrate'}` ({date.today()}, {os.cpu_count()} cores, SQLite store, managed anvil node, the "
        "`landreg-export` tables plus a `modified_at` column)",
        "",
        "| legacy database | capture | start-up sweep s | changes (inserts, edits, deletions) | legacy change → "
        "anchored (a deletion: flagged) p50 / p99 / max s | not seen within 120 s |",
        "|---|---|---:|---:|---:|---|",
    ]
    for r in runs:
        for f in r["runs"]:
            ops = f.get("ops", {})
            missing = f["missing"] if isinstance(f["missing"], dict) else {"?": f["missing"]}
            unseen = ", ".join(f"{n} {op}s" for op, n in missing.items()) or "none"
            if f["method"] == "watermark" and missing.get("delete"):
                unseen += " (a watermark cannot see a deletion: the sweep finds it, `--sweep-every`)"
            lines.append(f"| {r['server']} | {f['method']} | {f['sweep_s']:.1f} | {f['changes']} ({ops.get('insert', '?')}, "
                         f"{ops.get('edit', '?')}, {ops.get('delete', '?')}) | {f['p50']:.2f} / {f['p99']:.2f} / "
                         f"{f['max']:.2f} | {unseen} |")  # fmt: skip
    lines += [
        "",
        "| legacy database | documents | book migrated first (`migrate run` s) | records verified on chain | `reconcile --legacy` s (three-way) | kinds named "
        "| naive: export to CSV s + `legacy import csv` s | naive ÷ three-way |",
        "|---|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in runs:
        naive = r["naive_export_s"] + r["naive_import_s"]
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(r["three_way_kinds"].items())) or "none"
        migrated = f"{r['migrate_s']:.1f}" if "migrate_s" in r else "no"
        lines.append(f"| {r['server']} | {r['legacy_documents']:,} | {migrated} | {r.get('verified', 0):,} | {r['three_way_s']:.1f} | {kinds} | "
                     f"{r['naive_export_s']:.1f} + {r['naive_import_s']:.1f} = {naive:.1f} | "
                     f"{naive / r['three_way_s']:.1f}× |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=370_000)
    parser.add_argument("--changes", type=int, default=200, help="recorder changes per capture method")
    parser.add_argument("--rate", type=float, default=4.0, help="recorder changes a second")
    parser.add_argument("--servers", default="MariaDB,PostgreSQL")
    parser.add_argument("--port", type=int, default=18545, help="the managed anvil node's port")
    parser.add_argument("--migrate", action=argparse.BooleanOptionalAction, default=True,
                        help="migrate the synced book before the parallel run (the default: the three-way check "
                        "then verifies every record on chain too)")  # fmt: skip
    parser.add_argument("--write", type=Path, help="update this Markdown file between the bench markers")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="landreg-bench-parallel-") as tmp:
        runs = [run_server(s, SERVERS[s], args, Path(tmp)) for s in args.servers.split(",")]
    out = render(args, runs)
    print(out)
    if args.write:
        from service_load import write_section

        write_section(args.write, MARK, "## A live parallel run: follow latency and three-way reconciliation "
                      "(issue 13)\n\n" + out)  # fmt: skip


if __name__ == "__main__":
    main()
