"""Attaching to the county's recorder database, and loading what it holds (``landreg legacy attach``
and ``landreg legacy sync``).

**The secret stays outside.** A legacy database is named by an SQLAlchemy URL that carries its
password, so landreg stores only *where* the URL is: the name of an environment variable or the
path of a file. The URL is read when a command needs it, and is never printed, logged, written to
landreg's database or a report, or shown by ``/readyz``; error messages from drivers are scrubbed
of it before anyone sees them.

**A sync loads exactly as ``legacy import`` does**: every document is validated like a filing under
the registry's jurisdiction and loaded, or quarantined with its reason (``loaded + quarantined ==
documents read`` on the first sync). landreg remembers, per document, what it made of it and the
fingerprint of the rows it was made from: a later sync reads only what changed, and a quarantined
document is tried again once its rows change. Corrections are loaded after the documents they
correct.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session

from hybrid_store.db.engine import Database
from hybrid_store.db.models import LegacyDocument, LegacySource
from hybrid_store.errors import ConfigurationError, LandregError, NotFound
from hybrid_store.filing import Recorded
from hybrid_store.jurisdictions import Profile
from migration_tools.legacy.database import Inspection, LegacyDatabase, LegacyDatabaseError, open_engine
from migration_tools.legacy.importer import ImportReport, SourceRecord, import_records
from migration_tools.legacy.layout import Layout, LayoutError, load_layout, rename_tables, stored_layout
from migration_tools.legacy.mapping import LegacyRows, fingerprint, map_document

PAGE = 1_000  # documents whose state is looked up at once
DEFAULT_SOURCE = "county"


class SecretError(ConfigurationError):
    hint = "export the variable (or write the file) with the legacy database's SQLAlchemy URL, e.g. mysql+mysqldb://…"


# --- where the URL is ----------------------------------------------------------------------------------
def read_url(url_env: str | None, url_file: str | None) -> str:
    """The legacy database's URL, from the environment variable or the file named at attach."""
    return well_formed(_read_url(url_env, url_file))


def well_formed(url: str) -> str:
    """``url``, or ``SecretError`` if it is malformed. The message quotes no part of it: in a URL
    whose password has an unencoded ``@``, ``/`` or ``#``, the parser takes part of the password
    for the host or the database, and a driver's error would then show that part."""
    rest = url.partition("://")[2].split("?", 1)[0]
    userinfo, at, _ = rest.rpartition("@")
    malformed = not rest or (at and any(c in userinfo for c in "@/#")) or "#" in rest
    if not malformed:
        try:
            parsed = make_url(url)
            malformed = any(c in (parsed.host or "") for c in "@/#")
        except (ArgumentError, ValueError):
            malformed = True
    if malformed:
        raise SecretError(
            "the legacy database's URL is malformed: write it as dialect+driver://user:password@host:port/database, "
            "with @ / # : in the user name or password percent-encoded (%40 %2F %23 %3A)"
        )
    return url


def _read_url(url_env: str | None, url_file: str | None) -> str:
    if url_env:
        url = os.environ.get(url_env, "").strip()
        if not url:
            raise SecretError(f"the environment variable {url_env} holding the legacy database's URL is not set")
        return url
    if url_file:
        path = Path(url_file)
        try:
            mode = path.stat().st_mode
            url = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SecretError(f"cannot read the legacy database's URL from {url_file}: {exc.strerror}") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise SecretError(f"{url_file} holds a password and others may read it: chmod 600 {url_file}")
        if not url:
            raise SecretError(f"{url_file} is empty: it should hold the legacy database's URL")
        return url
    raise SecretError("name where the legacy database's URL is: --url-env VAR or --url-file PATH")


def scrub(message: str, url: str) -> str:
    """``message`` with the URL and its password taken out."""
    secrets = [url]
    with contextlib.suppress(ArgumentError, ValueError):
        parsed = make_url(url)
        if parsed.password:
            secrets.append(str(parsed.password))
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            message = message.replace(secret, "***")
    return message


def connect(layout: Layout, url: str) -> LegacyDatabase:
    try:
        return LegacyDatabase(open_engine(url), layout)
    except (ArgumentError, SQLAlchemyError, ImportError, ValueError) as exc:
        raise LegacyDatabaseError(f"cannot open the legacy database: {scrub(str(exc), url)}") from None


def shown_url(url: str) -> str:
    """What may be shown of a URL: its dialect and driver only."""
    with contextlib.suppress(ArgumentError, ValueError):
        parsed = make_url(url)
        return f"{parsed.drivername} database"
    return "a database"


# --- attach ------------------------------------------------------------------------------------------
@dataclass
class Attached:
    name: str
    layout: str
    dialect: str
    inspection: Inspection
    code_table_rows: int


