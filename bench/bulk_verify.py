"""Benchmark: an auditor's bulk verification (issue 25), the bulk path beside the naive one, in one run.

    python bench/bulk_verify.py                          # 100,000 bundles, offline, one process
    python bench/bulk_verify.py --bundles 100000 --folder 20000 --repeat 3 --processes 2 --onchain 5000 \\
        [--before TREE] [--work DIR] [--write docs/benchmarks.md]

The bundles come from a real registry: deeds recorded in SQLite, anchored 1,000 to a batch (the
worker's default) on the in-process chain, each exported as `landreg proof` exports it (every field
disclosed, landreg-commitment/v2, a proof of 10 nodes), the trust root published. 1 % of them are
forged, in turn each way a forger may try that an offline check can see: another batch's root, a
field altered, another record's commitment as the leaf, an inner node as the leaf, a proof node
altered, another contract, another chain, a member added, a file that is not JSON, a bundle cut
short. ``--work DIR`` keeps the set (and its registry) for another run.

Offline, in this one process (one core): the naive path is the existing single-bundle verification
through the core API, ``verify_bytes(line, trust=T)``, for each line of the JSON-lines file; the
bulk path is what ``landreg verify FILE.jsonl --trust T`` runs (``hybrid_store.verifier.bulk``) over
the same file, and over a folder of the first ``--folder`` bundles (one file each). Rates are bundles
per CPU second of the process (per core) and per wall second; ``--repeat N`` runs each path N times
in turn and shows the median. Each path's named bundles are compared with the forged ones. ``--before TREE`` also times the naive path of another source tree (``git
archive`` of an earlier commit) in a process of its own; ``--processes P`` splits the file into P
parts verified by P processes at once (the wall rate of all, and each one's per core).

On chain (``--onchain N``): a registry of N records anchored on a managed anvil node, 1 % forged;
the naive path (``verify_document(doc, chain=node, trust=T)``, one client reused) over the first
``--onchain-naive`` bundles, the bulk path over all of them, each with the node's calls counted.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
#: the source tree a run imports: this one, or (``--before``) the one a worker process is handed
TREE = os.environ.get("BENCH_TREE", str(ROOT))
sys.path.insert(0, TREE)

MARK = "bench/bulk_verify.py"
PER_BATCH = 1000
NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
KINDS = ("swapped-root", "altered-field", "altered-leaf", "inner-node-as-leaf", "altered-proof", "another-contract",
         "another-chain", "malformed", "not-json", "cut-short")  # fmt: skip
#: what the naive offline path cannot see: it leaves the anchor's chain and contract to --rpc
NAIVE_UNSEEN = {"another-contract", "another-chain"}


# --- the bundles ------------------------------------------------------------------------------------------
def registry(n: int, home: Path, chain: Any) -> tuple[list[bytes], Path]:
    """N deeds of a real registry on ``chain``: their bundles as JSON lines, and the trust root's file."""
    from hybrid_store.anchoring import Anchorer
    from hybrid_store.db.engine import Database
    from hybrid_store.deployment import attach
    from hybrid_store.filing import record_instruments
    from hybrid_store.intake import validate
    from hybrid_store.proofs import export_bundle
    from hybrid_store.settings import Settings
    from hybrid_store.trust import publish

    db = Database(f"sqlite:///{home / 'landreg.db'}")
    db.migrate()
    dep = attach(db, chain)
    numbers: list[str] = []
    for start in range(0, n, 5000):
        bodies = [deed(i) for i in range(start, min(n, start + 5000))]
        with db.write() as s:
            numbers += [m.instrument_number for m in record_instruments(s, [validate(b, now=NOW) for b in bodies],
                                                                           now=NOW)]  # fmt: skip
        say(f"recorded {len(numbers):,}")
    Anchorer(db, chain, dep, batch_max_records=PER_BATCH).drain()
    say("anchored")
    lines = []
    with db.read() as s:
        for i, number in enumerate(numbers):
            lines.append(json.dumps(export_bundle(s, number).to_json(), ensure_ascii=False).encode())
            if (i + 1) % 20000 == 0:
                say(f"exported {i + 1:,}")
    cfg = Settings(home=home, trust={"signing_key_passphrase": "bench passphrase"})
    cfg.ensure_home()
    publish(cfg, db)
    db.engine.dispose()
    return lines, home / "trust" / "root.json"


