"""Recording instruments: validated input in, rows + commitment + outbox entry out, in one transaction.

One code path serves a clerk's single filing and a bulk load of thousands: ``record_instruments``
takes a sequence, resolves (and on PostgreSQL row-locks) every parcel involved, links each record
to its parcels' previous commitments, checks each deed's grantors against the owners of record,
and writes everything with batched statements. The caller owns the transaction, so either all of
it is written or none of it.

Chain of title: a deed whose grantors include every owner of record becomes the next link (its
grantees become the owners). Otherwise it is still recorded (a recorder must accept a compliant
document) but not linked, and flagged for review: ``conflicting_conveyance`` when its grantors are
the people who already conveyed the parcel to the current owners (a double sale), else
``grantor_not_owner``. Parcel row locks make concurrent deeds on one parcel take turns, so of two
transfers by the same owner exactly one becomes the link and the other is flagged.
"""

from __future__ import annotations

import secrets
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hybrid_store.core import commitment as commitments
from hybrid_store.core.hashing import to_hex
from hybrid_store.core.records import CONVEYANCES, InstrumentInput, build_record, name_key, parse_instrument
from hybrid_store.db.models import (
    Commitment,
    Counter,
    Instrument,
    InstrumentParcel,
    InstrumentParty,
    OutboxEntry,
    Parcel,
    TitleFlag,
)
from hybrid_store.errors import Conflict, FieldError, InvalidInstrument
from hybrid_store.municipalities import municipality_codes

PAGES_PER_BOOK = 1000  # a new book starts when the current one reaches this many pages
_IN_CHUNK = 500  # bound the size of IN (...) lists


@dataclass(frozen=True)
class Flag:
    parcel_key: str
    kind: str
    message: str


@dataclass(frozen=True)
class Recorded:
    """What a filing gets back: the receipt's facts."""

    instrument_id: int
    instrument_number: str
    book: str
    page: str
    recorded_at: datetime
    commitment: bytes | None  # None for a legacy record loaded without one
    flags: tuple[Flag, ...] = ()

    @property
    def commitment_hex(self) -> str:
        return to_hex(self.commitment) if self.commitment else ""


def validate(data: object, *, now: datetime | None = None) -> InstrumentInput:
    """Parse and validate one instrument against this registry's municipalities and clock."""
    return parse_instrument(data, municipalities=municipality_codes(), now=now or datetime.now(UTC))


@dataclass
class _ParcelState:
    """A parcel as this call sees it; ``head``/``owner`` hold an instrument id from the database
    or ``("new", i)`` for the i-th instrument of this call."""

    id: int
    head: object
    owner: object


@dataclass
class _Made:
    number: str
    book: str
    page: str
    recorded_at: datetime
    commitment: bytes
    flags: list[Flag] = field(default_factory=list)


