"""Benchmark: a parcel's title abstract by history length: its size, the time to build it from the
database, and the time to verify it, offline (the math and the history) and on chain (every
record's batch checked once, the head's marker, the newest batch).

    python bench/title_abstract.py                       # histories of 1, 10, 100 and 1,000 records
    python bench/title_abstract.py --lengths 1,10 --write docs/benchmarks.md

SQLite in a temporary folder, eth-tester in process (one block per transaction), records anchored in
batches of 100, so a history of 1,000 records spans 10 batches. The naive verification beside it:
each record's bundle verified on its own (``verify_document``), as an auditor without abstracts
would, which checks nothing about omissions.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NOW = datetime(2026, 3, 2, 14, 5, 9, tzinfo=UTC)


def run(length: int) -> dict[str, float]:
    from hybrid_store import title_abstract
    from hybrid_store.anchoring import Anchorer
    from hybrid_store.chain.connect import eth_tester_chain
    from hybrid_store.db.engine import Database
    from hybrid_store.deployment import attach
    from hybrid_store.filing import record_instruments
    from hybrid_store.intake import validate
    from hybrid_store.settings import Settings
    from hybrid_store.trust import publish
    from hybrid_store.verifier import abstracts
    from hybrid_store.verifier.verdicts import verify_document

    home = Path(tempfile.mkdtemp(prefix="landreg-bench-abstract-"))
    db = Database(f"sqlite:///{home / 'landreg.db'}")
    db.migrate()
    chain = eth_tester_chain()
    dep = attach(db, chain)
    owners = ["OWNER 0"]
    for i in range(length):
        grantees = [f"OWNER {i + 1}"]
        body = {"doc_type": "DEED", "grantors": owners, "grantees": grantees,
                "parcels": [{"municipality_code": "0223", "block": "1", "lot": "1"}], "consideration": "100000.00",
                "legal_description": "ALL that certain lot.", "document_digest": f"{i:064x}",
                "preparer": "A. LAWYER", "grantee_mailing_address": "1 MAIN STREET"}  # fmt: skip
        when = NOW + timedelta(minutes=i)
        with db.write() as s:
            record_instruments(s, [validate(body, now=when)], now=when)
        owners = grantees
    Anchorer(db, chain, dep, batch_max_records=100).drain()
    cfg = Settings(home=home, trust={"signing_key_passphrase": "bench passphrase"})
    cfg.ensure_home()
    trust = publish(cfg, db)[0]
    start = time.perf_counter()
    with db.read() as s:
        document = title_abstract.build(s, "0223_1_1").to_json()
    built = time.perf_counter() - start
    raw = json.dumps(document, separators=(",", ":")).encode()
    start = time.perf_counter()
    offline = abstracts.verify_document(json.loads(raw), trust=trust)
    offline_s = time.perf_counter() - start
    assert offline.status == abstracts.UNCHECKED, offline.reason
    start = time.perf_counter()
    verdict = abstracts.verify_document(json.loads(raw), chain=chain, trust=trust)
    chain_s = time.perf_counter() - start
    assert verdict.status == abstracts.COMPLETE, verdict.reason
    start = time.perf_counter()
    for record in document["records"]:
        assert verify_document(record, chain=chain, trust=trust).valid
    naive_s = time.perf_counter() - start
    db.engine.dispose()
    return {"length": length, "bytes": len(raw), "build_s": built, "offline_s": offline_s, "chain_s": chain_s,
            "naive_s": naive_s}  # fmt: skip


def table(rows: list[dict[str, float]]) -> str:
    out = ["| records | abstract size | build (DB) s | verify offline s | verify on chain s | each bundle alone s | ratio |",
           "|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in rows:
        size = f"{r['bytes'] / 1000:,.1f} KB" if r["bytes"] < 1e6 else f"{r['bytes'] / 1e6:,.2f} MB"
        out.append(f"| {int(r['length']):,} | {size} | {r['build_s']:.3f} | {r['offline_s']:.3f} | {r['chain_s']:.3f} | "
                   f"{r['naive_s']:.3f} | {r['naive_s'] / r['chain_s']:.1f}× |")  # fmt: skip
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", default="1,10,100,1000")
    parser.add_argument("--write", type=Path, help="replace the figures between this benchmark's markers in FILE")
    args = parser.parse_args()
    rows = []
    for length in (int(x) for x in args.lengths.split(",")):
        rows.append(run(length))
        print(f"{length:>6} records: {rows[-1]}", flush=True)
    text = table(rows)
    print(text)
    if args.write:
        begin, end = "<!-- bench/title_abstract.py:begin -->", "<!-- bench/title_abstract.py:end -->"
        stamp = (f"Command: `python bench/title_abstract.py --lengths {args.lengths} --write {args.write}` "
                 f"({datetime.now(UTC):%Y-%m-%d}, Python {platform.python_version()}, SQLite, eth-tester in process)")  # fmt: skip
        doc = args.write.read_text(encoding="utf-8")
        block = f"{begin}\n{stamp}\n\n{text}\n{end}"
        if begin in doc:
            doc = doc[: doc.index(begin)] + block + doc[doc.index(end) + len(end) :]
        else:
            doc += "\n" + block + "\n"
        args.write.write_text(doc, encoding="utf-8")


if __name__ == "__main__":
    main()