def attach(
    db: Database, profile: Profile, *, layout_ref: str | Path, url_env: str | None, url_file: str | None,
    name: str = DEFAULT_SOURCE, actor: str, table_names: Mapping[str, str] | None = None,
) -> Attached:  # fmt: skip
    """Check the layout against the legacy database (read-only) and remember the attachment.
    ``table_names`` maps the layout's table names to the database's (``rename_tables``); the
    stored layout reads the database's."""
    layout, layout_json = load_layout(layout_ref)
    if table_names:
        layout = rename_tables(layout, table_names)
        layout_json = layout.model_dump_json(by_alias=True)
    if layout.jurisdiction != profile.name:
        raise LayoutError(
            f"the layout {layout.name!r} names parcels of {layout.jurisdiction!r}, but this registry is "
            f"{profile.name!r} (LANDREG_JURISDICTION)"
        )
    url = read_url(url_env, url_file)
    legacy = connect(layout, url)
    try:
        inspection = guarded(url, legacy.inspect)
        if inspection.problems:
            raise LegacyDatabaseError(
                "the legacy database does not match the layout: " + "; ".join(inspection.problems)
            )
        codes = guarded(url, legacy.code_rows)
    finally:
        legacy.engine.dispose()
    if codes:  # the code table lives in the legacy database: keep a copy with the layout
        table = layout.doc_types.code_table
        assert table is not None
        layout = layout.model_copy(update={"doc_types": layout.doc_types.model_copy(
            update={"code_table": table.model_copy(update={"rows": codes})})})  # fmt: skip
        layout_json = layout.model_dump_json(by_alias=True)
    with db.write() as s:
        row = s.scalar(select(LegacySource).where(LegacySource.name == name))
        values = {"layout_name": layout.name, "layout_text": layout_json,
                  "layout_sha256": hashlib.sha256(layout_json.encode()).hexdigest(), "url_env": url_env,
                  "url_file": str(Path(url_file).resolve()) if url_file else None, "dialect": inspection.dialect,
                  "jurisdiction": profile.name, "attached_by": actor, "attached_at": datetime.now(UTC)}  # fmt: skip
        if row is None:
            s.add(LegacySource(name=name, **values))
        else:
            for k, v in values.items():
                setattr(row, k, v)
    table = layout.doc_types.code_table
    return Attached(name, layout.name, inspection.dialect, inspection, len(table.rows) if table else 0)


def guarded(url: str, call: Callable[[], Any]) -> Any:
    """Driver errors, with the URL scrubbed out of them."""
    try:
        return call()
    except LandregError:
        raise
    except Exception as exc:  # a driver's error may quote the connection string
        raise LegacyDatabaseError(f"the legacy database answered: {scrub(str(exc), url)}") from None


def reach(url: str, engine: Engine) -> None:
    """Connect once, or say in one line that the legacy database cannot be reached (the driver's
    own words name hosts and users, and are no help to someone whose server is down)."""
    try:
        with engine.connect():
            pass
    except (SQLAlchemyError, OSError):
        raise LegacyDatabaseError(f"cannot connect to the legacy database ({shown_url(url)}): it is not running, "
                                  "or the URL's host, port, user or password is wrong") from None  # fmt: skip


def source_of(db: Database, name: str = DEFAULT_SOURCE) -> LegacySource:
    with db.read() as s:
        row = s.scalar(select(LegacySource).where(LegacySource.name == name))
    if row is None:
        raise NotFound(f"no legacy database attached as {name!r}: run `landreg legacy attach` first")
    return row


