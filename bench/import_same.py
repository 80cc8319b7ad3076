"""Check: two checkouts load the same book into the same rows, quarantine file, commitments and proofs.

    python bench/import_same.py --a /work/main --b . --instruments 5000            # PostgreSQL and SQLite
    python bench/import_same.py --a /work/main --b . --instruments 5000 --backends postgres

Each checkout's own code (``PYTHONPATH`` set to it, this script's dump step imports nothing from
here) loads the synthetic book with the seed fixed, a fixed clock and fixed salt seeds, damaged on
purpose so that the rarer paths run too: every 997th record again (a number already taken, so its
chunk fails and is written record by record) and every 1,499th unreadable (quarantined). Then the
records are migrated on the in-process chain (batches of 1,000), which commits and anchors them.
Every table of the database is dumped, its rows in order, with the bundle of every
50th instrument and the quarantine file, and the two checkouts' dumps must be equal byte for byte.
PostgreSQL databases are named ``<prefix>_a`` and ``<prefix>_b`` and dropped afterwards.
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import itertools
import json
import os
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
SEED = 2026
DUPLICATE_EVERY, UNREADABLE_EVERY = 997, 1_499
# what differs between any two runs by design, in the tables the load does not write (the migration
# stage's): the time each row was written, and the hashes of blocks (each test chain's genesis block
# holds the time the chain was made); the load's own tables are compared whole
OF_THE_RUN = {"created_at", "pinned_at", "at", "enqueued_at", "since", "started_at", "finished_at", "mined_at",
              "confirmed_at", "finalized_at", "block_hash", "genesis_hash", "updated_at", "signed_off_at",
              "reconciled_at", "sent_at", "attached_at"}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--a", type=Path, help="the first checkout (e.g. main)")
    parser.add_argument("--b", type=Path, help="the second checkout")
    parser.add_argument("--instruments", type=int, default=5_000)
    parser.add_argument("--backends", default="postgres,sqlite")
    parser.add_argument("--server", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--prefix", default="importpg_same")
    parser.add_argument("--dump", type=Path, help=argparse.SUPPRESS)  # the step run in each checkout
    parser.add_argument("--url", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.dump:
        dump(opts.url, opts.instruments, opts.dump)
        return
    failed = False
    for backend in opts.backends.split(","):
        with tempfile.TemporaryDirectory(prefix="import-same-") as tmp:
            dumps = []
            for label, checkout in (("a", opts.a), ("b", opts.b)):
                out = Path(tmp) / label
                out.mkdir()
                url = (f"sqlite:///{out / 'landreg.db'}" if backend == "sqlite"
                       else opts.server.rsplit("/", 1)[0] + f"/{opts.prefix}_{label}")  # fmt: skip
                env = {**os.environ, "PYTHONPATH": str(checkout.resolve())}
                subprocess.run([sys.executable, __file__, "--dump", str(out), "--url", url, "--instruments",
                                str(opts.instruments)], env=env, cwd=checkout, check=True)  # fmt: skip
                dumps.append(out / "dump.txt")
            a, b = (d.read_bytes() for d in dumps)
            same = a == b
            failed |= not same
            print(f"{backend}: {'SAME' if same else 'DIFFERENT'} ({len(a):,} and {len(b):,} bytes, sha256 "
                  f"{hashlib.sha256(a).hexdigest()[:16]} and {hashlib.sha256(b).hexdigest()[:16]})", flush=True)  # fmt: skip
            if not same:
                diff = difflib.unified_diff(
                    a.decode().splitlines(), b.decode().splitlines(), "a", "b", lineterm="", n=1
                )
                print("\n".join(itertools.islice(diff, 60)))
    sys.exit(1 if failed else 0)


def dump(url: str, instruments: int, out: Path) -> None:
    """Load, migrate and dump with the code on ``PYTHONPATH``."""
    from sqlalchemy import create_engine, inspect, text
    from sqlalchemy.engine import make_url

    postgres = url.startswith("postgresql")
    if postgres:
        name = make_url(url).database
        admin = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        _freeze_clock()
        from sqlalchemy import select

        from hybrid_store.chain.connect import eth_tester_chain
        from hybrid_store.db.engine import Database
        from hybrid_store.db.models import Instrument
        from hybrid_store.deployment import attach
        from hybrid_store.proofs import export_bundle
        from migration_tools.stages import Selector, StageRunner, plan_stage

        db = Database(url)
        db.migrate()
        from migration_tools.legacy.importer import LOADED_TABLES, import_records

        report = import_records(db, _damaged(instruments), name="same", quarantine=out / "q.csv", now=NOW,
                                seed=_fixed_seeds())  # fmt: skip
        chain = eth_tester_chain()
        deployment = attach(db, chain)
        plan_stage(db, chain, "all", Selector(), batch_size=1_000, actor="check")
        StageRunner(db, chain, deployment, manifest_dir=out / "manifests", workers=1).run("all")
        lines = [json.dumps(report.to_json() | {"seconds": 0, "quarantine_file": None}, sort_keys=True)]
        with db.engine.connect() as conn:
            for table in sorted(inspect(conn).get_table_names()):
                columns = [c["name"] for c in inspect(conn).get_columns(table)
                           if table in LOADED_TABLES or c["name"] not in OF_THE_RUN]  # fmt: skip
                listed = ", ".join(f'"{c}"' for c in columns)
                rows = sorted(repr(tuple(r)) for r in conn.execute(text(f'SELECT {listed} FROM "{table}"')))
                lines.append(f"== {table} ({len(rows)} rows): {', '.join(columns)}")
                lines += rows
        with db.read() as s:
            numbers = s.scalars(select(Instrument.instrument_number).order_by(Instrument.id)).all()
            lines.append(f"== bundles of {len(numbers[::50])} instruments")
            lines += [json.dumps(export_bundle(s, n).to_json(), sort_keys=True) for n in numbers[::50]]
        quarantine = out / "q.csv"
        lines.append("== quarantine")
        lines += quarantine.read_text(encoding="utf-8").splitlines() if quarantine.exists() else ["(none)"]
        (out / "dump.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        db.dispose()
    finally:
        if postgres:
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _damaged(instruments: int):
    from migration_tools.legacy.importer import SourceRecord, synthetic_source

    previous = None
    for i, rec in enumerate(synthetic_source(instruments, SEED), start=1):
        if i % UNREADABLE_EVERY == 0:
            yield SourceRecord(where=rec.where, raw=rec.raw, problem="unreadable on purpose", column="12-18")
            continue
        yield rec
        if i % DUPLICATE_EVERY == 0 and previous is not None:
            yield SourceRecord(where=f"{rec.where} again", raw=rec.raw, data=rec.data)
        previous = rec


def _fixed_seeds():
    counter = itertools.count()
    return lambda: hashlib.sha256(f"salt seed {next(counter)}".encode()).digest()


def _freeze_clock() -> None:
    """The clock the load reads beside ``now`` (a new parcel's ``created_at``) reads ``NOW``."""
    import datetime as dt

    from hybrid_store import filing

    class Frozen(dt.datetime):
        @classmethod
        def now(cls, tz=None):  # type: ignore[override]
            return NOW if tz is not None else NOW.replace(tzinfo=None)

    filing.datetime = Frozen  # type: ignore[attr-defined,misc]


if __name__ == "__main__":
    main()
