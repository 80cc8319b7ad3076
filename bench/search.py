"""Benchmark: the clerk's search over a Bergen-scale book on PostgreSQL, beside the naive approach.

    # a PostgreSQL database holding the synthetic book (the import takes a while; see docs/benchmarks.md)
    LANDREG_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/bench landreg db upgrade
    LANDREG_DATABASE_URL=... landreg legacy import synthetic --instruments 370000
    python bench/search.py --url postgresql+psycopg://postgres@127.0.0.1:5432/bench --write docs/benchmarks.md

Each query is the service's own search (``Queries.search``: the ids of one page, a name's walked
in recording order through ``instrument_terms`` or read by id through the ``party_name_keys``
full-text index when few instruments bear it, a parcel's through its indexes; then the page's rows
and their anchoring), timed end to end in this process, warm cache. ``--slowest N`` prints each
kind's slowest queries, to see what a tail is made of. The query mix is drawn (seeded) from
the book's own parties: a full name as printed, the same name surname first, a name with its
letters unfolded by a clerk's keyboard (SØREN typed SOREN), a surname alone (thousands of matches:
the page is the newest 25), a name with a suffix, a name within a municipality, and a parcel.

The **naive** approach, in the same run on the same database: what the search did before (one
``upper(name) LIKE '%...%'`` over ``instrument_parties``, no index usable, the same order and page),
for the name queries it can answer at all (it finds neither SOREN nor a name surname first).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SEED = 2026


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(round(p * (len(ordered) - 1))))]

    return {"p50": at(0.50), "p95": at(0.95), "p99": at(0.99), "max": ordered[-1], "n": len(ordered)}


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True, help="PostgreSQL URL of a database holding a book")
    ap.add_argument("--queries", type=int, default=60, help="queries of each kind (each run --repeat times)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--write", type=Path, help="append the figures to this Markdown file")
    ap.add_argument("--slowest", type=int, default=0, metavar="N",
                    help="print each kind's N slowest queries (their criteria and times) to stderr")  # fmt: skip
    args = ap.parse_args()

    from sqlalchemy import func, select, text

    from hybrid_store.db.engine import Database
    from hybrid_store.db.models import Instrument, InstrumentParcel, InstrumentParty, Parcel
    from hybrid_store.settings import Settings
    from registry_service.services.queries import Queries
    from registry_service.services.search import Criteria

    db = Database(args.url)
    settings = Settings(home=Path(tempfile.mkdtemp(prefix="landreg-bench-search-")), database_url=args.url)
    queries = Queries(settings, db)
    rng = random.Random(SEED)
    with db.read() as s:
        instruments = s.scalar(select(func.count()).select_from(Instrument)) or 0
        parties = s.scalar(select(func.count()).select_from(InstrumentParty)) or 0
        s.execute(text("ANALYZE party_name_keys"))
        names = [n for (n,) in s.execute(text(
            "SELECT name FROM instrument_parties TABLESAMPLE BERNOULLI (2) REPEATABLE (2026) LIMIT 5000"))]  # fmt: skip
        people = [n for n in names if "," not in n and " OF " not in n and len(n.split()) >= 2]
        unfolded = [n for n in people if any(c in n for c in "ØÆŁßÅÜÉÍÓÖ")]
        suffixed = [n for n in people if n.endswith((" JR.", " SR.", " III"))]
        parcels = list(s.execute(select(Parcel.parcel_key, Parcel.municipality_code)
                                 .where(Parcel.id.in_(select(InstrumentParcel.parcel_id)))
                                 .order_by(Parcel.id).limit(5000)))  # fmt: skip
    print(f"book: {instruments:,} instruments, {parties:,} parties", file=sys.stderr)

    def keyboard(name: str) -> str:
        return settings.profile.name_rules.key(name).strip()

    def surname_first(name: str) -> str:
        words = name.replace(" JR.", "").replace(" SR.", "").replace(" III", "").split()
        return " ".join([words[-1], *words[:-1]])

    n = args.queries
    kinds: dict[str, list[Criteria]] = {
        "full name as printed": [Criteria(party=rng.choice(people)) for _ in range(n)],
        "surname first (SMITH JOHN)": [Criteria(party=surname_first(rng.choice(people))) for _ in range(n)],
        "typed without its letters (SOREN for SØREN)": [
            Criteria(party=keyboard(rng.choice(unfolded or people))) for _ in range(n)
        ],  # fmt: skip
        "surname alone (newest 25 of thousands)": [Criteria(party=rng.choice(people).split()[-1]) for _ in range(n)],
        "name with a suffix (JR)": [Criteria(party=rng.choice(suffixed or people)) for _ in range(n)],
        "surname within a municipality": [
            Criteria(party=rng.choice(people).split()[0], place=rng.choice(parcels)[1]) for _ in range(n)
        ],  # fmt: skip
        "parcel": [Criteria(parcel=rng.choice(parcels)[0]) for _ in range(n)],
    }
    results: dict[str, dict[str, float]] = {}
    found: dict[str, float] = {}
    for kind, criteria in kinds.items():
        samples: list[float] = []
        each: list[tuple[float, Criteria, list[float]]] = []
        hits = 0
        for c in criteria:
            queries.search(c)  # warm
            times = timed(lambda c=c: queries.search(c), args.repeat)
            samples += times
            each.append((max(times), c, times))
            hits += bool(queries.search(c).data)
        results[kind] = percentiles(samples)
        found[kind] = hits / len(criteria)
        print(f"{kind}: {results[kind]}", file=sys.stderr)
        for _, c, times in sorted(each, key=lambda e: e[0], reverse=True)[: args.slowest]:
            asked = {k: v for k, v in vars(c).items() if v is not None}
            print(f"  slow: {asked} {', '.join(f'{t:.1f}' for t in times)} ms", file=sys.stderr)

    # the naive approach: the search as it was (an unindexable LIKE over the raw names), same page
    def naive(party: str) -> list[int]:
        pattern = "%" + party.upper().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        with db.read() as s:
            stmt = (select(Instrument.id).where(Instrument.id.in_(
                select(InstrumentParty.instrument_id).where(func.upper(InstrumentParty.name).like(pattern, escape="\\"))
            )).order_by(Instrument.recorded_at.desc(), Instrument.id.desc()).limit(26))  # fmt: skip
            return list(s.scalars(stmt))

    naive_kinds = {k: kinds[k] for k in ("full name as printed", "surname alone (newest 25 of thousands)")}
    naive_results: dict[str, dict[str, float]] = {}
    for kind, criteria in naive_kinds.items():
        samples = []
        for c in criteria[: max(10, n // 3)]:  # a scan per query: fewer of them
            assert c.party
            naive(c.party)
            samples += timed(lambda c=c: naive(c.party or ""), 1)
        naive_results[kind] = percentiles(samples)
        print(f"naive {kind}: {naive_results[kind]}", file=sys.stderr)
    missed = {k: sum(not naive(c.party or "") for c in kinds[k][:20]) / 20
              for k in ("surname first (SMITH JOHN)", "typed without its letters (SOREN for SØREN)")}  # fmt: skip

    report = render(instruments, parties, results, found, naive_results, missed, n, args.repeat)
    print(report)
    print(json.dumps({"search": results, "naive": naive_results}, indent=1), file=sys.stderr)
    if args.write:
        with args.write.open("a") as f:
            f.write("\n" + report)


def render(instruments: int, parties: int, results: dict, found: dict, naive: dict, missed: dict, n: int,
           repeat: int) -> str:  # fmt: skip
    lines = [
        "## Search (issue 24): a clerk's search over the synthetic book on PostgreSQL",
        "",
        f"`python bench/search.py --url postgresql+psycopg://…` over {instruments:,} instruments ({parties:,} "
        f"parties), PostgreSQL {'(local)'}, {platform.python_implementation()} {platform.python_version()}, "
        f"{platform.machine()}; {n} queries of each kind, each run {repeat} times warm, end to end in the service "
        "(the page's ids, its 25 rows and their anchoring). The machine is shared (2 cores).",
        "",
        "| query | p50 ms | p95 ms | p99 ms | max ms | found something |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for kind, r in results.items():
        lines.append(f"| {kind} | {r['p50']:.1f} | {r['p95']:.1f} | {r['p99']:.1f} | {r['max']:.1f} | "
                     f"{found[kind]:.0%} |")  # fmt: skip
    lines += ["", "The naive approach in the same run (the search as it was: `upper(name) LIKE '%…%'`, one scan):", "",
              "| query | p50 ms | p95 ms | p99 ms | max ms |", "|---|---:|---:|---:|---:|"]  # fmt: skip
    for kind, r in naive.items():
        lines.append(f"| {kind} (naive) | {r['p50']:.1f} | {r['p95']:.1f} | {r['p99']:.1f} | {r['max']:.1f} |")
    lines += ["", "What the naive approach cannot find at all: " + "; ".join(
        f"{kind}: {share:.0%} of the queries found nothing" for kind, share in missed.items()) + ".", ""]  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    main()