def record_instruments(
    session: Session,
    instruments: Sequence[InstrumentInput],
    *,
    source: str = "filing",
    now: datetime | None = None,
    seed: Callable[[], bytes] = lambda: secrets.token_bytes(commitments.SEED_LENGTH),
    enqueue: bool = True,
    commit: bool = True,
) -> list[Recorded]:
    """Write ``instruments`` (already validated) with their commitments, title checks and outbox entries.

    With ``commit=False`` (loading a legacy book) only the deed database's own rows are written:
    the records wait for a migration stage to commit and anchor them. Instruments without a
    number, book/page or recording time get the next ones. Raises ``InvalidInstrument`` for a
    correction of an unknown instrument and ``Conflict`` for an instrument number that is taken;
    the caller's transaction must then be rolled back.
    """
    if not instruments:
        return []
    split = _dependency_split(instruments)
    if split:  # a correction of an instrument recorded earlier in this same call: write that one first
        kw = {"source": source, "now": now, "seed": seed, "enqueue": enqueue, "commit": commit}
        return record_instruments(session, instruments[:split], **kw) + record_instruments(
            session, instruments[split:], **kw
        )
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    parcels = _resolve_parcels(session, instruments)
    if commit:
        _catch_up(session, parcels, enqueue=enqueue)
    corrects = _resolve_corrections(session, instruments)
    known = _load_instruments(
        session, {s.head for s in parcels.values()} | {s.owner for s in parcels.values()}
    )  # id -> (number, commitment hex, grantors, grantees)
    numbers = _assign_numbers(session, instruments, now)  # last: counter rows stay locked the shortest

    def facts(ref: object) -> tuple[str, str, list[str], list[str]] | None:
        if ref is None:
            return None
        if isinstance(ref, tuple):
            i = ref[1]
            value = made[i].commitment
            return made[i].number, to_hex(value) if value else None, instruments[i].grantors, instruments[i].grantees
        return known[ref]

    instrument_rows, commitment_rows, made = [], [], []
    for index, (inst, (number, book, page, recorded_at)) in enumerate(zip(instruments, numbers, strict=True)):
        keys = [p.key for p in inst.parcels]
        prev = {key: facts(parcels[key].head) for key in keys}
        record = build_record(
            instrument_number=number,
            doc_type=inst.doc_type,
            recorded_at=recorded_at,
            book=book,
            page=page,
            grantors=inst.grantors,
            grantees=inst.grantees,
            consideration_cents=inst.consideration_cents,
            legal_description=inst.legal_description,
            document_digest=inst.document_digest,
            parcels=keys,
            corrects=inst.corrects,
            prev={k: (v[1] if v else None) for k, v in prev.items()},
        )
        salt_seed = seed()
        value = commitments.commit(record, salt_seed) if commit else None
        entry = _Made(number, book, page, recorded_at, value)
        made.append(entry)
        if inst.doc_type in CONVEYANCES:
            for key in keys:
                flag = _title_check(key, inst, facts(parcels[key].owner))
                if flag is None:
                    parcels[key].owner = ("new", index)
                else:
                    entry.flags.append(flag)
        instrument_rows.append(
            {
                "instrument_number": number,
                "book": book,
                "page": page,
                "doc_type": str(inst.doc_type),
                "recorded_at": recorded_at,
                "consideration_cents": inst.consideration_cents,
                "legal_description": inst.legal_description,
                "document_digest": inst.document_digest,
                "corrects_id": corrects[inst.corrects] if inst.corrects else None,
                "salt_seed": salt_seed,
                "source": source,
                "created_at": now,
            }
        )
        commitment_rows.append(
            {
                "scheme": commitments.SCHEME,
                "commitment": value,
                "prev": [[k, v[0] if v else None, v[1] if v else None] for k, v in sorted(prev.items())],
                "created_at": now,
            }
        )
        if commit:
            for key in keys:
                parcels[key].head = ("new", index)

    conn = session.connection()  # Core statements: the ORM's bulk machinery costs twice the CPU here
    try:
        ids = list(conn.execute(_INSERT_INSTRUMENT, instrument_rows).scalars())
    except IntegrityError as exc:
        raise Conflict(_integrity_message(exc)) from None

    party_rows, link_rows, outbox_rows, flag_rows = [], [], [], []
    for instrument_id, inst, row, entry in zip(ids, instruments, commitment_rows, made, strict=True):
        row["instrument_id"] = instrument_id
        for role, names in (("grantor", inst.grantors), ("grantee", inst.grantees)):
            party_rows.extend(
                {"instrument_id": instrument_id, "role": role, "position": i, "name": name}
                for i, name in enumerate(names)
            )
        link_rows.extend(
            {"instrument_id": instrument_id, "parcel_id": parcels[p.key].id, "position": i}
            for i, p in enumerate(inst.parcels)
        )
        outbox_rows.append({"instrument_id": instrument_id, "enqueued_at": now})
        flag_rows.extend(
            {"instrument_id": instrument_id, "parcel_id": parcels[f.parcel_key].id, "kind": f.kind,
             "message": f.message, "created_at": now}
            for f in entry.flags
        )  # fmt: skip
    for model, rows in ((InstrumentParty, party_rows), (InstrumentParcel, link_rows),
                        (Commitment, commitment_rows if commit else []), (TitleFlag, flag_rows),
                        (OutboxEntry, outbox_rows if enqueue and commit else [])):  # fmt: skip
        if rows:
            # one row: a plain execute (executemany goes through the driver's pipeline machinery)
            conn.execute(insert(model.__table__), rows[0] if len(rows) == 1 else rows)

    def resolved(ref: object) -> object:
        return ids[ref[1]] if isinstance(ref, tuple) else ref

    moved = [
        {"pid": s.id, "head": resolved(s.head), "owner": resolved(s.owner)}
        for s in parcels.values()
        if isinstance(s.head, tuple) or isinstance(s.owner, tuple)
    ]
    if moved:
        conn.execute(_MOVE_HEADS, moved[0] if len(moved) == 1 else moved)
    return [
        Recorded(i, m.number, m.book, m.page, m.recorded_at, m.commitment, tuple(m.flags))
        for i, m in zip(ids, made, strict=True)
    ]


