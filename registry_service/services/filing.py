"""Filing: a clerk's instrument in, its signed receipt out, in one transaction with its audit entry.

Who may file is decided at the edge (the API's and the desk's dependencies); this service records
what it is given on behalf of the actor it is told, and speaks in results and typed errors.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from typing import Any

import rfc8785
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from hybrid_store import examination, fee_book, fee_schedule, fees, flags, mirror
from hybrid_store.core.commitment import SCHEME, SCHEME_V1
from hybrid_store.core.hashing import to_hex
from hybrid_store.core.records import format_timestamp
from hybrid_store.db.engine import Database
from hybrid_store.db.models import IdempotencyRecord, Instrument, Parcel, Submission, TitleFlag
from hybrid_store.db.records import instrument_id, load_records
from hybrid_store.errors import Conflict, FieldError, InvalidInstrument, LandregError, MirrorMode, NotFound
from hybrid_store.examination import CONFIRMABLE, MIN_REASON, Kind, State
from hybrid_store.filing import Recorded, record_instruments
from hybrid_store.intake import FEE_INPUTS, InstrumentInput, validate
from hybrid_store.settings import Settings
from hybrid_store.verifier.receipts import FORMAT as RECEIPT_FORMAT
from hybrid_store.verifier.receipts import FORMAT_V1 as RECEIPT_FORMAT_V1
from registry_service.auth import Actor, audit
from registry_service.receipts import ReceiptSigner, receipt_fees
from registry_service.schemas import MirrorFlagView
from registry_service.services import checks
from registry_service.services.queries import mirror_flag_view

log = logging.getLogger(__name__)

_RETRIES = 3  # a deadlock or serialisation failure is retried as a whole transaction
#: the facts the registry assigns to a filing (a filer presenting them is refused)
_ASSIGNED = {"instrument_number", "book", "page", "recorded_at"}
MAX_REASON = 2000  # characters of a confirmation's or rejection's reason
#: kept in the idempotency record beside the submission (a replay answers with the submission's
#: state now, which the edge turns into its status)
_STATUS = {State.RECORDED: 201, State.WAITING: 202, State.REJECTED: 422, State.WITHDRAWN: 409,
           State.EXAMINING: 202}  # fmt: skip


class IdempotencyMismatch(LandregError, ValueError):
    hint = "use a new Idempotency-Key for a different request"


@dataclass(frozen=True)
class Filed:
    """A filing's outcome: ``state`` is what became of its submission (recorded: the receipt,
    anchoring status and title flags; waiting: the submission with its findings and clocks;
    rejected: the submission with every ground), and whether this is the first response to an
    earlier request with the same Idempotency-Key or form token."""

    body: dict[str, Any]
    replayed: bool = False
    state: State = State.RECORDED

    @property
    def number(self) -> str:
        return str(self.body["receipt"]["instrumentNumber"])

    @property
    def submission_id(self) -> int:
        return int(self.body["submission"]["id"])


@dataclass(frozen=True)
class Envelope:
    """What a filing says besides the instrument: the clerk's attestations (None: the API caller's
    filing attests every one, as a trusted submitter does) and the confirmations given up front."""

    attestations: tuple[str, ...] | None = None
    confirm: tuple[str, ...] = ()
    confirm_reason: str = ""

    @classmethod
    def take(cls, data: dict[str, Any], profile: Any) -> Envelope:
        """Remove and check the envelope's members of ``data``; ``InvalidInstrument`` lists what is wrong."""
        errors: list[FieldError] = []
        known = {a.code for a in profile.attestations}
        attestations = data.pop("attestations", None)
        confirm = data.pop("confirm", [])
        reason = data.pop("confirm_reason", "")
        if attestations is not None and not (isinstance(attestations, list) and all(
                isinstance(a, str) and a in known for a in attestations)):  # fmt: skip
            errors.append(FieldError("attestations", "unknown_attestation",
                                     f"a list of what the clerk attests: {', '.join(sorted(known)) or 'none here'}"))  # fmt: skip
        if not (isinstance(confirm, list) and all(isinstance(c, str) and c in CONFIRMABLE for c in confirm)):
            errors.append(FieldError("confirm", "unknown_confirmation",
                                     f"a list of findings confirmed up front: {', '.join(sorted(CONFIRMABLE))}"))  # fmt: skip
        if not isinstance(reason, str) or len(reason) > MAX_REASON:
            errors.append(FieldError("confirm_reason", "string_type", f"a reason of at most {MAX_REASON} characters"))
        elif confirm and len(" ".join(reason.split())) < MIN_REASON:
            errors.append(FieldError("confirm_reason", "reason_required",
                                     "say why the findings are confirmed (the reason is audit-logged)"))  # fmt: skip
        if errors:
            raise InvalidInstrument(errors)
        return cls(None if attestations is None else tuple(attestations), tuple(confirm), " ".join(reason.split()))


