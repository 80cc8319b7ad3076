"""Loading a legacy book into the deed database: any source, one rule book.

Every source adapter yields ``SourceRecord``s: the instrument (as ``InstrumentInput`` fields) or
the reason it could not be read, with where it came from (line, column). Each instrument is then
validated exactly as a filing would be and written in chunks, *without* a commitment: the
records wait for a migration stage. Nothing stops the load on one bad record: it goes to the
quarantine file (CSV: where, which field, why, the raw text) and the load goes on, so
``loaded + quarantined == records in the source`` always holds.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TextIO

from sqlalchemy.orm import Session

from hybrid_store.db.engine import Database
from hybrid_store.errors import Conflict, InvalidInstrument
from hybrid_store.filing import Recorded, record_instruments
from hybrid_store.intake import InstrumentInput, validate
from hybrid_store.jurisdictions import Profile, get_profile
from hybrid_store.numbering import raise_numbering_floor
from migration_tools.collector import bulk_run

CHUNK = 2_000
#: what a load writes, and the search and the pages read back (their statistics refreshed at the end)
LOADED_TABLES = ("instruments", "instrument_parties", "party_name_keys", "instrument_terms", "instrument_parcels",
                 "instrument_references", "parcels", "title_flags")  # fmt: skip


@dataclass(frozen=True)
class SourceRecord:
    """One record of a source: ``data`` to validate, or ``problem`` when it could not be read."""

    where: str  # "line 17", "document D-00042"
    raw: str
    data: dict[str, Any] | None = None
    problem: str | None = None
    column: str | None = None  # "345-350" or a CSV column
    key: str | None = None  # the legacy database's key of the document (database sources)
    fingerprint: bytes | None = None  # of the legacy rows it was made from (database sources)
    raw_keys: tuple[str, ...] = ()  # the key as stored, where it differs from ``key`` (database sources)
    raw_of: Callable[[], str] | None = None  # ``raw`` made only when shown (a database source's rows)

    def shown(self) -> str:
        """The source text, as the quarantine file shows it."""
        return self.raw_of() if self.raw_of is not None else self.raw


# --- reading a streamed book a record at a time ----------------------------------------------------------
#: SR1A lines are 663 characters and CSV records a few hundred; one far longer is damage or an attack,
#: and is quarantined without being read into memory
MAX_RECORD_CHARS = 65_536
_SHOWN = 200  # characters of an over-long record kept for the quarantine file


class RecordTooLong(Exception):
    """A record longer than its reader's bound (``shown``: how it starts)."""

    def __init__(self, limit: int, shown: str):
        super().__init__(f"longer than {limit:,} characters")
        self.shown = shown[:_SHOWN] + "…"


class BoundedLines:
    """The lines of ``f`` (endings kept) for a reader that takes one record from one or more lines:
    ``__next__`` raises ``RecordTooLong`` once the lines since ``new_record()`` exceed ``limit``
    characters, having skipped the rest of that record unkept: to the end of the line or, with
    ``quoted`` (CSV), to the first line end outside a quoted field (a quote inside one is doubled,
    so an odd count of quotes means a field is still open). An iterator object, not a generator, so
    it goes on after raising; csv's reader starts a fresh record on its next call."""

    def __init__(self, f: TextIO, limit: int = MAX_RECORD_CHARS, *, quoted: bool = False):
        self.f, self.limit, self.quoted = f, limit, quoted
        self.used = self.quotes = 0

    def __iter__(self) -> BoundedLines:
        return self

    def new_record(self) -> None:
        self.used = self.quotes = 0

    def _read(self) -> str:
        line = self.f.readline(self.limit + 1)
        if self.quoted:
            self.quotes += line.count('"')
        return line

    def __next__(self) -> str:
        line = self._read()
        if not line:
            raise StopIteration
        self.used += len(line.rstrip("\r\n"))
        if self.used > self.limit:
            shown = line
            while line and not (line.endswith(("\n", "\r")) and self.quotes % 2 == 0):
                line = self._read()
            self.new_record()
            raise RecordTooLong(self.limit, shown)
        return line


class Journal(Protocol):
    """What a load tells its caller, record by record (a database sync keeps its own state)."""

    def loaded(self, session: Session, made: list[tuple[SourceRecord, Recorded]]) -> None:
        """Called inside the transaction that wrote them."""

    def quarantined(self, rec: SourceRecord, field: str, reason: str) -> None: ...

    def flush(self) -> None:
        """Called after each chunk: write what ``quarantined`` collected."""


@dataclass
class ImportReport:
    source: str
    records: int = 0
    loaded: int = 0
    quarantined: int = 0
    quarantine_file: str | None = None
    reasons: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class _Quarantine:
    def __init__(self, path: Path):
        self.path = path
        self._file: TextIO | None = None
        self._writer: Any = None

    def add(self, where: str, column: str | None, field_name: str, reason: str, raw: str) -> None:
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # backslashreplace: a lone surrogate in a source's raw text must not abort the load here
            self._file = open(self.path, "w", newline="", encoding="utf-8", errors="backslashreplace")  # noqa: SIM115
            self._writer = csv.writer(self._file)
            self._writer.writerow(["where", "column", "field", "reason", "raw"])
        self._writer.writerow([where, column or "", field_name, reason, raw])

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def import_records(
    db: Database,
    source: Iterable[SourceRecord],
    *,
    name: str,
    quarantine: Path,
    progress: Callable[[ImportReport], None] | None = None,
    now: datetime | None = None,
    profile: Profile | None = None,
    journal: Journal | None = None,
    seed: Callable[[], bytes] | None = None,
) -> ImportReport:
    """Validate (under the registry's jurisdiction ``profile``) and load every record of ``source``;
    quarantine the rest with their reasons. ``journal`` hears of each record's fate. ``seed`` makes
    the records' salt seeds (random unless given: a test fixes it to compare two loads byte for byte)."""
    started = time.perf_counter()
    load = _Load(db, ImportReport(source=name), _Quarantine(quarantine), now or datetime.now(UTC), progress,
                 profile or get_profile(), journal, seed)  # fmt: skip
    try:
        with bulk_run():  # a whole book: the collector's full passes would rescan a growing heap
            for rec in source:
                load.take(rec)
            load.flush()
            load.settle()
    finally:
        try:
            load.close()
        finally:
            load.quarantine.close()
    with db.write() as s:
        raise_numbering_floor(s)  # filings must never be handed a number this load just used
    db.refresh_statistics(LOADED_TABLES)
    report = load.report
    report.quarantine_file = str(quarantine) if report.quarantined else None
    report.seconds = time.perf_counter() - started
    return report


