"""Benchmark: ``landreg legacy import csv`` alone, its peak memory and time, and what it loaded.

    python bench/csv_import.py --documents 370000                       # this tree's code
    python bench/csv_import.py --documents 370000 --before /tmp/old     # and another tree's, same export
    python bench/csv_import.py --documents 1000000 --messy --write docs/benchmarks.md

The synthetic Bergen book is written as a ``landreg-export`` folder once
(``migration_tools.synthetic.write_csv_export``; ``--messy`` shuffles the child tables and damages
about one row in 500), then each tree's ``landreg legacy import csv`` loads it into a fresh
``LANDREG_HOME`` on SQLite, as IT staff would run it. ``--before DIR`` names a source tree of other
code (e.g. ``git archive COMMIT | tar -x -C DIR``), run with ``PYTHONPATH=DIR``: the two loads are
then compared, the quarantine files byte for byte and every table's rows, all but the random salt
seeds (the command draws them fresh on every load) and the load's own times.

Peak memory is the command's own high-water mark of resident memory (``VmHWM`` in
``/proc/PID/status``, which only grows, read every 0.1 s); CPU is its user + system time. (The
``ru_maxrss`` that ``wait4`` gives would count the benchmark's own memory at the fork: Linux keeps
the larger of the two across ``exec``. The export is written in a process of its own for that too.)
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
MARK = "bench/csv_import.py"
# what differs between two loads of the same records by design: salt seeds are drawn at random, and
# these columns hold the time of the load
VARYING = {"salt_seed", "created_at", "pinned_at", "at"}


def run_import(tree: Path, export: Path, home: Path) -> dict:
    from legacy_sync import home_env

    env = home_env(home.parent, home.name, {"PYTHONPATH": str(tree)})
    quarantine = home / "quarantine.csv"
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "registry_service.cli.main", "legacy", "import", "csv", str(export),
         "--quarantine", str(quarantine)],
        env=env, cwd=tree, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    peak = [0]
    watcher = threading.Thread(target=high_water, args=(proc, peak), daemon=True)
    watcher.start()
    out = proc.stdout.read() if proc.stdout else ""
    watcher.join()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"import with {tree} failed:\n{out[-3000:]}")
    return {"tree": tree, "seconds": seconds, "cpu": usage.ru_utime + usage.ru_stime, "peak_mb": peak[0] / 1024,
            "home": home, "quarantine": quarantine, **counts(home / "landreg.db", quarantine)}  # fmt: skip


def high_water(proc: subprocess.Popen, peak: list[int]) -> None:
    """The process's VmHWM (kB) until it exits: the last reading is its peak, bar its last 0.1 s."""
    status = Path(f"/proc/{proc.pid}/status")
    while True:
        try:
            text = status.read_text()
        except OSError:
            return
        if "VmHWM" not in text:  # a zombie: it has exited, nothing more to read
            return
        peak[0] = max(peak[0], int(text.split("VmHWM:")[1].split()[0]))
        time.sleep(0.1)


def counts(db: Path, quarantine: Path) -> dict:
    with sqlite3.connect(db) as conn:
        loaded = conn.execute("SELECT count(*) FROM instruments").fetchone()[0]
    quarantined = 0
    if quarantine.exists():
        import csv

        with open(quarantine, encoding="utf-8", newline="") as f:
            quarantined = sum(1 for _ in csv.reader(f)) - 1
    return {"loaded": loaded, "quarantined": quarantined}


def table_digests(db: Path) -> dict[str, str]:
    """Each table's rows in rowid order (the load's order), the varying columns left out."""
    out = {}
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        for table in tables:
            columns = [r[1] for r in conn.execute(f"PRAGMA table_info({table})") if r[1] not in VARYING]
            if not columns or table == "alembic_version":
                continue
            h = hashlib.sha256()
            for row in conn.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY rowid"):
                h.update(repr(row).encode())
            out[table] = h.hexdigest()
    return out


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else "(none)"


def render(args, runs: list[dict], same: str | None) -> str:
    load = os.getloadavg()
    lines = [
        f"Command: `python bench/csv_import.py --documents {args.documents}{' --messy' if args.messy else ''}"
        f"{' --before TREE' if args.before else ''}` ({date.today()}, {os.cpu_count()} cores, SQLite store, "
        f"load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f})",
        "",
        "| code | documents | records loaded | quarantined | `legacy import csv` s | CPU s | documents/s | peak MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        lines.append(
            f"| {r['label']} | {args.documents:,} | {r['loaded']:,} | {r['quarantined']:,} | {r['seconds']:.1f} | "
            f"{r['cpu']:.1f} | {args.documents / r['seconds']:,.0f} | {r['peak_mb']:.0f} |"
        )
    if same is not None:
        lines += ["", same]
    return "\n".join(lines)


def compare(before: dict, after: dict) -> str:
    q_before, q_after = file_digest(before["quarantine"]), file_digest(after["quarantine"])
    t_before, t_after = table_digests(before["home"] / "landreg.db"), table_digests(after["home"] / "landreg.db")
    differ = sorted(t for t in t_before.keys() | t_after.keys() if t_before.get(t) != t_after.get(t))
    if q_before != q_after or differ:
        return f"**The loads differ**: quarantine {q_before[:12]} / {q_after[:12]}; tables {', '.join(differ)}"
    rows = hashlib.sha256("".join(t_after[t] for t in sorted(t_after)).encode()).hexdigest()
    return (f"Same loads: quarantine files byte for byte (sha256 {q_after[:16]}…), and the rows of all "
            f"{len(t_after)} tables (sha256 of their digests {rows[:16]}…; salt seeds and load times left out).")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=370_000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--messy", action="store_true", help="child tables in no order, one row in 500 damaged")
    parser.add_argument("--before", type=Path, help="a source tree whose import to run on the same export first")
    parser.add_argument("--export", type=Path, help="write (or reuse, if it is there) the export in this folder")
    parser.add_argument("--write", type=Path, help="update this Markdown file between the bench markers")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="landreg-bench-csv-") as tmp:
        export = args.export or Path(tmp) / "export"
        if not (export / "documents.csv").exists():
            started = time.perf_counter()
            code = (
                "from pathlib import Path; from migration_tools.synthetic import write_csv_export as w; "
                f"w(Path({str(export)!r}), {args.documents}, {args.seed}, messy={args.messy})"
            )  # (a process of its own: see above)
            subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
            print(f"wrote {args.documents:,} documents in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        trees = [("before", args.before.resolve())] if args.before else []
        runs = []
        for label, tree in [*trees, ("this tree", ROOT)]:
            home = Path(tmp) / f"home-{len(runs)}"
            run = run_import(tree, export, home) | {"label": label}
            print(f"[{label}] {run['seconds']:.1f} s, {run['peak_mb']:.0f} MB", file=sys.stderr)
            runs.append(run)
        same = compare(runs[0], runs[1]) if args.before else None
        for run in runs:
            shutil.rmtree(run["home"], ignore_errors=True)
    text_out = render(args, runs, same)
    print(text_out)
    if args.write:
        from service_load import write_section

        write_section(args.write, MARK, "## `legacy import csv` in bounded memory (issue 25)\n\n" + text_out)


if __name__ == "__main__":
    main()