@dataclass(frozen=True)
class Received:
    """A filing as received: who, what (validated), the envelope, when, and by which channel."""

    actor: Actor
    instrument: InstrumentInput
    canonical: dict[str, Any]
    envelope: Envelope
    now: datetime
    channel: str
    form_token: str | None
    fees: dict[str, Any] | None  # the fee statement (``fee_statement``), None without a fee schedule


def confirmed_codes(sub: Submission) -> set[str]:
    return {code for c in sub.confirmations for code in c.get("codes", ())}


def resolve(sub: Submission, state: State, by: str, now: datetime, reason: str) -> None:
    sub.state, sub.resolved_at, sub.resolved_by, sub.resolution_reason = state, now, by, reason


def submission_view(profile: Any, sub: Submission) -> dict[str, Any]:
    """A submission as clerks and filers see it: its state, time of receipt and statutory clocks,
    every finding, the attestations and confirmations, and the instrument it became."""
    clocks = examination.clocks(profile, sub.received_at)
    return {
        "id": sub.id, "state": sub.state, "receivedAt": format_timestamp(sub.received_at), "submitter": sub.submitter,
        "channel": sub.channel, "docType": sub.doc_type, "parcels": list(sub.parcel_keys),
        "documentDigest": sub.document_digest, "findings": list(sub.findings),
        "grounds": [f for f in sub.findings if f["kind"] == Kind.GROUND],
        "clocks": {"recordBy": clocks.record_by.isoformat() if clocks.record_by else None,
                   "rejectBy": clocks.reject_by.isoformat() if clocks.reject_by else None},
        "attestations": list(sub.attestations), "confirmations": list(sub.confirmations),
        "instrumentNumber": (sub.response or {}).get("receipt", {}).get("instrumentNumber"),
        "resolvedAt": format_timestamp(sub.resolved_at) if sub.resolved_at else None,
        "resolvedBy": sub.resolved_by, "reason": sub.resolution_reason, "fees": sub.fees,
    }  # fmt: skip


def fee_statement(settings: Settings, content: InstrumentInput, received: datetime) -> dict[str, Any] | None:
    """The fee statement of ``content`` received at ``received`` (None: the registry has no fee
    schedule): worked out under the schedule in force on the recorder's day of receipt.
    ``InvalidInstrument`` for an exemption the schedule does not list."""
    schedule = fee_schedule.load(settings)
    if schedule is None:
        return None
    day = fees.day_of_receipt(received, settings.profile.timezone)
    errors = fees.check_inputs(schedule, content.doc_type, content.exemption_claimed, day)
    if errors:
        raise InvalidInstrument(errors)
    return fees.statement(schedule, fees.inputs_of(content, day))


