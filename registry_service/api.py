"""``/api/v1``: the JSON API for clerks, auditors and their systems."""

from __future__ import annotations

import json
import re
from datetime import date
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Body, Depends, Header, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BeforeValidator
from starlette.concurrency import run_in_threadpool

from hybrid_store import flags
from hybrid_store.core.commitment import FIELDS
from hybrid_store.core.records import DocType
from hybrid_store.errors import FieldError, InvalidInstrument, NotFound
from hybrid_store.examination import State
from hybrid_store.jurisdictions import PROFILES
from registry_service import schemas
from registry_service.auth import Permission
from registry_service.deps import (
    Acknowledger,
    Caller,
    Corrector,
    Examiner,
    Filer,
    FilingDep,
    ProofReader,
    ProofsDep,
    QueriesDep,
    QueuesDep,
    Reader,
    StatusDep,
    SubmissionsDep,
)
from registry_service.http import StrictJSONRoute, WholeNumber, read_json, reject_unknown_query
from registry_service.services import Filed
from registry_service.services.search import Criteria, Sort

NumberPath = Annotated[str, Path(pattern=r"^[0-9A-Z][0-9A-Z_-]{0,23}$", examples=["2026-0000123"])]
# any shipped profile's key form (the schema is the same for every registry); the registry's own
# profile decides whether the parcel exists
ParcelPath = Annotated[
    str,
    Path(
        pattern="^(?:" + "|".join(f"(?:{p.parcel_key_pattern.pattern})" for p in PROFILES.values()) + ")$",
        examples=["0223_100.01_5", "1-00123-0045"],
    ),
]


def _calendar_date(value: object) -> object:
    # pydantic would also take "0" or "1700000000" as a Unix time; the API documents YYYY-MM-DD only
    if isinstance(value, str) and not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        raise ValueError("expected a date as YYYY-MM-DD")
    return value


CalendarDate = Annotated[date, BeforeValidator(_calendar_date)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=128,
        pattern=r"^[\x21-\x7e]+$",
        description="Send the same key when retrying: you get the first receipt, never a second instrument.",
    ),
]

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": schemas.ErrorResponse, "description": text}
    for code, text in {
        401: "no or unknown API key",
        403: "the key's role may not do this",
        404: "no such instrument or parcel",
        413: "request body too large",
        422: "invalid input: `error.fields` names each field and rule",
        429: "too many failed authentications from this address or against this key id (see Retry-After)",
    }.items()
}

router = APIRouter(
    prefix="/api/v1", route_class=StrictJSONRoute, responses=ERRORS, dependencies=[Depends(reject_unknown_query)]
)


def _filed(filed: Filed) -> JSONResponse:
    """Recorded: 201 and the receipt; waiting: 202 and the submission with its findings and clocks;
    rejected: 422 with every ground (the submission is kept, with its id)."""
    headers = {"Idempotent-Replayed": "true"} if filed.replayed else {}
    if filed.state == State.RECORDED:
        return JSONResponse(filed.body, status_code=201,
                            headers={**headers, "Location": f"/api/v1/instruments/{filed.number}"})  # fmt: skip
    submission = filed.body["submission"]
    headers["Location"] = f"/api/v1/submissions/{submission['id']}"
    if filed.state == State.REJECTED:
        grounds = submission["grounds"]
        error = {"code": "rejected", "message": f"not recorded: {len(grounds)} ground{'s' * (len(grounds) != 1)} for "
                 f"refusal (submission {submission['id']} is kept with them)",
                 "hint": "correct every ground listed and file the document again",
                 "grounds": grounds, "submission": submission["id"]}  # fmt: skip
        return JSONResponse({"error": error, **filed.body}, status_code=422, headers=headers)
    return JSONResponse(filed.body, status_code=202, headers=headers)


def _instrument_body(model: str) -> dict[str, Any]:
    """The request body, documented as ``model`` but validated by the registry itself, which checks
    shape, municipalities and clock in one pass and reports every broken rule at once."""
    return {"requestBody": {"required": True,
                            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model}"}}}}}  # fmt: skip


_FILING_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"model": schemas.SubmissionResult, "description": "waiting: findings that need a clerk's confirmation, or "
          "held behind an earlier submission on the same parcel"},
    422: {"model": schemas.ErrorResponse, "description": "invalid input (`error.fields`), or rejected: "
          "`error.grounds` lists every ground for refusal and `error.submission` the kept submission"},
}  # fmt: skip


@router.post("/instruments", status_code=201, response_model=schemas.FilingResult, tags=["clerks"],
             summary="Submit an instrument for recording", openapi_extra=_instrument_body("InstrumentCreate"),
             responses=_FILING_RESPONSES)  # fmt: skip
