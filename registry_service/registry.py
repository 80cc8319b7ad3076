"""The registry's operations, as clerks and auditors use them (HTTP and web desk call these).

Nothing here knows about HTTP: errors are landreg's typed errors, translated at the edge.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import rfc8785
from pydantic import BaseModel
from sqlalchemy import bindparam, func, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from hybrid_store.batches import confirmed_records, open_holds, records_of_batches
from hybrid_store.chain.client import RegistryChain
from hybrid_store.core import bundle as bundles
from hybrid_store.core.commitment import FIELDS
from hybrid_store.core.hashing import to_hex
from hybrid_store.core.records import CONVEYANCES, DocType, format_timestamp
from hybrid_store.core.trust import TrustRoot
from hybrid_store.db.engine import Database
from hybrid_store.db.models import (
    AnchorBatch,
    BatchRecord,
    BatchState,
    ChainDeployment,
    Commitment,
    IdempotencyRecord,
    Instrument,
    InstrumentParcel,
    InstrumentParty,
    MigrationStage,
    OutboxEntry,
    Parcel,
    Reconciliation,
    TitleFlag,
)
from hybrid_store.deployment import active_deployment
from hybrid_store.errors import Conflict, FieldError, InvalidInstrument, LandregError, NotFound
from hybrid_store.filing import Recorded, record_instruments
from hybrid_store.intake import InstrumentInput, validate
from hybrid_store.jurisdictions import Profile
from hybrid_store.proofs import export_bundle
from hybrid_store.settings import Settings
from hybrid_store.trust import load as load_trust
from registry_service import schemas
from registry_service.auth import Actor, Permission, audit
from registry_service.receipts import FORMAT as RECEIPT_FORMAT
from registry_service.receipts import ReceiptSigner
from registry_service.verification import Verdict, verify_document, verify_receipt

log = logging.getLogger(__name__)

MAX_PAGE = 100
#: the facts the registry assigns to a filing (a filer presenting them is refused)
_ASSIGNED = {"instrument_number", "book", "page", "recorded_at"}
_RETRIES = 3  # a deadlock or serialisation failure is retried as a whole transaction


class IdempotencyMismatch(LandregError, ValueError):
    hint = "use a new Idempotency-Key for a different request"


class Registry:
    def __init__(
        self, settings: Settings, db: Database, signer: ReceiptSigner, read_chain: Callable[[], RegistryChain]
    ):
        self.settings = settings
        self.db = db
        self.signer = signer
        self.read_chain = read_chain  # the node anchors are checked against (an auditor's convenience)
        self._bundle_cache = LRUCache(settings.service.proof_cache_size)
        self._trust: tuple[tuple[int, int], TrustRoot] | None = None

    # --- filing -------------------------------------------------------------------------------------
    def file(
        self,
        actor: Actor,
        data: Mapping[str, Any] | InstrumentInput,
        *,
        idempotency_key: str | None = None,
        corrects: str | None = None,
    ) -> tuple[int, dict[str, Any], bool]:
        """Record an instrument; returns (status, filing result, whether it is a replay). With an
        idempotency key, a retried request gets the first response again, never a second instrument."""
        actor.require(Permission.CORRECT if corrects else Permission.FILE)
        if isinstance(data, BaseModel):
            data = data.model_dump(mode="json", exclude_none=True)
        if not isinstance(data, Mapping):
            raise InvalidInstrument([FieldError("(body)", "object_type", "an instrument is a JSON object")])
        now = datetime.now(UTC)
        content = validate(data, profile=self.settings.profile, now=now, content_only=True)
        if corrects is not None and content.corrects not in (None, corrects):
            raise InvalidInstrument(
                [FieldError("corrects", "corrects_mismatch", f"this is a correction of {corrects}; leave it out")]
            )
        canonical = {**content.model_dump(mode="json", exclude=_ASSIGNED), "corrects": corrects or content.corrects}
        request_hash = hashlib.sha256(rfc8785.dumps(canonical)).hexdigest()
        if idempotency_key is not None:
            stored = self._stored_response(actor, idempotency_key, request_hash)
            if stored is not None:
                return (*stored, True)
        instrument = content.model_copy(update={"corrects": canonical["corrects"]})
        self.signer.refresh()  # outside the write transaction (see ReceiptSigner.refresh)
        for attempt in range(_RETRIES):
            try:
                with self.db.write() as s:
                    if corrects is not None and not s.scalar(
                        select(func.count()).select_from(Instrument).where(Instrument.instrument_number == corrects)
                    ):
                        raise NotFound(f"no instrument numbered {corrects}")
                    [made] = record_instruments(s, [instrument], source="filing", now=now)
                    body = self._filing_result(made, instrument)
                    audit(s, actor, "instrument.correct" if corrects else "instrument.file", made.instrument_number,
                          doc_type=str(instrument.doc_type), commitment=made.commitment_hex,
                          flags=[f.kind for f in made.flags], corrects=corrects)  # fmt: skip
                    if idempotency_key is not None:
                        s.add(IdempotencyRecord(api_key_id=actor.api_key_pk, key=idempotency_key,
                                                request_hash=request_hash, status_code=201, response=body))  # fmt: skip
                        s.flush()
                return 201, body, False
            except IntegrityError:
                # a concurrent request with the same Idempotency-Key won; ours rolled back entirely
                if idempotency_key is not None:
                    stored = self._stored_response(actor, idempotency_key, request_hash)
                    if stored is not None:
                        return (*stored, True)
                raise
            except Conflict as exc:
                # a number the registry assigned collided (numbering starting up in several
                # processes at once): the transaction rolled back; the next attempt takes a new one
                if "number" not in str(exc) or attempt == _RETRIES - 1:
                    raise
                log.warning("instrument number collision; filing retried")
            except OperationalError as exc:  # deadlock / serialisation failure / lock timeout
                if attempt == _RETRIES - 1:
                    raise
                log.warning("filing retried after %s", exc.orig.__class__.__name__)
                time.sleep(0.01 * (attempt + 1))
        raise AssertionError("unreachable")

    def _stored_response(self, actor: Actor, key: str, request_hash: str) -> tuple[int, dict[str, Any]] | None:
        with self.db.read() as s:
            row = s.scalar(
                select(IdempotencyRecord).where(
                    IdempotencyRecord.api_key_id == actor.api_key_pk, IdempotencyRecord.key == key
                )
            )
        if row is None:
            return None
        if row.request_hash != request_hash:
            raise IdempotencyMismatch(f"Idempotency-Key {key!r} was already used for a different request")
        return row.status_code, row.response

    def _receipt(
        self, number: str, book: str, page: str, recorded_at: datetime, doc_type: str, parcels: Iterable[str],
        document_digest: str, commitment: bytes, corrects: str | None,
    ) -> dict[str, Any]:  # fmt: skip
        # Ed25519 signatures are deterministic: the same facts always give the same signed receipt
        return self.signer.sign(
            {
                "format": RECEIPT_FORMAT,
                "registry": self.settings.service.registry_name,
                "instrumentNumber": number,
                "book": book,
                "page": page,
                "recordedAt": format_timestamp(recorded_at),
                "docType": doc_type,
                "parcels": sorted(parcels),
                "documentDigest": document_digest,
                "commitment": to_hex(commitment),
                "corrects": corrects,
            }
        )

    def receipt(self, actor: Actor, number: str) -> dict[str, Any]:
        """The signed receipt of a recorded instrument, as handed out when it was filed."""
        actor.require(Permission.PROOF)
        self.signer.refresh()
        with self.db.read() as s:
            inst = s.scalar(select(Instrument).where(Instrument.instrument_number == number))
            if inst is None:
                raise NotFound(f"no instrument numbered {number}")
            commitment = s.get(Commitment, inst.id)
            if commitment is None:
                raise NotFound(f"instrument {number} has no commitment yet (it has not been migrated)")
            return self._receipt(
                inst.instrument_number, inst.book, inst.page, inst.recorded_at, inst.doc_type,
                [link.parcel.parcel_key for link in inst.parcel_links], inst.document_digest, commitment.commitment,
                inst.corrects.instrument_number if inst.corrects else None,
            )  # fmt: skip

    def _filing_result(self, made: Recorded, instrument: InstrumentInput) -> dict[str, Any]:
        receipt = self._receipt(
            made.instrument_number, made.book, made.page, made.recorded_at, str(instrument.doc_type),
            [p.key for p in instrument.parcels], instrument.document_digest, made.commitment, instrument.corrects,
        )  # fmt: skip
        return {
            "receipt": receipt,
            "anchoring": {"status": "pending"},
            "flags": [{"parcel": f.parcel_key, "kind": f.kind, "message": f.message} for f in made.flags],
        }

    # --- reading ------------------------------------------------------------------------------------
    def instrument(self, actor: Actor, number: str) -> schemas.InstrumentView:
        actor.require(Permission.READ)
        with self.db.read() as s:
            inst = s.scalar(select(Instrument).where(Instrument.instrument_number == number))
            if inst is None:
                raise NotFound(f"no instrument numbered {number}")
            commitment = s.get(Commitment, inst.id)
            corrected_by = list(
                s.scalars(
                    select(Instrument.instrument_number)
                    .where(Instrument.corrects_id == inst.id)
                    .order_by(Instrument.id)
                )
            )
            flags = self._flags(s, [inst.id]).get(inst.id, [])
            anchoring = self._anchoring(s, [inst.id])[inst.id]
            return schemas.InstrumentView(
                instrument_number=inst.instrument_number,
                book=inst.book,
                page=inst.page,
                recorded_at=inst.recorded_at,
                doc_type=inst.doc_type,
                grantors=inst.names("grantor"),
                grantees=inst.names("grantee"),
                parcels=[_parcel_link(link.parcel, self.settings.profile) for link in inst.parcel_links],
                consideration=None if inst.consideration_cents is None else f"{inst.consideration_cents / 100:.2f}",
                legal_description=inst.legal_description,
                document_digest=inst.document_digest,
                corrects=inst.corrects.instrument_number if inst.corrects else None,
                corrected_by=corrected_by,
                commitment=to_hex(commitment.commitment) if commitment else "",
                anchoring=anchoring,
                flags=flags,
            )

    def search(
        self,
        actor: Actor,
        *,
        parcel: str | None = None,
        party: str | None = None,
        doc_type: DocType | None = None,
        date_from: date | None = None,
        date_to: date | None = None,
        limit: int = 25,
        cursor: str | None = None,
    ) -> schemas.InstrumentPage:
        """Instruments matching every given criterion, newest first, ``limit`` at a time."""
        actor.require(Permission.READ)
        limit = max(1, min(limit, MAX_PAGE))
        stmt = select(Instrument.id)
        if parcel:
            stmt = stmt.where(
                Instrument.id.in_(
                    select(InstrumentParcel.instrument_id)
                    .join(Parcel, Parcel.id == InstrumentParcel.parcel_id)
                    .where(Parcel.parcel_key == parcel)
                )
            )
        if party:
            pattern = "%" + party.upper().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            stmt = stmt.where(
                Instrument.id.in_(
                    select(InstrumentParty.instrument_id).where(
                        func.upper(InstrumentParty.name).like(pattern, escape="\\")
                    )
                )
            )
        if doc_type:
            stmt = stmt.where(Instrument.doc_type == str(doc_type))
        if date_from:
            stmt = stmt.where(Instrument.recorded_at >= datetime.combine(date_from, datetime.min.time(), UTC))
        if date_to:
            stmt = stmt.where(
                Instrument.recorded_at < datetime.combine(date_to, datetime.min.time(), UTC) + timedelta(days=1)
            )
        if cursor:
            try:
                stmt = stmt.where(Instrument.id < int(cursor))
            except ValueError:
                raise InvalidInstrument(
                    [FieldError("cursor", "cursor_format", "not a cursor from a previous page")]
                ) from None
        with self.db.read() as s:
            ids = list(s.scalars(stmt.order_by(Instrument.id.desc()).limit(limit + 1)))
            more = len(ids) > limit
            ids = ids[:limit]
            rows = {i.id: i for i in s.scalars(select(Instrument).where(Instrument.id.in_(ids)))} if ids else {}
            anchoring = self._anchoring(s, ids)
            data = [
                schemas.InstrumentSummary(
                    instrument_number=rows[i].instrument_number,
                    book=rows[i].book,
                    page=rows[i].page,
                    recorded_at=rows[i].recorded_at,
                    doc_type=rows[i].doc_type,
                    grantors=rows[i].names("grantor"),
                    grantees=rows[i].names("grantee"),
                    parcels=[link.parcel.parcel_key for link in rows[i].parcel_links],
                    anchoring=anchoring[i].status,
                )
                for i in ids
            ]
        return schemas.InstrumentPage(data=data, count=len(data), next_cursor=str(ids[-1]) if more else None)

    def parcel(self, actor: Actor, key: str) -> schemas.ParcelView:
        actor.require(Permission.READ)
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
                                      chain_id=batch.deployment.chain_id, status=_status_of(batch))  # fmt: skip
            count = s.scalar(
                select(func.count()).select_from(InstrumentParcel).where(InstrumentParcel.parcel_id == p.id)
            )
            open_flags = s.scalar(select(func.count()).select_from(TitleFlag).where(TitleFlag.parcel_id == p.id))
            head = s.get(Commitment, p.head_instrument_id) if p.head_instrument_id else None
            link = _parcel_link(p, self.settings.profile)
            return schemas.ParcelView(
                **link.model_dump(), owner_of_record=owner, token=token, instruments=count or 0,
                open_flags=open_flags or 0, head_commitment=to_hex(head.commitment) if head else None,
            )  # fmt: skip

    def history(self, actor: Actor, key: str) -> schemas.ParcelHistory:
        """Every record of a parcel, oldest first, with its hash-chain link and chain-of-title role."""
        actor.require(Permission.READ)
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
                        title_link=inst.doc_type in CONVEYANCES and not flags.get(inst.id),
                        corrects=inst.corrects.instrument_number if inst.corrects else None,
                        flags=flags.get(inst.id, []),
                        anchoring=anchoring[inst.id],
                    )  # fmt: skip
                )
        return schemas.ParcelHistory(parcel=key, entries=entries)

    def proof(self, actor: Actor | None, number: str, redact: Sequence[str] = ()) -> bundles.ProofBundle:
        """A record's proof bundle. Without the proof permission (e.g. unauthenticated), every field
        not listed in ``service.public_fields`` is redacted: the proof itself stays complete."""
        hidden = set(redact)
        if actor is None or not actor.can(Permission.PROOF):
            hidden |= set(FIELDS) - set(self.settings.service.public_fields)
        with self.db.read() as s:
            return export_bundle(s, number, redact=sorted(hidden))

    def proof_json(self, actor: Actor | None, number: str, redact: Sequence[str] = ()) -> tuple[bytes, bool]:
        """The bundle as JSON bytes, and whether it is complete. Complete bundles never change while
        their record stays in the same confirmed batch, so they are kept in a per-process cache keyed
        by that placement, which one query checks on every request (a re-anchored record gets a new
        placement and a new bundle)."""
        hidden = frozenset(redact)
        if actor is None or not actor.can(Permission.PROOF):
            hidden |= set(FIELDS) - set(self.settings.service.public_fields)
        with self.db.read() as s:
            placement = s.connection().execute(_PLACEMENT_OF_NUMBER, {"number": number}).first()
            key = (number, hidden, tuple(placement) if placement else None)
            cached = self._bundle_cache.get(key)
            if cached is not None:
                return cached, True
            bundle = export_bundle(s, number, redact=sorted(hidden))
        data = json.dumps(bundle.to_json(), ensure_ascii=False, separators=(",", ":")).encode()
        if bundle.is_anchored and placement is not None and placement.state == BatchState.CONFIRMED:
            self._bundle_cache.put(key, data)
        return data, bundle.is_anchored

    def verify(self, document: Any, *, on_chain: bool = True) -> Verdict:
        """Pinned to the registry's own published trust root (never to an address in the bundle)."""
        return verify_document(document, chain=self.read_chain() if on_chain else None, trust=self.trust_root())

    def verify_receipt(self, receipt: Any, bundle: Any) -> Verdict:
        return verify_receipt(receipt, bundle, chain=self.read_chain(), trust=self.trust_root())

    def trust_root(self) -> TrustRoot | None:
        """The newest trust root this registry published (LANDREG_HOME/trust/root.json), re-read
        when the file changes; None before the first `landreg trust export`."""
        path = self.settings.trust_dir / "root.json"
        try:
            stat = path.stat()
        except OSError:
            return None
        stamp = (stat.st_mtime_ns, stat.st_size)
        cached = self._trust
        if cached is not None and cached[0] == stamp:
            return cached[1]
        root = load_trust(path)
        self._trust = (stamp, root)
        return root

    # --- status -------------------------------------------------------------------------------------
    def status(self, recent: int = 10) -> schemas.StatusView:
        with self.db.read() as s:
            pending = s.scalar(select(func.count()).select_from(OutboxEntry).where(OutboxEntry.batch_id.is_(None))) or 0
            oldest = s.scalar(select(func.min(OutboxEntry.enqueued_at)).where(OutboxEntry.batch_id.is_(None)))
            anchored = sum(n for n, _ in confirmed_records(s))
            total = s.scalar(select(func.count()).select_from(Instrument)) or 0
            deployment = active_deployment(s)
            batches = s.scalars(select(AnchorBatch).order_by(AnchorBatch.id.desc()).limit(recent)).all()
            records = records_of_batches(s, [b.id for b in batches])
            return schemas.StatusView(
                pending_records=pending,
                oldest_pending_age_s=(datetime.now(UTC) - oldest).total_seconds() if oldest else None,
                anchored_records=int(anchored or 0),
                instruments=total,
                chain_id=deployment.chain_id if deployment else None,
                contract=deployment.contract_address if deployment else None,
                confirmations_required=self.settings.chain.confirmations,
                holds=[schemas.HoldView(kind=h.kind, reason=h.reason, since=h.since) for h in open_holds(s)],
                failed_batches=s.scalar(
                    select(func.count()).select_from(AnchorBatch).where(AnchorBatch.state == BatchState.FAILED)
                )
                or 0,  # fmt: skip
                recent_batches=[
                    schemas.BatchView(
                        chain_batch_id=b.chain_batch_id,
                        state=b.state,
                        records=records.get(b.id, 0),
                        tokens=b.token_count,
                        tx_hash=b.tx_hash,
                        block_number=b.block_number,
                        gas_used=b.gas_used,
                        created_at=b.created_at,
                        confirmed_at=b.confirmed_at,
                        final=b.finalized_at is not None,
                        error=b.error,
                    )  # fmt: skip
                    for b in batches
                ],
            )

    def migration(self, recent: int = 10) -> schemas.MigrationView:
        """Stages of the bulk migration and the latest reconciliations (read-only)."""
        from migration_tools.stages import count_candidates, stage_status

        stages = [schemas.StageView(**vars(st)) for st in stage_status(self.db)]
        with self.db.read() as s:
            legacy = s.scalar(select(func.count()).select_from(Instrument).where(Instrument.source == "legacy")) or 0
            unmigrated = count_candidates(s)
            runs = s.execute(
                select(Reconciliation, MigrationStage.name)
                .outerjoin(MigrationStage, MigrationStage.id == Reconciliation.stage_id)
                .order_by(Reconciliation.id.desc())
                .limit(recent)
            ).all()
            reconciliations = [
                schemas.ReconciliationView(
                    started_at=r.started_at,
                    finished_at=r.finished_at,
                    actor=r.actor,
                    stage=name,
                    clean=r.clean,
                    counts=(r.summary or {}).get("counts", {}),
                    discrepancies=(r.summary or {}).get("kinds", {}),
                )  # fmt: skip
                for r, name in runs
            ]
        return schemas.MigrationView(
            legacy_records=legacy, legacy_unmigrated=unmigrated, stages=stages, reconciliations=reconciliations
        )

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
        stmt = (
            select(TitleFlag.instrument_id, Parcel.parcel_key, TitleFlag.kind, TitleFlag.message)
            .join(Parcel, Parcel.id == TitleFlag.parcel_id)
            .where(TitleFlag.instrument_id.in_(ids))
            .order_by(TitleFlag.id)
        )
        if parcel_id is not None:
            stmt = stmt.where(TitleFlag.parcel_id == parcel_id)
        out: dict[int, list[schemas.FlagView]] = {}
        for iid, key, kind, message in s.execute(stmt):
            out.setdefault(iid, []).append(schemas.FlagView(parcel=key, kind=kind, message=message))
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
                status=_status_of(batch), batch_id=batch.chain_batch_id, tx_hash=batch.tx_hash,
                block_number=batch.block_number, chain_id=deployment.chain_id, contract=deployment.contract_address,
            )  # fmt: skip
        return out


