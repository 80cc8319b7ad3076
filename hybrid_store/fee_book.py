"""The fees recorded with instruments, and the recorder's daily fee report.

``record`` writes an instrument's fee statement (the one its submission was given at examination) in
the caller's transaction, beside the instrument; ``stored_statement`` and ``statement_of`` give it
back, exactly as stored; ``day_report`` is what a clerk reconciles with the till at the end of the
recorder's day. Statements are never worked out again here: a new fee schedule changes no
recorded instrument's fees.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from hybrid_store.core.records import format_timestamp
from hybrid_store.db.models import Instrument, InstrumentFee, table
from hybrid_store.fees import dollars

REPORT_FORMAT = "landreg-fee-report/v1"


def record(s: Session, instrument_id: int, recorded_at: datetime, day: date, statement: dict[str, Any]) -> None:
    """Record ``statement`` as the fees of instrument ``instrument_id``, recorded at ``recorded_at``
    on the recorder's ``day`` (append-only: one per instrument)."""
    # a Core INSERT: the ORM's unit of work costs a filing more CPU than the statement itself
    s.connection().execute(insert(table(InstrumentFee)), {
        "instrument_id": instrument_id, "day": day, "recorded_at": recorded_at,
        "total_cents": statement.get("totalCents"), "statement": statement, "created_at": datetime.now(UTC)})  # fmt: skip


def stored_statement(s: Session, instrument_id: int) -> dict[str, Any] | None:
    """The fee statement recorded with instrument ``instrument_id``, as JSON
    (``landreg-fee-statement/v1``, docs/fees.md): its lines (code, words, statute, payer, cents,
    amount), ``totalCents`` (None when it was incomplete: ``missing`` says what), ``byPayer``,
    ``notes`` and the ``schedule`` entries it was worked out under. None when the instrument has
    none (recorded before fees, loaded from a legacy book, or under a jurisdiction without a
    schedule). For the certificate of recording and signed receipts: it never changes."""
    return s.scalar(select(InstrumentFee.statement).where(InstrumentFee.instrument_id == instrument_id))


def statement_of(s: Session, instrument_number: str) -> dict[str, Any] | None:
    """``stored_statement`` of the instrument numbered ``instrument_number`` (None: no such
    instrument, or no statement)."""
    return s.scalar(select(InstrumentFee.statement).join(Instrument, Instrument.id == InstrumentFee.instrument_id)
                    .where(Instrument.instrument_number == instrument_number))  # fmt: skip


def day_report(s: Session, day: date, timezone: str) -> dict[str, Any]:
    """The fees of every instrument recorded on the recorder's ``day`` (in ``timezone``), in the order
    recorded: each with its number, time, type, pages, lines and total; then the totals per fee
    line, per payer and overall, and the count. An instrument whose statement was incomplete is
    listed with what it lacked and counted in ``incomplete``; its lines still add to the totals."""
    rows = s.execute(
        select(Instrument.instrument_number, Instrument.doc_type, Instrument.page_count, InstrumentFee.recorded_at,
               InstrumentFee.statement)
        .join(Instrument, Instrument.id == InstrumentFee.instrument_id)
        .where(InstrumentFee.day == day).order_by(InstrumentFee.recorded_at, InstrumentFee.instrument_id)
    ).all()  # fmt: skip
    by_line: dict[str, int] = {}
    by_payer: dict[str, int] = {}
    instruments = []
    for number, doc_type, pages, recorded_at, statement in rows:
        lines = statement.get("lines", [])
        for line in lines:
            by_line[line["code"]] = by_line.get(line["code"], 0) + line["cents"]
            by_payer[line["payer"]] = by_payer.get(line["payer"], 0) + line["cents"]
        instruments.append({
            "instrumentNumber": number, "recordedAt": format_timestamp(recorded_at), "docType": doc_type,
            "pageCount": pages, "lines": [{k: line[k] for k in ("code", "payer", "cents", "amount")} for line in lines],
            "totalCents": sum(line["cents"] for line in lines), "complete": bool(statement.get("complete")),
            "missing": [m["field"] for m in statement.get("missing", [])],
        })  # fmt: skip
    total = sum(by_line.values())
    return {
        "format": REPORT_FORMAT, "day": day.isoformat(), "timezone": timezone, "count": len(instruments),
        "instruments": instruments, "byLine": by_line, "byPayer": by_payer, "totalCents": total,
        "total": dollars(total), "incomplete": sum(1 for i in instruments if not i["complete"]),
    }  # fmt: skip


def report_csv_rows(report: dict[str, Any]) -> list[list[str]]:
    """The report as CSV rows: one per fee line of each instrument, then the totals (amounts in
    dollars and cents, as the till counts them)."""
    out = [["instrument_number", "recorded_at", "doc_type", "pages", "fee", "payer", "amount"]]
    for inst in report["instruments"]:
        for line in inst["lines"]:
            out.append([inst["instrumentNumber"], inst["recordedAt"], inst["docType"], str(inst["pageCount"] or ""),
                        line["code"], line["payer"], _plain(line["cents"])])  # fmt: skip
    out += [["total", "", "", "", code, "", _plain(cents)] for code, cents in sorted(report["byLine"].items())]
    out += [["total", "", "", "", "", payer, _plain(cents)] for payer, cents in sorted(report["byPayer"].items())]
    out.append(["total", "", "", "", "", "", _plain(report["totalCents"])])
    return out


def _plain(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"
