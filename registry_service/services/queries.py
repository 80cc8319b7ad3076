"""Queries: instruments, searches, parcels and their histories, as clerks and auditors read them.
Who may read is decided at the edge; an instrument's content is read back through the one reader
of the committed form (``hybrid_store.db.records``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from hybrid_store import mirror
from hybrid_store.core import title
from hybrid_store.core.commitment import SCHEME_V1
from hybrid_store.core.hashing import to_hex
from hybrid_store.core.records import CONVEYANCES, DocType
from hybrid_store.db.engine import Database
from hybrid_store.db.models import (
    AnchorBatch,
    BatchRecord,
    BatchState,
    ChainDeployment,
    Commitment,
    Instrument,
    InstrumentParcel,
    Parcel,
    TitleFlag,
    TitleFlagResolution,
)
from hybrid_store.db.records import load_record_by_number
from hybrid_store.errors import NotFound
from hybrid_store.jurisdictions import Profile
from hybrid_store.settings import Settings
from registry_service import schemas
from registry_service.services import search

MAX_PAGE = 100


class Queries:
    def __init__(self, settings: Settings, db: Database):
        self.settings = settings
        self.db = db
        self.profile: Profile = settings.profile

    def instrument(self, number: str, *, personal: bool = False) -> schemas.InstrumentView:
        """One instrument; ``personal``: with the personal data the registry keeps beside the record
        (the return-to address), for a caller who files (the clerk mails the original back)."""
        with self.db.read() as s:
            conn = s.connection()
            stored = load_record_by_number(conn, number)
            if stored is None:
                raise NotFound(f"no instrument numbered {number}")
            iid = stored.instrument_id
            recorded_at = s.scalar(select(Instrument.recorded_at).where(Instrument.id == iid))
            parcels = {p.id: p for p in s.scalars(select(Parcel).where(Parcel.id.in_(stored.parcel_ids)))}
            corrected_by = list(s.scalars(select(Instrument.instrument_number).where(Instrument.corrects_id == iid)
                                          .order_by(Instrument.id)))  # fmt: skip
            flags = self._flags(s, [iid]).get(iid, [])
            anchoring = self._anchoring(s, [iid])[iid]
            replaced = mirror_flags(s, [iid])
        r = stored.record
        return schemas.InstrumentView(
            instrument_number=r.instrument_number, book=r.book, page=r.page, recorded_at=recorded_at,
            doc_type=r.doc_type, grantors=list(r.grantors), grantees=list(r.grantees),
            parcels=[_parcel_link(parcels[pid], self.profile) for pid in stored.parcel_ids],
            consideration=None if r.consideration_cents is None else f"{r.consideration_cents / 100:.2f}",
            legal_description=r.legal_description, document_digest=r.document_digest, corrects=r.corrects,
            corrected_by=corrected_by, commitment=to_hex(stored.commitment) if stored.commitment else "",
            anchoring=anchoring, flags=flags, mirror_flags=replaced,
            superseded_by=next((f.successor_number for f in replaced if f.successor_number), None),
            commitment_scheme=stored.scheme, document_date=r.document_date, page_count=r.page_count,
            grantee_mailing_address=r.grantee_mailing_address, preparer=r.preparer,
            references=[schemas.ReferenceView(kind=ref.kind, instrument_number=ref.number, book=ref.book, page=ref.page)
                        for ref in r.references],
            supersedes=r.supersedes if stored.scheme != SCHEME_V1 else None,
            return_to=stored.return_to if personal else None,
        )  # fmt: skip

    def search(
        self, criteria: search.Criteria, *, sort: search.Sort = search.Sort.NEWEST, limit: int = 25,
        cursor: str | None = None, require_criteria: bool = False,
    ) -> schemas.InstrumentPage:  # fmt: skip
        """Instruments matching every criterion given (``search``), ``limit`` at a time in ``sort``
        order, after the instrument ``cursor`` names. ``require_criteria``: refuse an empty search
        (the desk's form; the API lists every instrument)."""
        limit = max(1, min(limit, MAX_PAGE))
        with self.db.read() as s:
            ids, more = search.find(s, self.profile, criteria, sort=sort, cursor=cursor, limit=limit,
                                    require_criteria=require_criteria, dialect=self.db.engine.dialect.name)  # fmt: skip
            rows = {i.id: i for i in s.scalars(select(Instrument).where(Instrument.id.in_(ids)))} if ids else {}
            anchoring = self._anchoring(s, ids)
            data = [
                schemas.InstrumentSummary(
                    instrument_number=rows[i].instrument_number,
                    book=rows[i].book,
                    page=rows[i].page,
                    recorded_at=rows[i].recorded_at,
                    document_date=rows[i].document_date,
                    doc_type=rows[i].doc_type,
                    grantors=rows[i].names("grantor"),
                    grantees=rows[i].names("grantee"),
                    parcels=[link.parcel.parcel_key for link in rows[i].parcel_links],
                    anchoring=anchoring[i].status,
                )
                for i in ids
            ]
        return schemas.InstrumentPage(data=data, count=len(data), next_cursor=str(ids[-1]) if more else None)

    def parcel(self, key: str) -> schemas.ParcelView:
        with self.db.read() as s:
            p = self._parcel_row(s, key)
            owner = None
            if p.owner_instrument_id:
                inst = s.get_one(Instrument, p.owner_instrument_id)
                owner = schemas.Owner(names=inst.names("grantee"), instrument_number=inst.instrument_number,
                                      recorded_at=inst.recorded_at)  # fmt: skip
            token = None
            if p.token_id is not None and p.token_batch_id is not None:
                batch = s.get_one(AnchorBatch, p.token_batch_id)
                token = schemas.Token(token_id=p.token_id, contract=batch.deployment.contract_address,
                                      chain_id=batch.deployment.chain_id, status=status_of(batch))  # fmt: skip
            count = s.scalar(
                select(func.count()).select_from(InstrumentParcel).where(InstrumentParcel.parcel_id == p.id)
            )
            open_flags = s.scalar(select(func.count()).select_from(TitleFlag).where(TitleFlag.parcel_id == p.id)
                                  .where(~select(TitleFlagResolution.id)
                                         .where(TitleFlagResolution.flag_id == TitleFlag.id).exists()))  # fmt: skip
            head = s.get(Commitment, p.head_instrument_id) if p.head_instrument_id else None
            link = _parcel_link(p, self.profile)
            ids = list(s.scalars(select(InstrumentParcel.instrument_id).where(InstrumentParcel.parcel_id == p.id)))
            return schemas.ParcelView(
                **link.model_dump(), owner_of_record=owner, token=token, instruments=count or 0,
                open_flags=open_flags or 0, head_commitment=to_hex(head.commitment) if head else None,
                mirror_flags=mirror_flags(s, ids),
            )  # fmt: skip

    def history(self, key: str) -> schemas.ParcelHistory:
        """Every record of a parcel, oldest first, with its hash-chain link and chain-of-title role."""
        with self.db.read() as s:
            p = self._parcel_row(s, key)
            insts = list(
                s.scalars(
                    select(Instrument)
                    .join(InstrumentParcel, InstrumentParcel.instrument_id == Instrument.id)
                    .where(InstrumentParcel.parcel_id == p.id)
                    .order_by(Instrument.recorded_at, Instrument.id)
                )
            )
            ids = [i.id for i in insts]
            commitments = {
                c.instrument_id: c for c in s.scalars(select(Commitment).where(Commitment.instrument_id.in_(ids)))
            }
            flags = self._flags(s, ids, parcel_id=p.id)
            anchoring = self._anchoring(s, ids)
            corrected_by: dict[int, list[str]] = {}
            for original, number in s.execute(select(Instrument.corrects_id, Instrument.instrument_number)
                                              .where(Instrument.corrects_id.in_(ids)).order_by(Instrument.id)):  # fmt: skip
                if original is not None:
                    corrected_by.setdefault(original, []).append(number)
            entries = []
            for inst in insts:
                c = commitments.get(inst.id)
                previous = next((link[2] for link in (c.prev if c else []) if link[0] == key), None)
                entries.append(
                    schemas.HistoryEntry(
                        instrument_number=inst.instrument_number,
                        recorded_at=inst.recorded_at,
                        doc_type=inst.doc_type,
                        grantors=inst.names("grantor"),
                        grantees=inst.names("grantee"),
                        commitment=to_hex(c.commitment) if c else "",
                        previous=previous,
                        title_link=_conveys(inst) and not flags.get(inst.id),
                        corrects=inst.corrects.instrument_number if inst.corrects else None,
                        corrected_by=corrected_by.get(inst.id, []),
                        flags=flags.get(inst.id, []),
                        anchoring=anchoring[inst.id],
                    )  # fmt: skip
                )
        return schemas.ParcelHistory(parcel=key, entries=entries)

    # --- helpers ------------------------------------------------------------------------------------
    def _parcel_row(self, s: Session, key: str) -> Parcel:
        p = s.scalar(select(Parcel).where(Parcel.parcel_key == key))
        if p is None:
            raise NotFound(f"no parcel {key} (parcel keys look like 0223_100.01_5 or 0223_100.01_5_C0001)")
        return p

    def _flags(self, s: Session, ids: Iterable[int], parcel_id: int | None = None) -> dict[int, list[schemas.FlagView]]:
        ids = list(ids)
        if not ids:
            return {}
        resolver = aliased(Instrument)
        stmt = (
            select(TitleFlag.id, TitleFlag.instrument_id, Parcel.parcel_key, TitleFlag.kind, TitleFlag.message,
                   resolver.instrument_number, TitleFlagResolution.reason)
            .join(Parcel, Parcel.id == TitleFlag.parcel_id)
            .outerjoin(TitleFlagResolution, TitleFlagResolution.flag_id == TitleFlag.id)
            .outerjoin(resolver, resolver.id == TitleFlagResolution.instrument_id)
            .where(TitleFlag.instrument_id.in_(ids))
            .order_by(TitleFlag.id)
        )  # fmt: skip
        if parcel_id is not None:
            stmt = stmt.where(TitleFlag.parcel_id == parcel_id)
        out: dict[int, list[schemas.FlagView]] = {}
        for fid, iid, key, kind, message, resolved_by, resolution in s.execute(stmt):
            out.setdefault(iid, []).append(schemas.FlagView(
                id=fid, parcel=key, kind=kind, message=message, ownership=kind in title.OWNERSHIP,
                resolved_by=resolved_by, resolution=resolution,
            ))  # fmt: skip
        return out

    def _anchoring(self, s: Session, ids: Sequence[int]) -> dict[int, schemas.Anchoring]:
        out = {i: schemas.Anchoring(status="pending") for i in ids}
        if not ids:
            return out
        rows = s.execute(
            select(BatchRecord.instrument_id, AnchorBatch, ChainDeployment)
            .join(AnchorBatch, AnchorBatch.id == BatchRecord.batch_id)
            .join(ChainDeployment, ChainDeployment.id == AnchorBatch.deployment_id)
            .where(BatchRecord.instrument_id.in_(list(ids)), AnchorBatch.state != BatchState.FAILED)
            .where(AnchorBatch.superseded_at.is_(None))
            .order_by(AnchorBatch.id)
        ).all()
        for iid, batch, deployment in rows:  # later batches win (a re-anchored record)
            out[iid] = schemas.Anchoring(
                status=status_of(batch), batch_id=batch.chain_batch_id, tx_hash=batch.tx_hash,
                block_number=batch.block_number, chain_id=deployment.chain_id, contract=deployment.contract_address,
            )  # fmt: skip
        return out


def _conveys(inst: Instrument) -> bool:
    """A conveyance, or a correction re-recording one (a link of the chain of title when unflagged)."""
    found: Instrument | None = inst
    for _ in range(16):  # a correction of a correction ...: bounded, as stored rows are no proof of sanity
        if found is None or found.doc_type != DocType.CORRECTION:
            break
        found = found.corrects
    return found is not None and found.doc_type in CONVEYANCES


def status_of(batch: AnchorBatch) -> str:
    return "anchored" if batch.state == BatchState.CONFIRMED else "submitted"


def _parcel_link(p: Parcel, profile: Profile) -> schemas.ParcelLink:
    return schemas.ParcelLink(
        key=p.parcel_key, municipality_code=p.municipality_code, municipality=profile.place_name(p.municipality_code),
        block=p.block, lot=p.lot, qualifier=p.qualifier,
    )  # fmt: skip


def mirror_flags(s: Session, instrument_ids: list[int]) -> list[schemas.MirrorFlagView]:
    """The parallel run's flags on these instruments (``hybrid_store.mirror``), newest first."""
    return [mirror_flag_view(f) for f in mirror.flags(s, instrument_ids=instrument_ids)]


def mirror_flag_view(f: mirror.FlagView) -> schemas.MirrorFlagView:
    return schemas.MirrorFlagView(id=f.id, kind=f.kind, instrument_number=f.instrument_number,
                                  successor_number=f.successor_number, changed=f.diff, flagged_at=f.created_at,
                                  acknowledged_at=f.acknowledged_at, acknowledged_by=f.acknowledged_by,
                                  ack_reason=f.ack_reason, revoked_on_chain=f.revoked_block is not None,
                                  revocation_held=f.held)  # fmt: skip
