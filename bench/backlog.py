"""Backlog: filings pile up while the chain mines nothing, then drain in order once it mines again.

    python bench/backlog.py --filings 100000 --write docs/benchmarks.md
    python bench/backlog.py --filings 100000 --block-time 2      # mining resumes with 2 s blocks

On PostgreSQL with a managed anvil node: mining is stopped (automine off), `landreg worker` runs,
and the backlog is filed through the filing pipeline (`record_instruments` with each filing's audit
entry, as the service writes them, 1,000 per transaction). The worker's first batch waits in the
node's pool; nothing else is sent. Then mining resumes, instantly per transaction (automine) or
every ``--block-time`` seconds, and the drain is timed until every record is in a confirmed
batch; the batches must hold the records in filing order.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.service_load import PG_ADMIN, free_port, write_section

MARK = "bench/backlog.py"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--filings", type=int, default=100_000)
    parser.add_argument("--block-time", type=int, default=0, help="seconds between blocks once mining resumes "
                        "(0: a block per transaction)")  # fmt: skip
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()

    import psycopg
    from sqlalchemy import func, select

    from hybrid_store import audit_log
    from hybrid_store.batches import pending_count
    from hybrid_store.chain.connect import open_chain
    from hybrid_store.db.engine import Database
    from hybrid_store.db.models import AnchorBatch, BatchRecord, BatchState, OutboxEntry
    from hybrid_store.filing import record_instruments
    from hybrid_store.intake import validate
    from hybrid_store.settings import Settings

    home = Path(tempfile.mkdtemp(prefix="landreg-backlog-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LANDREG_") and k != "DATABASE_URL"}
    env.update({"LANDREG_HOME": str(home), "LANDREG_CHAIN__ANVIL_PORT": str(free_port()),
                "LANDREG_SERVICE__RECEIPT_KEY_PASSPHRASE": "benchmark only passphrase",
                "LANDREG_TRUST__SIGNING_KEY_PASSPHRASE": "benchmark only passphrase"})  # fmt: skip
    dbname = f"landreg_backlog_{os.getpid()}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
    env["DATABASE_URL"] = PG_ADMIN.rsplit("/", 1)[0] + "/" + dbname
    landreg = [sys.executable, "-m", "registry_service.cli.main"]
    worker = None
    try:
        subprocess.run([*landreg, "db", "upgrade"], env=env, check=True, capture_output=True)
        subprocess.run([*landreg, "chain", "start"], env=env, check=True, capture_output=True)
        cfg = Settings(home=home, database_url=env["DATABASE_URL"],
                       chain={"backend": "anvil", "anvil_port": int(env["LANDREG_CHAIN__ANVIL_PORT"])})  # fmt: skip
        db = Database(cfg.db_url)
        chain = open_chain(cfg, read_only=True)
        rpc = chain.rpc
        rpc("evm_setAutomine", [False])
        log = open(home / "worker.log", "w")  # noqa: SIM115 - the child writes it
        worker = subprocess.Popen([*landreg, "worker"], env=env, stdout=log, stderr=subprocess.STDOUT)
        munis = ["0201", "0209", "0215", "0219", "0223", "0240", "0250", "0261"]
        started = time.perf_counter()
        for start in range(0, args.filings, 1000):
            items = [validate({
                "doc_type": "DEED", "grantors": [f"SELLER {i}"], "grantees": [f"BUYER {i}"],
                "parcels": [{"municipality_code": munis[i % 8], "block": str(i % 3000 + 1), "lot": str(i % 37 + 1)}],
                "consideration": "250000.00", "legal_description": "ALL that certain lot.",
                "document_digest": f"{i:064x}"}) for i in range(start, min(args.filings, start + 1000))]  # fmt: skip
            with db.write() as s:
                for made in record_instruments(s, items):
                    audit_log.append(s, actor="backlog clerk", role="clerk", action="instrument.file",
                                     target=made.instrument_number, details={})  # fmt: skip
        built_s = time.perf_counter() - started
        time.sleep(3)  # the worker has planned, signed and sent its first batch by now
        with db.read() as s:
            waiting = pending_count(s)
            in_pool = s.scalar(
                select(func.count()).select_from(AnchorBatch).where(AnchorBatch.state == BatchState.SIGNED)
            )
        drain_started = time.perf_counter()
        answer = rpc("evm_setIntervalMining", [int(args.block_time)]) if args.block_time else rpc(
            "evm_setAutomine", [True])  # fmt: skip
        if answer.get("error"):
            raise SystemExit(f"the node did not resume mining: {answer['error']}")
        while True:
            with db.read() as s:
                left = pending_count(s) + (s.scalar(select(func.count()).select_from(AnchorBatch).where(
                    AnchorBatch.state.in_([BatchState.SIGNED, BatchState.MINED]))) or 0)  # fmt: skip
            if left == 0:
                break
            if time.perf_counter() - drain_started > 7200:
                raise SystemExit("the backlog did not drain in two hours")
            time.sleep(0.2)
        drain_s = time.perf_counter() - drain_started
        with db.read() as s:
            spans = s.execute(select(AnchorBatch.chain_batch_id, func.min(OutboxEntry.id), func.max(OutboxEntry.id))
                              .join(BatchRecord, BatchRecord.batch_id == AnchorBatch.id)
                              .join(OutboxEntry, OutboxEntry.instrument_id == BatchRecord.instrument_id)
                              .where(AnchorBatch.state == BatchState.CONFIRMED)
                              .group_by(AnchorBatch.id, AnchorBatch.chain_batch_id)
                              .order_by(AnchorBatch.chain_batch_id)).all()  # fmt: skip
            anchored = s.scalar(select(func.count()).select_from(BatchRecord).join(
                AnchorBatch, AnchorBatch.id == BatchRecord.batch_id).where(AnchorBatch.state == BatchState.CONFIRMED))  # fmt: skip
            failed = s.scalar(
                select(func.count()).select_from(AnchorBatch).where(AnchorBatch.state == BatchState.FAILED)
            )
        in_order = all(a[2] < b[1] for a, b in zip(spans, spans[1:], strict=False))
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(120)
        subprocess.run([*landreg, "chain", "stop"], env=env, capture_output=True)
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
    resume = f"{args.block_time:g} s blocks" if args.block_time else "a block per transaction (automine)"
    text = "\n".join([
        f"Command: `python bench/backlog.py --filings {args.filings}"
        + (f" --block-time {args.block_time:g}" if args.block_time else "") + f"` ({time.strftime('%Y-%m-%d')}; "
        "PostgreSQL, managed anvil, `landreg worker`, 2-core machine)",
        "",
        "| measure | result |",
        "|---|---:|",
        f"| filings recorded while the chain mined nothing | {args.filings:,} in {built_s:.1f} s |",
        f"| waiting when mining resumed | {waiting:,} records queued, {in_pool} batch in the node's pool |",
        f"| drain after mining resumed ({resume}) | **{drain_s:.1f} s** ({anchored / drain_s:,.0f} records/s) |",
        f"| anchored, confirmed | {anchored:,} records in {len(spans)} batches, {failed} failed |",
        f"| batches hold the records in filing order | {'yes' if in_order else 'NO'} |",
    ])  # fmt: skip
    print(text)
    if args.write:
        write_section(args.write, f"{MARK}:{args.block_time:g}", text)


if __name__ == "__main__":
    main()
