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
        # legacy_key last: readers of the two-way report's columns keep working
        w.writerow(["kind", "batch_id", "instrument_number", "message", "expected", "found", "legacy_key"])
        for d in result.discrepancies:
            w.writerow([d.kind, d.batch_id, d.instrument_number or "", d.message, d.expected or "", d.found or "",
                        d.legacy_key or ""])  # fmt: skip


def write_html(result: ReconcileResult, path: Path, *, desk_url: str = "") -> None:
    chart = _chart(result.timeline)
    html = _ENV.get_template("reconcile.html").render(
        r=result, clean_kinds=CLEAN_KINDS, chart=chart, desk_url=desk_url.rstrip("/"),
        legacy_chart=_legacy_chart(result.legacy["history"] if result.legacy else []),
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


_SERIES = (("mirrored", "#0b5cad"), ("anchored", "#1f7a3a"), ("diverging", "#b3261e"))


def _legacy_chart(history: list[dict], width: int = 720, height: int = 160) -> dict:
    """Three bars a day (mirrored, anchored, diverging) on a log scale: a first sync of 370,000
    records and a handful of divergences must both be visible."""
    import math

    if not history:
        return {"days": [], "width": width, "height": height, "max": 0}
    top = max(max(h[k] for k, _ in _SERIES) for h in history) or 1
    step = width / len(history)
    scale = (height - 20) / math.log10(top + 1)
    days = []
    for i, h in enumerate(history):
        w = max(1.0, round(step * 0.8 / 3, 1))
        bars = [{"x": round(i * step + j * w, 1), "w": w, "h": round(math.log10(h[k] + 1) * scale, 1), "n": h[k],
                 "what": k, "color": color} for j, (k, color) in enumerate(_SERIES)]  # fmt: skip
        days.append({"day": h["day"], "bars": bars})
    return {"days": days, "width": width, "height": height, "max": top}