class Filing:
    def __init__(self, settings: Settings, db: Database, signer: ReceiptSigner):
        self.settings = settings
        self.db = db
        self.signer = signer
        self.recordings = Recordings(settings, db, signer)
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

    def quote(self, data: Mapping[str, Any] | BaseModel) -> dict[str, Any]:
        """The fees a filing would pay if received now, with no submission made: the same body as a
        filing (its attestations and confirmations are ignored), validated the same way."""
        content, _ = self._content(data)
        now = datetime.now(UTC)
        return {"fees": fee_statement(self.settings, content, now), "receivedAt": format_timestamp(now)}

    def fee_report(self, day: date) -> dict[str, Any]:
        """The daily fee report of the recorder's ``day`` (``fee_book.day_report``)."""
        with self.db.read() as s:
            return fee_book.day_report(s, day, self.settings.profile.timezone)

    def _content(self, data: Mapping[str, Any] | BaseModel) -> tuple[InstrumentInput, Envelope]:
        if isinstance(data, BaseModel):
            data = data.model_dump(mode="json", exclude_none=True)
        if not isinstance(data, Mapping):
            raise InvalidInstrument([FieldError("(body)", "object_type", "an instrument is a JSON object")])
        data = dict(data)
        envelope = Envelope.take(data, self.settings.profile)
        return validate(data, profile=self.settings.profile, content_only=True), envelope

    def file(
        self,
        actor: Actor,
        data: Mapping[str, Any] | BaseModel,
        *,
        idempotency_key: str | None = None,
        corrects: str | None = None,
        channel: str = "api",
        form_token: str | None = None,
    ) -> Filed:
        """Submit an instrument (a correction of ``corrects``): examined, then recorded at once when
        nothing stands in the way, kept waiting with its findings, or rejected with every ground.
        With an idempotency key (or the desk's one-time form token), a retried request gets the
        first submission again, never a second one."""
        self.refuse_in_mirror_mode()
        content, envelope = self._content(data)
        now = datetime.now(UTC)
        if corrects is not None and content.corrects not in (None, corrects):
            raise InvalidInstrument(
                [FieldError("corrects", "corrects_mismatch", f"this is a correction of {corrects}; leave it out")]
            )
        # fee inputs left out are left out of the request's hash too: a retry of a request made before
        # they existed still matches it
        canonical = {**content.model_dump(mode="json", exclude=_ASSIGNED | {f for f in FEE_INPUTS
                     if getattr(content, f) is None}), "corrects": corrects or content.corrects}  # fmt: skip
        request_hash = hashlib.sha256(rfc8785.dumps({**canonical, **asdict(envelope)})).hexdigest()
        if stored := self._replay(actor, idempotency_key, request_hash, form_token):
            return stored
        instrument = content.model_copy(update={"corrects": canonical["corrects"]})
        # an exemption the schedule does not list is refused before anything is written; the
        # statement is the submission's (a pure function of the instrument and the time of receipt)
        statement = fee_statement(self.settings, instrument, now)
        self.signer.refresh()  # outside the write transaction (see ReceiptSigner.refresh)
        received = Received(actor, instrument, canonical, envelope, now, channel, form_token, statement)
        for attempt in range(_RETRIES):
            try:
                return self._submit(received, corrects, idempotency_key, request_hash)
            except IntegrityError:
                # a concurrent request with the same Idempotency-Key or form token won; ours rolled back
                if stored := self._replay(actor, idempotency_key, request_hash, form_token):
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

    def _submit(self, r: Received, corrects: str | None, idempotency_key: str | None, request_hash: str) -> Filed:
        """One transaction: the submission, its examination, and (when nothing stands in the way) the
        record, its audit entry and the idempotency record."""
        profile = self.settings.profile
        with self.db.write() as s:
            if corrects is not None and not s.scalar(
                select(func.count()).select_from(Instrument).where(Instrument.instrument_number == corrects)
            ):
                raise NotFound(f"no instrument numbered {corrects}")
            keys = [p.key for p in r.instrument.parcels]
            checks.lock_parcels(s, keys)
            attested = [a.code for a in profile.attestations] if r.envelope.attestations is None \
                else list(r.envelope.attestations)  # fmt: skip
            findings = examination.grounds(profile, r.instrument, attested)
            if not findings:
                findings = checks.confirmations(s, r.instrument, r.now)
            sub = Submission(
                received_at=r.now, submitter=r.actor.label, api_key_id=r.actor.api_key_pk, channel=r.channel,
                filing={k: v for k, v in r.canonical.items() if v is not None}, doc_type=str(r.instrument.doc_type), document_digest=r.instrument.document_digest,
                parcel_keys=keys, state=State.EXAMINING, findings=[f.to_json() for f in findings],
                attestations=[{"code": a, "by": r.actor.label, "at": r.now.isoformat(),
                               "as": "submitter" if r.envelope.attestations is None else "clerk"} for a in attested],
                confirmations=[{"codes": list(r.envelope.confirm), "by": r.actor.label, "at": r.now.isoformat(),
                                "reason": r.envelope.confirm_reason, "up_front": True}] if r.envelope.confirm else [],
                form_token=r.form_token, fees=r.fees,
            )  # fmt: skip
            if any(f.kind == Kind.GROUND for f in findings):
                resolve(sub, State.REJECTED, "examination", r.now, "grounds for refusal")
                s.add(sub)
                s.flush()
                audit(s, r.actor, "submission.reject", f"submission {sub.id}", grounds=[f.code for f in findings])
            elif examination.unconfirmed(findings, confirmed_codes(sub)):
                sub.state = State.WAITING
                s.add(sub)
                s.flush()
                audit(s, r.actor, "submission.wait", f"submission {sub.id}", findings=[f.code for f in findings])
            else:  # written once, recorded: one INSERT rather than an INSERT and an UPDATE
                self.record(s, r.actor, sub, r.instrument, r.now)
            filed = self.outcome(sub)
            if idempotency_key is not None:
                s.add(IdempotencyRecord(api_key_id=r.actor.api_key_pk, key=idempotency_key, request_hash=request_hash,
                                        status_code=_STATUS[filed.state], response={"submission": sub.id}))  # fmt: skip
                s.flush()
        return filed

    def record(self, s: Session, actor: Actor, sub: Submission, instrument: InstrumentInput, now: datetime) -> None:
        """Record a submission nothing stands in the way of, in the caller's transaction: the
        instrument (``record_instruments``: parcels, commitment, outbox), its audit entry, and the
        submission's new state, all or nothing. A submission not written yet (a filing recorded
        at once) is written here, recorded."""
        corrects = instrument.corrects
        [made] = record_instruments(s, [instrument], source="filing", now=now)
        if sub.fees is not None:  # the statement examination gave it, recorded as it was: never worked out again
            day = fees.day_of_receipt(made.recorded_at, self.settings.profile.timezone)
            fee_book.record(s, made.instrument_id, made.recorded_at, day, sub.fees)
        # the receipt carries the fees as recorded: the statement just written (``fee_book.record``
        # stores exactly this one; none was recorded when there is none), not read back
        sub.response = self._result(made, instrument, flags.resolved(s, made.resolved), sub.fees)
        sub.instrument_id = made.instrument_id
        if sub.state == State.EXAMINING:
            sub.resolved_at, sub.resolved_by = now, "examination"
        sub.state = State.RECORDED
        if sub.id is None:
            s.add(sub)
            s.flush()
        audit(s, actor, "instrument.correct" if corrects else "instrument.file", made.instrument_number,
              doc_type=str(instrument.doc_type), commitment=made.commitment_hex,
              flags=[f.kind for f in made.flags], corrects=corrects, submission=sub.id,
              resolves=[f["id"] for f in sub.response["resolved_flags"]])  # fmt: skip

    def outcome(self, sub: Submission, *, replayed: bool = False) -> Filed:
        """What the filer is told of ``sub``: the receipt once recorded, else the submission."""
        state = State(sub.state)
        view = submission_view(self.settings.profile, sub)
        if state == State.RECORDED and sub.response is not None:
            return Filed({**sub.response, "fees": sub.fees, "submission": view}, replayed, state)
        return Filed({"fees": sub.fees, "submission": view}, replayed, state)

    def _replay(self, actor: Actor, key: str | None, request_hash: str, token: str | None) -> Filed | None:
        if key is not None and (stored := self._stored(actor, key, request_hash)):
            return stored
        return self._by_token(token) if token is not None else None

    def _by_token(self, token: str) -> Filed | None:
        with self.db.read() as s:
            sub = s.scalar(select(Submission).where(Submission.form_token == token))
            return None if sub is None else self.outcome(sub, replayed=True)

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
            sub = s.get(Submission, row.response.get("submission")) if "submission" in row.response else None
            if sub is None:  # a response stored before submissions existed: the receipt as it was
                return Filed(row.response, replayed=True)
            return self.outcome(sub, replayed=True)  # what became of it since, e.g. recorded once confirmed

    # --- receipts and certificates (``Recordings``) --------------------------------------------------
    def receipt(self, number: str) -> dict[str, Any]:
        return self.recordings.receipt(number)

    def recording_of(self, number: str) -> Recording:
        return self.recordings.recording_of(number)

    def _result(self, made: Recorded, instrument: InstrumentInput, resolved: list[dict[str, Any]],
                fees: dict[str, Any] | None) -> dict[str, Any]:  # fmt: skip
        assert made.commitment is not None
        i = instrument
        v2 = _index_members(SCHEME, i.document_date.isoformat() if i.document_date else None, i.page_count,
                            i.grantee_mailing_address, i.preparer, [r.reference().value() for r in i.references])  # fmt: skip
        facts = _Facts(made.instrument_number, made.book, made.page, format_timestamp(made.recorded_at),
                       str(instrument.doc_type), tuple(p.key for p in instrument.parcels), instrument.document_digest,
                       made.commitment, instrument.corrects)  # fmt: skip
        receipt = sign_receipt(self.signer, self.settings.service.registry_name, facts, v2,
                               [(f.parcel_key, f.kind, f.message) for f in made.flags], fees)  # fmt: skip
        return {
            "receipt": receipt,
            "anchoring": {"status": "pending"},
            "flags": [{"parcel": f.parcel_key, "kind": f.kind, "message": f.message} for f in made.flags],
            "resolved_flags": resolved,
        }


