"""Benchmark: commitment + tree + anchoring, batched versus one transaction per record.

    python bench/anchoring.py                      # 20,000 records, eth-tester and anvil
    python bench/anchoring.py --records 5000 --write docs/benchmarks.md

For each chain backend it measures, in one run:

* **batched** (landreg's way): commit every record, build one standard-v1 tree per batch, anchor
  each batch with one ``anchorBatch`` transaction (which also tokenizes the batch's new parcels);
* **naive**: one transaction per record (the record's commitment as a one-leaf root, plus a token
  for its parcel when new), on a sample of records, extrapolated per record;

and the full system path on SQLite (validate + record + outbox worker + confirmations). Figures are
records per second and gas per record; the ratio batched/naive is printed beside them.
"""

from __future__ import annotations

import argparse
import os
import resource
import secrets
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hybrid_store.anchoring import Anchorer
from hybrid_store.chain.anvil import ManagedAnvil
from hybrid_store.chain.client import RegistryChain
from hybrid_store.chain.connect import eth_tester_chain, open_chain
from hybrid_store.core import commitment, merkle
from hybrid_store.core.hashing import to_hex
from hybrid_store.core.records import build_record
from hybrid_store.db.engine import Database
from hybrid_store.deployment import attach
from hybrid_store.filing import record_instruments
from hybrid_store.intake import validate
from hybrid_store.jurisdictions.bergen import parcel_key
from hybrid_store.settings import Settings
from migration_tools.synthetic import BergenBook

BATCH = 2_500
MARK_BEGIN = "<!-- bench/anchoring.py:begin -->"
MARK_END = "<!-- bench/anchoring.py:end -->"


@dataclass
class Row:
    backend: str
    approach: str
    records: int
    seconds: float
    gas: int

    @property
    def rate(self) -> float:
        return self.records / self.seconds

    @property
    def gas_per_record(self) -> float:
        return self.gas / self.records


def records_of(n: int, seed: int) -> list:
    """Synthetic instruments in committed form, with history links, ready to commit."""
    heads: dict[str, str] = {}
    out = []
    for item in BergenBook(n, seed=seed):
        keys = sorted({parcel_key(**p) for p in item["parcels"]})
        record = build_record(
            instrument_number=item["instrument_number"], doc_type=item["doc_type"], recorded_at=item["recorded_at"],
            book=item["book"], page=item["page"], grantors=item["grantors"], grantees=item["grantees"],
            consideration_cents=None if item["consideration"] is None else int(item["consideration"] * 100),
            legal_description=item["legal_description"], document_digest=item["document_digest"], parcels=keys,
            corrects=item["corrects"], prev={k: heads.get(k) for k in keys},
        )  # fmt: skip
        out.append((record, secrets.token_bytes(32)))
        for k in keys:
            heads[k] = "0x" + "00" * 32  # the link value does not change the cost being measured
    return out


def batched(chain: RegistryChain, records: list, backend: str) -> Row:
    start = time.perf_counter()
    gas = 0
    next_token = chain.next_token_id()
    seen: set[str] = set()
    for i in range(0, len(records), BATCH):
        chunk = records[i : i + BATCH]
        values = [commitment.commit(r, seed) for r, seed in chunk]
        nodes = merkle.build(sorted(merkle.commitment_leaf(v) for v in values))
        new = sorted({k for r, _ in chunk for k in r.parcels} - seen)
        seen.update(new)
        parcel_tree = merkle.StandardTree.of([(next_token + j, k) for j, k in enumerate(new)], merkle.PARCEL_TOKEN_ENCODING) if new else None  # fmt: skip
        next_token += len(new)
        signed = chain.sign_anchor(chain.batch_count(), nodes[0], len(values), parcel_tree.root if parcel_tree else None,
                                   len(new), nonce=chain.pending_nonce())  # fmt: skip
        gas += chain.wait(chain.broadcast(signed)).gas_used
    return Row(backend, f"batched ({BATCH:,} per tx)", len(records), time.perf_counter() - start, gas)


def naive(chain: RegistryChain, records: list, backend: str) -> Row:
    start = time.perf_counter()
    gas = 0
    next_token = chain.next_token_id()
    seen: set[str] = set()
    nonce = chain.pending_nonce()
    for record, seed in records:
        value = commitment.commit(record, seed)
        new = [k for k in record.parcels if k not in seen]
        seen.update(new)
        parcel_tree = merkle.StandardTree.of([(next_token + j, k) for j, k in enumerate(new)], merkle.PARCEL_TOKEN_ENCODING) if new else None  # fmt: skip
        next_token += len(new)
        leaf_root = merkle.commitment_leaf(value)  # a one-leaf tree: the root is the leaf
        signed = chain.sign_anchor(chain.batch_count(), leaf_root, 1, parcel_tree.root if parcel_tree else None, len(new),
                                   nonce=nonce)  # fmt: skip
        nonce += 1
        gas += chain.wait(chain.broadcast(signed)).gas_used
    return Row(backend, "naive (1 record per tx)", len(records), time.perf_counter() - start, gas)