def _catch_up(session: Session, parcels: dict[str, _ParcelState], *, enqueue: bool) -> None:
    """A filing on a parcel whose older records are not migrated yet commits them first (in
    recording order, queued for anchoring like the filing), so the new record links to them."""
    from hybrid_store.committing import commit_existing, uncommitted_touching

    pending = uncommitted_touching(session, [s.id for s in parcels.values()])
    if not pending:
        return
    commit_existing(session, pending, enqueue=enqueue)
    ids = [s.id for s in parcels.values()]
    heads = dict(
        session.connection().execute(select(Parcel.id, Parcel.head_instrument_id).where(Parcel.id.in_(ids))).all()
    )
    for state in parcels.values():
        state.head = heads[state.id]


def _title_check(key: str, deed: InstrumentInput, owner: tuple[str, str, list[str], list[str]] | None) -> Flag | None:
    """None when ``deed`` may convey parcel ``key`` (its grantors include every owner of record)."""
    if owner is None:
        return None  # no conveyance on record yet: this deed starts the chain of title
    owner_number, _, sellers, owners = owner
    grantors = {name_key(n) for n in deed.grantors}
    if {name_key(n) for n in owners} <= grantors:
        return None
    if {name_key(n) for n in sellers} <= grantors:
        return Flag(
            key,
            "conflicting_conveyance",
            f"{'; '.join(deed.grantors)} already conveyed {key} to {'; '.join(owners)} by instrument {owner_number}",
        )
    return Flag(
        key,
        "grantor_not_owner",
        f"the owners of record of {key} are {'; '.join(owners)} (instrument {owner_number}), "
        f"not {'; '.join(deed.grantors)}",
    )


# --- helpers ----------------------------------------------------------------------------------------
# Statements built once, so SQLAlchemy compiles each once per dialect and reuses it.
_INSERT_INSTRUMENT = insert(Instrument.__table__).returning(Instrument.__table__.c.id, sort_by_parameter_order=True)
_MOVE_HEADS = (
    update(Parcel.__table__)
    .where(Parcel.__table__.c.id == bindparam("pid"))
    .values(head_instrument_id=bindparam("head"), owner_instrument_id=bindparam("owner"))
)
_UPSERT_PARCELS: dict[str, Any] = {}


def _upsert_parcels(dialect: str) -> Any:
    """INSERT ... ON CONFLICT DO UPDATE ... RETURNING: creates new parcels, row-locks existing ones
    (like SELECT ... FOR UPDATE) and returns their heads, in one statement."""
    if dialect not in _UPSERT_PARCELS:
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        table = Parcel.__table__
        stmt = dialect_insert(table)
        stmt = stmt.on_conflict_do_update(index_elements=["parcel_key"], set_={"parcel_key": stmt.excluded.parcel_key})
        _UPSERT_PARCELS[dialect] = stmt.returning(
            table.c.id, table.c.parcel_key, table.c.head_instrument_id, table.c.owner_instrument_id,
            sort_by_parameter_order=True,
        )  # fmt: skip
    return _UPSERT_PARCELS[dialect]


def _dependency_split(instruments: Sequence[InstrumentInput]) -> int:
    """Index of the first instrument correcting one earlier in the sequence (0 when none)."""
    seen: set[str] = set()
    for i, inst in enumerate(instruments):
        if inst.corrects and inst.corrects in seen:
            return i
        if inst.instrument_number:
            seen.add(inst.instrument_number)
    return 0


