"""Benchmark: the first sync of a county's recorder database, beside the file path, same run.

    python bench/legacy_sync.py                         # 370,000 documents, MariaDB and PostgreSQL
    python bench/legacy_sync.py --documents 20000       # a quick look
    python bench/legacy_sync.py --write docs/benchmarks.md

For each legacy server (the local MariaDB and PostgreSQL), a database of its own is filled with the
synthetic Bergen County book in the ``landreg-export`` layout's tables (documents, parties,
parcels, xrefs; indexes on doc_id as a recorder system has them). Then, timed from the outside as
IT staff would run them, each in a fresh ``LANDREG_HOME`` on SQLite:

* **database path**: ``landreg legacy attach --layout landreg-export --url-env …`` and
  ``landreg legacy sync`` (read-only, streamed, merged by key);
* **file path** (the naive alternative): export the four tables to CSV files (a streamed SELECT per
  table written with Python's csv module) and ``landreg legacy import csv FOLDER``.

Peak memory is the largest total resident set of the command's process tree, sampled every 0.1 s.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

import psutil
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
LANDREG = [sys.executable, "-m", "registry_service.cli.main"]
SERVERS = {"MariaDB": "mysql+mysqldb://root@127.0.0.1:3306/test",
           "PostgreSQL": "postgresql+psycopg://postgres@127.0.0.1:5432/test"}  # fmt: skip
EASTERN = ZoneInfo("America/New_York")
MARK = "bench/legacy_sync.py"
DDL = [
    "CREATE TABLE documents (doc_id VARCHAR(20) PRIMARY KEY, instrument_number VARCHAR(24), doc_type VARCHAR(30), "
    "book VARCHAR(6), page VARCHAR(6), recorded_at VARCHAR(24), consideration VARCHAR(20), "
    "legal_description TEXT, document_sha256 VARCHAR(64))",
    "CREATE TABLE parties (doc_id VARCHAR(20), role VARCHAR(12), seq INTEGER, name VARCHAR(200), address VARCHAR(120))",
    "CREATE TABLE parcels (doc_id VARCHAR(20), seq INTEGER, municipality_code VARCHAR(4), block VARCHAR(12), "
    "lot VARCHAR(12), qualifier VARCHAR(10))",
    "CREATE TABLE xrefs (doc_id VARCHAR(20), ref_doc_id VARCHAR(20), kind VARCHAR(12))",
    "CREATE INDEX ix_parties_doc ON parties (doc_id)",
    "CREATE INDEX ix_parcels_doc ON parcels (doc_id)",
    "CREATE INDEX ix_xrefs_doc ON xrefs (doc_id)",
]
TABLES = ("documents", "parties", "parcels", "xrefs")


def rows_of(documents: int, seed: int = 2026):
    """The synthetic book as the export's rows, in chunks."""
    from migration_tools.synthetic import BergenBook

    doc_of: dict[str, str] = {}
    chunk: dict[str, list[dict]] = {t: [] for t in TABLES}
    for i, item in enumerate(BergenBook(documents, seed=seed), start=1):
        doc = f"D{i:07d}"
        doc_of[item["instrument_number"]] = doc
        local = item["recorded_at"].astimezone(EASTERN).strftime("%Y-%m-%d %H:%M:%S")
        chunk["documents"].append({
            "doc_id": doc, "instrument_number": item["instrument_number"], "doc_type": item["doc_type"],
            "book": item["book"], "page": item["page"], "recorded_at": local,
            "consideration": "" if item["consideration"] is None else str(item["consideration"]),
            "legal_description": item["legal_description"], "document_sha256": item["document_digest"]})  # fmt: skip
        for role, names in (("GRANTOR", item["grantors"]), ("GRANTEE", item["grantees"])):
            for seq, name in enumerate(names, start=1):
                chunk["parties"].append({"doc_id": doc, "role": role, "seq": seq, "name": name, "address": ""})
        for seq, p in enumerate(item["parcels"], start=1):
            chunk["parcels"].append({"doc_id": doc, "seq": seq, **p})
        if item["corrects"]:
            chunk["xrefs"].append({"doc_id": doc, "ref_doc_id": doc_of[item["corrects"]], "kind": "CORRECTS"})
        if i % 5000 == 0:
            yield chunk
            chunk = {t: [] for t in TABLES}
    yield chunk


def fill(url: str, documents: int) -> float:
    started = time.perf_counter()
    engine = create_engine(url)
    with engine.begin() as conn:
        for ddl in DDL:
            conn.exec_driver_sql(ddl)
    for chunk in rows_of(documents):
        with engine.begin() as conn:
            for table, rows in chunk.items():
                if rows:
                    cols = list(rows[0])
                    conn.execute(text(f"INSERT INTO {table} ({', '.join(cols)}) VALUES "
                                      f"({', '.join(':' + c for c in cols)})"), rows)  # fmt: skip
    engine.dispose()
    return time.perf_counter() - started


