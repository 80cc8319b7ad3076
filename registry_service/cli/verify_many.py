"""`landreg verify PATH...` with many bundles: a folder, a JSON-lines file, or several files.

Each bundle that is not VALID (offline: not UNCHECKED) is named as it is found, with where it is
(its file, or FILE:LINE) and the reason in the verifier's words; then the totals per verdict, and an
exit status that is the worst verdict's. ``--report FILE`` lists every bundle's verdict (CSV or JSON
lines); a progress bar shows on stderr when it is a terminal. The verification is
``hybrid_store.verifier.bulk``'s; this module only reads the command line and prints.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, NoReturn

import typer

from registry_service.cli.common import VERDICT_EXIT, console, err_console, fail

#: a progress bar is redrawn after this many bundles (asking the time per bundle costs more)
_PROGRESS_EVERY = 512


def verify_many(
    paths: Sequence[Path], rpc: str | None, pinned: Any, *, depth: int, as_json: bool, report: Path | None
) -> NoReturn:
    """Verify every bundle ``paths`` hold against ``pinned`` (a TrustRoot, or None), print what a
    run found, and exit with the worst verdict's status."""
    from hybrid_store.verifier import bulk

    inputs = bulk.Inputs(paths, skip=report)
    verifier = bulk.Bulk(pinned, rpc_url=rpc, depth=depth)
    tally, named = bulk.Tally(), []
    started = time.perf_counter()
    with _report(report) as write, _progress(inputs) as advance:
        done = 0
        for item in inputs:
            checked = verifier.check(item)
            tally.add(checked)
            write(checked)
            if checked.status in bulk.NAMED:
                named.append(checked)
                if not as_json:
                    _name(checked)
            done += item.size
            if tally.total % _PROGRESS_EVERY == 0:
                advance(done)
    elapsed = time.perf_counter() - started
    if tally.worst is None:
        shown = ", ".join(str(p) for p in paths)
        raise fail(f"no bundle found in {shown}", "a folder is searched for *.json files (in its sub-folders too); "
                   "a *.jsonl file holds a bundle a line", code=2)  # fmt: skip
    status = VERDICT_EXIT[tally.worst]
    if as_json:
        console.out(json.dumps({"bundles": tally.total, "totals": tally.counts, "standings": tally.standings,
                                "worst": tally.worst, "exit": status, "seconds": round(elapsed, 3),
                                "named": [c.row() for c in named]}, indent=2, ensure_ascii=False),
                    highlight=False)  # fmt: skip
    else:
        _totals(tally, elapsed, trusted=pinned is not None, online=verifier.chain is not None)
        if report is not None:
            console.print(f"every bundle's verdict: {report}", markup=False, highlight=False)
    raise typer.Exit(status)


_COLOUR = {"invalid": "red", "valid": "green"}


def _name(checked: Any) -> None:
    colour = _COLOUR.get(checked.status, "yellow")
    what = f" (instrument {checked.number})" if checked.number else ""
    console.print(f"[{colour}]{checked.status.upper()}[/{colour}] ", end="", highlight=False)
    console.print(f"{checked.where}{what}: {checked.reason}", markup=False, highlight=False)


def _totals(tally: Any, elapsed: float, *, trusted: bool, online: bool) -> None:
    from hybrid_store.verifier import bulk

    rate = f", {tally.total / elapsed:,.0f} a second" if elapsed > 0 else ""
    plural = "" if tally.total == 1 else "s"
    console.print(f"{tally.total:,} bundle{plural} verified in {elapsed:.1f} s{rate}:", highlight=False)
    for status in reversed(bulk.SEVERITY):
        count = tally.counts[status]
        if not count:
            continue
        note = ""
        if status == bulk.VALID:
            note = "; ".join(f"{kind.replace('_', ' ')} {n:,}" for kind, n in sorted(tally.standings.items()))
        elif status in bulk.NAMED:
            note = "each named above"
        elif status == bulk.UNCHECKED and not trusted:
            note = "the math holds; no trust root was given (--trust FILE|URL), so nothing says they are the registry's"
        elif status == bulk.UNCHECKED and not online:
            note = "the math holds; the anchors were not checked on chain (add --rpc URL: each batch's once)"
        console.print(f"  {status.upper():<12}{count:>12,}" + (f"   {note}" if note else ""), markup=False,
                      highlight=False)  # fmt: skip
    worst = tally.worst
    console.print(f"exit status {VERDICT_EXIT[worst]}: the worst verdict, {worst.upper()}", highlight=False)


@contextmanager
def _report(path: Path | None) -> Iterator[Any]:
    """A function that writes a bundle's row to ``path`` (CSV for *.csv, else JSON lines), or does nothing."""
    if path is None:
        yield lambda checked: None
        return
    try:
        f: IO[str] = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise fail(f"cannot write the report {path}: {exc.strerror}", code=2) from None
    with f:
        if path.suffix.lower() == ".csv":
            from hybrid_store.verifier.bulk import REPORT_COLUMNS

            writer = csv.DictWriter(f, fieldnames=REPORT_COLUMNS)
            writer.writeheader()
            yield lambda checked: writer.writerow(checked.row())
        else:
            yield lambda checked: f.write(json.dumps(checked.row(), ensure_ascii=False) + "\n")


@contextmanager
def _progress(inputs: Any) -> Iterator[Any]:
    """A function that moves a progress bar on stderr to the bytes read so far; a bar only when
    stderr is a terminal (rich's progress module is imported only then)."""
    if not err_console.is_terminal:
        yield lambda done: None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("verifying"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
                   console=err_console, transient=True)  # fmt: skip
    with bar:
        task = bar.add_task("verifying", total=inputs.size())
        yield lambda done: bar.update(task, completed=done)
