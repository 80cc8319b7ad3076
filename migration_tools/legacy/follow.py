"""Following a county's recorder database in a parallel run (``landreg legacy sync --follow``).

Each poll asks the change capture (``capture.py``) which documents changed, reads those documents
as they are now, and decides, per document, by comparing the fingerprint of its rows with the one
landreg holds:

- unknown to landreg: a **new record**, committed at once and anchored through the outbox like a
  filing (a record loaded by the first sync waits for its migration stage instead);
- known, rows changed: a **new version** (``<number>-V<n>``) that commits to the version it
  supersedes, which is flagged ``changed_in_legacy`` with the field-by-field difference;
- known, gone from the legacy database: the version is flagged ``deleted_in_legacy``;
- unchanged: nothing (so reading a change twice, or resuming after a crash, records nothing twice).

Each document's outcome is one transaction: its record, its new fingerprint, its flag and the
owners of record of its parcels, which follow the legacy system. The cursor is saved after the
documents it covers are done, so a killed follower reads them again and finds them unchanged.
A **sweep** compares every legacy document's fingerprint with landreg's at start and then
periodically: it finds what capture missed (deletions and untouched-watermark edits under the
watermark method, anything from before the triggers were installed).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hybrid_store import mirror
from hybrid_store.db.engine import Database
from hybrid_store.db.models import Instrument, LegacyDocument, LegacySource, MirrorFlag
from hybrid_store.errors import Conflict, InvalidInstrument, LandregError
from hybrid_store.filing import record_instruments
from hybrid_store.intake import validate
from hybrid_store.jurisdictions import Profile
from migration_tools.legacy import capture
from migration_tools.legacy.database import LegacyDatabase
from migration_tools.legacy.layout import Layout, stored_layout
from migration_tools.legacy.mapping import LegacyRows, fingerprint, map_document
from migration_tools.legacy.sync import connect, guarded, reach, read_url, scrubbed, source_of

log = logging.getLogger(__name__)
GONE = b"\0" * 32  # the fingerprint kept for a document deleted in the legacy database
ALARMS_KEPT = 20  # forged change-log numbers named in the report


@dataclass
class FollowReport:
    source: str
    method: str
    polls: int = 0
    sweeps: int = 0
    changes: int = 0  # change-log rows or modified documents read
    new: int = 0
    versions: int = 0
    deleted: int = 0
    quarantined: int = 0
    unchanged: int = 0
    gaps_open: int = 0
    anchored: int = 0
    last_poll_at: str | None = None
    reasons: dict[str, int] = field(default_factory=dict)
    alarms: int = 0  # change-log rows read that the database did not number (capture.TriggerCursor)
    implausible: list[int] = field(default_factory=list)  # the latest of their numbers

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class _Known:
    id: int
    state: str
    fingerprint: bytes
    instrument_id: int | None
    version: int
    raw_keys: tuple[str, ...] = ()


class Follower:
    """One follower of the attached legacy database ``name`` (one at a time per registry)."""

    def __init__(
        self, db: Database, profile: Profile, *, name: str = "county", method: str | None = None,
        gap_timeout: float = 600.0, lookback: float = 300.0, anchor: Callable[[], int] | None = None,
    ) -> None:  # fmt: skip
        self.db = db
        self.profile = profile
        source = source_of(db, name)
        self.source_id, self.name = source.id, name
        self.layout: Layout = stored_layout(source.layout_text)
        self.url = read_url(source.url_env, source.url_file)
        self.legacy: LegacyDatabase = connect(self.layout, self.url)
        reach(self.url, self.legacy.engine)
        logged = guarded(self.url, lambda: capture.has_change_log(self.legacy))
        chosen = method or source.capture or ("trigger" if logged else "watermark")
        if chosen == "watermark" and self.layout.documents.modified is None:
            raise LandregError(f"the layout {self.layout.name!r} names no modified column for the watermark method: "
                               "install trigger capture (`landreg legacy install-capture`)")  # fmt: skip
        if chosen == "trigger" and not logged:
            raise LandregError(f"no change log ({capture.CHANGE_LOG}) in the legacy database: run "
                               "`landreg legacy install-capture` with DDL rights, or use --capture watermark")  # fmt: skip
        self.method = chosen
        stored = source.cursor if (source.cursor or {}).get("method") == chosen else None
        self.cursor = capture.cursor_for(chosen, stored, gap_timeout=gap_timeout, lookback=lookback)
        self.fresh = stored is None
        self.anchor = anchor
        self.report = FollowReport(source=name, method=chosen)

    def close(self) -> None:
        self.legacy.engine.dispose()

    # --- the loop ------------------------------------------------------------------------------------
    def start(self) -> None:
        """A new cursor starts now; a sweep covers whatever happened before it."""
        if self.fresh:
            guarded(self.url, lambda: self.cursor.start(self.legacy))
        self.sweep()

    def poll(self) -> capture.Poll:
        """Read what changed since the cursor, mirror it, then save the cursor."""
        polled = guarded(self.url, lambda: self.cursor.poll(self.legacy))
        self.report.polls += 1
        self.report.changes += polled.changes
        self.report.gaps_open = polled.gaps_open
        if polled.implausible:
            self._alarm(polled.implausible)
        self.apply(polled.keys, polled.forms)
        self._save()
        return polled

    def _alarm(self, numbers: list[int]) -> None:
        """Change-log rows the database did not number: someone with rights on the log wrote them."""
        self.report.alarms += len(numbers)
        self.report.implausible = sorted({*self.report.implausible, *numbers})[-ALARMS_KEPT:]
        log.error("the change log %s holds rows numbered %s that its counter did not hand out in order (written by "
                  "hand?): check who may write it and delete them; the cursor is at %s",
                  capture.CHANGE_LOG, ", ".join(str(n) for n in numbers[:5]) + (" …" if len(numbers) > 5 else ""),
                  self.cursor.state().get("seq"))  # fmt: skip

    def sweep(self) -> set[str]:
        """Every legacy document's fingerprint against landreg's; mirrors what differs."""
        held = self._fingerprints()
        differ: set[str] = set()
        forms: dict[str, set[str]] = {}
        for rows in scrubbed(self.url, self.legacy.documents()):
            known = held.pop(rows.key, None)
            if known is None or known[1] == "deleted" or known[0] != fingerprint(self.layout, rows):
                differ.add(rows.key)
                forms[rows.key] = set(rows.raw_keys)
        differ.update(k for k, (_, state) in held.items() if state != "deleted")  # gone from the legacy database
        self.apply(differ, forms)
        self.report.sweeps += 1
        with self.db.write() as s:
            s.execute(update(LegacySource).where(LegacySource.id == self.source_id)
                      .values(last_sweep_at=datetime.now(UTC)))  # fmt: skip
        self._save()
        return differ

    def run(self, *, interval: float, sweep_every: float, stop: Callable[[], bool],
            on_poll: Callable[[FollowReport], None] | None = None) -> FollowReport:  # fmt: skip
        self.start()
        last_sweep = time.monotonic()
        while not stop():
            started = time.monotonic()
            self.poll()
            if sweep_every and time.monotonic() - last_sweep >= sweep_every:
                self.sweep()
                last_sweep = time.monotonic()
            if on_poll:
                on_poll(self.report)
            rest = interval - (time.monotonic() - started)
            while rest > 0 and not stop():
                time.sleep(min(rest, 0.2))
                rest -= 0.2
        return self.report

    def _save(self) -> None:
        self.report.last_poll_at = datetime.now(UTC).isoformat(timespec="seconds")
        with self.db.write() as s:
            s.execute(update(LegacySource).where(LegacySource.id == self.source_id).values(
                capture=self.method, cursor=self.cursor.state(), last_sync_at=datetime.now(UTC),
                last_sync={"follow": self.report.to_json()}))  # fmt: skip

    def _fingerprints(self) -> dict[str, tuple[bytes, str]]:
        d = LegacyDocument
        with self.db.read() as s:
            rows = s.execute(select(d.legacy_key, d.fingerprint, d.state).where(d.source_id == self.source_id))
            return {k: (bytes(fp), state) for k, fp, state in rows}

    # --- mirroring documents ------------------------------------------------------------------------
    def apply(self, keys: Iterable[str], forms: dict[str, set[str]] | None = None) -> None:
        """Mirror the documents of ``keys`` as they are now (``forms``: how their keys are stored,
        where not normalised, as the change log or a sweep saw them)."""
        wanted = sorted(set(keys))
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            known = self._known(chunk)
            stored_as = {k: {*(forms or {}).get(k, ()), *(known[k].raw_keys if k in known else ())} for k in chunk}
            current: dict[str, LegacyRows | None] = guarded(
                self.url, functools.partial(self.legacy.fetch, chunk, stored_as)
            )
            numbers = self._correction_numbers([r for r in current.values() if r is not None])
            for key in chunk:
                self._one(key, current.get(key), known.get(key), numbers)
        if self.anchor is not None and (self.report.new or self.report.versions):
            self.report.anchored += self.anchor()

    def _known(self, keys: list[str]) -> dict[str, _Known]:
        d = LegacyDocument
        with self.db.read() as s:
            rows = s.execute(select(d.legacy_key, d.id, d.state, d.fingerprint, d.instrument_id, d.version, d.raw_keys)
                             .where(d.source_id == self.source_id, d.legacy_key.in_(keys)))  # fmt: skip
            return {k: _Known(i, st, bytes(fp), iid, v, tuple(raw or ())) for k, i, st, fp, iid, v, raw in rows}

    def _correction_numbers(self, found: list[LegacyRows]) -> dict[str, str]:
        """The legacy numbers of the documents these correct, from what landreg holds."""
        refs = self.layout.references
        if refs is None or refs.corrects is None:
            return {}
        targets = {str(r.get(refs.corrects.target) or "").strip().upper() for rows in found for r in rows.references}
        targets.discard("")
        if not targets:
            return {}
        d = LegacyDocument
        with self.db.read() as s:
            rows = s.execute(select(d.legacy_key, Instrument.instrument_number)
                             .join(Instrument, Instrument.id == d.instrument_id)
                             .where(d.source_id == self.source_id, d.legacy_key.in_(sorted(targets))))  # fmt: skip
            return {k: mirror.base_number(n) for k, n in rows}

    def _one(self, key: str, rows: LegacyRows | None, known: _Known | None, numbers: dict[str, str]) -> None:
        if rows is None or rows.document is None:
            if known is not None and known.state == "loaded":
                self._deleted(key, known)  # a version landreg holds: flagged
                return
            if rows is None:
                if known is not None and known.state == "quarantined":
                    with self.db.write() as s:  # never loaded: nothing to flag
                        self._state(s, key, known, state="deleted", fp=GONE, instrument_id=known.instrument_id,
                                    version=known.version)  # fmt: skip
                return
            # rows without their document: quarantined below, as the first sync does
        rows = replace(rows, fingerprint=fingerprint(self.layout, rows))
        if known is not None and known.state != "deleted" and known.fingerprint == rows.fingerprint:
            self.report.unchanged += 1
            return
        record = map_document(self.layout, rows, numbers)
        data = dict(record.data) if record.data is not None else None
        version = 1
        if data is not None and known is not None and known.instrument_id is not None:
            version = known.version + 1
            data["instrument_number"] = mirror.version_number(str(data.get("instrument_number") or ""), version)
        try:
            if record.problem is not None or data is None:
                raise _Quarantine(record.column or "(record)", record.problem or "unreadable")
            inst = validate(data, profile=self.profile)
            with self.db.write() as s:
                self._record(s, key, known, inst, version, rows.fingerprint, rows.raw_keys)
        except _Unchanged:  # its rows changed, the record they make did not: no new version
            assert known is not None
            with self.db.write() as s:
                self._state(s, key, known, state="loaded", fp=rows.fingerprint, instrument_id=known.instrument_id,
                            version=known.version, raw_keys=rows.raw_keys)  # fmt: skip
            self.report.unchanged += 1
        except InvalidInstrument as exc:
            self._quarantine(key, known, rows, exc.errors[0].field, "; ".join(str(e) for e in exc.errors))
        except Conflict as exc:
            self._quarantine(key, known, rows, "instrument_number", str(exc))
        except _Quarantine as exc:
            self._quarantine(key, known, rows, exc.field, exc.reason)

    def _record(self, s: Session, key: str, known: _Known | None, inst: Any, version: int, fp: bytes,
                raw_keys: tuple[str, ...]) -> None:  # fmt: skip
        old = known.instrument_id if known is not None else None
        [made] = record_instruments(s, [inst], source="legacy", mirror=[old])
        if old is not None:
            flagged = s.scalar(select(MirrorFlag).where(MirrorFlag.instrument_id == old))
            if flagged is None:
                if not mirror.flag_replaced(s, self.source_id, key, old, made.instrument_id):
                    raise _Unchanged  # rolls the new version back with the transaction
            else:  # deleted, now back: the deletion's flag names what replaced it
                flagged.successor_id = made.instrument_id
            self.report.versions += 1
        else:
            self.report.new += 1
        mirror.recompute_owners(s, mirror.parcels_of(s, [made.instrument_id] + ([old] if old else [])))
        self._state(s, key, known, state="loaded", fp=fp, instrument_id=made.instrument_id, version=version,
                    raw_keys=raw_keys)  # fmt: skip

    def _deleted(self, key: str, known: _Known) -> None:
        with self.db.write() as s:
            if known.instrument_id is not None:
                if s.scalar(select(MirrorFlag.id).where(MirrorFlag.instrument_id == known.instrument_id)) is None:
                    mirror.flag_deleted(s, self.source_id, key, known.instrument_id)
                mirror.recompute_owners(s, mirror.parcels_of(s, [known.instrument_id]))
            self._state(s, key, known, state="deleted", fp=GONE, instrument_id=known.instrument_id,
                        version=known.version)  # fmt: skip
        self.report.deleted += 1

    def _quarantine(self, key: str, known: _Known | None, rows: LegacyRows, field_name: str, reason: str) -> None:
        self.report.quarantined += 1
        label = reason.split(":")[0][:80]
        self.report.reasons[label] = self.report.reasons.get(label, 0) + 1
        log.warning("legacy document %s quarantined: %s", key, reason)
        with self.db.write() as s:
            # a version that cannot be read leaves the last good one in place (and its number)
            self._state(s, key, known, state="quarantined", fp=rows.fingerprint,
                        instrument_id=known.instrument_id if known else None, version=known.version if known else 1,
                        field_name=field_name, reason=reason, raw_keys=rows.raw_keys)  # fmt: skip

    def _state(self, s: Session, key: str, known: _Known | None, *, state: str, fp: bytes, instrument_id: int | None,
               version: int, field_name: str | None = None, reason: str | None = None,
               raw_keys: tuple[str, ...] | None = None) -> None:  # fmt: skip
        now = datetime.now(UTC)
        values: dict[str, Any] = {"state": state, "fingerprint": fp, "instrument_id": instrument_id, "version": version,
                                  "field": field_name[:64] if field_name else None, "reason": reason,
                                  "synced_at": now}  # fmt: skip
        if raw_keys is not None:  # (a deletion keeps what was known)
            values["raw_keys"] = list(raw_keys) or None
        if known is None:
            s.add(LegacyDocument(source_id=self.source_id, legacy_key=key, first_seen_at=now, **values))
        else:
            s.execute(update(LegacyDocument).where(LegacyDocument.id == known.id).values(**values))


class _Unchanged(Exception):
    """A document whose rows changed but whose record did not (a keyed-wrong edit undone, case)."""


class _Quarantine(Exception):
    def __init__(self, field_name: str, reason: str):
        super().__init__(reason)
        self.field, self.reason = field_name, reason
