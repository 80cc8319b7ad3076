"""The third way of a parallel-run reconciliation: the legacy database against landreg's mirror.

Every document of the attached legacy database is read (one streamed pass, as a sync reads it)
and its rows' fingerprint compared with the one landreg holds; then landreg's side is read for
what the legacy database does not account for. Kinds, each naming the legacy key:

* ``not_mirrored``: in the legacy database, not (yet) in landreg;
* ``quarantined``: in the legacy database, refused by landreg (the reason is given);
* ``changed_in_legacy``: edited in the legacy database, either already mirrored as a new version
  (the flag, with the fields that changed) or not yet (the follower has not caught up);
* ``deleted_in_legacy``: gone from the legacy database, flagged or not yet;
* ``unknown_to_legacy``: a record landreg holds that no legacy document accounts for.

Each says whether the version landreg holds was anchored already. A flag an operator acknowledged
is no longer a discrepancy (it is counted apart).
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from hybrid_store.db.engine import Database
from hybrid_store.db.models import AnchorBatch, BatchRecord, BatchState, Instrument, LegacyDocument, MirrorFlag
from migration_tools.legacy.layout import Layout, stored_layout
from migration_tools.legacy.mapping import fingerprint
from migration_tools.legacy.sync import connect, read_url, scrubbed, source_of
from migration_tools.reconciliation.recompute import Discrepancy

KINDS = ("not_mirrored", "quarantined", "changed_in_legacy", "deleted_in_legacy", "unknown_to_legacy")
LISTED = 1_000  # unknown_to_legacy records listed one by one (the count is always complete)


def check(db: Database, name: str, report: Callable[[Discrepancy], None],
          say: Callable[[str], None] = lambda _m: None) -> dict[str, Any]:  # fmt: skip
    """Report each divergence between the legacy database ``name`` and landreg; returns the
    summary (counts and the parallel run's history by day)."""
    source = source_of(db, name)
    three = _ThreeWay(db, source.id, report)
    layout = stored_layout(source.layout_text)
    say(f"reading every document of the legacy database {name!r}")
    three.compare_documents(layout, read_url(source.url_env, source.url_file))
    three.pending_deletions()
    three.flagged()
    unknown = _unknown_to_legacy(db)
    for _iid, number in unknown[:LISTED]:
        three.found("unknown_to_legacy", "", "landreg holds it; no legacy document accounts for it", number)
    three.counts["unknown_to_legacy"] = len(unknown)
    return {"source": name, "layout": layout.name, "counts": dict(three.counts), "history": _history(db, source.id)}


class _ThreeWay:
    def __init__(self, db: Database, source_id: int, report: Callable[[Discrepancy], None]):
        self.held, self.numbers, self.anchored, self.flags = _landreg_side(db, source_id)
        self.report = report
        self.counts: Tally = Tally()

    def found(self, kind: str, key: str, message: str, number: str | None = None, expected: str | None = None,
              got: str | None = None) -> None:  # fmt: skip
        self.counts[kind] += 1
        self.report(Discrepancy(kind, message, None, number, expected, got, legacy_key=key))

    def state_of(self, iid: int | None) -> str:
        return "anchored" if iid in self.anchored else "not anchored yet"

    def compare_documents(self, layout: Layout, url: str) -> None:
        legacy = connect(layout, url)
        try:
            for rows in scrubbed(url, legacy.documents()):
                if rows.document is not None:  # rows without a document are not a record (a sync quarantines them)
                    self.counts["legacy_documents"] += 1
                    self.one(rows.key, self.held.pop(rows.key, None), fingerprint(layout, rows))
        finally:
            legacy.engine.dispose()

    def one(self, key: str, known: tuple | None, fp: bytes) -> None:
        if known is None or known[1] == "deleted":
            self.found("not_mirrored", key, "in the legacy database, not in landreg")
            return
        held_fp, state, iid, version, reason = known
        number = self.numbers.get(iid) if iid else None
        if fp != held_fp and iid is None:
            self.found("not_mirrored", key, "quarantined before; its rows changed since: the follower retries it")
        elif fp != held_fp:
            self.found("changed_in_legacy", key, f"not mirrored yet: the legacy rows changed since landreg's "
                       f"version {version} ({self.state_of(iid)})", number)  # fmt: skip
        elif state == "quarantined":
            self.found("quarantined", key, f"refused by landreg: {reason}", number)

    def pending_deletions(self) -> None:
        for key, (_fp, state, iid, _version, _reason) in sorted(self.held.items()):
            if state == "loaded":
                self.found("deleted_in_legacy", key, "not mirrored yet: gone from the legacy database "
                           f"({self.state_of(iid)})", self.numbers.get(iid) if iid else None)  # fmt: skip

    def flagged(self) -> None:
        self.counts["acknowledged_flags"] = 0
        for flag, number, successor, key in self.flags:
            if flag.acknowledged_at is not None:
                self.counts["acknowledged_flags"] += 1
            elif flag.kind == "changed_in_legacy":
                fields = ", ".join(sorted(flag.diff or {})) or "no committed field"
                self.found("changed_in_legacy", key, f"mirrored: superseded by {successor} (changed: {fields}); the "
                           f"replaced version was {self.state_of(flag.instrument_id)}", number, expected=number,
                           got=successor)  # fmt: skip
            else:
                self.found("deleted_in_legacy", key, "mirrored: flagged; the deleted version was "
                           f"{self.state_of(flag.instrument_id)}", number)  # fmt: skip


def _landreg_side(db: Database, source_id: int) -> tuple[dict, dict[int, str], set[int], list]:
    d = LegacyDocument
    with db.read() as s:
        held = {k: (bytes(fp), st, iid, v, r) for k, fp, st, iid, v, r in s.execute(
            select(d.legacy_key, d.fingerprint, d.state, d.instrument_id, d.version, d.reason)
            .where(d.source_id == source_id))}  # fmt: skip
        numbers = dict(s.execute(select(Instrument.id, Instrument.instrument_number).where(
            Instrument.id.in_(select(d.instrument_id).where(d.source_id == source_id, d.instrument_id.is_not(None)))
            | Instrument.id.in_(select(MirrorFlag.instrument_id)) | Instrument.id.in_(select(MirrorFlag.successor_id))
        )).all())  # fmt: skip
        anchored = set(s.scalars(select(BatchRecord.instrument_id).join(AnchorBatch, AnchorBatch.id == BatchRecord.batch_id)
                                 .where(AnchorBatch.state == BatchState.CONFIRMED)))  # fmt: skip
        flags = [(f, numbers.get(f.instrument_id), numbers.get(f.successor_id) if f.successor_id else None,
                  f.legacy_key) for f in s.scalars(select(MirrorFlag).where(MirrorFlag.source_id == source_id)
                                                   .order_by(MirrorFlag.id))]  # fmt: skip
    return held, numbers, anchored, flags


def _unknown_to_legacy(db: Database) -> list[tuple[int, str]]:
    """Records no legacy document accounts for: not any document's version, not a replaced one."""
    with db.read() as s:
        return list(s.execute(
            select(Instrument.id, Instrument.instrument_number)
            .where(~Instrument.id.in_(select(LegacyDocument.instrument_id).where(LegacyDocument.instrument_id.is_not(None))))
            .where(~Instrument.id.in_(select(MirrorFlag.instrument_id)))
            .order_by(Instrument.id)
        ).all())  # fmt: skip


def _history(db: Database, source_id: int) -> list[dict[str, Any]]:
    """Per day: documents first mirrored, mirrored records anchored, divergences flagged."""
    days: dict[str, dict[str, int]] = {}

    def add(rows: Any, what: str) -> None:
        for day, n in rows:
            label = day.isoformat()[:10] if isinstance(day, datetime) else str(day)[:10]
            days.setdefault(label, {"mirrored": 0, "anchored": 0, "diverging": 0})[what] += int(n)

    d = LegacyDocument
    with db.read() as s:
        add(s.execute(select(func.date(d.first_seen_at), func.count()).where(d.source_id == source_id,
                      d.state != "quarantined").group_by(func.date(d.first_seen_at))).all(), "mirrored")  # fmt: skip
        mirrored = select(d.instrument_id).where(d.source_id == source_id, d.instrument_id.is_not(None))
        add(s.execute(select(func.date(AnchorBatch.confirmed_at), func.count())
                      .join(BatchRecord, BatchRecord.batch_id == AnchorBatch.id)
                      .where(BatchRecord.instrument_id.in_(mirrored), AnchorBatch.confirmed_at.is_not(None))
                      .group_by(func.date(AnchorBatch.confirmed_at))).all(), "anchored")  # fmt: skip
        add(s.execute(select(func.date(MirrorFlag.created_at), func.count()).where(MirrorFlag.source_id == source_id)
                      .group_by(func.date(MirrorFlag.created_at))).all(), "diverging")  # fmt: skip
    return [{"day": day, **v} for day, v in sorted(days.items())]
