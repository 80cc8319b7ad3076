"""Proof bundles out of the database.

``export_bundle`` gathers what ``hybrid_store.core.bundle`` needs for one instrument. A bundle is
complete only once the record's batch is *confirmed* (anchored at the configured depth); before
that it is pending, with no tree and no anchor. Checking a bundle is the verifier's job
(``hybrid_store.verifier``), which imports nothing of this module or the database.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from hybrid_store.core import bundle as bundles
from hybrid_store.core import merkle
from hybrid_store.core.commitment import FIELDS, disclose
from hybrid_store.core.hashing import to_hex
from hybrid_store.db.models import (
    AnchorBatch,
    BatchRecord,
    BatchState,
    ChainDeployment,
    Instrument,
    MirrorFlag,
    table,
)
from hybrid_store.db.records import load_record_by_number
from hybrid_store.errors import NotFound
from hybrid_store.pins import registry_profile

_B = table(AnchorBatch)
_D = table(ChainDeployment)
_BR = table(BatchRecord)
_PLACEMENT = (
    select(
        _B.c.id,
        _B.c.state,
        _B.c.chain_batch_id,
        _B.c.root,
        _B.c.tx_hash,
        _B.c.block_number,
        _BR.c.tree_index,
        _D.c.chain_id,
        _D.c.contract_address,
    )  # fmt: skip
    .select_from(_B.join(_BR, _BR.c.batch_id == _B.c.id).join(_D, _D.c.id == _B.c.deployment_id))
    .where(_BR.c.instrument_id == bindparam("iid"), _B.c.state != BatchState.FAILED, _B.c.superseded_at.is_(None))
    .order_by(_B.c.id.desc())
    .limit(1)
)


#: the version that superseded a record, once the record's leaf is revoked on the chain for it
_SUCCESSOR = (
    select(Instrument.instrument_number)
    .join(MirrorFlag, MirrorFlag.successor_id == Instrument.id)
    .where(MirrorFlag.instrument_id == bindparam("iid"), MirrorFlag.revoked_block.is_not(None))
)


#: the records that correct a record (each names it by its ``corrects`` link)
_CORRECTIONS = (
    select(Instrument.instrument_number)
    .where(Instrument.corrects_id == bindparam("iid"))
    .order_by(Instrument.id)
    .limit(bundles.MAX_CORRECTIONS)
)
#: what a correction's bundle discloses as evidence (less when the reader may see less): what names
#: it, and what it names
_CORRECTION_SHOWS = frozenset({"instrument_number", "doc_type", "recorded_at", "corrects", "references"})


def export_bundle(
    session: Session, instrument_number: str, redact: Iterable[str] = (), *, with_successor: bool = True
) -> bundles.ProofBundle:
    """One record's bundle: the record as ``db.records`` reads it back, its batch, and just the
    proof's nodes (read out of the stored node array by the database). A record whose leaf the
    chain shows revoked for a newer version carries that version's bundle (``with_successor``),
    the evidence a verifier needs; both then disclose their history links (``prev``), which is
    what the evidence consists of. So, with it, does a record later records correct: their anchored
    bundles, disclosing their correction link."""
    conn = session.connection()
    stored = load_record_by_number(conn, instrument_number)
    if stored is None:
        raise NotFound(f"no instrument numbered {instrument_number}")
    iid = stored.instrument_id
    if stored.commitment is None:
        raise NotFound(f"instrument {instrument_number} has no commitment yet (it has not been migrated)")
    disclosure = disclose(stored.record, stored.seed, redact, stored.commit_scheme)
    tree = anchor = None
    placed = conn.execute(_PLACEMENT, {"iid": iid}).first()
    if placed is not None and placed.state == BatchState.CONFIRMED:
        offsets = merkle.sibling_indices(placed.tree_index)
        proof: tuple[bytes, ...] = ()
        if offsets:
            nodes = select(*(func.substr(_B.c.nodes, o * merkle.NODE_SIZE + 1, merkle.NODE_SIZE) for o in offsets))
            proof = tuple(bytes(n) for n in conn.execute(nodes.where(_B.c.id == placed.id)).one())
        tree = bundles.TreeProof(merkle.COMMITMENT_ENCODING, (to_hex(stored.commitment),), proof, placed.root)
        anchor = bundles.Anchor(
            chain_id=placed.chain_id, contract=placed.contract_address, batch_id=placed.chain_batch_id,
            tx_hash=placed.tx_hash, block_number=placed.block_number,
        )  # fmt: skip
    made = bundles.ProofBundle(disclosure=disclosure, commitment=stored.commitment, tree=tree, anchor=anchor,
                               jurisdiction=registry_profile(session).name)  # fmt: skip
    # evidence is carried one level deep only, and only where it can be checked: a correction names
    # what it corrects by its number, so a bundle that withholds the number carries none
    if with_successor and tree is not None and "instrument_number" not in set(redact):
        made = replace(made, corrections=correction_bundles(session, iid, redact))
    newer = conn.execute(_SUCCESSOR, {"iid": iid}).scalar() if with_successor and tree is not None else None
    if newer is None:
        return made
    shown = sorted(set(redact) - {"prev"})
    successor = export_bundle(session, newer, shown, with_successor=False)
    if not successor.is_anchored:
        return made
    return replace(
        made, disclosure=disclose(stored.record, stored.seed, shown, stored.commit_scheme), successor=successor
    )


def correction_bundles(session: Session, iid: int, redact: Iterable[str] = ()) -> tuple[bundles.ProofBundle, ...]:
    """The anchored bundles of the records that correct instrument ``iid``, disclosing no more than
    their link (and never what the reader may not see): a verifier checks each before it says
    "corrected by"."""
    hidden = sorted(set(FIELDS) - (_CORRECTION_SHOWS - set(redact)))
    found = (export_bundle(session, number, hidden, with_successor=False)
             for number in session.connection().execute(_CORRECTIONS, {"iid": iid}).scalars())  # fmt: skip
    return tuple(b for b in found if b.is_anchored)
