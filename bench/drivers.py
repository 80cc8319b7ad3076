"""Benchmark: which database driver reads a legacy recorder database fastest (the choice behind
the drivers ``make`` installs).

    python bench/drivers.py --rows 370000

Fills one table shaped like a recorder's document table (a key, ten text and number columns) on
the local MariaDB and PostgreSQL servers, then streams it back through SQLAlchemy as the legacy
sync does (``stream_results``, ordered by key) with each installed driver, twice, and prints rows
per second (the better of the two runs) and the process's peak memory.
"""

from __future__ import annotations

import argparse
import importlib.util
import resource
import subprocess
import sys
import time
import uuid

from sqlalchemy import create_engine, text

CANDIDATES = {
    "MariaDB": [("mysqlclient", "MySQLdb", "mysql+mysqldb"), ("PyMySQL", "pymysql", "mysql+pymysql"),
                ("mariadb connector", "mariadb", "mariadb+mariadbconnector")],
    "PostgreSQL": [("psycopg 3", "psycopg", "postgresql+psycopg"), ("psycopg2", "psycopg2", "postgresql+psycopg2")],
}  # fmt: skip
ADMIN = {"MariaDB": "mysql+mysqldb://root@127.0.0.1:3306/test",
         "PostgreSQL": "postgresql+psycopg://postgres@127.0.0.1:5432/test"}  # fmt: skip


def fill(url: str, rows: int) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE docs (doc_id VARCHAR(20) PRIMARY KEY, number VARCHAR(24), kind VARCHAR(10), "
                             "recorded VARCHAR(24), amount DECIMAL(14,2), book INTEGER, page INTEGER, "
                             "legal TEXT, digest VARCHAR(64), borough VARCHAR(2), modified VARCHAR(24))")  # fmt: skip
    batch = []
    for i in range(rows):
        batch.append({"d": f"{2019000000000000 + i}", "n": f"2019{i:09d}", "k": "DEED", "r": "01/04/2019 10:15:32 AM",
                      "a": i * 7 % 1_000_000, "b": i % 900, "p": i % 600,
                      "l": f"Block {i % 9000}, Lot {i % 90}: {i % 400} WEST 86 STREET", "g": f"{i:064x}", "o": "1",
                      "m": "01/05/2019"})  # fmt: skip
        if len(batch) == 10_000 or i == rows - 1:
            with engine.begin() as conn:
                conn.execute(text("INSERT INTO docs VALUES (:d, :n, :k, :r, :a, :b, :p, :l, :g, :o, :m)"), batch)
            batch = []
    engine.dispose()


def read(url: str) -> float:
    """Seconds to stream the table, ordered by key, as the sync does."""
    engine = create_engine(url)
    started = time.perf_counter()
    n = 0
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=2000).execute(
            text("SELECT UPPER(TRIM(doc_id)) AS k, number, kind, recorded, amount, book, page, legal, digest, borough "
                 "FROM docs ORDER BY 1"))  # fmt: skip
        for row in result.mappings():
            n += len(row)
    engine.dispose()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=370_000)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:  # one driver in a process of its own, so peak memory is its own
        url, _ = args.child
        best = min(read(url) for _ in range(2))
        print(f"{best:.3f} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}")
        return
    print("| server | driver | rows/s | peak MB |\n|---|---|---:|---:|")
    for server, candidates in CANDIDATES.items():
        name = f"landreg_bench_drivers_{uuid.uuid4().hex[:8]}"
        admin = create_engine(ADMIN[server], isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
        try:
            base = ADMIN[server].split("://", 1)[1].rsplit("/", 1)[0] + "/" + name
            fill(f"{ADMIN[server].split('://')[0]}://{base}", args.rows)
            for label, module, scheme in candidates:
                if importlib.util.find_spec(module) is None:
                    print(f"| {server} | {label} | not installed | |")
                    continue
                out = subprocess.run([sys.executable, __file__, "--child", f"{scheme}://{base}", "x"],
                                     capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
                seconds, peak = float(out[0]), int(out[1])
                print(f"| {server} | {label} | {args.rows / seconds:,.0f} | {peak} |", flush=True)
        finally:
            with admin.connect() as conn:
                force = " WITH (FORCE)" if server == "PostgreSQL" else ""
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}{force}")
            admin.dispose()


if __name__ == "__main__":
    main()
