"""Reconciliation reports: HTML for people, JSON for machines, CSV of the discrepancies."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from migration_tools.reconciliation import wording
from migration_tools.reconciliation.run import CLEAN_KINDS, ReconcileResult

_ENV = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=select_autoescape(["html"]))
_ENV.filters["count"] = wording.count
_ENV.filters["kind_count"] = lambda n, kind: wording.kind_count(n, kind)


def write_json(result: ReconcileResult, path: Path) -> None:
    path.write_text(json.dumps(result.to_json(), indent=2, default=str) + "\n", encoding="utf-8")


def write_csv(result: ReconcileResult, path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        # legacy_key and fields last: readers of the two-way report's columns keep working
        w.writerow(["kind", "batch_id", "instrument_number", "message", "expected", "found", "legacy_key", "fields"])
        for d in result.discrepancies:
            w.writerow([d.kind, d.batch_id, d.instrument_number or "", d.message, d.expected or "", d.found or "",
                        d.legacy_key or "", " ".join(d.fields or ())])  # fmt: skip


def write_html(result: ReconcileResult, path: Path, *, desk_url: str = "") -> None:
    chart = _chart(result.timeline)
    html = _ENV.get_template("reconcile.html").render(
        r=result, clean_kinds=CLEAN_KINDS, chart=chart, desk_url=desk_url.rstrip("/"),
        legacy_chart=_legacy_chart(result.legacy["history"] if result.legacy else []),
        problems=[d for d in result.discrepancies if d.kind not in CLEAN_KINDS],
        notes=[d for d in result.discrepancies if d.kind in CLEAN_KINDS],
    )  # fmt: skip
    path.write_text(html, encoding="utf-8")


#: room around the plot for the axes' labels, so that none is clipped by the drawing's edge
_LEFT, _RIGHT, _TOP, _BOTTOM = 72, 64, 14, 44
_MAX_BAR = 48  # one day's bar stays a bar, not a block across the whole chart
_X_LABELS = 6  # at most this many time labels, evenly spread


def _chart(timeline: list[tuple[str, int]], width: int = 720, height: int = 220) -> dict:
    """Bars of records anchored per bucket (minute, hour or day: ``run._timeline`` picks one for
    the span), as SVG geometry with a y axis (0, half, top) and time labels under the bars (no
    script, no external files)."""
    if not timeline:
        return {"bars": [], "width": width, "height": height, "max": 0}
    top = max(n for _, n in timeline) or 1
    plot_w, plot_h = width - _LEFT - _RIGHT, height - _TOP - _BOTTOM
    step = plot_w / len(timeline)
    w = min(_MAX_BAR, max(1.0, round(step * 0.8, 1)))
    bars: list[dict[str, Any]] = []
    for i, (day, n) in enumerate(timeline):
        h = round(n / top * plot_h, 1)
        cx = _LEFT + i * step + step / 2
        bars.append({"x": round(cx - w / 2, 1), "cx": round(cx, 1), "w": w, "h": h, "y": round(_TOP + plot_h - h, 1),
                     "day": day, "n": n})  # fmt: skip
    every = max(1, -(-len(bars) // _X_LABELS))
    labelled = [b for i, b in enumerate(bars) if i % every == 0 or i == len(bars) - 1]
    if len(labelled) > 1 and labelled[-1]["cx"] - labelled[-2]["cx"] < plot_w / _X_LABELS:
        del labelled[-2]  # the last bucket's label would overlap the one before it
    ticks = sorted({0, top // 2, top}) if top > 1 else [0, top]
    return {
        "bars": bars, "width": width, "height": height, "max": top, "left": _LEFT, "right": width - _RIGHT,
        "top": _TOP, "base": _TOP + plot_h,
        "x_labels": [{"x": b["cx"], "text": b["day"]} for b in labelled],
        "y_ticks": [{"y": round(_TOP + plot_h - t / top * plot_h, 1), "text": f"{t:,}"} for t in ticks],
        "unit": _unit(timeline[0][0]),
    }  # fmt: skip


def _unit(label: str) -> str:
    """The bucket ``run._timeline`` chose, from the shape of its labels."""
    if len(label) == 10:
        return "day"
    return "hour" if label.endswith(":00") else "minute"


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