def export_csv(url: str, folder: Path) -> None:
    folder.mkdir(parents=True)
    engine = create_engine(url)
    with engine.connect() as conn:
        for table in TABLES:
            result = conn.execution_options(stream_results=True, yield_per=5000).execute(text(f"SELECT * FROM {table}"))
            with open(folder / f"{table}.csv", "w", newline="", encoding="utf-8") as f:
                writer = csv.writer(f)
                writer.writerow(result.keys())
                for row in result:
                    writer.writerow(["" if v is None else v for v in row])
    engine.dispose()


def timed(args: list[str], env: dict[str, str], label: str) -> tuple[float, float]:
    """(seconds, peak MB of the process tree) of ``landreg ARGS``."""
    started = time.perf_counter()
    proc = subprocess.Popen([*LANDREG, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = [0.0]

    def sample() -> None:
        p = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                total = sum(q.memory_info().rss for q in [p, *p.children(recursive=True)])
                peak[0] = max(peak[0], total / 2**20)
            except psutil.Error:
                pass
            time.sleep(0.1)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    out, _ = proc.communicate()
    watcher.join()
    if proc.returncode != 0:
        sys.exit(f"{label} failed:\n{out[-3000:]}")
    return time.perf_counter() - started, peak[0]


def home_env(base: Path, name: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LANDREG_") and k != "DATABASE_URL"}
    env.update({"LANDREG_HOME": str(base / name), "PYTHONDONTWRITEBYTECODE": "",
                "LANDREG_SERVICE__RECEIPT_KEY_PASSPHRASE": "benchmark only passphrase",
                "LANDREG_TRUST__SIGNING_KEY_PASSPHRASE": "benchmark only passphrase", **(extra or {})})  # fmt: skip
    return env


def run_server(server: str, admin_url: str, documents: int, base: Path) -> dict:
    name = f"landreg_bench_legacy_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    url = admin_url.rsplit("/", 1)[0] + "/" + name
    try:
        fill_s = fill(url, documents)
        print(f"[{server}] filled {documents:,} documents in {fill_s:.0f} s", file=sys.stderr)
        env = home_env(base, f"{server}-db", {"BENCH_LEGACY_URL": url})
        attach_s, _ = timed(["legacy", "attach", "--layout", "landreg-export", "--url-env", "BENCH_LEGACY_URL"], env,
                            "attach")  # fmt: skip
        sync_s, sync_mb = timed(["legacy", "sync"], env, "sync")
        print(f"[{server}] attach {attach_s:.1f} s, sync {sync_s:.1f} s", file=sys.stderr)
        started = time.perf_counter()
        export_csv(url, base / f"{server}-csv")
        export_s = time.perf_counter() - started
        import_s, import_mb = timed(["legacy", "import", "csv", str(base / f"{server}-csv")],
                                    home_env(base, f"{server}-files"), "import csv")  # fmt: skip
        print(f"[{server}] export {export_s:.1f} s, import {import_s:.1f} s", file=sys.stderr)
    finally:
        with admin.connect() as conn:
            force = " WITH (FORCE)" if "postgresql" in admin_url else ""
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}{force}")
        admin.dispose()
    return {"server": server, "documents": documents, "attach_s": attach_s, "sync_s": sync_s, "sync_mb": sync_mb,
            "export_s": export_s, "import_s": import_s, "import_mb": import_mb}  # fmt: skip


def render(args, runs: list[dict]) -> str:
    lines = [
        f"Command: `python bench/legacy_sync.py --documents {args.documents}` ({date.today()}, "
        f"{os.cpu_count()} cores, SQLite store, the `landreg-export` layout's tables)",
        "",
        "| legacy database | documents | attach + sync s | documents/s | peak MB (sync) | export to CSV s | "
        "`legacy import csv` s | documents/s (export + import) | peak MB (import) | file path time ÷ database path time |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        db_s = r["attach_s"] + r["sync_s"]
        file_s = r["export_s"] + r["import_s"]
        lines.append(
            f"| {r['server']} | {r['documents']:,} | {db_s:.1f} | {r['documents'] / db_s:,.0f} | {r['sync_mb']:.0f} | "
            f"{r['export_s']:.1f} | {r['import_s']:.1f} | {r['documents'] / file_s:,.0f} | {r['import_mb']:.0f} | "
            f"{file_s / db_s:.2f}× |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=370_000)
    parser.add_argument("--servers", default="MariaDB,PostgreSQL")
    parser.add_argument("--write", type=Path, help="update this Markdown file between the bench markers")
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory(prefix="landreg-bench-legacy-") as tmp:
        for server in args.servers.split(","):
            runs.append(run_server(server, SERVERS[server], args.documents, Path(tmp)))
    text_out = render(args, runs)
    print(text_out)
    if args.write:
        sys.path.insert(0, str(ROOT / "bench"))
        from service_load import write_section

        write_section(
            args.write, MARK, "## The county's own database: first sync beside the file path (issue 12)\n\n" + text_out
        )


if __name__ == "__main__":
    main()