# --- sync --------------------------------------------------------------------------------------------
@dataclass
class SyncReport:
    source: str
    layout: str
    documents: int = 0  # documents read from the legacy database (orphan rows count as one per key)
    loaded: int = 0
    quarantined: int = 0
    retried: int = 0  # quarantined before, read again because their rows changed
    unchanged: int = 0  # loaded before, rows unchanged
    still_quarantined: int = 0  # quarantined before, rows unchanged
    changed_since_loaded: int = 0  # loaded before, rows changed since (the follow mode records new versions)
    reasons: dict[str, int] = field(default_factory=dict)
    quarantine_file: str | None = None
    seconds: float = 0.0

    @property
    def per_second(self) -> float:
        return self.documents / self.seconds if self.seconds else 0.0

    def to_json(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["per_second"] = round(self.per_second, 1)
        return out


def sync(
    db: Database, profile: Profile, *, name: str = DEFAULT_SOURCE, quarantine: Path,
    progress: Callable[[SyncReport], None] | None = None,
) -> SyncReport:  # fmt: skip
    """Load what the attached legacy database holds and landreg does not (new documents, and
    quarantined ones whose rows changed); quarantine what cannot be loaded, with its reason."""
    source = source_of(db, name)
    if source.jurisdiction != profile.name:
        raise ConfigurationError(
            f"{name!r} was attached under jurisdiction {source.jurisdiction!r}, not {profile.name!r}"
        )
    layout = stored_layout(source.layout_text)
    url = read_url(source.url_env, source.url_file)
    legacy = connect(layout, url)
    report = SyncReport(source=name, layout=layout.name)
    started = time.perf_counter()
    journal = _StateJournal(db, source.id)
    try:
        numbers = guarded(url, legacy.correction_numbers)
        records = _changed(db, source.id, layout, scrubbed(url, legacy.documents()), numbers, report)

        def show(imported: ImportReport) -> None:
            report.loaded, report.quarantined = imported.loaded, imported.quarantined
            report.seconds = time.perf_counter() - started
            if progress:
                progress(report)

        imported = import_records(db, records, name=f"legacy:{name}", quarantine=quarantine, progress=show,
                                  profile=profile, journal=journal)  # fmt: skip
    finally:
        legacy.engine.dispose()
    report.loaded, report.quarantined = imported.loaded, imported.quarantined
    report.reasons, report.quarantine_file = imported.reasons, imported.quarantine_file
    report.seconds = time.perf_counter() - started
    with db.write() as s:
        s.execute(update(LegacySource).where(LegacySource.id == source.id)
                  .values(last_sync_at=datetime.now(UTC), last_sync=report.to_json()))  # fmt: skip
    return report


def scrubbed(url: str, rows: Iterator[LegacyRows]) -> Iterator[LegacyRows]:
    try:
        yield from rows
    except LandregError:
        raise
    except Exception as exc:
        raise LegacyDatabaseError(f"the legacy database answered: {scrub(str(exc), url)}") from None


def _changed(
    db: Database, source_id: int, layout: Layout, documents: Iterable[LegacyRows], numbers: dict[str, str],
    report: SyncReport,
) -> Iterator[SourceRecord]:  # fmt: skip
    """What must be (re)loaded, as source records; corrections last, in recording order."""
    deferred: list[SourceRecord] = []
    page: list[LegacyRows] = []

    def decide(page: list[LegacyRows]) -> Iterator[SourceRecord]:
        known = _known(db, source_id, [r.key for r in page])
        for rows in page:
            report.documents += 1
            rows = replace(rows, fingerprint=fingerprint(layout, rows))
            prior = known.get(rows.key)
            if prior is not None:
                state, seen, mirrored = prior
                if seen == rows.fingerprint:
                    if state == "loaded":
                        report.unchanged += 1
                    else:
                        report.still_quarantined += 1
                    continue
                if mirrored:  # landreg holds a version of it: a new one is the follower's (--follow)
                    report.changed_since_loaded += 1
                    continue
                report.retried += 1
            record = map_document(layout, rows, numbers)
            if record.data is not None and record.data.get("corrects"):
                deferred.append(record)
            else:
                yield record

    for rows in documents:
        page.append(rows)
        if len(page) >= PAGE:
            yield from decide(page)
            page = []
    yield from decide(page)
    deferred.sort(key=lambda r: r.data["recorded_at"] if r.data else datetime.min.replace(tzinfo=UTC))
    yield from deferred


def _known(db: Database, source_id: int, keys: list[str]) -> dict[str, tuple[str, bytes, bool]]:
    """key -> (state, fingerprint, whether landreg holds a version of it)."""
    if not keys:
        return {}
    d = LegacyDocument
    with db.read() as s:
        rows = s.execute(select(d.legacy_key, d.state, d.fingerprint, d.instrument_id)
                         .where(d.source_id == source_id, d.legacy_key.in_(keys))).all()  # fmt: skip
    return {k: (state, bytes(fp), iid is not None) for k, state, fp, iid in rows}


class _StateJournal:
    """Writes what became of each document: loaded ones in the transaction that loaded them,
    quarantined ones after each chunk."""

    def __init__(self, db: Database, source_id: int):
        self.db = db
        self.source_id = source_id
        self.rejected: dict[str, dict[str, Any]] = {}

    def loaded(self, session: Session, made: list[tuple[SourceRecord, Recorded]]) -> None:
        rows = {rec.key: {"fingerprint": rec.fingerprint, "state": "loaded", "instrument_id": m.instrument_id,
                          "field": None, "reason": None, "raw_keys": list(rec.raw_keys) or None}
                for rec, m in made if rec.key is not None}  # fmt: skip
        for key in rows:
            self.rejected.pop(key, None)  # loaded on its own after its chunk failed
        _upsert(session, self.source_id, rows)

    def quarantined(self, rec: SourceRecord, field_name: str, reason: str) -> None:
        if rec.key is not None and rec.fingerprint is not None:
            self.rejected[rec.key] = {"fingerprint": rec.fingerprint, "state": "quarantined", "instrument_id": None,
                                      "field": field_name[:64], "reason": reason,
                                      "raw_keys": list(rec.raw_keys) or None}  # fmt: skip

    def flush(self) -> None:
        if self.rejected:
            with self.db.write() as s:
                _upsert(s, self.source_id, self.rejected)
            self.rejected = {}


def _upsert(session: Session, source_id: int, rows: dict[str, dict[str, Any]]) -> None:
    if not rows:
        return
    d = LegacyDocument
    now = datetime.now(UTC)
    existing = dict(session.execute(select(d.legacy_key, d.id).where(d.source_id == source_id,
                                                                     d.legacy_key.in_(list(rows)))).all())  # fmt: skip
    new = [{"source_id": source_id, "legacy_key": k, "first_seen_at": now, "synced_at": now, **v}
           for k, v in rows.items() if k not in existing]  # fmt: skip
    if new:
        session.execute(insert(d), new)
    for key, row_id in existing.items():
        session.execute(update(d).where(d.id == row_id).values(synced_at=now, **rows[key]))
