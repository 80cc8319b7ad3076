"""Reconciliation reports: HTML for people, JSON for machines, CSV of the discrepancies."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from migration_tools.reconciliation.run import CLEAN_KINDS, ReconcileResult

_ENV = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=select_autoescape(["html"]))


def write_json(result: ReconcileResult, path: Path) -> None:
    path.write_text(json.dumps(result.to_json(), indent=2, default=str) + "\n", encoding="utf-8")


def write_csv(result: ReconcileResult, path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["kind", "batch_id", "instrument_number", "message", "expected", "found"])
        for d in result.discrepancies:
            w.writerow([d.kind, d.batch_id, d.instrument_number or "", d.message, d.expected or "", d.found or ""])


def write_html(result: ReconcileResult, path: Path, *, desk_url: str = "") -> None:
    chart = _chart(result.timeline)
    html = _ENV.get_template("reconcile.html").render(
        r=result, clean_kinds=CLEAN_KINDS, chart=chart, desk_url=desk_url.rstrip("/"),
        problems=[d for d in result.discrepancies if d.kind not in CLEAN_KINDS],
        notes=[d for d in result.discrepancies if d.kind in CLEAN_KINDS],
    )  # fmt: skip
    path.write_text(html, encoding="utf-8")


def _chart(timeline: list[tuple[str, int]], width: int = 720, height: int = 160) -> dict:
    """Bars of records anchored per day, as SVG geometry (no script, no external files)."""
    if not timeline:
        return {"bars": [], "width": width, "height": height, "max": 0}
    top = max(n for _, n in timeline)
    step = width / len(timeline)
    bars = [
        {"x": round(i * step, 1), "w": max(1.0, round(step * 0.8, 1)), "h": round(n / top * (height - 20), 1),
         "day": day, "n": n}
        for i, (day, n) in enumerate(timeline)
    ]  # fmt: skip
    return {"bars": bars, "width": width, "height": height, "max": top}