def deed(i: int) -> dict[str, Any]:
    return {"doc_type": "DEED", "grantors": [f"OWNER {i}", "A. SPOUSE"], "grantees": [f"BUYER {i}"],
            "parcels": [{"municipality_code": "0223", "block": str(100 + i // 1000), "lot": str(i % 1000 + 1)}],
            "consideration": f"{250000 + i}.00", "legal_description": "ALL that certain lot in the City of Hackensack.",
            "document_digest": f"{i:064x}", "preparer": "ANNA LEE, ESQ.",
            "grantee_mailing_address": "12 MAIN STREET, HACKENSACK NJ 07601"}  # fmt: skip


def forge(lines: list[bytes], share: float, seed: int = 25) -> tuple[list[bytes], dict[int, str]]:
    """``lines`` with ``share`` of them forged (the same ones for the same seed): the lines, and the
    forged line indexes with their kind."""
    rng = random.Random(seed)
    chosen = sorted(rng.sample(range(len(lines)), max(1, round(len(lines) * share))))
    forged = {i: KINDS[k % len(KINDS)] for k, i in enumerate(chosen)}
    out = list(lines)
    for i, kind in forged.items():
        out[i] = forgery(kind, json.loads(lines[i]), json.loads(lines[(i + PER_BATCH) % len(lines)]))
    return out, forged


def forgery(kind: str, b: dict[str, Any], other: dict[str, Any]) -> bytes:
    from eth_utils import to_checksum_address

    from hybrid_store.core import merkle
    from hybrid_store.core.hashing import to_hex

    f = copy.deepcopy(b)
    if kind == "swapped-root":
        f["tree"]["root"] = other["tree"]["root"] if other["tree"]["root"] != b["tree"]["root"] else "0x" + "11" * 32
    elif kind == "altered-field":
        f["record"]["fields"]["grantees"]["value"] = ["MALLORY FORGER"]
    elif kind == "altered-leaf":
        f["tree"]["value"] = [other["record"]["commitment"]]
    elif kind == "inner-node-as-leaf":
        leaf = merkle.commitment_leaf(bytes.fromhex(b["record"]["commitment"][2:]))
        f["tree"]["value"] = [to_hex(merkle.process_proof(leaf, [bytes.fromhex(b["tree"]["proof"][0][2:])]))]
        f["tree"]["proof"] = b["tree"]["proof"][1:]
    elif kind == "altered-proof":
        node = b["tree"]["proof"][0]
        f["tree"]["proof"][0] = node[:-1] + ("0" if node[-1] != "0" else "1")
    elif kind == "another-contract":
        f["anchor"]["contract"] = to_checksum_address("0x" + "7e" * 20)
    elif kind == "another-chain":
        f["anchor"]["chainId"] = 1
    elif kind == "malformed":
        f["record"]["fields"]["book"]["note"] = "added"
    elif kind == "not-json":
        return b"%PDF-1.7 a scan, not a bundle"
    elif kind == "cut-short":
        text = json.dumps(b).encode()
        return text[: len(text) // 2]
    return json.dumps(f, ensure_ascii=False).encode()


# --- the runs -----------------------------------------------------------------------------------------------
def naive(path: Path, trust_file: Path, part: tuple[int, int] = (0, 1)) -> dict[str, Any]:
    """The existing single-bundle verification through the core API, for each line (imports only
    what every tree since the verifier's own package has, so ``--before`` runs it too)."""
    from hybrid_store.verifier.trust import load
    from hybrid_store.verifier.verdicts import verify_bytes

    trust = load(trust_file)
    lines = _part(path.read_bytes().splitlines(), part)
    statuses: Counter[str] = Counter()
    named = []
    cpu, wall = time.process_time(), time.perf_counter()
    for number, line in lines:
        verdict = verify_bytes(line, trust=trust)
        statuses[verdict.status] += 1
        if verdict.status == "invalid":
            named.append(number)
    return _ran(len(lines), cpu, wall, statuses, named)


def bulk_run(path: Path, trust_file: Path, part: tuple[int, int] = (0, 1)) -> dict[str, Any]:
    """What `landreg verify PATH --trust T` runs (the folder's or the file's reading included)."""
    from hybrid_store.verifier import bulk
    from hybrid_store.verifier.trust import load

    assert part == (0, 1), "a part of the bundles is a file of its own"
    trust = load(trust_file)
    verifier, statuses, named = bulk.Bulk(trust), Counter[str](), []
    cpu, wall = time.process_time(), time.perf_counter()
    for item in bulk.Inputs([path]):
        checked = verifier.check(item)
        statuses[checked.status] += 1
        if checked.status in bulk.NAMED:
            named.append(checked.where)
    return _ran(sum(statuses.values()), cpu, wall, statuses, named)


def median(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The run whose rate per core is the median of the runs (the lower middle one of an even count)."""
    ranked = sorted(results, key=lambda r: r["per_cpu_s"])
    return ranked[(len(ranked) - 1) // 2]


def _part(lines: list[bytes], part: tuple[int, int]) -> list[tuple[int, bytes]]:
    return [(i + 1, line) for i, line in enumerate(lines) if i % part[1] == part[0]]


def _ran(n: int, cpu: float, wall: float, statuses: Counter[str], named: list[Any]) -> dict[str, Any]:
    cpu_s, wall_s = time.process_time() - cpu, time.perf_counter() - wall
    return {"bundles": n, "cpu_s": cpu_s, "wall_s": wall_s, "per_cpu_s": n / cpu_s, "per_wall_s": n / wall_s,
            "statuses": dict(statuses), "named": named}  # fmt: skip


def in_process(kind: str, path: Path, trust_file: Path, tree: Path, part: tuple[int, int]) -> subprocess.Popen[str]:
    """A run of its own (another tree's naive path, or one of P parts), reporting as JSON."""
    args = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, "--file", str(path), "--trust-file",
            str(trust_file), "--part", f"{part[0]}/{part[1]}"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(tree), "BENCH_TREE": str(tree)}
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, text=True, cwd="/")


def collect(process: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = process.communicate()
    assert process.returncode == 0, out
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


# --- on chain ------------------------------------------------------------------------------------------------
class Counting:
    """The node's reader, with the calls made of it counted by name (``at`` shares the tally)."""

    def __init__(self, inner: Any, asked: Counter[str] | None = None) -> None:
        self.inner, self.asked = inner, asked if asked is not None else Counter()

    @property
    def chain_id(self) -> int:
        self.asked["chain_id"] += 1
        return int(self.inner.chain_id)

    def at(self, address: str) -> Counting:
        return Counting(self.inner.at(address), self.asked)

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)

        def counted(*args: Any) -> Any:
            self.asked[name] += 1
            return method(*args)

        return counted


def on_chain(n: int, sample: int, share: float, home: Path) -> dict[str, Any]:
    import socket

    from hybrid_store.chain.anvil import ManagedAnvil
    from hybrid_store.chain.connect import open_chain, rpc_url
    from hybrid_store.settings import Settings
    from hybrid_store.verifier import bulk
    from hybrid_store.verifier.reader import node_at
    from hybrid_store.verifier.trust import load
    from hybrid_store.verifier.verdicts import verify_document

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cfg = Settings(home=home, chain={"backend": "anvil", "anvil_port": port})
    node = ManagedAnvil(cfg)
    node.start()
    try:
        lines, trust_file = registry(n, home, open_chain(cfg))
        mixed, forged = forge(lines, share)
        trust = load(trust_file)
        naive_reader = Counting(node_at(rpc_url(cfg)))
        wall = time.perf_counter()
        naive_named = [i for i, line in enumerate(mixed[:sample])
                       if verify_document(_doc(line), chain=naive_reader, trust=trust).status == "invalid"]  # fmt: skip
        naive_s = time.perf_counter() - wall
        bulk_reader = Counting(node_at(rpc_url(cfg)))
        verifier = bulk.Bulk(trust, chain=bulk_reader)
        wall, statuses, named = time.perf_counter(), Counter[str](), []
        for i, line in enumerate(mixed):
            checked = verifier.check(bulk.Item(str(i), line))
            statuses[checked.status] += 1
            if checked.status in bulk.NAMED:
                named.append(i)
        bulk_s = time.perf_counter() - wall
    finally:
        node.stop()
    assert set(named) == set(forged), "the bulk path on chain named other bundles than the forged ones"
    assert set(naive_named) <= set(forged)
    return {"bundles": n, "sample": sample, "naive_s": naive_s, "naive_rate": sample / naive_s,
            "naive_calls": sum(naive_reader.asked.values()) / sample, "bulk_s": bulk_s, "bulk_rate": n / bulk_s,
            "bulk_calls": sum(bulk_reader.asked.values()) / n, "bulk_asked": dict(bulk_reader.asked),
            "statuses": dict(statuses), "forged": len(forged), "batches": -(-n // PER_BATCH)}  # fmt: skip


def _doc(line: bytes) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return None


# --- the report ----------------------------------------------------------------------------------------------
def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def load_now() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def row(name: str, r: dict[str, Any], forged: int, seen: int | None = None) -> str:
    caught = len(r["named"])
    return (f"| {name} | {r['bundles']:,} | {r['cpu_s']:.1f} | {r['per_cpu_s']:,.0f} | {r['wall_s']:.1f} | "
            f"{r['per_wall_s']:,.0f} | {caught:,} of {forged if seen is None else seen:,} |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundles", type=int, default=100_000)
    parser.add_argument("--forged", type=float, default=0.01, help="the share forged (0.01: 1 %%)")
    parser.add_argument("--folder", type=int, default=20_000, help="bundles written one file each (0: none)")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=1, help="offline runs of each path, in turn; the median is shown")
    parser.add_argument("--before", type=Path, help="another source tree: its naive path is timed too")
    parser.add_argument("--onchain", type=int, default=0, help="records of a registry on anvil (0: none)")
    parser.add_argument("--onchain-naive", type=int, default=500)
    parser.add_argument("--work", type=Path, help="keep (and reuse) the registry and its bundles here")
    parser.add_argument("--write", type=Path)
    parser.add_argument("--worker", choices=["naive", "bulk"], help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--trust-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--part", default="0/1", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        index, parts = (int(x) for x in args.part.split("/"))
        run = naive if args.worker == "naive" else bulk_run
        result = run(args.file, args.trust_file, (index, parts))
        print(json.dumps({**result, "named": len(result["named"])}))
        return

    work = args.work or Path(tempfile.mkdtemp(prefix="landreg-bench-bulk-"))
    work.mkdir(parents=True, exist_ok=True)
    source, trust_file = work / f"genuine-{args.bundles}.jsonl", work / "trust" / "root.json"
    if not source.exists():
        from hybrid_store.chain.connect import eth_tester_chain

        started = time.perf_counter()
        lines, made_trust = registry(args.bundles, work, eth_tester_chain())
        assert made_trust == trust_file
        source.write_bytes(b"\n".join(lines) + b"\n")
        say(f"registry of {args.bundles:,} built in {time.perf_counter() - started:.0f} s")
    lines = source.read_bytes().splitlines()
    mixed, forged = forge(lines, args.forged)
    path = work / "bundles.jsonl"
    path.write_bytes(b"\n".join(mixed) + b"\n")
    seen = sum(1 for kind in forged.values() if kind not in NAIVE_UNSEEN)
    folder = work / "folder"
    if args.folder:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
        for i, line in enumerate(mixed[: args.folder]):
            sub = folder / f"batch-{i // PER_BATCH:03d}"
            sub.mkdir(parents=True, exist_ok=True)
            (sub / f"{i:06d}.json").write_bytes(line)
    print(f"{len(mixed):,} bundles, {len(forged):,} forged ({dict(Counter(forged.values()))}); load {load_now()}")

    loads = [load_now()]
    runs: dict[str, list[dict[str, Any]]] = {"naive": [], "bulk": [], "folder": []}
    for _ in range(args.repeat):  # in turn, so that a machine growing busier weighs on each alike
        runs["naive"].append(naive(path, trust_file))
        runs["bulk"].append(bulk_run(path, trust_file))
        if args.folder:
            runs["folder"].append(bulk_run(folder, trust_file))
        loads.append(load_now())
    naive_r, bulk_r = median(runs["naive"]), median(runs["bulk"])
    forged_lines = {f"{path}:{i + 1}" for i in forged}
    assert set(bulk_r["named"]) == forged_lines, "the bulk path named other bundles than the forged ones"
    assert {f"{path}:{n}" for n in naive_r["named"]} <= forged_lines and len(naive_r["named"]) == seen
    rows = [row("naive: `verify_bytes` per line (this tree)", naive_r, len(forged), seen),
            row("bulk: `landreg verify FILE.jsonl`'s path", bulk_r, len(forged))]  # fmt: skip
    if args.folder:
        folder_r = median(runs["folder"])
        in_folder = sum(1 for i in forged if i < args.folder)
        assert len(folder_r["named"]) == in_folder
        rows.append(row(f"bulk over a folder of {args.folder:,} files", folder_r, in_folder))
    if args.before:
        before = collect(in_process("naive", path, trust_file, args.before, (0, 1)))
        loads.append(load_now())
        before["named"] = list(range(before["named"]))
        rows.append(row("naive: `verify_bytes` per line (`--before` tree)", before, len(forged), seen))
    if args.processes > 1:
        files = []
        for i in range(args.processes):  # each process its own file: a share of the lines, in turn
            files.append(work / f"part-{i}.jsonl")
            files[-1].write_bytes(b"\n".join(mixed[i :: args.processes]) + b"\n")
        wall = time.perf_counter()
        parts = [in_process("bulk", file, trust_file, ROOT, (0, 1)) for file in files]
        results = [collect(p) for p in parts]
        wall_s = time.perf_counter() - wall
        loads.append(load_now())
        total = sum(r["bundles"] for r in results)
        per_core = ", ".join(f"{r['per_cpu_s']:,.0f}" for r in results)
        rows.append(f"| bulk, {args.processes} processes at once | {total:,} | "
                    f"{sum(r['cpu_s'] for r in results):.1f} | {per_core} (each) | {wall_s:.1f} | {total / wall_s:,.0f} | "
                    f"{sum(r['named'] for r in results):,} of {len(forged):,} |")  # fmt: skip
    ratio = bulk_r["per_cpu_s"] / naive_r["per_cpu_s"]
    header = ["| path | bundles | CPU s | per core: bundles/CPU s | wall s | bundles/wall s | forgeries named |",
              "|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    text = "\n".join([*header, *rows])
    text += (f"\n\nOffline rows: the median of {args.repeat} run{'s' if args.repeat > 1 else ''} of each path, in turn. Bulk / "
             f"naive, per core (same run): {ratio:.1f}×. Load average (1/5/15 min) at each step: {', '.join(loads)}.")  # fmt: skip
    if args.onchain:
        say(f"on chain: a registry of {args.onchain:,} on anvil")
        c = on_chain(
            args.onchain, args.onchain_naive, args.forged, Path(tempfile.mkdtemp(prefix="landreg-bench-anvil-"))
        )
        text += (
            f"\n\nOn chain (anvil, {c['bundles']:,} bundles in {c['batches']} batches, {c['forged']} forged; wall time):\n\n"
            "| path | bundles | wall s | bundles/s | node calls per bundle |\n|---|---:|---:|---:|---:|\n"
            f"| naive: `verify_document` per bundle, one client | {c['sample']:,} | {c['naive_s']:.1f} | "
            f"{c['naive_rate']:,.0f} | {c['naive_calls']:.1f} |\n"
            f"| bulk: `landreg verify --rpc`'s path | {c['bundles']:,} | {c['bulk_s']:.1f} | {c['bulk_rate']:,.0f} | "
            f"{c['bulk_calls']:.2f} |\n\nBulk calls by name: {c['bulk_asked']}."
        )  # fmt: skip
    stamp = (f"Command: `python bench/bulk_verify.py --bundles {args.bundles} --folder {args.folder} "
             f"--repeat {args.repeat} --processes {args.processes}{' --before TREE' if args.before else ''}"
             f"{f' --onchain {args.onchain}' if args.onchain else ''}` ({datetime.now(UTC):%Y-%m-%d}, "
             f"Python {platform.python_version()}, {os.cpu_count()} cores)")  # fmt: skip
    print(stamp + "\n\n" + text)
    if args.write:
        from bench.service_load import write_section

        write_section(args.write, MARK, stamp + "\n\n" + text)


if __name__ == "__main__":
    main()
