"""Benchmark: the title state (hybrid_store/core/title_state.py), in memory.

    python bench/title_state.py                                  # 370,000 and 1,000,000 parcels
    python bench/title_state.py --sizes 370000,1000000 --write docs/benchmarks.md

For each size it builds the state of that many parcels in one update (version 1), then applies a
batch touching 10,000 parcels (9,000 with a new record, 1,000 new) onto it, and measures head-proof
sizes: exactly for every parcel (a walk of the whole tree gives each leaf's depth and its non-empty
siblings, and the binary size follows from them), and as JSON on a sample of proofs actually made.
The figures for a size not built (10,000,000) are computed from the measured ones: in a tree of n
random paths a leaf's walk has about log2(n) non-empty siblings plus a constant, which the two
measured sizes give.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.service_load import write_section
from hybrid_store.core import title_state as ts

MARK = "bench/title_state.py"
BATCH = 10_000
NEW_IN_BATCH = 1_000
SAMPLE = 5_000
#: binary proof: kind (1) + depth (2) + bitmap + 32 per sibling + a member's head (32 + 8)
FIXED_MEMBER_BYTES = 1 + 2 + 40


def parcel_key(i: int) -> str:
    """Bergen-style keys: municipality, block, lot."""
    return f"{201 + i % 70:04d}_{i // 700}.{i // 70 % 10:02d}_{i % 97 + 1}"


def head(i: int, length: int = 1) -> ts.Head:
    return ts.Head(parcel_key(i), hashlib.sha256(f"{i}/{length}".encode()).digest(), length)


@dataclass
class Shape:
    leaves: int
    depth_sum: int
    depth_max: int
    siblings_sum: int
    siblings_max: int
    binary_sum: int
    binary_max: int


def shape(store: ts.MemoryNodeStore, version: int) -> Shape:
    """Depth and non-empty siblings of every leaf's walk, without making the proofs."""
    out = Shape(0, 0, 0, 0, 0, 0, 0)
    stack = [(store.root_of(version), 0, 0)]
    while stack:
        node_hash, depth, siblings = stack.pop()
        node = store.get_node(node_hash)
        if isinstance(node, ts.LeafNode):
            size = FIXED_MEMBER_BYTES + (depth + 7) // 8 + 32 * siblings
            out.leaves += 1
            out.depth_sum += depth
            out.depth_max = max(out.depth_max, depth)
            out.siblings_sum += siblings
            out.siblings_max = max(out.siblings_max, siblings)
            out.binary_sum += size
            out.binary_max = max(out.binary_max, size)
            continue
        for child, other in ((node.left, node.right), (node.right, node.left)):
            if child != ts.EMPTY:
                stack.append((child, depth + 1, siblings + (other != ts.EMPTY)))
    return out


def json_size(proof: ts.HeadProof) -> int:
    return len(json.dumps(proof.to_json(), separators=(",", ":")))


