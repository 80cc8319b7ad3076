"""Recording instruments: validated input in, the deed database's rows out, in the caller's
transaction, and the records joined to their parcels' histories through the ledger.

One code path serves a clerk's single filing and a bulk load of thousands: ``record_instruments``
takes a sequence, resolves (and on PostgreSQL row-locks) every parcel involved, numbers what has
no number (``numbering``), checks each deed's grantors against the owners of record (``title``),
writes the instruments with their parties, parcels and flags, and appends their commitments to
the ledger (``ledger.append``: the history links, the new parcel heads, the outbox entries). The
caller owns the transaction, so either all of it is written or none of it.

A legacy book is loaded with ``with_commitments=False``: only the deed database's own rows are
written, and the records wait for a migration stage to commit and anchor them.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hybrid_store import ledger, numbering
from hybrid_store.core import commitment as commitments
from hybrid_store.core import title
from hybrid_store.core.hashing import to_hex
from hybrid_store.core.records import CONVEYANCES, DocType, InstrumentRecord, build_record
from hybrid_store.db import bulk
from hybrid_store.db.engine import chunks, select_in, upsert_insert
from hybrid_store.db.models import (
    Commitment,
    Instrument,
    InstrumentParcel,
    InstrumentParty,
    InstrumentReference,
    InstrumentTerm,
    Parcel,
    PartyNameKey,
    TitleFlag,
    TitleFlagResolution,
    table,
)
from hybrid_store.errors import Conflict, FieldError, InvalidInstrument
from hybrid_store.intake import InstrumentInput
from hybrid_store.search_terms import terms_of

Flag = title.Flag


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
    resolved: tuple[int, ...] = ()  # the title flags (ids) this instrument resolved by being recorded

    @property
    def commitment_hex(self) -> str:
        return to_hex(self.commitment) if self.commitment else ""


@dataclass
class _Parcel:
    """A parcel as this call sees it; ``owner`` holds an instrument id from the database or
    ``("new", i)`` for the i-th instrument of this call."""

    id: int
    owner: object
    head: int | None = None  # the head instrument when the parcel was locked


@dataclass
class _Made:
    number: str
    book: str
    page: str
    recorded_at: datetime
    flags: list[Flag] = field(default_factory=list)
    links: list[str] = field(default_factory=list)  # the parcels whose owners of record it becomes


def record_instruments(
    session: Session,
    instruments: Sequence[InstrumentInput],
    *,
    source: str = "filing",
    now: datetime | None = None,
    seed: Callable[[], bytes] = lambda: secrets.token_bytes(commitments.SEED_LENGTH),
    enqueue: bool = True,
    with_commitments: bool = True,
    mirror: Sequence[int | None] | None = None,
) -> list[Recorded]:
    """Write ``instruments`` (already validated), their title checks and, ``with_commitments``,
    their commitments and outbox entries. Instruments without a number, book/page or recording
    time get the next ones. Raises ``InvalidInstrument`` for a correction of an unknown instrument
    and ``Conflict`` for an instrument number that is taken; the caller's transaction must then be
    rolled back.

    ``mirror`` (one entry per instrument: the id of the version it supersedes, or None) records
    them as the legacy database's mirror: committed with source ``mirror``, and without landreg's
    chain-of-title check (the legacy system is the authority; the caller sets owners of record)."""
    if not instruments:
        return []
    split = _dependency_split(instruments)
    if split:  # a correction of an instrument recorded earlier in this same call: write that one first
        kw: dict[str, Any] = {"source": source, "now": now, "seed": seed, "enqueue": enqueue,
                              "with_commitments": with_commitments}  # fmt: skip
        first, rest = (None, None) if mirror is None else (mirror[:split], mirror[split:])
        return record_instruments(session, instruments[:split], mirror=first, **kw) + record_instruments(
            session, instruments[split:], mirror=rest, **kw
        )
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    parcels = _resolve_parcels(session, instruments)
    heads: ledger.Heads = {}
    if with_commitments:  # older records of these parcels not migrated yet are committed first
        if ledger.catch_up(session, [p.id for p in parcels.values()], enqueue=enqueue):
            heads = ledger.lock_heads(session, [p.id for p in parcels.values()])  # the catch-up moved them
        else:  # the upsert locked the parcel rows and read their heads
            heads = ledger.heads_of(session, {p.id: p.head for p in parcels.values()})
    corrects = _resolve_corrections(session, instruments)
    superseded = _superseded_commitments(session, mirror)
    owners = _conveyances(session, {p.owner for p in parcels.values()})
    chain = _Chain.load(session, instruments, corrects, parcels) if mirror is None else None
    numbers = numbering.assign(session, instruments, now)  # last: counter rows stay locked the shortest

    made: list[_Made] = []
    records, seeds, rows = [], [], []
    for index, (inst, (number, book, page, recorded_at)) in enumerate(zip(instruments, numbers, strict=True)):
        keys = [p.key for p in inst.parcels]
        records.append(build_record(
            instrument_number=number, doc_type=inst.doc_type, recorded_at=recorded_at, book=book, page=page,
            grantors=inst.grantors, grantees=inst.grantees, consideration_cents=inst.consideration_cents,
            legal_description=inst.legal_description, document_digest=inst.document_digest, parcels=keys,
            corrects=inst.corrects, prev={}, document_date=_iso(inst.document_date), page_count=inst.page_count,
            grantee_mailing_address=inst.grantee_mailing_address, preparer=inst.preparer,
            references=[r.reference() for r in inst.references],
            supersedes=superseded.get(sup) if (sup := mirror[index] if mirror else None) is not None else None,
        ))  # fmt: skip
        seeds.append(seed())
        entry = _Made(number, book, page, recorded_at)
        made.append(entry)
        if chain is not None and chain.conveys(index):  # (a mirror's owners follow the legacy system)
            _link_title(index, keys, instruments, made, parcels, owners, chain)
        rows.append({
            "instrument_number": number, "book": book, "page": page, "doc_type": str(inst.doc_type),
            "recorded_at": recorded_at, "consideration_cents": inst.consideration_cents,
            "legal_description": inst.legal_description, "document_digest": inst.document_digest,
            "corrects_id": corrects[inst.corrects] if inst.corrects else None, "salt_seed": seeds[-1],
            "source": source, "created_at": now, "document_date": inst.document_date, "page_count": inst.page_count,
            "grantee_mailing_address": inst.grantee_mailing_address, "preparer": inst.preparer,
            "return_to": inst.return_to,
        })  # fmt: skip

    conn = session.connection()  # Core statements: the ORM's bulk machinery costs twice the CPU here
    try:
        ids = _insert_instruments(conn, rows)
    except IntegrityError as exc:
        raise Conflict(_integrity_message(exc)) from None
    _insert_details(conn, ids, instruments, made, parcels, now)
    resolved = chain.resolve(session, ids, instruments, made, parcels, now) if chain is not None else {}
    new_owners = {p.id: ids[p.owner[1]] for p in parcels.values() if isinstance(p.owner, tuple)}
    values: dict[int, bytes] = {}
    if with_commitments:  # the new owners go out with the new heads, one statement per parcel
        entries = _entries(ids, records, seeds, parcels, mirror)
        appended = ledger.append(session, entries, heads, enqueue=enqueue, now=now, owners=new_owners)
        values = {a.instrument_id: a.commitment for a in appended}
    elif new_owners:
        moved = [{"pid": pid, "owner": owner} for pid, owner in new_owners.items()]
        conn.execute(_MOVE_OWNERS, moved[0] if len(moved) == 1 else moved)
    return [Recorded(i, m.number, m.book, m.page, m.recorded_at, values.get(i), tuple(m.flags),
                     tuple(resolved.get(i, ())))
            for i, m in zip(ids, made, strict=True)]  # fmt: skip


def _link_title(index: int, keys: list[str], instruments: Sequence[InstrumentInput], made: list[_Made],
                parcels: dict[str, _Parcel], owners: dict[object, title.Conveyance], chain: _Chain) -> None:  # fmt: skip
    """Chain of title for the ``index``-th instrument, a conveyance: on each parcel it becomes the
    owner of record, or is flagged for review (a correction: judged against the title before what
    it corrects)."""
    inst, entry = instruments[index], made[index]
    for_owner = chain.kind(index) in inst.profile.conveys_for_owner
    for key in keys:
        owner = parcels[key].owner
        known = title.Conveyance(made[owner[1]].number, instruments[owner[1]].grantors,
                                 instruments[owner[1]].grantees) if isinstance(owner, tuple) else owners.get(owner)  # fmt: skip
        corrected = chain.corrected(index, key, owner, instruments)
        if corrected is None:
            flag, links = title.check(key, inst.grantors, known, for_owner=for_owner), True
        else:
            flag, links = title.check_correction(key, inst.grantors, corrected, known, for_owner=for_owner)
        if flag is not None:
            entry.flags.append(flag)
        elif links:
            parcels[key].owner = ("new", index)
            entry.links.append(key)


@dataclass
class _Chain:
    """The chain of title as the database holds it, for what this call records: each instrument's
    kind for the chain of title (a correction's is the kind of what it corrects), and for each
    correction, per parcel, the title it is judged against (``title.Corrected``)."""

    kinds: list[DocType]
    family: dict[int, frozenset[int]] = field(default_factory=dict)  # correction index -> its family's ids
    before: dict[tuple[int, str], title.Conveyance | None] = field(default_factory=dict)
    linked: dict[tuple[int, str], bool] = field(default_factory=dict)
    numbers: dict[int, str] = field(default_factory=dict)  # the corrected instruments' numbers

    @classmethod
    def load(cls, session: Session, instruments: Sequence[InstrumentInput], corrects: dict[str, int],
             parcels: dict[str, _Parcel]) -> _Chain:  # fmt: skip
        chain = cls([DocType(i.doc_type) for i in instruments])
        wanted = {corrects[i.corrects] for i in instruments if i.corrects}
        if not wanted:
            return chain
        families = _families(session, wanted)
        chain.numbers = {iid: n for n, iid in corrects.items()}
        links = _links(session, {parcels[p.key].id for i in instruments if i.corrects for p in i.parcels})
        befores: dict[tuple[int, str], int | None] = {}
        for index, inst in enumerate(instruments):
            if not inst.corrects:
                continue
            root, members, root_type = families[corrects[inst.corrects]]
            chain.family[index] = members
            if inst.doc_type == DocType.CORRECTION:  # a corrective instrument re-records what it corrects
                chain.kinds[index] = DocType(root_type)
            for p in inst.parcels:
                chain_of = links.get(parcels[p.key].id, [])
                befores[index, p.key] = next((i for i in reversed(chain_of) if i < root and i not in members), None)
                chain.linked[index, p.key] = any(i in members for i in chain_of)
        known = _conveyances(session, {i for i in befores.values() if i is not None})
        chain.before = {k: None if i is None else known[i] for k, i in befores.items()}
        return chain

    def conveys(self, index: int) -> bool:
        return self.kinds[index] in CONVEYANCES

    def kind(self, index: int) -> DocType:
        return self.kinds[index]

    def corrected(self, index: int, key: str, owner: object,
                  instruments: Sequence[InstrumentInput]) -> title.Corrected | None:  # fmt: skip
        """What the ``index``-th instrument corrects, as parcel ``key``'s title saw it (None: no correction)."""
        members = self.family.get(index)
        if members is None or (index, key) not in self.before:
            return None
        if isinstance(owner, tuple):  # an instrument of this call: a correction of the same family?
            earlier = instruments[owner[1]].corrects
            holds = earlier is not None and any(self.numbers.get(i) == earlier for i in members)
        else:
            holds = owner in members
        return title.Corrected(
            str(instruments[index].corrects), self.before[index, key], self.linked[index, key], holds
        )

    def resolve(self, session: Session, ids: list[int], instruments: Sequence[InstrumentInput], made: list[_Made],
                parcels: dict[str, _Parcel], now: datetime) -> dict[int, list[int]]:  # fmt: skip
        """Resolve, by the instruments just recorded, the open title flags they settle: a flag on a
        deed they correct (on a parcel where the correction is not flagged itself, or no longer
        named), and a flag on a deed whose grantees they make the owners of record. Each resolution
        is a new row naming the resolving instrument."""
        settling = [i for i, m in enumerate(made) if m.links or i in self.family]
        if not settling:
            return {}
        pids = {key: p.id for key, p in parcels.items()}
        families = set().union(*(self.family[i] for i in settling if i in self.family))
        open_flags = _open_flags(session, {pids[k] for i in settling for k in made[i].links}, families)
        by_parcel: dict[int, list[int]] = {}
        by_instrument: dict[int, list[int]] = {}
        for flag_id, (iid, pid, _) in open_flags.items():
            by_parcel.setdefault(pid, []).append(flag_id)
            by_instrument.setdefault(iid, []).append(flag_id)
        out: dict[int, list[int]] = {}
        rows = []
        for i in settling:
            own = {pids[f.parcel_key] for f in made[i].flags}
            named = {pids[p.key] for p in instruments[i].parcels}
            links = {pids[k] for k in made[i].links}
            candidates = {f for m in self.family.get(i, ()) for f in by_instrument.get(m, ())}
            for flag_id in sorted(candidates.union(*(by_parcel.get(pid, ()) for pid in links))):
                if flag_id not in open_flags or open_flags[flag_id][0] >= ids[i]:
                    continue  # resolved by an earlier instrument of this call, or recorded after this one
                iid, pid, grantees = open_flags[flag_id]
                if iid in self.family.get(i, ()) and (pid not in named or pid not in own):
                    reason = f"corrected by instrument {made[i].number}"
                elif pid in links and title.resolves(grantees, instruments[i].grantees):
                    reason = f"instrument {made[i].number} makes {'; '.join(grantees)} the owners of record"
                else:
                    continue
                rows.append({"flag_id": flag_id, "instrument_id": ids[i], "reason": reason, "created_at": now})
                out.setdefault(ids[i], []).append(flag_id)
                del open_flags[flag_id]
        if rows:
            session.connection().execute(insert(table(TitleFlagResolution)), rows[0] if len(rows) == 1 else rows)
        return out


def _families(session: Session, ids: set[int]) -> dict[int, tuple[int, frozenset[int], str]]:
    """For each instrument in ``ids``: the first instrument of its correction family (the one every
    other corrects, directly or through another correction), the family's ids, and the first one's type."""
    up: dict[int, tuple[int | None, str]] = {}
    frontier = set(ids)
    while frontier:  # up to each family's first instrument
        rows = session.execute(select(Instrument.id, Instrument.corrects_id, Instrument.doc_type)
                               .where(Instrument.id.in_(sorted(frontier)))).all()  # fmt: skip
        up.update({iid: (parent, doc_type) for iid, parent, doc_type in rows})
        frontier = {parent for _, parent, _ in rows if parent is not None and parent not in up}

    def root_of(iid: int) -> int:
        while (parent := up[iid][0]) is not None:
            iid = parent
        return iid

    roots = {root_of(i) for i in ids}
    members: dict[int, set[int]] = {r: {r} for r in roots}
    frontier_of = {r: r for r in roots}  # id -> its family's root
    while frontier_of:  # down: every correction of a member
        found = session.execute(select(Instrument.id, Instrument.corrects_id)
                                .where(Instrument.corrects_id.in_(sorted(frontier_of)))).all()  # fmt: skip
        frontier_of = {iid: frontier_of[parent] for iid, parent in found if parent is not None}
        for iid, root in frontier_of.items():
            members[root].add(iid)
    return {i: (root_of(i), frozenset(members[root_of(i)]), up[root_of(i)][1]) for i in ids}


def _links(session: Session, pids: set[int]) -> dict[int, list[int]]:
    """Each parcel's links of the chain of title, in recording order: the conveyances (and
    corrections of conveyances) recorded on it without a title flag on it."""
    out: dict[int, list[int]] = {}
    for chunk in chunks(sorted(pids)):
        rows = session.execute(
            select(InstrumentParcel.parcel_id, Instrument.id, Instrument.doc_type, Instrument.corrects_id)
            .join(Instrument, Instrument.id == InstrumentParcel.instrument_id)
            .where(InstrumentParcel.parcel_id.in_(chunk)).order_by(Instrument.id)
        ).all()  # fmt: skip
        flagged = set(session.execute(select(TitleFlag.instrument_id, TitleFlag.parcel_id)
                                      .where(TitleFlag.parcel_id.in_(chunk))).all())  # fmt: skip
        kinds = {iid: (doc_type, parent) for _, iid, doc_type, parent in rows}
        for pid, iid, _, _ in rows:
            if (iid, pid) not in flagged and _conveys(iid, kinds):
                out.setdefault(pid, []).append(iid)
    return out


def _conveys(iid: int, kinds: dict[int, tuple[str, int | None]]) -> bool:
    doc_type, parent = kinds[iid]
    while doc_type == DocType.CORRECTION and parent in kinds:  # a correction conveys if what it corrects does
        doc_type, parent = kinds[parent]
    return doc_type in CONVEYANCES


def _open_flags(session: Session, pids: set[int], instrument_ids: set[int]) -> dict[int, tuple[int, int, list[str]]]:
    """The unresolved title flags on ``pids`` or of ``instrument_ids``: flag id -> (instrument id,
    parcel id, the flagged instrument's grantees)."""
    resolved = select(TitleFlagResolution.flag_id).where(TitleFlagResolution.flag_id == TitleFlag.id).exists()
    stmt = select(TitleFlag.id, TitleFlag.instrument_id, TitleFlag.parcel_id).where(~resolved)
    rows = {r[0]: r for r in select_in(session, stmt, TitleFlag.parcel_id, sorted(pids))}
    rows.update({r[0]: r for r in select_in(session, stmt, TitleFlag.instrument_id, sorted(instrument_ids))})
    grantees: dict[int, list[str]] = {}
    names = select(InstrumentParty.instrument_id, InstrumentParty.name, InstrumentParty.position).where(
        InstrumentParty.role == "grantee")  # fmt: skip
    for iid, name, _ in sorted(select_in(session, names, InstrumentParty.instrument_id,
                                         sorted({r[1] for r in rows.values()})), key=lambda r: (r[0], r[2])):  # fmt: skip
        grantees.setdefault(iid, []).append(name)
    return {fid: (iid, pid, grantees.get(iid, [])) for fid, iid, pid in sorted(rows.values())}


def _entries(ids: list[int], records: list[InstrumentRecord], seeds: list[bytes], parcels: dict[str, _Parcel],
             mirror: Sequence[int | None] | None) -> list[ledger.Entry]:  # fmt: skip
    """The ledger entries of the records just written (a mirror's: source ``mirror``, with what each supersedes)."""
    kinds = [(ledger.Source.FILING, None)] * len(ids) if mirror is None else [
        (ledger.Source.MIRROR, sup) for sup in mirror]  # fmt: skip
    return [
        ledger.Entry(iid, record.instrument_number, commitments.prepare(record, s, commitments.SCHEME),
                     tuple(parcels[k].id for k in record.parcels), record.parcels, kind, sup)
        for iid, record, s, (kind, sup) in zip(ids, records, seeds, kinds, strict=True)
    ]  # fmt: skip


def _insert_details(
    conn: Any, ids: list[int], instruments: Sequence[InstrumentInput], made: list[_Made],
    parcels: dict[str, _Parcel], now: datetime,
) -> None:  # fmt: skip
    """The instruments' parties (and the index's keys and terms), parcel links, cross-references and title flags."""
    party_rows: list[dict[str, Any]] = []
    key_rows: list[dict[str, Any]] = []
    term_rows: list[dict[str, Any]] = []
    link_rows: list[dict[str, Any]] = []
    flag_rows: list[dict[str, Any]] = []
    ref_rows: list[dict[str, Any]] = []
    for instrument_id, inst, entry in zip(ids, instruments, made, strict=True):
        ref_rows.extend(
            {"instrument_id": instrument_id, "position": i, "kind": str(r.kind), "target_number": r.instrument_number,
             "target_book": r.book, "target_page": r.page}
            for i, r in enumerate(inst.references)
        )  # fmt: skip
        keys: list[str] = []
        for role, names in (("grantor", inst.grantors), ("grantee", inst.grantees)):
            party_rows.extend(
                {"instrument_id": instrument_id, "role": role, "position": i, "name": name}
                for i, name in enumerate(names)
            )
            role_keys = [inst.profile.name_rules.key(name) for name in names]
            key_rows.extend({"instrument_id": instrument_id, "role": role, "position": i, "name_key": key}
                            for i, key in enumerate(role_keys))  # fmt: skip
            keys += role_keys
        terms = terms_of(keys, [p.columns()["municipality_code"] for p in inst.parcels])
        term_rows.extend({"term": t, "recorded_at": entry.recorded_at, "instrument_id": instrument_id}
                         for t in sorted(terms))  # fmt: skip
        link_rows.extend(
            {"instrument_id": instrument_id, "parcel_id": parcels[p.key].id, "position": i}
            for i, p in enumerate(inst.parcels)
        )
        flag_rows.extend(
            {"instrument_id": instrument_id, "parcel_id": parcels[f.parcel_key].id, "kind": f.kind,
             "message": f.message, "created_at": now}
            for f in entry.flags
        )  # fmt: skip
    for model, rows in ((InstrumentParty, party_rows), (PartyNameKey, key_rows), (InstrumentTerm, term_rows),
                        (InstrumentParcel, link_rows), (TitleFlag, flag_rows), (InstrumentReference, ref_rows)):  # fmt: skip
        bulk.insert_rows(conn, table(model), rows, any_order=model is InstrumentTerm)  # (terms: 8 an instrument)


def _insert_instruments(conn: Any, rows: list[dict[str, Any]]) -> list[int]:
    """Insert the instruments' rows; their ids, in order. Many at once on PostgreSQL go in by COPY
    with ids drawn beforehand, unless a number is taken: then by the INSERT, which fails on it
    having drawn exactly the ids it always draws (a failed load's successor gets the same ids)."""
    if bulk.copies(conn, len(rows)) and not _numbers_taken(conn, [r["instrument_number"] for r in rows]):
        ids = bulk.next_ids(conn, table(Instrument), len(rows))
        bulk.copy_rows(conn, table(Instrument), [{"id": i, **r} for i, r in zip(ids, rows, strict=True)])
        return ids
    return list(conn.execute(_INSERT_INSTRUMENT, rows).scalars())


def _numbers_taken(conn: Any, numbers: list[str]) -> bool:
    """Whether any of ``numbers`` is recorded already or given twice (PostgreSQL)."""
    if len(set(numbers)) < len(numbers):
        return True
    taken = conn.exec_driver_sql(
        "SELECT 1 FROM instruments WHERE instrument_number = ANY(%(n)s) LIMIT 1", {"n": numbers}
    )
    return taken.first() is not None


# --- helpers ----------------------------------------------------------------------------------------
# Statements built once, so SQLAlchemy compiles each once per dialect and reuses it.
_INSERT_INSTRUMENT = insert(table(Instrument)).returning(table(Instrument).c.id, sort_by_parameter_order=True)
_MOVE_OWNERS = (
    update(table(Parcel)).where(table(Parcel).c.id == bindparam("pid")).values(owner_instrument_id=bindparam("owner"))
)
_UPSERT_PARCELS: dict[str, Any] = {}


def _upsert_parcels(dialect: str) -> Any:
    """INSERT ... ON CONFLICT DO UPDATE ... RETURNING: creates new parcels, row-locks existing ones
    (like SELECT ... FOR UPDATE) and returns their owners, in one statement."""
    if dialect not in _UPSERT_PARCELS:
        parcels = table(Parcel)
        stmt = upsert_insert(dialect)(parcels)
        stmt = stmt.on_conflict_do_update(index_elements=["parcel_key"], set_={"parcel_key": stmt.excluded.parcel_key})
        _UPSERT_PARCELS[dialect] = stmt.returning(
            parcels.c.id,
            parcels.c.parcel_key,
            parcels.c.owner_instrument_id,
            parcels.c.head_instrument_id,
            sort_by_parameter_order=True,
        )
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


def _resolve_parcels(session: Session, instruments: Sequence[InstrumentInput]) -> dict[str, _Parcel]:
    """Every parcel the instruments touch, created if new and row-locked until the transaction ends
    (in key order, so concurrent filings never deadlock), with its owner of record."""
    refs = {p.key: p for inst in instruments for p in inst.parcels}
    now = datetime.now(UTC)
    rows = [{"parcel_key": k, **refs[k].columns(), "created_at": now} for k in sorted(refs)]
    conn = session.connection()
    if bulk.copies(conn, len(rows)):  # the same statement, its rows as arrays (ids drawn in the same order)
        source, params = bulk.selected(conn, table(Parcel), rows)
        result = conn.exec_driver_sql(
            f"INSERT INTO parcels ({', '.join(rows[0])}) {source} ON CONFLICT (parcel_key) DO UPDATE SET "
            "parcel_key = excluded.parcel_key RETURNING id, parcel_key, owner_instrument_id, head_instrument_id",
            params,
        )
    else:
        result = conn.execute(_upsert_parcels(conn.dialect.name), rows)
    return {key: _Parcel(pid, owner, head) for pid, key, owner, head in result}


def _conveyances(session: Session, ids: set[object]) -> dict[object, title.Conveyance]:
    """The conveyances naming the owners of record, by instrument id."""
    wanted = sorted(i for i in ids if isinstance(i, int))
    out: dict[object, title.Conveyance] = {}
    for chunk in chunks(wanted):
        numbers = dict(session.execute(select(Instrument.id, Instrument.instrument_number)
                                       .where(Instrument.id.in_(chunk))).all())  # fmt: skip
        parties: dict[int, tuple[list[str], list[str]]] = {iid: ([], []) for iid in numbers}
        for iid, role, name in session.execute(
            select(InstrumentParty.instrument_id, InstrumentParty.role, InstrumentParty.name)
            .where(InstrumentParty.instrument_id.in_(chunk))
            .order_by(InstrumentParty.instrument_id, InstrumentParty.role, InstrumentParty.position)
        ):
            parties[iid][0 if role == "grantor" else 1].append(name)
        out.update({iid: title.Conveyance(number, *parties[iid]) for iid, number in numbers.items()})
    return out


def _resolve_corrections(session: Session, instruments: Sequence[InstrumentInput]) -> dict[str, int]:
    wanted = sorted({i.corrects for i in instruments if i.corrects})
    found: dict[str, int] = {}
    for chunk in chunks(wanted):
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


def _superseded_commitments(session: Session, mirror: Sequence[int | None] | None) -> dict[int, str]:
    """The commitment (hex) of each version a mirrored version supersedes, by instrument id: v2
    commits it (``supersedes``), so a new version names the one it replaces."""
    wanted = sorted({i for i in mirror or () if i is not None})
    if not wanted:
        return {}
    stmt = select(Commitment.instrument_id, Commitment.commitment).where(Commitment.instrument_id.in_(wanted))
    return {iid: to_hex(value) for iid, value in session.execute(stmt).all()}


def _iso(day: Any) -> str | None:
    return None if day is None else str(day.isoformat())


def _integrity_message(exc: IntegrityError) -> str:
    text = str(exc.orig)
    if "instrument_number" in text:
        return "an instrument with this number is already recorded"
    return text.splitlines()[0]
