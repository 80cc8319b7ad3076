"""Filing: a clerk's instrument in, its signed receipt out, in one transaction with its audit entry.

Who may file is decided at the edge (the API's and the desk's dependencies); this service records
what it is given on behalf of the actor it is told, and speaks in results and typed errors.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import rfc8785
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, OperationalError

from hybrid_store import flags, mirror
from hybrid_store.core.commitment import SCHEME, SCHEME_V1
from hybrid_store.core.hashing import to_hex
from hybrid_store.core.records import format_timestamp
from hybrid_store.db.engine import Database
from hybrid_store.db.models import IdempotencyRecord, Instrument
from hybrid_store.db.records import instrument_id, load_records
from hybrid_store.errors import Conflict, FieldError, InvalidInstrument, LandregError, MirrorMode, NotFound
from hybrid_store.filing import Recorded, record_instruments
from hybrid_store.intake import InstrumentInput, validate
from hybrid_store.settings import Settings
from registry_service.auth import Actor, audit
from registry_service.receipts import FORMAT as RECEIPT_FORMAT
from registry_service.receipts import ReceiptSigner
from registry_service.schemas import MirrorFlagView
from registry_service.services.queries import mirror_flag_view

log = logging.getLogger(__name__)

_RETRIES = 3  # a deadlock or serialisation failure is retried as a whole transaction
#: the facts the registry assigns to a filing (a filer presenting them is refused)
_ASSIGNED = {"instrument_number", "book", "page", "recorded_at"}


class IdempotencyMismatch(LandregError, ValueError):
    hint = "use a new Idempotency-Key for a different request"


@dataclass(frozen=True)
class Filed:
    """The filing's result (receipt, anchoring status, title flags), and whether it is the first
    response to an earlier request with the same Idempotency-Key."""

    body: dict[str, Any]
    replayed: bool = False

    @property
    def number(self) -> str:
        return str(self.body["receipt"]["instrumentNumber"])


class Filing:
    def __init__(self, settings: Settings, db: Database, signer: ReceiptSigner):
        self.settings = settings
        self.db = db
        self.signer = signer
        self._mirror_checked = (float("-inf"), "")
        self.mirror_check_every = 2.0  # seconds: filings do not each ask whether the registry was attached

    def mirrored_source(self) -> str:
        """The legacy database this registry mirrors ('' when none), looked up again at most every
        ``mirror_check_every`` seconds (an attachment is never undone, so a name is kept)."""
        at, name = self._mirror_checked
        if not name and time.monotonic() - at >= self.mirror_check_every:
            with self.db.read() as s:
                found = mirror.attached(s)
            self._mirror_checked = (time.monotonic(), found.name if found is not None else "")
        return self._mirror_checked[1]

    def refuse_in_mirror_mode(self) -> None:
        """While the registry mirrors a legacy database, that system is where instruments are filed
        (writing through to it is a later step)."""
        name = self.mirrored_source()
        if name:
            raise MirrorMode(f"this registry mirrors the county's recorder database {name!r}: file the instrument "
                             "there; landreg records it as soon as it appears (search, proofs and verification "
                             "work here as before)")  # fmt: skip

    def file(
        self,
        actor: Actor,
        data: Mapping[str, Any] | BaseModel,
        *,
        idempotency_key: str | None = None,
        corrects: str | None = None,
    ) -> Filed:
        """Record an instrument (a correction of ``corrects``). With an idempotency key, a retried
        request gets the first response again, never a second instrument."""
        self.refuse_in_mirror_mode()
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
        if idempotency_key is not None and (stored := self._stored(actor, idempotency_key, request_hash)):
            return stored
        instrument = content.model_copy(update={"corrects": canonical["corrects"]})
        self.signer.refresh()  # outside the write transaction (see ReceiptSigner.refresh)
        for attempt in range(_RETRIES):
            try:
                return Filed(self._record(actor, instrument, now, corrects, idempotency_key, request_hash))
            except IntegrityError:
                # a concurrent request with the same Idempotency-Key won; ours rolled back entirely
                if idempotency_key is not None and (stored := self._stored(actor, idempotency_key, request_hash)):
                    return stored
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

    def _record(
        self, actor: Actor, instrument: InstrumentInput, now: datetime, corrects: str | None,
        idempotency_key: str | None, request_hash: str,
    ) -> dict[str, Any]:  # fmt: skip
        """One transaction: the record, its audit entry, the idempotency record."""
        with self.db.write() as s:
            if corrects is not None and not s.scalar(
                select(func.count()).select_from(Instrument).where(Instrument.instrument_number == corrects)
            ):
                raise NotFound(f"no instrument numbered {corrects}")
            [made] = record_instruments(s, [instrument], source="filing", now=now)
            body = self._result(made, instrument, flags.resolved(s, made.resolved))
            audit(s, actor, "instrument.correct" if corrects else "instrument.file", made.instrument_number,
                  doc_type=str(instrument.doc_type), commitment=made.commitment_hex,
                  flags=[f.kind for f in made.flags], corrects=corrects,
                  resolves=[f["id"] for f in body["resolved_flags"]])  # fmt: skip
            if idempotency_key is not None:
                s.add(IdempotencyRecord(api_key_id=actor.api_key_pk, key=idempotency_key, request_hash=request_hash,
                                        status_code=201, response=body))  # fmt: skip
                s.flush()
        return body

    def acknowledge(self, actor: Actor, source: flags.Source, flag_id: int, reason: str) -> MirrorFlagView:
        """An acknowledgement of a flag, with the reason, in one transaction with its audit entry
        (``flags.acknowledge``: a flag on who owns a parcel is refused, with what to record)."""
        with self.db.write() as s:
            view = flags.acknowledge(s, source, flag_id, actor=actor.label, role=str(actor.role), reason=reason)
        return mirror_flag_view(view)

    def _stored(self, actor: Actor, key: str, request_hash: str) -> Filed | None:
        with self.db.read() as s:
            row = s.scalar(select(IdempotencyRecord).where(
                IdempotencyRecord.api_key_id == actor.api_key_pk, IdempotencyRecord.key == key))  # fmt: skip
        if row is None:
            return None
        if row.request_hash != request_hash:
            raise IdempotencyMismatch(f"Idempotency-Key {key!r} was already used for a different request")
        return Filed(row.response, replayed=True)

    # --- receipts ----------------------------------------------------------------------------------
    def receipt(self, number: str) -> dict[str, Any]:
        """The signed receipt of a recorded instrument, as handed out when it was filed."""
        self.signer.refresh()
        with self.db.read() as s:
            iid = instrument_id(s.connection(), number)
            if iid is None:
                raise NotFound(f"no instrument numbered {number}")
            [stored] = load_records(s.connection(), [iid])
        if stored.commitment is None:
            raise NotFound(f"instrument {number} has no commitment yet (it has not been migrated)")
        r = stored.record
        v2 = _index_members(stored.commit_scheme, r.document_date, r.page_count, r.grantee_mailing_address,
                            r.preparer, [ref.value() for ref in r.references])  # fmt: skip
        return self._sign(r.instrument_number, r.book, r.page, r.recorded_at, r.doc_type, r.parcels, r.document_digest,
                          stored.commitment, r.corrects, v2)  # fmt: skip

    def _result(self, made: Recorded, instrument: InstrumentInput, resolved: list[dict[str, Any]]) -> dict[str, Any]:
        assert made.commitment is not None
        i = instrument
        v2 = _index_members(SCHEME, i.document_date.isoformat() if i.document_date else None, i.page_count,
                            i.grantee_mailing_address, i.preparer, [r.reference().value() for r in i.references])  # fmt: skip
        receipt = self._sign(
            made.instrument_number, made.book, made.page, format_timestamp(made.recorded_at), str(instrument.doc_type),
            [p.key for p in instrument.parcels], instrument.document_digest, made.commitment, instrument.corrects, v2,
        )  # fmt: skip
        return {
            "receipt": receipt,
            "anchoring": {"status": "pending"},
            "flags": [{"parcel": f.parcel_key, "kind": f.kind, "message": f.message} for f in made.flags],
            "resolved_flags": resolved,
        }

    def _sign(
        self, number: str, book: str, page: str, recorded_at: str, doc_type: str, parcels: Iterable[str],
        document_digest: str, commitment: bytes, corrects: str | None, index: dict[str, Any],
    ) -> dict[str, Any]:  # fmt: skip
        # Ed25519 signatures are deterministic: the same facts always give the same signed receipt
        return self.signer.sign({
            "format": RECEIPT_FORMAT, "registry": self.settings.service.registry_name, "instrumentNumber": number,
            "book": book, "page": page, "recordedAt": recorded_at, "docType": doc_type,
            "parcels": sorted(parcels), "documentDigest": document_digest, "commitment": to_hex(commitment),
            "corrects": corrects, **index,
        })  # fmt: skip


def _index_members(scheme: str, document_date: str | None, page_count: int | None, address: str | None,
                   preparer: str | None, references: list[list[str | None]]) -> dict[str, Any]:  # fmt: skip
    """A v2 record's receipt also names its scheme and what v2 commits besides (never the return-to
    address: personal data). A v1 record's receipt keeps exactly its members, so it is signed again
    to the same bytes."""
    if scheme == SCHEME_V1:
        return {}
    return {"commitmentScheme": scheme, "documentDate": document_date, "pageCount": page_count,
            "granteeMailingAddress": address, "preparer": preparer, "references": references}  # fmt: skip