def _chunks(items: Sequence, size: int = _IN_CHUNK) -> Iterable[Sequence]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _dialect_insert(session: Session):  # noqa: ANN202 - the dialect's insert construct
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    return dialect_insert


def _resolve_parcels(session: Session, instruments: Sequence[InstrumentInput]) -> dict[str, _ParcelState]:
    """Every parcel the instruments touch, created if new and row-locked until the transaction ends
    (in key order, so concurrent filings never deadlock), with its current history and title heads."""
    refs = {p.key: p for inst in instruments for p in inst.parcels}
    now = datetime.now(UTC)
    rows = [
        {"parcel_key": k, "municipality_code": refs[k].municipality_code, "block": refs[k].block,
         "lot": refs[k].lot, "qualifier": refs[k].qualifier, "created_at": now}
        for k in sorted(refs)
    ]  # fmt: skip
    result = session.connection().execute(_upsert_parcels(session.get_bind().dialect.name), rows)
    return {key: _ParcelState(pid, head, owner) for pid, key, head, owner in result}


def _load_instruments(session: Session, ids: set[object]) -> dict[object, tuple[str, str, list[str], list[str]]]:
    """instrument id -> (number, commitment hex, grantors, grantees) for heads and owners of record."""
    wanted = sorted(i for i in ids if isinstance(i, int))
    out: dict[object, tuple[str, str, list[str], list[str]]] = {}
    for chunk in _chunks(wanted):
        rows = session.execute(
            select(Instrument.id, Instrument.instrument_number, Commitment.commitment)
            .outerjoin(Commitment, Commitment.instrument_id == Instrument.id)  # owners may not be migrated yet
            .where(Instrument.id.in_(chunk))
        ).all()
        parties: dict[int, tuple[list[str], list[str]]] = {iid: ([], []) for iid, _, _ in rows}
        for iid, role, name in session.execute(
            select(InstrumentParty.instrument_id, InstrumentParty.role, InstrumentParty.name)
            .where(InstrumentParty.instrument_id.in_(chunk))
            .order_by(InstrumentParty.instrument_id, InstrumentParty.role, InstrumentParty.position)
        ):
            parties[iid][0 if role == "grantor" else 1].append(name)
        out.update({iid: (number, to_hex(value) if value else None, *parties[iid]) for iid, number, value in rows})
    return out


def _resolve_corrections(session: Session, instruments: Sequence[InstrumentInput]) -> dict[str, int]:
    wanted = sorted({i.corrects for i in instruments if i.corrects})
    found: dict[str, int] = {}
    for chunk in _chunks(wanted):
        stmt = select(Instrument.instrument_number, Instrument.id).where(Instrument.instrument_number.in_(chunk))
        found.update(dict(session.execute(stmt).all()))
    errors = [
        FieldError("corrects", "unknown_instrument", f"no recorded instrument numbered {n}")
        for n in wanted
        if n not in found
    ]
    if errors:
        raise InvalidInstrument(errors)
    return found


