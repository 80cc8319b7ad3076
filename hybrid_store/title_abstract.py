"""A parcel's title abstract out of the database (format: docs/title-abstract.md).

``build`` walks the parcel's history back from its head in the newest confirmed title state (or a
named batch's) through the committed history links, and gives every record's proof bundle with the
head's proofs; the verifier (``hybrid_store.verifier.abstracts``) checks all of it against the
chain and trusts none of it. Records recorded after that state (not yet anchored) are not in it:
the abstract is "as of" its batch.

``recorded_title`` is the database's own answer to "who owns it, what is open against it", read
from the index tables (owners of record, structured cross-references), not from the commitments:
the tests hold the verifier's derivation to it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from hybrid_store import title_states
from hybrid_store.core import abstract as core
from hybrid_store.core import bundle as bundles
from hybrid_store.core.commitment import FIELDS
from hybrid_store.core.hashing import to_hex
from hybrid_store.core.records import DocType
from hybrid_store.db.models import Commitment, Instrument, InstrumentParcel, InstrumentReference, Parcel
from hybrid_store.errors import DamagedRecord, NotFound
from hybrid_store.pins import registry_profile
from hybrid_store.proofs import export_bundle
from hybrid_store.verifier.abstracts import Abstract, HeadDoc

#: the fields every record of an abstract discloses whatever else is redacted: index data the
#: history and the title are derived from, never a name or an address
ALWAYS_SHOWN = frozenset(core.NEEDED_V2)


def head_document(session: Session, parcel_key: str, batch_id: int | None = None) -> HeadDoc:
    """The parcel's head (or its absence) in the newest confirmed title state (or batch ``batch_id``'s)."""
    try:
        found = title_states.anchored_head(session, parcel_key, batch_id)
    except title_states.ts.UnknownVersionError as exc:
        raise NotFound(str(exc)) from None
    except title_states.TitleStoreError:
        raise
    except (KeyError, title_states.ts.TitleStateError):  # a node missing, or not the one its hash names
        raise title_states.TitleStoreError(
            f"the stored title state does not prove parcel {parcel_key}'s head: it was edited in the database; run "
            "`landreg reconcile` (the state anchored on the chain is intact)"
        ) from None
    if found.block_number is None:
        raise NotFound(f"batch {found.chain_batch_id} is not anchored yet")
    anchor = bundles.Anchor(chain_id=found.chain_id, contract=found.contract, batch_id=found.chain_batch_id,
                            tx_hash=found.tx_hash, block_number=found.block_number)  # fmt: skip
    return HeadDoc(parcel_key, found.state_root, found.proof, found.marker_proof, anchor, found.batch_root)


def history(session: Session, parcel_key: str, head_commitment: bytes | None) -> list[str]:
    """The instrument numbers of the parcel's history, oldest first, back from ``head_commitment``
    through the committed links (``DamagedRecord`` if a link names a record the database lacks)."""
    numbers: list[str] = []
    wanted = head_commitment
    after = "the title state's head"
    while wanted is not None:
        row = session.execute(
            select(Instrument.instrument_number, Commitment.prev)
            .join(Commitment, Commitment.instrument_id == Instrument.id)
            .where(Commitment.commitment == wanted)
        ).first()  # fmt: skip
        if row is None:
            raise DamagedRecord(after, f"its history link on parcel {parcel_key} names the record committed as "
                                f"{to_hex(wanted)}, which the database does not hold")  # fmt: skip
        numbers.append(row.instrument_number)
        after = row.instrument_number
        link = next((entry for entry in row.prev if entry[0] == parcel_key), None)
        wanted = bytes.fromhex(link[2][2:]) if link is not None and link[2] is not None else None
        if len(numbers) > 1_000_000:  # a cycle only an edit of the table can make
            raise DamagedRecord(after, f"the history of parcel {parcel_key} does not end")
    numbers.reverse()
    return numbers


def build(session: Session, parcel_key: str, redact: Iterable[str] = (), batch_id: int | None = None) -> Abstract:
    """The abstract of ``parcel_key`` as of the newest confirmed title state (or batch ``batch_id``'s).
    ``redact``: fields to give as hashes only (never those in ``ALWAYS_SHOWN``)."""
    hidden = sorted(set(redact) - ALWAYS_SHOWN)
    unknown = [f for f in hidden if f not in FIELDS]
    if unknown:
        raise ValueError(f"{unknown[0]!r} is not a record field")
    head = head_document(session, parcel_key, batch_id)
    proven = head.head()
    numbers = history(session, parcel_key, proven.commitment if proven is not None else None)
    records = tuple(export_bundle(session, n, hidden, with_successor=False) for n in numbers)
    return Abstract(registry_profile(session).name, parcel_key, records, head)


# --- the database's own answer ------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedTitle:
    owner_number: str | None
    owners: tuple[str, ...]
    #: (kind, opened by, state, closed by), in recording order
    encumbrances: tuple[tuple[str, str, str, str | None], ...]


def recorded_title(session: Session, parcel_key: str) -> RecordedTitle:
    """Who owns ``parcel_key`` and what is open against it, as the index tables say."""
    parcel = session.scalar(select(Parcel).where(Parcel.parcel_key == parcel_key))
    if parcel is None:
        raise NotFound(f"no parcel {parcel_key}")
    owner = session.get(Instrument, parcel.owner_instrument_id) if parcel.owner_instrument_id else None
    rows = session.execute(
        select(Instrument.id, Instrument.instrument_number, Instrument.doc_type, Commitment.scheme)
        .join(InstrumentParcel, InstrumentParcel.instrument_id == Instrument.id)
        .join(Commitment, Commitment.instrument_id == Instrument.id)
        .where(InstrumentParcel.parcel_id == parcel.id).order_by(Instrument.id)
    ).all()  # fmt: skip
    on_parcel = {r.instrument_number: r for r in rows}
    refs = session.execute(
        select(InstrumentReference.instrument_id, InstrumentReference.kind, InstrumentReference.target_number)
        .where(InstrumentReference.instrument_id.in_([r.id for r in rows]))
        .order_by(InstrumentReference.instrument_id, InstrumentReference.position)
    ).all()  # fmt: skip
    closers = {DocType.SATISFACTION: "acts_on_mortgage", DocType.RELEASE: "acts_on_mortgage",
               DocType.DISCHARGE_OF_LIEN: "discharges_lien"}  # fmt: skip
    closable = {"acts_on_mortgage": {DocType.MORTGAGE}, "discharges_lien": {DocType.LIEN, DocType.LIS_PENDENS}}
    by_id = {r.id: r for r in rows}
    closed: dict[str, str] = {}
    for iid, kind, target in refs:
        closer = by_id[iid]
        hit = on_parcel.get(target) if target is not None else None
        if (target is not None and hit is not None and closers.get(DocType(closer.doc_type)) == kind
                and DocType(hit.doc_type) in closable[kind] and hit.id < iid):  # fmt: skip
            closed.setdefault(target, closer.instrument_number)
    out = []
    for r in rows:
        doc_type = DocType(r.doc_type)
        if doc_type not in core.OPENS:
            continue
        later_v1 = any(
            s.id > r.id and s.scheme.endswith("/v1") and DocType(s.doc_type) in closers
            and doc_type in closable[closers[DocType(s.doc_type)]] for s in rows
        )  # fmt: skip
        if r.instrument_number in closed:
            state, by = core.CLOSED, closed[r.instrument_number]
        elif r.scheme.endswith("/v1") or later_v1:
            state, by = core.UNKNOWN, None
        else:
            state, by = core.OPEN, None
        out.append((core.OPENS[doc_type], r.instrument_number, state, by))
    return RecordedTitle(owner.instrument_number if owner else None, tuple(owner.names("grantee")) if owner else (),
                         tuple(out))  # fmt: skip
