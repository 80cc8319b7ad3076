"""Run one benchmark on two checkouts, alternating, so both see the same machine.

    python bench/ab.py --a ../before --b . --rounds 2 -- migration.py --sizes 100000 --eth-tester 0
    python bench/ab.py --a ../before --b . --rounds 2 -- service_load.py --db postgres --seconds 20

Each checkout runs with its own virtual environment (``CHECKOUT/.venv``, as ``make setup`` makes
it) and its own copy of the benchmark script, A then B, round after round. What each run prints
is kept in ``bench/out/ab-<script>[-<tag>]-<a|b>-<round>.txt`` and shown at the end, side by side by round.
The spread between rounds of the same checkout is the run-to-run noise to compare a difference with.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"


def run(checkout: Path, script: str, args: list[str], log: Path) -> float:
    python = checkout / ".venv" / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LANDREG_") and k != "DATABASE_URL"}
    env["PYTHONDONTWRITEBYTECODE"] = ""  # both sides keep their bytecode, as `make` runs them
    started = time.perf_counter()
    with log.open("w") as out:
        done = subprocess.run([str(python), str(checkout / "bench" / script), *args], cwd=checkout, env=env,
                              stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    if done.returncode != 0:
        sys.exit(f"{checkout} {script} exited {done.returncode}: see {log}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--a", type=Path, required=True, help="the first checkout (e.g. the previous commit)")
    parser.add_argument("--b", type=Path, required=True, help="the second checkout")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tag", default="", help="added to the output files' names (e.g. the database)")
    parser.add_argument("script", help="a script under bench/, e.g. migration.py")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="its arguments")
    opts = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    stem = Path(opts.script).stem + (f"-{opts.tag}" if opts.tag else "")
    logs: list[tuple[int, str, Path, float]] = []
    for r in range(1, opts.rounds + 1):
        for label, checkout in (("a", opts.a.resolve()), ("b", opts.b.resolve())):
            log = OUT / f"ab-{stem}-{label}-{r}.txt"
            seconds = run(checkout, opts.script, opts.args, log)
            print(f"round {r} {label} ({checkout}): {seconds:.0f} s", flush=True)
            logs.append((r, label, log, seconds))
    for r, label, log, _ in logs:
        print(f"\n===== round {r}, {label} =====\n{log.read_text()[-4000:]}")


if __name__ == "__main__":
    main()