def full_system(chain: RegistryChain, n: int, seed: int, backend: str) -> Row:
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{tmp}/bench.db")
        db.migrate()
        dep = attach(db, chain)
        book = list(BergenBook(n, seed=seed))
        start = time.perf_counter()
        for i in range(0, n, 2000):
            with db.write() as s:
                record_instruments(s, [validate(x) for x in book[i : i + 2000]], source="legacy")
        summary = Anchorer(db, chain, dep, batch_max_records=BATCH).drain()
        row = Row(backend, "full system: validate + SQLite + outbox worker", n, time.perf_counter() - start,
                  summary.gas_used)  # fmt: skip
        db.dispose()
        return row


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--naive-sample", type=int, default=300, help="records anchored one per transaction")
    parser.add_argument("--backends", default="eth-tester,anvil")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--write", type=Path, help="replace the benchmark section of this markdown file")
    args = parser.parse_args()

    records = records_of(args.records, args.seed)
    t = time.perf_counter()
    values = [commitment.commit(r, s) for r, s in records]
    commit_s = time.perf_counter() - t
    t = time.perf_counter()
    merkle.build(sorted(merkle.commitment_leaf(v) for v in values))
    tree_s = time.perf_counter() - t
    t = time.perf_counter()
    merkle.StandardTree.of([[to_hex(v)] for v in values], merkle.COMMITMENT_ENCODING)
    tree_std_s = time.perf_counter() - t

    rows: list[Row] = []
    for backend in args.backends.split(","):
        node = None
        if backend == "anvil":
            home = Path(tempfile.mkdtemp(prefix="landreg-bench-"))
            cfg = Settings(home=home, chain={"backend": "anvil", "anvil_port": free_port()})
            node = ManagedAnvil(cfg)
            node.start()
        try:
            rows.append(batched(_deployed(_fresh(backend, node)), records, backend))
            rows.append(naive(_deployed(_fresh(backend, node)), records[: args.naive_sample], backend))
            rows.append(full_system(_fresh(backend, node), args.records, args.seed, backend))
        finally:
            if node:
                node.stop()
        print(f"{backend}: done", file=sys.stderr)

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    text = render(args, commit_s, tree_s, tree_std_s, rows, peak_mb)
    print(text)
    if args.write:
        doc = args.write.read_text() if args.write.exists() else ""
        if MARK_BEGIN in doc:
            head, _, rest = doc.partition(MARK_BEGIN)
            _, _, tail = rest.partition(MARK_END)
            doc = head + MARK_BEGIN + "\n" + text + "\n" + MARK_END + tail
        else:
            doc += f"\n{MARK_BEGIN}\n{text}\n{MARK_END}\n"
        args.write.write_text(doc)


def _deployed(chain: RegistryChain) -> RegistryChain:
    chain.deploy()
    return chain


def _fresh(backend: str, node: ManagedAnvil | None) -> RegistryChain:
    if backend == "anvil":
        assert node is not None
        return open_chain(node.settings)
    return eth_tester_chain()


def render(args, commit_s: float, tree_s: float, tree_std_s: float, rows: list[Row], peak_mb: float) -> str:
    n = args.records
    lines = [
        f"Command: `python bench/anchoring.py --records {n} --naive-sample {args.naive_sample} "
        f"--backends {args.backends}` ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, Python {sys.version.split()[0]})",
        "",
        "| step (pure core, no I/O) | records | seconds | records/s |",
        "|---|---:|---:|---:|",
        f"| commitments (13 salted field hashes each) | {n:,} | {commit_s:.2f} | {n / commit_s:,.0f} |",
        f"| standard-v1 tree from commitments | {n:,} | {tree_s:.2f} | {n / tree_s:,.0f} |",
        f"| same, through `StandardTree.of` (values kept, OZ dump) | {n:,} | {tree_std_s:.2f} | {n / tree_std_s:,.0f} |",
        "",
        "| backend | approach | records | seconds | records/s | gas/record | speed vs naive | gas vs naive |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    by_backend: dict[str, Row] = {r.backend: r for r in rows if r.approach.startswith("naive")}
    for r in rows:
        base = by_backend[r.backend]
        speed = f"{r.rate / base.rate:,.0f}x" if r is not base else "1x"
        gas = f"{base.gas_per_record / r.gas_per_record:,.0f}x less" if r is not base else "-"
        lines.append(
            f"| {r.backend} | {r.approach} | {r.records:,} | {r.seconds:.2f} | {r.rate:,.0f} | "
            f"{r.gas_per_record:,.1f} | {speed} | {gas} |"
        )
    lines += ["", f"Peak memory of the benchmark process: {peak_mb:,.0f} MB."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