_B = AnchorBatch.__table__
_BR = BatchRecord.__table__
_I = Instrument.__table__
_PLACEMENT_OF_NUMBER = (
    select(_B.c.id, _B.c.state, _B.c.block_number, _B.c.tx_hash)
    .select_from(_I.join(_BR, _BR.c.instrument_id == _I.c.id).join(_B, _B.c.id == _BR.c.batch_id))
    .where(_I.c.instrument_number == bindparam("number"), _B.c.state != BatchState.FAILED, _B.c.superseded_at.is_(None))
    .order_by(_B.c.id.desc())
    .limit(1)
)


class LRUCache:
    """A small thread-safe least-recently-used map (size 0 disables it)."""

    def __init__(self, size: int):
        self.size = size
        self._items: OrderedDict[Any, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> bytes | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: Any, value: bytes) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


def _status_of(batch: AnchorBatch) -> str:
    return "anchored" if batch.state == BatchState.CONFIRMED else "submitted"


def _parcel_link(p: Parcel, profile: Profile) -> schemas.ParcelLink:
    return schemas.ParcelLink(
        key=p.parcel_key, municipality_code=p.municipality_code, municipality=profile.place_name(p.municipality_code),
        block=p.block, lot=p.lot, qualifier=p.qualifier,
    )  # fmt: skip


__all__ = ["IdempotencyMismatch", "Registry"]