class Recordings:
    """What the registry says of a recorded instrument afterwards: its signed receipt, signed again
    to the same bytes, and what its certificate of recording states."""

    def __init__(self, settings: Settings, db: Database, signer: ReceiptSigner):
        self.settings = settings
        self.db = db
        self.signer = signer

    @staticmethod
    def fees_of(s: Session, instrument_id: int) -> dict[str, Any] | None:
        """The fee statement recorded with an instrument (``fee_book.stored_statement``), or None when
        none was (recorded before fees, loaded from a legacy book, or a jurisdiction without a fee
        schedule): the one seam the certificate and the receipt read fees through."""
        return fee_book.stored_statement(s, instrument_id)

    def recording_of(self, number: str) -> Recording:
        """What a certificate of recording says besides the record: when its submission was
        received, the examination findings a clerk confirmed (with who, when and why), and the fees."""
        with self.db.read() as s:
            iid = instrument_id(s.connection(), number)
            if iid is None:
                raise NotFound(f"no instrument numbered {number}")
            sub = s.scalar(select(Submission).where(Submission.instrument_id == iid))
            return Recording.of(sub, self.fees_of(s, iid))

    def receipt(self, number: str) -> dict[str, Any]:
        """The signed receipt of a recorded instrument, as handed out when it was filed: in the
        format it was handed out in (``_format_handed_out``), with the flags and fees fixed at
        recording, so the same facts sign to the same bytes."""
        self.signer.refresh()
        with self.db.read() as s:
            iid = instrument_id(s.connection(), number)
            if iid is None:
                raise NotFound(f"no instrument numbered {number}")
            [stored] = load_records(s.connection(), [iid])
            raised = s.execute(select(Parcel.parcel_key, TitleFlag.kind, TitleFlag.message)
                               .join(Parcel, Parcel.id == TitleFlag.parcel_id)
                               .where(TitleFlag.instrument_id == iid)).all()  # fmt: skip
            fees = self.fees_of(s, iid)
            handed = s.execute(select(Instrument.source, Submission.response).outerjoin(
                Submission, Submission.instrument_id == Instrument.id).where(Instrument.id == iid)).one()  # fmt: skip
        if stored.commitment is None:
            raise NotFound(f"instrument {number} has no commitment yet (it has not been migrated)")
        r = stored.record
        v2 = _index_members(stored.commit_scheme, r.document_date, r.page_count, r.grantee_mailing_address,
                            r.preparer, [ref.value() for ref in r.references])  # fmt: skip
        facts = _Facts(r.instrument_number, r.book, r.page, r.recorded_at, r.doc_type, tuple(r.parcels),
                       r.document_digest, stored.commitment, r.corrects)  # fmt: skip
        return sign_receipt(self.signer, self.settings.service.registry_name, facts, v2,
                            [(key, kind, message) for key, kind, message in raised], fees,
                            _format_handed_out(*handed))  # fmt: skip


