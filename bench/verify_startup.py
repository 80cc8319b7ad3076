"""Benchmark: how long `landreg verify` takes to start, and what it imports (issue 23, item 5).

    git archive <earlier commit> | tar -x -C /tmp/before      # the tree to compare with
    python bench/verify_startup.py --bundle B.json --trust T.json --rpc URL --before /tmp/before \\
        [--runs 5] [--write docs/benchmarks.md]

Runs ``python -m registry_service.cli.main verify BUNDLE --trust TRUST`` (offline: the UNCHECKED
path) and the same with ``--rpc`` (the VALID path), ``--runs`` times each, from this tree and from
the ``--before`` tree, and reports the median wall time, the import time ``python -X importtime``
reports (the sum of the top-level imports' cumulative times, median of as many runs), the number of modules
imported and which of the heavy libraries were. The bundle and the trust root come from any
registry (`landreg demo` writes both: reports/demo/*.json and trust/root.json).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.service_load import write_section

MARK = "bench/verify_startup.py"
HERE = Path(__file__).resolve().parents[1]
HEAVY = ("web3", "sqlalchemy", "fastapi", "eth_account", "pydantic_settings", "httpx")


def command(bundle: Path, trust: Path, rpc: str | None) -> list[str]:
    args = [sys.executable, "-m", "registry_service.cli.main", "verify", str(bundle), "--trust", str(trust)]
    return args + (["--rpc", rpc] if rpc else [])


def run(tree: Path, args: list[str], *, importtime: bool = False) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    full = [args[0], "-X", "importtime", *args[1:]] if importtime else args
    return subprocess.run(full, capture_output=True, text=True, env=env, cwd="/", check=False)


def imports(stderr: str) -> tuple[float, list[str]]:
    """(seconds importing, as the top-level imports' cumulative times add up; every module imported)."""
    total_us, names = 0, []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = (part.strip() for part in line.removeprefix("import time:").split("|"))
        raw = line.rsplit("|", 1)[1]
        names.append(name)
        if not raw.startswith("  "):  # a top-level import (nested ones are indented further)
            total_us += int(cumulative)
    return total_us / 1e6, names


def measure(tree: Path, args: list[str], runs: int) -> dict[str, object]:
    walls = []
    for _ in range(runs):
        started = time.perf_counter()
        done = run(tree, args)
        walls.append(time.perf_counter() - started)
    measured = [imports(run(tree, args, importtime=True).stderr) for _ in range(runs)]
    seconds, names = statistics.median(m[0] for m in measured), measured[-1][1]
    return {
        "wall": statistics.median(walls), "min": min(walls), "max": max(walls), "imports": seconds,
        "modules": len(names), "heavy": [h for h in HEAVY if h in names], "exit": done.returncode,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--trust", type=Path, required=True)
    parser.add_argument("--rpc", required=True)
    parser.add_argument("--before", type=Path, required=True, help="a source tree of the version to compare with")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--write", type=Path)
    a = parser.parse_args()
    rows = []
    for label, rpc in (("offline (UNCHECKED)", None), ("--rpc (VALID)", a.rpc)):
        for version, tree in (("before", a.before), ("after", HERE)):
            m = measure(tree, command(a.bundle, a.trust, rpc), a.runs)
            rows.append(f"| {label} | {version} | {m['wall']:.2f} s ({m['min']:.2f}–{m['max']:.2f}) | "
                        f"{m['imports']:.2f} s | {m['modules']} | {', '.join(m['heavy']) or 'none'} | {m['exit']} |")  # fmt: skip
            print(rows[-1], flush=True)
    table = "\n".join([
        f"`python bench/verify_startup.py --bundle B.json --trust T.json --rpc URL --before TREE --runs {a.runs}` "
        f"(wall time: median of {a.runs} runs, min–max; imports: the median of {a.runs} `python -X importtime` runs):",
        "",
        "| command | version | wall time | imports | modules | heavy libraries imported | exit |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ])  # fmt: skip
    if a.write:
        write_section(a.write, MARK, table)


if __name__ == "__main__":
    main()
