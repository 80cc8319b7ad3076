"""The reconciliation report as a reader sees it: counts in words, and a chart whose axes and
labels stay inside the drawing whatever the number of days."""

from __future__ import annotations

import re

import pytest

from migration_tools.reconciliation.recompute import Discrepancy
from migration_tools.reconciliation.reports import write_html
from migration_tools.reconciliation.run import ReconcileResult
from migration_tools.reconciliation.wording import count, kind_count, kinds_line


def test_counts_speak_correct_plurals():
    assert count(1, "batch", "batches") == "1 batch" and count(2, "batch", "batches") == "2 batches"
    assert count(0, "record") == "0 records" and count(12_500, "record") == "12,500 records"
    assert (
        kind_count(2, "tampered_record") == "2 tampered records"
        and kind_count(1, "tampered_batch") == "1 tampered batch"
    )
    assert kind_count(3, "tampered_batch") == "3 tampered batches"
    assert kinds_line({"tampered_record": 1, "missing_record": 2}) == "1 tampered record, 2 missing records"
    assert kinds_line({}) == "no discrepancy"


def render(tmp_path, **kw) -> str:
    result = ReconcileResult(started_at="2026-12-01T10:00:00+00:00", **kw)
    write_html(result, tmp_path / "r.html")
    return (tmp_path / "r.html").read_text()


def texts(svg: str) -> list[tuple[float, str, str]]:
    """(x, text-anchor, text) of every label of the first chart."""
    return [(float(x), anchor, t) for x, anchor, t in
            re.findall(r'<text class="tick" x="([\d.]+)" y="[\d.]+" text-anchor="(\w+)">([^<]*)</text>', svg)]  # fmt: skip


@pytest.mark.parametrize("days", [1, 2, 7, 40])
def test_the_chart_has_readable_axes_and_nothing_clipped(tmp_path, days):
    timeline = [(f"2026-{1 + i // 28:02d}-{1 + i % 28:02d}", 1000 * (i + 1)) for i in range(days)]
    html = render(tmp_path, timeline=timeline)
    svg = html[html.index("<svg") : html.index("</svg>")]
    width = float(re.search(r'<svg width="(\d+)"', svg).group(1))
    labels = texts(svg)
    top = 1000 * days
    assert {t for _, a, t in labels if a == "end"} == {"0", f"{top // 2:,}", f"{top:,}"}  # the y axis: 0, half, top
    dates = [(x, t) for x, a, t in labels if a == "middle"]
    assert dates[0][1] == timeline[0][0] and dates[-1][1] == timeline[-1][0] and len(dates) <= 6
    char = 6.5  # an 11px system-ui digit is at most this wide
    for x, anchor, text in labels:  # nothing runs off either edge
        half = len(text) * char / 2
        left, right = (x - 2 * half, x) if anchor == "end" else (x - half, x + half)
        assert left >= 0 and right <= width, (text, x)
    assert all(b - a >= len(dates[0][1]) * char for (a, _), (b, _) in zip(dates, dates[1:], strict=False))
    bars = [float(w) for w in re.findall(r'<rect x="[\d.]+" y="[\d.]+" width="([\d.]+)"', svg)]
    assert len(bars) == days and max(bars) <= 48  # one day is a bar, not a block across the chart
    assert "records anchored" in svg and "day (UTC)" in svg
    assert f"<title>{timeline[0][0]}: 1,000 records</title>" in svg


def test_the_report_counts_in_words(tmp_path):
    html = render(tmp_path, timeline=[("2026-12-01", 1)], discrepancies=[
        Discrepancy("tampered_record", "instrument A was changed", 0, "A"),
        Discrepancy("tampered_record", "instrument B was changed", 0, "B"),
        Discrepancy("tampered_batch", "batch 0 does not rebuild", 0),
    ], healed={"records": 1, "batches": 1})  # fmt: skip
    assert "3 discrepancies found" in html
    assert "2 tampered records" in html and "1 tampered batch<" in html
    assert "1 record of 1 lost batch re-queued" in html
    assert "<title>2026-12-01: 1 record</title>" in html
    one = render(tmp_path, discrepancies=[Discrepancy("missing_record", "gone", 0, "A")])
    assert "1 discrepancy found" in one and "1 missing record<" in one
