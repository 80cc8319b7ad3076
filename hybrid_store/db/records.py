"""The one way back from database rows to a record's committed form.

``load_records`` rebuilds the ``InstrumentRecord`` of each instrument from its rows, with its
history link taken from its commitment row when it has one (the link is what the commitment, and
so the chain, covers). Proof export, bulk migration, reconciliation and the service's views all
read records through here, so they can never disagree on what a record says. It talks to the
driver directly (one array parameter for the ids, no ORM rows): bulk migration and
reconciliation read every record of the book through it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hybrid_store.core import commitment as commitments
from hybrid_store.core.hashing import to_hex
from hybrid_store.core.records import InstrumentRecord, Reference, format_timestamp
from hybrid_store.db.engine import IDS_PER_ARRAY, chunks
from hybrid_store.errors import DamagedRecord


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """A record as the database holds it: its committed form, salt seed and parcels, and what its
    commitment row says (``commitment`` is None while the record is not committed yet)."""

    instrument_id: int
    record: InstrumentRecord  # ``prev`` from the commitment row; unlinked (None) when not committed
    seed: bytes
    parcel_ids: tuple[int, ...]  # in ``record.parcels`` order
    commitment: bytes | None
    #: the stored history link rows ``[parcel_key, previous number, previous commitment hex]``
    history: tuple[tuple[str, str | None, str | None], ...] = ()
    #: the scheme of its commitment row; None while the record is not committed (it will be
    #: committed under ``commitment.SCHEME``)
    scheme: str | None = None
    #: where the recorded original goes back to: personal data, kept beside the record, never in it
    return_to: str | None = None

    @property
    def commit_scheme(self) -> str:
        """The scheme its commitment is (or will be) computed under."""
        return self.scheme or commitments.SCHEME

    @property
    def number(self) -> str:
        return self.record.instrument_number

    @property
    def prev_value(self) -> list[list[str | None]]:
        """The ``prev`` value as the commitment row stores it, exactly (``[[key, commitment hex or
        None], ...]``): a link rewritten to name another parcel must change what recomputes."""
        if self.history:
            return [[key, commitment] for key, _number, commitment in self.history]
        return [[key, link] for key, link in self.record.prev]

    def recompute(self) -> bytes:
        """The commitment these rows make (the stored history link included as it is)."""
        return commitments.prepare(self.record, self.seed, self.commit_scheme).complete(self.prev_value)


def load_records(conn: Any, instrument_ids: Sequence[int]) -> list[StoredRecord]:
    """The records of ``instrument_ids`` (a SQLAlchemy connection), in recording order."""
    ids_in = ids_clause(conn)
    rows: list[Any] = []
    names: dict[tuple[int, str], list[str]] = {}
    parcels: dict[int, list[tuple[str, int]]] = {}
    refs: dict[int, list[Reference]] = {}
    for chunk in chunks(list(instrument_ids), IDS_PER_ARRAY):
        param = ids_param(conn, chunk)
        rows.extend(driver_rows(conn, _SQL_INSTRUMENTS.format(where=ids_in("i.id")), param))
        for iid, role, name in driver_rows(conn, _SQL_PARTIES.format(ids=ids_in("instrument_id")), param):
            names.setdefault((iid, role), []).append(name)
        for iid, pid, key in driver_rows(conn, _SQL_PARCELS.format(ids=ids_in("ip.instrument_id")), param):
            parcels.setdefault(iid, []).append((key, pid))
        for iid, kind, number, book, page in driver_rows(
            conn, _SQL_REFERENCES.format(ids=ids_in("instrument_id")), param
        ):
            refs.setdefault(iid, []).append(Reference(kind, number, book, page))
    return _records(rows, names, parcels, refs)


def load_record_by_number(conn: Any, number: str) -> StoredRecord | None:
    """The record numbered ``number`` (None if there is none), in two round trips: the service's
    single-record reads (proof bundles, instrument views) are paid per request."""
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    rows = driver_rows(conn, _SQL_INSTRUMENTS.format(where=f"i.instrument_number = {mark}"), (number,))
    if not rows:
        return None
    names: dict[tuple[int, str], list[str]] = {}
    parcels: dict[int, list[tuple[str, int]]] = {}
    iid = rows[0][0]
    for kind, _position, pid, name in driver_rows(conn, _SQL_DETAILS.format(mark=mark), (iid, iid)):
        if kind == "parcel":
            parcels.setdefault(iid, []).append((name, pid))
        else:
            names.setdefault((iid, kind), []).append(name)  # in position order (ORDER BY)
    refs: dict[int, list[Reference]] = {}
    for _iid, kind, ref_number, book, page in driver_rows(
        conn, _SQL_REFERENCES.format(ids=f"instrument_id = {mark}"), (iid,)
    ):
        refs.setdefault(iid, []).append(Reference(kind, ref_number, book, page))
    return _records(rows, names, parcels, refs)[0]


def _records(rows: list[Any], names: dict[tuple[int, str], list[str]],
             parcels: dict[int, list[tuple[str, int]]], refs: dict[int, list[Reference]]) -> list[StoredRecord]:  # fmt: skip
    out = []
    for r in sorted(rows, key=lambda r: (r[3], r[0])):  # recording order (SQLite's text sorts as time)
        iid = r[0]
        keyed = sorted(parcels.get(iid, ()))
        keys = tuple([k for k, _ in keyed])
        try:
            history = _history(r[12])
            links = {key: commitment for key, _number, commitment in history} if history else {}
            record = InstrumentRecord(
                instrument_number=r[1], doc_type=r[2], recorded_at=_timestamp(r[3]), book=r[4], page=r[5],
                grantors=tuple(names.get((iid, "grantor"), ())), grantees=tuple(names.get((iid, "grantee"), ())),
                consideration_cents=r[6], legal_description=r[7], document_digest=r[8],
                parcels=keys, corrects=r[10], prev=tuple([(k, links.get(k)) for k in keys]),
                document_date=_date(r[14]), page_count=r[15], grantee_mailing_address=r[16], preparer=r[17],
                references=tuple(refs.get(iid, ())), supersedes=to_hex(bytes(r[18])) if r[18] is not None else None,
            )  # fmt: skip
        except ValueError as exc:
            raise DamagedRecord(str(r[1]), str(exc)) from None
        out.append(StoredRecord(iid, record, bytes(r[9]), tuple([pid for _, pid in keyed]),
                                bytes(r[11]) if r[11] is not None else None, history, r[13], r[19]))  # fmt: skip
    return out


def instrument_id(conn: Any, number: str) -> int | None:
    """The id of the instrument numbered ``number``, or None."""
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    found = driver_rows(conn, f"SELECT id FROM instruments WHERE instrument_number = {mark}", (number,))
    return int(found[0][0]) if found else None


_DECODE = json.JSONDecoder().raw_decode


def _history(stored: Any) -> tuple[tuple[str, str | None, str | None], ...]:
    if stored is None:
        return ()
    if isinstance(stored, str):  # SQLite hands JSON back as text, as landreg wrote it (no whitespace)
        text = stored
        stored, end = _DECODE(text)  # json.loads matches whitespace twice a call: bulk reads pay it per record
        if end != len(text):
            raise ValueError(f"a stored history link has text after its JSON: {text[end:][:40]!r}")
    return tuple([(key, number, commitment) for key, number, commitment in stored])


def driver_rows(conn: Any, sql: str, param: tuple[Any, ...]) -> list[tuple]:
    """The rows of driver SQL straight from the DB-API cursor: for the bulk reads, where SQLAlchemy's
    row objects cost more than the query (same connection, same transaction)."""
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        cursor.execute(sql, param)
        return cursor.fetchall()
    finally:
        cursor.close()


def ids_clause(conn: Any) -> Callable[[str], str]:
    """``column IN <the ids>`` in driver SQL, for ``ids_param``'s one parameter."""
    if conn.dialect.name == "postgresql":
        return lambda column: f"{column} = ANY(%s)"
    return lambda column: f"{column} IN (SELECT value FROM json_each(?))"