def sign_receipt(
    signer: ReceiptSigner, registry: str, f: _Facts, index: dict[str, Any], raised: list[tuple[str, str, str]],
    fees: dict[str, Any] | None, format: str = RECEIPT_FORMAT,
) -> dict[str, Any]:  # fmt: skip
    # Ed25519 signatures are deterministic: the same facts always give the same signed receipt
    return signer.sign(f.receipt(registry, index, raised, fees, format))


@dataclass(frozen=True)
class Recording:
    """A recording as its certificate states it (``Filing.recording_of``)."""

    received_at: datetime | None  # None: not received here (a record loaded from the legacy system)
    confirmed: tuple[dict[str, Any], ...]  # findings a clerk confirmed: code, words, parcel, by, at, reason
    fees: dict[str, Any] | None  # the fee statement; None: none recorded

    @classmethod
    def of(cls, sub: Submission | None, fees: dict[str, Any] | None) -> Recording:
        if sub is None:  # a record loaded from the county's recorder system: never examined here
            return cls(None, (), fees)
        confirmed = []
        for finding in sub.findings:
            given = next((c for c in sub.confirmations if finding["code"] in c.get("codes", ())), None)
            if finding["kind"] == Kind.CONFIRMATION and given is not None:
                confirmed.append({**finding, "by": given["by"], "at": given["at"], "reason": given["reason"],
                                  "up_front": bool(given.get("up_front"))})  # fmt: skip
        return cls(sub.received_at, tuple(confirmed), fees)