def _assign_numbers(
    session: Session, instruments: Sequence[InstrumentInput], now: datetime
) -> list[tuple[str, str, str, datetime]]:
    """Instrument number, book, page and recording time for each instrument, assigning the missing.

    Numbers are ``YYYY-NNNNNNN``: the recording year and a registry-wide serial that never repeats
    (it starts above every serial already in the database, so loaded records keep theirs). Pages
    run through books of ``PAGES_PER_BOOK``, the first new book after every book already recorded.
    """
    for inst in instruments:
        if bool(inst.book) != bool(inst.page):
            field_name = "page" if inst.book else "book"
            raise InvalidInstrument(
                [FieldError(field_name, "book_page_pair", "book and page are given together or not at all")]
            )
    taken = _take(
        session, instruments=sum(1 for i in instruments if not i.instrument_number),
        pages=sum(1 for i in instruments if not i.book),
    )  # fmt: skip
    serials, pages = iter(taken["instrument"]), iter(taken["page"])
    out = []
    for inst in instruments:
        recorded_at = inst.recorded_at or now
        number = inst.instrument_number or f"{recorded_at.year}-{next(serials):07d}"
        if inst.book and inst.page:
            book, page = inst.book, inst.page
        else:
            index = next(pages)
            book, page = str(_first_book(session) + index // PAGES_PER_BOOK), str(index % PAGES_PER_BOOK + 1)
        out.append((number, book, page, recorded_at))
    return out


_numbering_ready: weakref.WeakKeyDictionary[Any, dict[str, int]] = weakref.WeakKeyDictionary()  # per engine
_NEXTVALS = text(
    "SELECT ARRAY(SELECT nextval('landreg_instrument_seq') FROM generate_series(1, :instruments)),"
    " ARRAY(SELECT nextval('landreg_page_seq') FROM generate_series(1, :pages))"
)
_BUMP = text(
    "UPDATE counters SET value = value + CASE name WHEN 'instrument' THEN :instruments ELSE :pages END"
    " WHERE name IN ('instrument', 'page') RETURNING name, value"
)


def _take(session: Session, *, instruments: int, pages: int) -> dict[str, list[int]]:
    """Fresh instrument serials and page indexes, in one statement. PostgreSQL: sequences (no lock
    held until commit, so concurrent filings do not queue behind one row); SQLite, which serialises
    writers anyway: rows of ``counters``."""
    if instruments == 0 and pages == 0:
        return {"instrument": [], "page": []}
    _prepare_numbering(session)
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        serials, indexes = conn.execute(_NEXTVALS, {"instruments": instruments, "pages": pages}).one()
        return {"instrument": list(serials), "page": list(indexes)}
    last = dict(conn.execute(_BUMP, {"instruments": instruments, "pages": pages}).all())
    return {
        "instrument": list(range(last["instrument"] - instruments + 1, last["instrument"] + 1)),
        "page": list(range(last["page"] - pages + 1, last["page"] + 1)),
    }


def _prepare_numbering(session: Session) -> None:
    """Once per engine: make both series start above everything already recorded."""
    engine = session.get_bind()
    if engine in _numbering_ready:
        return
    raise_numbering_floor(session)
    if engine.dialect.name != "postgresql":
        create = _dialect_insert(session)(Counter).on_conflict_do_nothing(index_elements=["name"])
        session.execute(create, [{"name": "page", "value": -1}])
    _numbering_ready[engine] = {"first_book": _read_first_book(session)}


def raise_numbering_floor(session: Session) -> None:
    """Make new instrument serials start above every serial in the database (after loading
    records that came with their own numbers). Never moves the series back."""
    top = max(
        (int(n.split("-", 1)[1]) for n in session.scalars(select(Instrument.instrument_number).where(
            Instrument.instrument_number.like("____-%")))
         if n.split("-", 1)[1].isdigit()),
        default=0,
    )  # fmt: skip
    if session.get_bind().dialect.name == "postgresql":
        # several server processes do this at their first filing: GREATEST with what was already
        # handed out never rewinds; the unique index (and a retry) covers the instant between
        session.execute(
            text(
                "SELECT setval('landreg_instrument_seq', GREATEST(:top,"
                " CASE WHEN is_called THEN last_value ELSE last_value - 1 END), true) FROM landreg_instrument_seq"
            ),
            {"top": top},
        )
        return
    stmt = _dialect_insert(session)(Counter).values(name="instrument", value=top)
    session.execute(stmt.on_conflict_do_update(index_elements=["name"], set_={
        "value": func.max(Counter.__table__.c.value, stmt.excluded.value)}))  # fmt: skip


def _first_book(session: Session) -> int:
    return _numbering_ready[session.get_bind()]["first_book"]


def _read_first_book(session: Session) -> int:
    """The book new filings start in, fixed on first use: after every book in the database then."""
    stored = session.scalar(select(Counter.value).where(Counter.name == "first_book"))
    if stored is None:
        books = session.scalars(select(Instrument.book).distinct())
        first = max((int(b) for b in books if b.isdigit()), default=0) + 1
        create = _dialect_insert(session)(Counter).values(name="first_book", value=first)
        session.execute(create.on_conflict_do_nothing(index_elements=["name"]))
        stored = session.scalar(select(Counter.value).where(Counter.name == "first_book"))
    return stored


def _integrity_message(exc: IntegrityError) -> str:
    text = str(exc.orig)
    if "instrument_number" in text:
        return "an instrument with this number is already recorded"
    return text.splitlines()[0]