def ids_param(conn: Any, ids: Sequence[int]) -> tuple[Any]:
    if conn.dialect.name == "postgresql":
        return ([int(i) for i in ids],)
    return (json.dumps([int(i) for i in ids]),)


_SQL_INSTRUMENTS = (
    "SELECT i.id, i.instrument_number, i.doc_type, i.recorded_at, i.book, i.page, i.consideration_cents, "
    "i.legal_description, i.document_digest, i.salt_seed, c.instrument_number, k.commitment, k.prev, "
    "k.scheme, i.document_date, i.page_count, i.grantee_mailing_address, i.preparer, s.commitment, i.return_to "
    "FROM instruments i LEFT OUTER JOIN instruments c ON c.id = i.corrects_id "
    "LEFT OUTER JOIN commitments k ON k.instrument_id = i.id "
    "LEFT OUTER JOIN commitments s ON s.instrument_id = k.supersedes_id WHERE {where}"
)
_SQL_REFERENCES = (
    "SELECT instrument_id, kind, target_number, target_book, target_page FROM instrument_references "
    "WHERE {ids} ORDER BY instrument_id, position"
)
_SQL_PARTIES = (
    "SELECT instrument_id, role, name FROM instrument_parties WHERE {ids} ORDER BY instrument_id, role, position"
)
_SQL_DETAILS = (  # one instrument's parties (in position order) and parcels, in one round trip
    "SELECT role, position, 0, name FROM instrument_parties WHERE instrument_id = {mark} UNION ALL "
    "SELECT 'parcel', 0, ip.parcel_id, p.parcel_key FROM instrument_parcels ip JOIN parcels p ON p.id = ip.parcel_id "
    "WHERE ip.instrument_id = {mark} ORDER BY 1, 2"
)
_SQL_PARCELS = (
    "SELECT ip.instrument_id, ip.parcel_id, p.parcel_key FROM instrument_parcels ip "
    "JOIN parcels p ON p.id = ip.parcel_id WHERE {ids}"
)


def _date(value: Any) -> str | None:
    """The committed spelling of a stored document date (SQLite gives its text)."""
    if value is None:
        return None
    return value if isinstance(value, str) else value.isoformat()


def _timestamp(value: datetime | str) -> str:
    """The committed spelling of a stored recording time (SQLite gives its text, UTC)."""
    if isinstance(value, str):  # "YYYY-MM-DD HH:MM:SS[.ffffff]"
        return f"{value[:10]}T{value[11:19]}Z"
    return format_timestamp(value if value.tzinfo else value.replace(tzinfo=UTC))