@dataclass(frozen=True)
class _Facts:
    """What a receipt says of its record (fixed at filing)."""

    number: str
    book: str
    page: str
    recorded_at: str
    doc_type: str
    parcels: tuple[str, ...]
    document_digest: str
    commitment: bytes
    corrects: str | None

    def receipt(self, registry: str, index: dict[str, Any], raised: list[tuple[str, str, str]],
                fees: dict[str, Any] | None, format: str) -> dict[str, Any]:  # fmt: skip
        """The receipt's members (unsigned): v2 adds the flags, in one order whichever order the
        database hands them back in, and the fees."""
        receipt = {
            "format": format, "registry": registry, "instrumentNumber": self.number, "book": self.book,
            "page": self.page, "recordedAt": self.recorded_at, "docType": self.doc_type,
            "parcels": sorted(self.parcels), "documentDigest": self.document_digest,
            "commitment": to_hex(self.commitment), "corrects": self.corrects, **index,
        }  # fmt: skip
        if format != RECEIPT_FORMAT_V1:
            receipt["flags"] = [{"kind": kind, "parcel": parcel, "message": message}
                                for parcel, kind, message in sorted(raised)]  # fmt: skip
            receipt["fees"] = receipt_fees(fees)
        return receipt


def _format_handed_out(source: str, response: dict[str, Any] | None) -> str:
    """The receipt format an instrument's filing was answered with: the kept response's; v1 for a
    filing recorded before submissions kept their responses (every receipt was v1 then); v2 for
    a record that was never filed here (a legacy or mirrored one), whose first receipt is today's."""
    handed = ((response or {}).get("receipt") or {}).get("format")
    if handed is not None:
        return str(handed)
    return RECEIPT_FORMAT_V1 if source == "filing" else RECEIPT_FORMAT


def _index_members(scheme: str, document_date: str | None, page_count: int | None, address: str | None,
                   preparer: str | None, references: list[list[str | None]]) -> dict[str, Any]:  # fmt: skip
    """A v2 record's receipt also names its scheme and what v2 commits besides (never the return-to
    address: personal data). A v1 record's receipt keeps exactly its members, so it is signed again
    to the same bytes."""
    if scheme == SCHEME_V1:
        return {}
    return {"commitmentScheme": scheme, "documentDate": document_date, "pageCount": page_count,
            "granteeMailingAddress": address, "preparer": preparer, "references": references}  # fmt: skip