def run(n: int, rng: random.Random) -> dict[str, float]:
    store = ts.MemoryNodeStore()
    heads = [head(i) for i in range(n)]
    started = time.perf_counter()
    _, _ = ts.apply(store, None, heads, version=1)
    build = time.perf_counter() - started
    del heads
    # three batches, each onto version 1 (three branches): the median is the figure, the spread its noise
    updates, written = [], 0
    for version in (2, 3, 4):
        touched = [head(i, version) for i in rng.sample(range(n), BATCH - NEW_IN_BATCH)]
        touched += [head(n + i + version * NEW_IN_BATCH) for i in range(NEW_IN_BATCH)]
        nodes_before = len(store.nodes)
        started = time.perf_counter()
        _, _ = ts.apply(store, 1, touched, version=version)
        updates.append(time.perf_counter() - started)
        written = written or len(store.nodes) - nodes_before
    update = sorted(updates)[1]
    s = shape(store, 2)
    members = [*range(n), *range(n + 2 * NEW_IN_BATCH, n + 3 * NEW_IN_BATCH)]  # version 2's parcels
    sample = [ts.prove(store, 2, parcel_key(i)) for i in rng.sample(members, SAMPLE)]
    for p in sample[:200]:  # the computed binary size is the real one
        assert len(p.to_bytes()) == FIXED_MEMBER_BYTES + (p.depth + 7) // 8 + 32 * sum(
            x != ts.EMPTY for x in p.siblings
        )
    absent = [ts.prove(store, 2, f"absent-{i}") for i in range(SAMPLE // 5)]
    return {
        "built": n,
        "parcels": s.leaves,
        "build_s": build,
        "update_s": update,
        "update_min_s": min(updates),
        "update_max_s": max(updates),
        "update_nodes": written,
        "depth_avg": s.depth_sum / s.leaves,
        "depth_max": s.depth_max,
        "siblings_avg": s.siblings_sum / s.leaves,
        "siblings_max": s.siblings_max,
        "binary_avg": s.binary_sum / s.leaves,
        "binary_max": s.binary_max,
        "json_avg": sum(map(json_size, sample)) / len(sample),
        "json_max": max(map(json_size, sample)),
        "absent_json_avg": sum(map(json_size, absent)) / len(absent),
        "absent_binary_avg": sum(len(p.to_bytes()) for p in absent) / len(absent),
        "nodes": len(store.nodes),
    }


def projected(rows: list[dict[str, float]], n: int) -> dict[str, float]:
    """Sizes at ``n`` parcels: siblings(n) = log2(n) + c, c the mean of the measured offsets; the
    deepest walk grows as 2*log2(n) (the longest common prefix among n random paths)."""
    c = sum(r["siblings_avg"] - math.log2(r["parcels"]) for r in rows) / len(rows)
    d = sum(r["depth_avg"] - math.log2(r["parcels"]) for r in rows) / len(rows)
    max_extra = sum(r["depth_max"] - 2 * math.log2(r["parcels"]) for r in rows) / len(rows)
    siblings_extra = sum(r["siblings_max"] - math.log2(r["parcels"]) for r in rows) / len(rows)
    siblings, depth = math.log2(n) + c, math.log2(n) + d
    depth_max, siblings_max = 2 * math.log2(n) + max_extra, math.log2(n) + siblings_extra
    per_sibling_json = 69  # a quoted 0x-hex of 32 bytes and its comma
    json_fixed = sum(r["json_avg"] - per_sibling_json * r["siblings_avg"] for r in rows) / len(rows)
    return {
        "parcels": n,
        "siblings_avg": siblings,
        "depth_avg": depth,
        "depth_max": depth_max,
        "siblings_max": siblings_max,
        "binary_avg": FIXED_MEMBER_BYTES + math.ceil(depth / 8) + 32 * siblings,
        "binary_max": FIXED_MEMBER_BYTES + math.ceil(depth_max / 8) + 32 * siblings_max,
        "json_avg": json_fixed + per_sibling_json * siblings,
    }


def report(rows: list[dict[str, float]], guess: dict[str, float], command: str) -> str:
    lines = [
        f"Command: `{command}` ({time.strftime('%Y-%m-%d')}, Python {sys.version.split()[0]}, pure Python, one core)",
        "",
        "| parcels built | build (one update) | update: 10,000 touched (1,000 new), median (min-max of 3) | nodes written by it | nodes in store |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['built']:,.0f} | {r['build_s']:.1f} s | {r['update_s']:.2f} s ({r['update_min_s']:.2f}-{r['update_max_s']:.2f}) | {r['update_nodes']:,.0f} | {r['nodes']:,.0f} |")  # fmt: skip
    lines += [
        "",
        "Head proofs of members (binary: exact over every parcel; JSON: a sample of 5,000; absent: 1,000 "
        "never-recorded keys):",
        "",
        "| parcels (after the batch) | depth avg / max | non-empty siblings avg / max | binary avg / max | JSON avg / max | absent: binary / JSON avg |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['parcels']:,.0f} | {r['depth_avg']:.1f} / {r['depth_max']:.0f} | {r['siblings_avg']:.1f} / "
            f"{r['siblings_max']:.0f} | {r['binary_avg']:.0f} / {r['binary_max']:.0f} B | {r['json_avg']:.0f} / "
            f"{r['json_max']:.0f} B | {r['absent_binary_avg']:.0f} / {r['absent_json_avg']:.0f} B |"
        )
    g = guess
    lines.append(
        f"| {g['parcels']:,.0f} (computed) | {g['depth_avg']:.1f} / ~{g['depth_max']:.0f} | {g['siblings_avg']:.1f} / "
        f"~{g['siblings_max']:.0f} | {g['binary_avg']:.0f} / ~{g['binary_max']:.0f} B | {g['json_avg']:.0f} / - | - |"
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    lines += ["", f"Peak memory of the benchmark process: {peak:,.0f} MB."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="370000,1000000")
    parser.add_argument("--project", type=int, default=10_000_000, help="the size to compute, not build")
    parser.add_argument("--seed", type=int, default=23)
    parser.add_argument("--write", type=Path, help="rewrite this file's section (docs/benchmarks.md)")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    rows = []
    for n in (int(x) for x in args.sizes.split(",")):
        rows.append(run(n, rng))
        print(json.dumps(rows[-1]), flush=True)
    command = "python bench/title_state.py " + " ".join(sys.argv[1:])
    text = report(rows, projected(rows, args.project), command.strip())
    print(text)
    if args.write:
        write_section(args.write, MARK, text)


if __name__ == "__main__":
    main()
