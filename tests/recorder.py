"""A county recorder at work, for the parallel-run tests: a process of its own that inserts, edits
and deletes documents in a legacy database (either shipped layout), one transaction each, and
keeps its own log of what it did (JSON lines, written after each commit).

    python -m tests.recorder --url URL --layout acris --seed 7 --ops 40 --log recorder.jsonl

Only documents named ``R...`` (made by ``seed_rows`` before the first sync) are edited or deleted,
and a document it inserts is never touched again: every logged edit and deletion is then one a
follower must see as a divergence, and nothing else is.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from decimal import Decimal
from typing import Any

from sqlalchemy import create_engine, text

from tests import legacy_fixtures as fx

SEEDED = 30  # documents made before the first sync, which the recorder may edit or delete


def acris_rows(doc: str, n: int) -> dict[str, list[dict[str, Any]]]:
    return {
        "acris_master": [fx.master(doc, f"2026{n:09d}", "DEED", "12/01/2026 09:30:00 AM", str(100_000 + n))],
        "acris_legals": [fx.legal(doc, 4000 + n // 50, 1 + n % 50, borough="4")],
        "acris_parties": [fx.party(doc, "1", f"SELLER{n}, ANN"), fx.party(doc, "2", f"BUYER{n}, BOB")],
        "acris_references": [],
    }


def export_rows(doc: str, n: int) -> dict[str, list[dict[str, Any]]]:
    return {
        "documents": [{"doc_id": doc, "instrument_number": f"2026-{5_000_000 + n:07d}", "doc_type": "DEED",
                       "book": "9001", "page": str(n), "recorded_at": "2026-12-01 09:30:00",
                       "consideration": str(100_000 + n), "legal_description": "", "document_sha256": "cd" * 32}],
        "parties": [{"doc_id": doc, "role": "GRANTOR", "seq": 1, "name": f"SELLER{n}, ANN", "address": ""},
                    {"doc_id": doc, "role": "GRANTEE", "seq": 1, "name": f"BUYER{n}, BOB", "address": ""}],
        "parcels": [{"doc_id": doc, "seq": 1, "municipality_code": "0223", "block": str(900 + n // 50),
                     "lot": str(1 + n % 50), "qualifier": ""}],
        "xrefs": [],
    }  # fmt: skip


LAYOUTS = {
    "acris": {"rows": acris_rows, "key": "documentid", "master": "acris_master", "amount": "docamount",
              "parties": "acris_parties", "name_where": "partytype = '1'"},
    "landreg-export": {"rows": export_rows, "key": "doc_id", "master": "documents", "amount": "consideration",
                       "parties": "parties", "name_where": "role = 'GRANTOR'"},
}  # fmt: skip


def insert(conn: Any, rows: dict[str, list[dict[str, Any]]]) -> None:
    for table, items in rows.items():
        for row in items:
            cols = list(row)
            conn.execute(text(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join(':' + c for c in cols)})"),
                         row)  # fmt: skip


def seed_rows(url: str, layout: str) -> list[str]:
    """The documents the recorder may later edit or delete (before the first sync)."""
    spec = LAYOUTS[layout]
    engine = create_engine(url)
    keys = [f"R{n:05d}" for n in range(SEEDED)]
    with engine.begin() as conn:
        for n, key in enumerate(keys):
            insert(conn, spec["rows"](key, n))
    engine.dispose()
    return keys


def work(url: str, layout: str, seed: int, ops: int, log_path: str, pause: float) -> None:
    spec = LAYOUTS[layout]
    rng = random.Random(seed)
    live = [f"R{n:05d}" for n in range(SEEDED)]
    engine = create_engine(url)
    with open(log_path, "a", encoding="utf-8") as log:
        for i in range(ops):
            op = rng.choices(["insert", "edit", "delete"], weights=[3, 5, 2])[0] if live else "insert"
            with engine.begin() as conn:
                if op == "insert":
                    key = f"N{seed % 1000:03d}{i:04d}"
                    insert(conn, spec["rows"](key, 1000 + i))
                elif op == "edit":
                    key = rng.choice(live)
                    if rng.random() < 0.5:
                        amount = (
                            Decimal(rng.randrange(1, 10_000_000)) if layout == "acris" else str(rng.randrange(1, 10**7))
                        )
                        conn.execute(text(f"UPDATE {spec['master']} SET {spec['amount']} = :a WHERE {spec['key']} = :k"),
                                     {"a": amount, "k": key})  # fmt: skip
                    else:
                        conn.execute(text(f"UPDATE {spec['parties']} SET name = :n WHERE {spec['key']} = :k AND "
                                          f"{spec['name_where']}"), {"n": f"EDITED{i}, ANN", "k": key})  # fmt: skip
                else:
                    key = rng.choice(live)
                    live.remove(key)
                    for table in spec["rows"](key, 0):
                        conn.execute(text(f"DELETE FROM {table} WHERE {spec['key']} = :k"), {"k": key})
            log.write(json.dumps({"op": op, "key": key, "at": time.time()}) + "\n")
            log.flush()
            time.sleep(rng.uniform(0, pause))
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--layout", choices=sorted(LAYOUTS), required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ops", type=int, default=40)
    parser.add_argument("--pause", type=float, default=0.15, help="at most this many seconds between changes")
    parser.add_argument("--log", required=True)
    args = parser.parse_args()
    work(args.url, args.layout, args.seed, args.ops, args.log, args.pause)


if __name__ == "__main__":
    main()