class _Load:
    """One load: validated records written in chunks, bad ones quarantined, the counts kept.

    Without a journal, a full chunk is written by a thread of its own while the next one is read and
    validated (the database works while Python does: both cores). What the load does stays in the
    order it always had: a chunk is settled (counted, retried record by record if it failed, shown)
    before the next chunk goes, and the records read meanwhile are quarantined only after it."""

    def __init__(self, db: Database, report: ImportReport, quarantine: _Quarantine, now: datetime,
                 progress: Callable[[ImportReport], None] | None, profile: Profile,
                 journal: Journal | None, seed: Callable[[], bytes] | None = None):  # fmt: skip
        self.db = db
        self.report = report
        self.quarantine = quarantine
        self.now = now
        self.progress = progress
        self.profile = profile
        self.journal = journal
        self.seed = seed
        self.chunk: list[tuple[SourceRecord, InstrumentInput]] = []
        # a journal hears of each record in order, inside its chunk's transaction: no writer thread then
        self.writer = ThreadPoolExecutor(1, thread_name_prefix="landreg-load") if journal is None else None
        self.writing: tuple[list[tuple[SourceRecord, InstrumentInput]], Future[None]] | None = None
        self.held: list[tuple[SourceRecord, str, str]] = []  # rejections of records read while a chunk is written

    def take(self, rec: SourceRecord) -> None:
        self.report.records += 1
        if rec.problem is not None:
            self.reject(rec, rec.column or "(record)", rec.problem)
            return
        try:
            self.chunk.append((rec, validate(rec.data, now=self.now, profile=self.profile)))
        except InvalidInstrument as exc:
            self.reject(rec, exc.errors[0].field, "; ".join(str(e) for e in exc.errors))
            return
        if len(self.chunk) >= CHUNK:
            self.flush()

    def reject(self, rec: SourceRecord, field_name: str, reason: str) -> None:
        if self.writing is not None:
            self.held.append((rec, field_name, reason))
            return
        self.report.quarantined += 1
        key = reason.split(":")[0][:80]
        self.report.reasons[key] = self.report.reasons.get(key, 0) + 1
        self.quarantine.add(rec.where, rec.column, field_name, reason, rec.shown())
        if self.journal is not None:
            self.journal.quarantined(rec, field_name, reason)

    def flush(self) -> None:
        """Write the chunk read so far (after settling the one before it)."""
        self.settle()
        if not self.chunk:
            return
        chunk, self.chunk = self.chunk, []
        if self.writer is None:
            self._settle(chunk, None)
        else:
            self.writing = (chunk, self.writer.submit(self._write, chunk))

    def settle(self) -> None:
        """Wait for the chunk being written, then do what follows it, then quarantine what was held."""
        if self.writing is None:
            return
        chunk, future = self.writing
        self.writing = None
        self._settle(chunk, future)
        held, self.held = self.held, []
        for rec, field_name, reason in held:
            self.reject(rec, field_name, reason)

    def close(self) -> None:
        """Settle a chunk still being written (a source that failed cut the load short)."""
        try:
            self.settle()
        finally:
            if self.writer is not None:
                self.writer.shutdown()

    def _settle(self, chunk: list[tuple[SourceRecord, InstrumentInput]], written: Future[None] | None) -> None:
        try:
            if written is None:
                self._write(chunk)
            else:
                written.result()
            self.report.loaded += len(chunk)
        except (Conflict, InvalidInstrument):
            for item in chunk:  # find the offending ones: each on its own
                rec = item[0]
                try:
                    self._write([item])
                    self.report.loaded += 1
                except InvalidInstrument as exc:
                    self.reject(rec, exc.errors[0].field, str(exc))
                except Conflict as exc:
                    self.reject(rec, "instrument_number", str(exc))
        if self.journal is not None:
            self.journal.flush()
        if self.progress:
            self.progress(self.report)

    def _write(self, chunk: list[tuple[SourceRecord, InstrumentInput]]) -> None:
        with self.db.write() as s:
            instruments = [inst for _, inst in chunk]
            if self.seed is None:
                made = record_instruments(s, instruments, source="legacy", with_commitments=False, now=self.now)
            else:
                made = record_instruments(s, instruments, source="legacy", with_commitments=False, now=self.now,
                                          seed=self.seed)  # fmt: skip
            if self.journal is not None:
                by_number = {m.instrument_number: m for m in made}
                self.journal.loaded(s, [(rec, by_number[inst.instrument_number or ""]) for rec, inst in chunk])


def synthetic_source(instruments: int, seed: int) -> Iterator[SourceRecord]:
    """The synthetic Bergen book as a source (always valid; the import path is the same)."""
    from migration_tools.synthetic import BergenBook

    for i, item in enumerate(BergenBook(instruments, seed=seed), start=1):
        yield SourceRecord(where=f"record {i}", raw=item["instrument_number"], data=item)