async def file_instrument(
    request: Request, filing: FilingDep, who: Filer, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    """Submit an instrument (clerk). It is examined first: a clean one is recorded at once (201: the
    registry assigns its number, book and page and recording time, commits to it and queues it for
    anchoring, all in one transaction, and returns a receipt signed with the registry's Ed25519 key);
    one with findings that need a confirmation (a parcel not in the book, a possible duplicate,
    grantors who are not the owners of record) or held behind an earlier waiting submission on the
    same parcel waits (202); one with grounds for refusal is rejected with all of them (422)."""
    body = await read_json(request)
    return _filed(await run_in_threadpool(filing.file, who, body, idempotency_key=idempotency_key))


@router.post("/instruments/{number}/corrections", status_code=201, response_model=schemas.FilingResult,
             tags=["clerks"], summary="Submit a correction", openapi_extra=_instrument_body("CorrectionCreate"),
             responses=_FILING_RESPONSES)  # fmt: skip
async def file_correction(
    number: NumberPath, request: Request, filing: FilingDep, who: Corrector, idempotency_key: IdempotencyKey = None,
) -> JSONResponse:  # fmt: skip
    """Record a corrective instrument: a new record linked to the one it corrects, which stays
    visible and provable. Never an overwrite."""
    body = await read_json(request)
    return _filed(await run_in_threadpool(filing.file, who, body, idempotency_key=idempotency_key, corrects=number))


@router.post("/fees/quote", response_model=schemas.FeeQuote, tags=["clerks"], summary="Work out a filing's fees",
             openapi_extra=_instrument_body("InstrumentCreate"))  # fmt: skip
async def quote_fees(request: Request, filing: FilingDep, who: Filer) -> dict[str, Any]:
    """The fees an instrument would pay if filed now, with no submission made (clerk): the same body
    as a filing, validated the same way. Each line says how it was worked out, under which statute
    and who pays it (filer, grantor or grantee), from the fee schedule in force on the recorder's
    day (docs/fees.md); `fees.missing` names what the fees need and the body leaves out (a page
    count, a property class over $1,000,000, a consideration or an exemption claimed). The fees a
    filing pays are worked out again when it is received, and stored with it."""
    body = await read_json(request)
    return await run_in_threadpool(filing.quote, body)


@router.get("/fees/report", response_model=schemas.FeeReport, tags=["clerks"], summary="The day's fees")
def fee_report(
    filing: FilingDep, who: Filer,
    day: Annotated[CalendarDate, Query(description="the recorder's day (its own time zone), YYYY-MM-DD")],
) -> dict[str, Any]:  # fmt: skip
    """Every instrument recorded on the recorder's `day` with the fees recorded with it, and the
    totals per fee line, per payer and overall, to reconcile with the till (clerk)."""
    return filing.fee_report(day)


@router.get("/submissions", response_model=schemas.SubmissionPage, tags=["clerks"], summary="Submissions")
def list_submissions(
    submissions: SubmissionsDep,
    who: Reader,
    state: Annotated[State | None, Query(description="waiting (default), recorded, rejected, ...")] = State.WAITING,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> schemas.SubmissionPage:
    """Submissions in one state, oldest first (the order they are recorded in): by default the
    queue of waiting ones, each with its findings and statutory clocks."""
    data = submissions.listing(state, limit)
    return schemas.SubmissionPage(data=[schemas.SubmissionView(**d) for d in data], count=len(data))


@router.get("/queues", response_model=schemas.QueueCounts, tags=["clerks"], summary="The queues' counts")
def queue_counts(queues: QueuesDep, who: Reader) -> schemas.QueueCounts:
    """How many submissions were received today (the recorder's day), how many the caller's key
    filed, and what waits for review: submissions to confirm or reject, title flags to resolve."""
    c = queues.counts(who)
    return schemas.QueueCounts(today=c.today, mine=c.mine, waiting=c.waiting, open_flags=c.open_flags,
                               review=c.review)  # fmt: skip


@router.get("/queues/today", response_model=schemas.SubmissionPage, tags=["clerks"], summary="Today's filings")
def queue_today(queues: QueuesDep, who: Reader) -> schemas.SubmissionPage:
    """Every submission received on the recorder's day, newest first, whatever became of it."""
    data = queues.today()
    return schemas.SubmissionPage(data=[schemas.SubmissionView(**d) for d in data], count=len(data))


@router.get("/queues/mine", response_model=schemas.SubmissionPage, tags=["clerks"], summary="My filings")
def queue_mine(queues: QueuesDep, who: Reader) -> schemas.SubmissionPage:
    """The submissions filed with the caller's key, newest first."""
    data = queues.mine(who)
    return schemas.SubmissionPage(data=[schemas.SubmissionView(**d) for d in data], count=len(data))


@router.get("/queues/review", response_model=schemas.ReviewQueue, tags=["clerks"], summary="Waiting for review")
def queue_review(queues: QueuesDep, submissions: SubmissionsDep, who: Reader) -> schemas.ReviewQueue:
    """Submissions waiting for a confirmation (oldest first) and title flags no recorded
    instrument has resolved yet (oldest first)."""
    waiting = submissions.listing(State.WAITING)
    return schemas.ReviewQueue(
        submissions=[schemas.SubmissionView(**d) for d in waiting],
        flags=[schemas.OpenFlagView(**vars(f)) for f in queues.open_flags()],
    )


SubmissionPath = Annotated[int, Path(ge=1, le=2**62)]


@router.get("/submissions/{submission_id}", tags=["clerks"], summary="One submission",
            responses={200: {"model": schemas.SubmissionResult}})  # fmt: skip
def get_submission(submission_id: SubmissionPath, submissions: SubmissionsDep, who: Reader) -> dict[str, Any]:
    """The submission with its findings, clocks, attestations and confirmations (and, once recorded,
    its receipt)."""
    return submissions.get(submission_id)


@router.post("/submissions/{submission_id}/confirm", tags=["clerks"], summary="Confirm a waiting submission",
             responses={200: {"model": schemas.FilingResult}, 409: {"model": schemas.ErrorResponse,
                        "description": "not waiting, or held behind an earlier submission"}})  # fmt: skip
def confirm_submission(
    submission_id: SubmissionPath, body: schemas.Reason, submissions: SubmissionsDep, who: Examiner
) -> dict[str, Any]:
    """An authorised clerk confirms the submission's findings with a reason (audit-logged): it is
    recorded at once, and the submissions held behind it follow in order of receipt."""
    return submissions.confirm(who, submission_id, body.reason)


@router.post("/submissions/{submission_id}/reject", tags=["clerks"], summary="Reject a waiting submission",
             responses={200: {"model": schemas.SubmissionResult}, 409: {"model": schemas.ErrorResponse,
                        "description": "not waiting"}})  # fmt: skip
def reject_submission(
    submission_id: SubmissionPath, body: schemas.Reason, submissions: SubmissionsDep, who: Examiner
) -> dict[str, Any]:
    """A clerk rejects a waiting submission with a reason (audit-logged): it is kept, never
    recorded; the submissions held behind it are examined again."""
    return submissions.reject(who, submission_id, body.reason)


@router.get("/instruments", response_model=schemas.InstrumentPage, tags=["clerks", "auditors"],
            summary="Search instruments")  # fmt: skip
def search_instruments(
    request: Request,
    queries: QueriesDep,
    who: Reader,
    parcel: Annotated[
        str | None,
        Query(
            max_length=48,
            description="a parcel in any spelling the registry reads: "
            "its key (0223_100.01_5), or its parts (0223 100.01 5)",
        ),
    ] = None,
    party: Annotated[
        str | None,
        Query(
            min_length=2,
            max_length=200,
            description="a grantor's or grantee's name: each word begins "
            "a word of the name, in any order, case, accents and punctuation folded; a suffix "
            "(JR) must be on the name",
        ),
    ] = None,
    type: Annotated[DocType | None, Query(description="document type")] = None,
    from_: Annotated[CalendarDate | None, Query(alias="from", description="recorded on or after (YYYY-MM-DD)")] = None,
    to: Annotated[CalendarDate | None, Query(description="recorded on or before (YYYY-MM-DD)")] = None,
    dated_from: Annotated[CalendarDate | None, Query(description="the instrument is dated on or after")] = None,
    dated_to: Annotated[CalendarDate | None, Query(description="the instrument is dated on or before")] = None,
    number: Annotated[str | None, Query(max_length=24, description="instrument number, e.g. 2026-0000123")] = None,
    book: Annotated[str | None, Query(max_length=6, description="the book it is recorded in")] = None,
    page: Annotated[str | None, Query(max_length=6, description="its page in that book (with `book`)")] = None,
    municipality: Annotated[
        str | None,
        Query(max_length=8, description="every parcel of a municipality (or borough); narrow with `block` and `lot`"),
    ] = None,
    block: Annotated[str | None, Query(max_length=12)] = None,
    lot: Annotated[str | None, Query(max_length=12)] = None,
    sort: Annotated[Sort, Query(description="-recorded (newest first), recorded, number, -number")] = Sort.NEWEST,
    limit: Annotated[WholeNumber, Query(ge=1, le=100)] = 25,
    cursor: Annotated[str | None, Query(max_length=18, pattern=r"^[0-9]{1,18}$")] = None,
) -> schemas.InstrumentPage:
    """Instruments matching every criterion given, newest first (or in `sort` order). Keyset pages:
    follow `next` (or pass `next_cursor` as `cursor` with the same search); a filing recorded while
    you page never shifts a page."""
    criteria = Criteria(party=party, parcel=parcel, place=municipality, block=block, lot=lot, number=number,
                        book=book, page=page, doc_type=type, recorded_from=from_, recorded_to=to,
                        document_from=dated_from, document_to=dated_to)  # fmt: skip
    result = queries.search(criteria, sort=sort, limit=limit, cursor=cursor)
    if result.next_cursor:
        # a relative address: behind a proxy the host this process sees is not the one the caller used
        result.next = f"{request.url.path}?{urlencode({**request.query_params, 'cursor': result.next_cursor})}"
    return result


@router.get("/instruments/{number}", response_model=schemas.InstrumentView, tags=["clerks", "auditors"],
            summary="One instrument")  # fmt: skip
def get_instrument(number: NumberPath, queries: QueriesDep, who: Reader) -> schemas.InstrumentView:
    return queries.instrument(number, personal=who.can(Permission.FILE))


@router.get("/instruments/{number}/receipt", response_model=schemas.Receipt, tags=["clerks", "auditors"],
            response_model_exclude_unset=True,  # a v1 record's receipt has no v2 members: signed bytes unchanged
            summary="The signed receipt of one instrument")  # fmt: skip
def get_receipt(number: NumberPath, filing: FilingDep, who: ProofReader) -> dict[str, Any]:
    """The receipt handed out at filing, signed again (Ed25519 is deterministic: same bytes)."""
    return filing.receipt(number)


@router.get(
    "/instruments/{number}/proof",
    tags=["auditors"],
    summary="The proof bundle of one instrument",
    responses={
        200: {"description": "complete: anchored at the configured confirmation depth"},
        202: {"description": "pending: the record waits for its batch (tree and anchor are null)"},
    },
)
async def get_proof(
    number: NumberPath,
    proofs: ProofsDep,
    who: Caller,
    redact: Annotated[str, Query(max_length=300, description="comma-separated fields to give as hashes only")] = "",
) -> Response:
    """The bundle an auditor verifies with `landreg verify` or `POST /api/v1/proofs/verify`
    (format: docs/proof-bundle.md). Without an auditor's or clerk's key, only the fields in the
    registry's `public_fields` setting are disclosed; the proof itself is always complete."""
    fields = [f.strip() for f in redact.split(",") if f.strip()]
    unknown = [f for f in fields if f not in FIELDS]
    if unknown:
        raise InvalidInstrument([FieldError("redact", "unknown_field", f"{unknown[0]!r} is not a record field")])
    full = who is not None and who.can(Permission.PROOF)
    data, complete = await run_in_threadpool(lambda: proofs.bundle_json(number, fields, full=full))
    return Response(data, status_code=200 if complete else 202, media_type="application/json")


@router.get("/parcels/{parcel_id}", response_model=schemas.ParcelView, tags=["clerks", "auditors"],
            summary="A parcel: owner of record, token")  # fmt: skip
def get_parcel(parcel_id: ParcelPath, queries: QueriesDep, who: Reader) -> schemas.ParcelView:
    return queries.parcel(parcel_id)


@router.get("/parcels/{parcel_id}/history", response_model=schemas.ParcelHistory, tags=["clerks", "auditors"],
            summary="A parcel's chain of title and hash chain")  # fmt: skip
def get_parcel_history(parcel_id: ParcelPath, queries: QueriesDep, who: Reader) -> schemas.ParcelHistory:
    return queries.history(parcel_id)


@router.get("/parcels/{parcel_id}/abstract", tags=["auditors"], summary="A parcel's title abstract")
async def get_abstract(
    parcel_id: ParcelPath,
    proofs: ProofsDep,
    who: Caller,
    redact: Annotated[str, Query(max_length=300, description="comma-separated fields to give as hashes only")] = "",
) -> Response:
    """Every record of the parcel's history with its proof, and the proof that the newest is the
    parcel's head in the newest anchored title state: verify it with `landreg verify` or
    `POST /api/v1/proofs/verify` (COMPLETE, COMPLETE AS OF BATCH M, STALE, PENDING or INVALID, with
    the owners of record and the open encumbrances). Index fields are always disclosed; without an
    auditor's or clerk's key, other fields only as `public_fields` allows (format: docs/title-abstract.md)."""
    fields = [f.strip() for f in redact.split(",") if f.strip()]
    unknown = [f for f in fields if f not in FIELDS]
    if unknown:
        raise InvalidInstrument([FieldError("redact", "unknown_field", f"{unknown[0]!r} is not a record field")])
    full = who is not None and who.can(Permission.PROOF)
    data = await run_in_threadpool(lambda: proofs.abstract_json(parcel_id, fields, full=full))
    return Response(data, media_type="application/json")


@router.get("/parcels/{parcel_id}/head", tags=["auditors"], summary="A parcel's head in the newest title state")
def get_head(parcel_id: ParcelPath, proofs: ProofsDep) -> Response:
    """The parcel's head (its newest anchored record and its history's length), or the proof that it
    has none, in the newest anchored title state: what `landreg verify ABSTRACT --head URL` takes to
    tell COMPLETE from STALE. Open to everyone: it discloses a commitment and a count, no field."""
    head = proofs.newest_head(parcel_id)
    if head is None:
        raise NotFound("no title state is anchored yet, or the stored one is damaged (`landreg reconcile` says)")
    return Response(json.dumps(head, separators=(",", ":")), media_type="application/json")


@router.post("/flags/{source}/{flag_id}/acknowledge", response_model=schemas.MirrorFlagView, tags=["operators"],
             summary="Acknowledge a flag, with the reason",
             responses={409: {"model": schemas.ErrorResponse, "description": "a flag on who owns a parcel (record "
                              "the instrument that resolves it), no reason given, or acknowledged already"}})  # fmt: skip
def acknowledge_flag(
    source: Annotated[Literal["title", "mirror"], Path(description="title: a chain-of-title flag; mirror: the "
                                                                   "legacy mirror's flag")],
    flag_id: Annotated[int, Path(ge=1, le=2**62)],
    body: schemas.Acknowledgement,
    filing: FilingDep,
    who: Acknowledger,
) -> schemas.MirrorFlagView:  # fmt: skip
    """Acknowledge a flag that does not bear on who owns a parcel (a version the county's recorder
    system replaced or deleted), with the reason; audit-logged. A flag on who owns a parcel
    (`title`: grantor not owner, conflicting conveyance) is refused (409): record the instrument
    that resolves it, a correction of the flagged deed or a deed from the owners of record to its
    grantees, and the filing resolves it."""
    return filing.acknowledge(who, flags.Source(source), flag_id, body.reason)


@router.post("/proofs/verify", response_model=schemas.VerdictView, tags=["auditors"],
             summary="Verify a bundle or a title abstract")  # fmt: skip
def verify_proof(
    proofs: ProofsDep,
    bundle: Annotated[
        dict[str, Any],
        Body(description="a proof bundle (docs/proof-bundle.md) or a title abstract (docs/title-abstract.md)"),
    ],
    onchain: Annotated[bool, Query(description="also check the anchor on the registry's chain node")] = True,
) -> schemas.VerdictView:
    """The same verdicts as `landreg verify`, for auditors without the command line. Open to
    everyone: it reveals nothing that is not in the submitted bundle."""
    return schemas.VerdictView(**proofs.verify(bundle, on_chain=onchain).to_json())


@router.post("/receipts/verify", response_model=schemas.VerdictView, tags=["auditors"],
             summary="Verify a filing receipt with its record's bundle")  # fmt: skip
def verify_receipt(proofs: ProofsDep, check: schemas.ReceiptCheck) -> schemas.VerdictView:
    """The same verdicts as `landreg receipt verify`: the signature by a receipt key of the
    registry's trust root, and the record's anchor inside that key's window. Open to everyone."""
    return schemas.VerdictView(**proofs.verify_receipt(check.receipt, check.bundle).to_json())


@router.get("/status", response_model=schemas.StatusView, tags=["operators"], summary="Anchoring status")
def get_status(status: StatusDep, who: Reader) -> schemas.StatusView:
    return status.anchoring(chain=status.chain())


@router.get("/migration", response_model=schemas.MigrationView, tags=["operators", "auditors"],
            summary="Migration stages and reconciliations")  # fmt: skip
def get_migration(status: StatusDep, who: Reader) -> schemas.MigrationView:
    """Read-only view of the staged bulk migration: each stage's progress, gate and sign-off, and
    the latest parallel-run reconciliations with what they found. Stages are run from the CLI
    (`landreg migrate`, `landreg reconcile`)."""
    return status.migration()
