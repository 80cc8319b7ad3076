"""The web desk: server-rendered pages with plain HTML forms (no JavaScript needed).

Clerks sign in with their API key (the session remembers only the key id, so a revoked key ends
the session), search parcels and instruments, file instruments with inline errors, see the
receipt, and record corrections. Auditors look up an instrument or upload a bundle and get a
verdict with the chain details. Everyone sees the anchoring status page. Forms carry a CSRF token.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import secrets
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

import segno
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile as FormFile
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from hybrid_store import fee_book, fee_schedule, fees, flags, mirror, strict_json
from hybrid_store.core.abstract import LIMITS as ABSTRACT_LIMITS
from hybrid_store.core.commitment import FIELDS
from hybrid_store.core.records import DocType, ReferenceKind
from hybrid_store.errors import Conflict, FieldError, InvalidInstrument, LandregError, MirrorMode, NotFound
from hybrid_store.examination import State
from hybrid_store.files import create_once
from hybrid_store.plain_numbers import is_amount
from hybrid_store.settings import Settings
from hybrid_store.verifier import abstracts
from hybrid_store.verifier.verdicts import Verdict, verify_bytes
from registry_service.auth import Actor, Forbidden, Permission, Unauthenticated
from registry_service.deps import (
    Caller,
    FilingDep,
    ProofReader,
    ProofsDep,
    QueriesDep,
    QueuesDep,
    Reader,
    StatusDep,
    SubmissionsDep,
    require,
)
from registry_service.http import WholeNumber, client_address
from registry_service.services import Filed
from registry_service.services.search import Criteria, Sort
from registry_service.services.submissions import ReasonRequired
from registry_service.web.forms import DeskForm, FormLimits, read_form

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent.parent / "templates")
TEMPLATES.env.filters["dollars"] = fees.dollars


def money(amount: object) -> str:
    """An amount in dollars as the record keeps it ("612500.00") as a clerk writes it: "$612,500.00",
    the way fee amounts print (``fees.dollars``)."""
    return fees.dollars(int(Decimal(str(amount)) * 100))


def count(n: int) -> str:
    """A count with thousands separators, as every figure on the desk prints: 2,500."""
    return f"{n:,}"


TEMPLATES.env.filters["money"] = money
TEMPLATES.env.filters["count"] = count


def recorder_time(value: datetime, zone: str) -> str:
    """A time as the recorder's office reads it (its own clock and zone), with UTC beside it."""
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    return f"{value.astimezone(ZoneInfo(zone)):%Y-%m-%d %H:%M:%S %Z} ({value.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC)"


TEMPLATES.env.filters["recorder_time"] = recorder_time
PARCEL_ROWS = 3  # parcel rows on the filing form (an instrument may touch more: file through the API)
REFERENCE_ROWS = 2  # cross-reference rows on the filing form (more through the API)
REFERENCE_BOXES = ("instrument_number", "book", "page")
#: the optional index fields the filing form sends as typed (intake validates them)
INDEX_FIELDS = (
    "document_date",
    "page_count",
    "grantee_mailing_address",
    "preparer",
    "return_to",
    "property_class",
    "exemption_claimed",
)  # the last two: fee inputs (never committed)
MAX_DOCUMENT_BYTES = 50 * 1024 * 1024
#: the filing form: one scanned document beside its fields (and room for more parcel rows than it shows)
FILE_FORM = FormLimits(
    files=1,
    fields=60,
    body_bytes=MAX_DOCUMENT_BYTES + 1_000_000,
    file_label="scanned document",
    file_bytes=MAX_DOCUMENT_BYTES,
)
#: the small forms (sign in, sign out, acknowledge a flag): a few fields, no file
SMALL_FORM_FIELDS = 10
DOCUMENT_TOO_LARGE = "the scanned document is over 50 MB: scan it at a lower resolution, or give its SHA-256 instead"
MAX_KEY_CHARS = 200  # a key is 60 characters; anything much longer is not one
MAX_REASON_CHARS = 2000
#: a browser never sends a file back, so a form shown again has lost the one it carried
FILE_NOT_KEPT = "What you typed is kept below; attach the {label} again (a page cannot keep a file)."

router = APIRouter(prefix="/desk", include_in_schema=False)
#: pages anyone may open without signing in (no session, no form): the public verify page
public = APIRouter(include_in_schema=False)
#: where a certificate's QR code points: ``{public_base_url}/verify/{number}`` (a stable, short path:
#: certificates are printed, and a printed address cannot be moved)
VERIFY_PATH = "/verify"
NUMBER_FORM = re.compile(r"^[0-9A-Z][0-9A-Z_-]{0,23}$")  # the API's instrument number pattern


def install(app: FastAPI, settings: Settings) -> None:
    app.add_middleware(
        DeskSessions, secret_key=_session_secret(settings), session_cookie="landreg_desk", same_site="strict",
        https_only=settings.service.secure_cookies, max_age=8 * 3600,
    )  # fmt: skip
    app.include_router(router)
    app.include_router(public)
    app.state.html_error = _html_error

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/desk/", status_code=303)


class DeskSessions:
    """Signed-cookie sessions for the web desk's pages only; API requests skip the cookie work."""

    def __init__(self, app: ASGIApp, /, **options: Any) -> None:
        self.app = app
        self.with_sessions = SessionMiddleware(app, **options)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/desk"):
            await self.with_sessions(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def _session_secret(settings: Settings) -> str:
    if settings.service.session_secret is not None:
        return settings.service.session_secret.get_secret_value()
    return create_once(settings.keys_dir / "session.secret", secrets.token_urlsafe(48).encode()).decode().strip()


# --- helpers ----------------------------------------------------------------------------------------
def _html_error(request: Request, exc: LandregError, status: int) -> Response:
    """The desk's answer to an error: a page, or, for a caller who is not signed in, the sign-in page."""
    if isinstance(exc, Unauthenticated):
        return RedirectResponse(f"/desk/login?next={quote(str(request.url.path))}", status_code=303)
    return _page(request, "error.html", status=status, message=str(exc), hint=getattr(exc, "hint", ""))


def _actor(request: Request) -> Actor | None:
    key_id = request.session.get("key_id")
    return request.app.state.keys.actor_by_id(key_id) if key_id else None


def _places(request: Request) -> Any:
    return request.app.state.settings.profile.places()


def _csrf(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(24)
    return token


def _check_csrf(request: Request, token: str) -> None:
    if not token or not secrets.compare_digest(token, request.session.get("csrf", "")):
        raise Forbidden("the form expired or came from another site; reload the page and try again")


def _page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    actor = context.pop("actor", None) or _actor(request)
    return TEMPLATES.TemplateResponse(
        request, template,
        {"actor": actor, "csrf": _csrf(request), "Permission": Permission, "flash": request.session.pop("flash", None),
         "place_label": request.app.state.settings.profile.place_label, **context},
        status_code=status,
    )  # fmt: skip


def _error_page(request: Request, exc: LandregError, status: int) -> HTMLResponse:
    return _page(request, "error.html", status=status, message=str(exc), hint=exc.hint)


def _small_form(request: Request) -> FormLimits:
    return FormLimits(files=0, fields=SMALL_FORM_FIELDS, body_bytes=request.app.state.settings.service.max_body_bytes)


def _signed_in(who: Actor | None) -> Actor:
    # before a body is read: nobody's upload is read only to send them to the sign-in page
    if who is None:
        raise Unauthenticated("sign in first")
    return who


# --- sign in ----------------------------------------------------------------------------------------
@router.get("/login")
def login_form(request: Request, next: str = "/desk/") -> HTMLResponse:
    return _page(request, "login.html", next=next if next.startswith("/desk/") else "/desk/")


@router.post("/login")
async def login(request: Request) -> Response:
    form = await read_form(request, _small_form(request))
    next = form.values.get("next", "/desk/")
    if form.problem:
        return _page(request, "login.html", status=form.status, next=next,
                     error=f"{form.problem} Enter your key again (a key is never shown back).")  # fmt: skip
    _check_csrf(request, form.values.get("csrf", ""))
    api_key = form.values.get("api_key", "")[:MAX_KEY_CHARS]
    try:
        actor = await run_in_threadpool(request.app.state.keys.actor_for, api_key, client_address(request))
    except Unauthenticated as exc:
        return _page(request, "login.html", status=401, error=str(exc), next=next)
    request.session.clear()
    request.session.update({"key_id": actor.key_id, "csrf": secrets.token_urlsafe(24)})
    return RedirectResponse(next if next.startswith("/desk/") else "/desk/", status_code=303)


@router.post("/logout")
async def logout(request: Request) -> Response:
    form = await read_form(request, _small_form(request))
    if form.problem:
        return _page(request, "error.html", status=form.status, message=form.problem)
    _check_csrf(request, form.values.get("csrf", ""))
    request.session.clear()
    return RedirectResponse("/desk/login", status_code=303)


# --- search and parcels -------------------------------------------------------------------------------
@router.get("/")
def home(request: Request, actor: Reader, queries: QueriesDep, queues: QueuesDep) -> Response:
    """The front page: the search form (and its results, a keyset page at a time) and the queues' counts."""
    q = request.query_params
    context: dict[str, Any] = {"actor": actor, "municipalities": _places(request), "query": q,
                               "doc_types": list(DocType), "sorts": SORTS, "counts": queues.counts(actor)}  # fmt: skip
    if "search" not in q and not any(k in q for k in (*SEARCH_TEXT, *SEARCH_DATES, "doc_type")):
        # the page as it opens: nothing asked yet, so nothing to say about it (a link such as
        # /desk/?party=SMITH, without the form's marker, is a search all the same)
        return _page(request, "home.html", **context)
    try:
        criteria = _criteria(q, list(DocType))
        sort = Sort(q.get("sort") or Sort.NEWEST)
        results = queries.search(criteria, sort=sort, cursor=q.get("cursor") or None, require_criteria=True)
    except InvalidInstrument as exc:
        return _page(request, "home.html", status=422, errors=exc.errors, **context)
    except ValueError:
        return _page(request, "home.html", status=422, errors=[FieldError("sort", "sort", "choose an order from the list")],
                     **context)  # fmt: skip
    start = int(q["start"]) if q.get("start", "").isdigit() else 1
    more = None
    if results.next_cursor:
        params = {k: v for k, v in q.items() if k not in ("cursor", "start")}
        more = "/desk/?" + urlencode({**params, "cursor": results.next_cursor, "start": start + results.count})
    first = "/desk/?" + urlencode({k: v for k, v in q.items() if k not in ("cursor", "start")}) if start > 1 else None
    return _page(request, "home.html", results=results, start=start, more=more, first=first,
                 parcel_key=_whole_parcel(queries.profile, criteria), **context)  # fmt: skip


SEARCH_TEXT = ("party", "parcel", "municipality", "block", "lot", "qualifier", "number", "book", "page")
SEARCH_DATES = ("recorded_from", "recorded_to", "dated_from", "dated_to")
SORTS = (("-recorded", "newest first"), ("recorded", "oldest first"), ("number", "by instrument number"),
         ("-number", "by instrument number, last first"))  # fmt: skip
DATE_FORM = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _criteria(q: Any, doc_types: list[DocType]) -> Criteria:
    """The search form's fields, as typed; a date that is not one is refused in words."""
    text = {k: (q.get(k) or "").strip() or None for k in SEARCH_TEXT}
    days: dict[str, date | None] = {}
    problems = []
    for k in SEARCH_DATES:
        typed = (q.get(k) or "").strip()
        try:
            days[k] = date.fromisoformat(typed) if typed and DATE_FORM.fullmatch(typed) else None
            if typed and days[k] is None:
                raise ValueError(typed)
        except ValueError:
            problems.append(FieldError(k, "date_format", f"{typed!r} is not a date: write it as YYYY-MM-DD"))
    doc_type = q.get("doc_type") or None
    if doc_type and doc_type not in {t.value for t in doc_types}:
        problems.append(FieldError("doc_type", "doc_type", "choose a type from the list"))
    if problems:
        raise InvalidInstrument(problems)
    return Criteria(party=text["party"], parcel=text["parcel"], place=text["municipality"], block=text["block"],
                    lot=text["lot"], qualifier=text["qualifier"], number=text["number"], book=text["book"],
                    page=text["page"], doc_type=DocType(doc_type) if doc_type else None,
                    recorded_from=days["recorded_from"], recorded_to=days["recorded_to"],
                    document_from=days["dated_from"], document_to=days["dated_to"])  # fmt: skip


def _whole_parcel(profile: Any, c: Criteria) -> str | None:
    """The one parcel a search names, for a link to its chain of title."""
    try:
        if c.parcel:
            return str(profile.parcel_from_text(c.parcel).key)
        if c.place and c.block and c.lot:
            return str(profile.parcel_from_form(c.place, c.block, c.lot, c.qualifier or "").key)
    except ValueError:
        return None
    return None


@router.get("/parcels/{key}")
def parcel_page(request: Request, key: str, actor: Reader, queries: QueriesDep) -> Response:
    try:
        parcel = queries.parcel(key)
        history = queries.history(key)
    except NotFound as exc:
        return _error_page(request, exc, 404)
    return _page(request, "parcel.html", actor=actor, parcel=parcel, history=history)


# --- filing -----------------------------------------------------------------------------------------
def _form_values(form: Any) -> dict[str, Any]:
    return {k: form.get(k, "") for k in form}


@router.get("/file")
def file_form(request: Request, who: Caller, queries: QueriesDep, filing: FilingDep, corrects: str = "") -> Response:
    actor = require(who, Permission.CORRECT if corrects else Permission.FILE)
    try:
        filing.refuse_in_mirror_mode()
    except MirrorMode as exc:
        return _error_page(request, exc, 409)
    values: dict[str, Any] = {}
    if corrects:
        try:
            original = queries.instrument(corrects)
        except NotFound as exc:
            return _error_page(request, exc, 404)
        values = {
            "doc_type": original.doc_type, "grantors": "\n".join(original.grantors),
            "grantees": "\n".join(original.grantees), "consideration": original.consideration or "",
            "legal_description": original.legal_description, "document_digest": original.document_digest,
            # a correction re-records the instrument: who prepared it and where the grantee is mailed
            # stay what they were unless the clerk changes them (a deed without them is refused)
            "preparer": original.preparer or "", "grantee_mailing_address": original.grantee_mailing_address or "",
        }  # fmt: skip
        for i, p in enumerate(original.parcels[:PARCEL_ROWS]):
            values.update({f"municipality_{i}": p.municipality_code, f"block_{i}": p.block, f"lot_{i}": p.lot,
                           f"qualifier_{i}": p.qualifier})  # fmt: skip
    return _file_page(request, actor, values=values, corrects=corrects)


def _fee_inputs(settings: Settings) -> dict[str, Any] | None:
    """The fee inputs' choices (property classes, and the exemptions of the schedule in force
    today), or None when the registry has no fee schedule."""
    schedule = fee_schedule.load(settings)
    if schedule is None:
        return None
    today = fees.day_of_receipt(datetime.now(UTC), settings.profile.timezone)
    return {"classes": [(c, fees.PROPERTY_CLASS_WORDS[c]) for c in fees.PROPERTY_CLASSES],
            "exemptions": list(schedule.exemptions(today).items())}  # fmt: skip


def _file_page(request: Request, actor: Actor, *, values: dict[str, Any], corrects: str = "",
               errors: dict[str, str] | None = None, form_error: str = "", status: int = 200,
               quote: dict[str, Any] | None = None) -> HTMLResponse:  # fmt: skip
    # the one-time form token: the submission this form makes consumes it, so the same form posted
    # again (Back and resubmit, a double click) finds that submission instead of making another
    values.setdefault("form_token", secrets.token_urlsafe(24))
    errors = errors or {}
    return _page(request, "file.html", status=status, actor=actor, values=values, errors=errors,
                 first_wrong=_first_wrong(errors),
                 form_error=form_error, attestations=request.app.state.settings.profile.attestations,
                 corrects=corrects, doc_types=list(DocType), municipalities=_places(request),
                 rows=range(PARCEL_ROWS), max_document=f"{MAX_DOCUMENT_BYTES // (1024 * 1024)} MB",
                 reference_rows=range(REFERENCE_ROWS), reference_kinds=list(ReferenceKind), quote=quote,
                 fee_inputs=_fee_inputs(request.app.state.settings))  # fmt: skip


@router.post("/file")
async def file_submit(request: Request, who: Caller, filing: FilingDep) -> Response:
    _signed_in(who)
    form = await read_form(request, FILE_FORM)
    try:  # the scan's temporary file is closed whichever way the request ends
        return await _file_form(request, form, who, filing)
    finally:
        await form.close()


async def _file_form(request: Request, form: DeskForm, who: Caller, filing: FilingDep) -> Response:
    values = dict(form.values)
    corrects = values.get("corrects", "")
    actor = require(who, Permission.CORRECT if corrects else Permission.FILE)
    if form.problem:
        problem = f"{form.problem} {FILE_NOT_KEPT.format(label=FILE_FORM.file_label)}"
        return _file_page(request, actor, values=values, corrects=corrects, form_error=problem, status=form.status)
    _check_csrf(request, values.get("csrf", ""))
    document = form.files.get("document")
    digest = values.get("document_digest", "").strip().lower()
    if document is not None and document.filename:
        digest = await _sha256_of(document)
        values.update(document_digest=digest, attached_name=document.filename[:200], attached_digest=digest)
    elif values.get("attached_digest") != digest:  # the clerk typed another digest: the file shown no longer is it
        values.pop("attached_name", None)
    payload = {
        "doc_type": values.get("doc_type", ""),
        "grantors": _lines(values.get("grantors", "")),
        "grantees": _lines(values.get("grantees", "")),
        "parcels": [
            filing.settings.profile.form_fields(values.get(f"municipality_{i}", ""), values.get(f"block_{i}", "").strip(),
                                                values.get(f"lot_{i}", "").strip(),
                                                values.get(f"qualifier_{i}", "").strip())
            for i in range(PARCEL_ROWS)
            if values.get(f"block_{i}", "").strip() or values.get(f"lot_{i}", "").strip()
        ],
        "consideration": _typed_consideration(values.get("consideration", "")),
        "legal_description": values.get("legal_description", ""),
        "document_digest": digest,
        **_index_fields(values),
        # what the clerk ticked, and only that: each box left empty is a ground for refusal
        "attestations": [a.code for a in filing.settings.profile.attestations if values.get(f"attest_{a.code}")],
    }  # fmt: skip
    if values.get("action") == "quote":  # "Work out the fees": the form again, every field kept, nothing filed
        try:
            quote = filing.quote(payload)["fees"]
        except InvalidInstrument as exc:
            return _file_page(request, actor, values=values, corrects=corrects, errors=_inline(exc.errors), status=422)
        return _file_page(request, actor, values=values, corrects=corrects, quote=quote)
    token = str(values.get("form_token", "")).strip()[:64] or None
    # Back in Chromium fetches the form again (a new token) and refills the boxes from its own memory:
    # the session remembers its last filing, and the same filing posted again is that form once more
    seen = hashlib.sha256(json.dumps([payload, corrects], sort_keys=True).encode()).hexdigest()
    last = request.session.get("last_filing") or {}
    if last.get("hash") == seen and token not in (None, last.get("token")):
        token = last["token"]
    try:
        filed = filing.file(actor, payload, corrects=corrects or None, channel="desk", form_token=token)
    except InvalidInstrument as exc:
        return _file_page(request, actor, values=values, corrects=corrects, errors=_inline(exc.errors), status=422)
    except NotFound as exc:
        return _error_page(request, exc, 404)
    except MirrorMode as exc:
        return _error_page(request, exc, 409)
    request.session["flash"] = _filed_flash(filed)
    request.session["last_filing"] = {"hash": seen, "token": token}
    return RedirectResponse(f"/desk/submissions/{filed.submission_id}", status_code=303)  # post, redirect, get


def _filed_flash(filed: Filed) -> str:
    sub = filed.body["submission"]
    if filed.replayed:
        return f"This form was already submitted (submission {sub['id']}): here is what became of it. Nothing was filed twice."
    if filed.state == State.RECORDED:
        flags = filed.body.get("flags") or []
        resolved = sorted({f["instrument_number"] for f in filed.body.get("resolved_flags", [])})
        return (
            f"Recorded as instrument {filed.number}."
            + (f" Flagged for review: {flags[0]['message']}." if flags else "")
            + (f" It resolves the title flags on {', '.join(resolved)}." if resolved else "")
        )
    if filed.state == State.WAITING:
        return f"Not recorded yet: submission {sub['id']} waits for what is listed below."
    return f"Rejected: submission {sub['id']} is kept with every ground below. Nothing was recorded."


def _index_fields(values: dict[str, str]) -> dict[str, Any]:
    """What a recorder indexes besides, as the form has it: blank boxes are left out (intake takes
    them as not given), and a cross-reference row counts once any of its boxes is filled."""
    out: dict[str, Any] = {name: values[name] for name in INDEX_FIELDS if values.get(name, "").strip()}
    out["references"] = [
        {"kind": values.get(f"ref_kind_{i}", ""), **{key: values[f"ref_{key}_{i}"].strip() for key in REFERENCE_BOXES
                                                      if values.get(f"ref_{key}_{i}", "").strip()}}
        for i in range(REFERENCE_ROWS)
        if any(values.get(f"ref_{key}_{i}", "").strip() for key in REFERENCE_BOXES)
    ]  # fmt: skip
    return out


#: the filing form's fields in the order a clerk meets them, with where each error's message sits
#: (``_inline``'s names); the first wrong one takes the focus when the form comes back
FORM_ORDER = (
    ["doc_type", "grantors", "grantees", "parcels"]
    + [f"{box}_{i}" for i in range(PARCEL_ROWS) for box in ("municipality", "block", "lot", "qualifier")]
    + ["consideration", "legal_description", *INDEX_FIELDS[:2], "preparer", "grantee_mailing_address", "return_to"]
    + [f"reference_{i}" for i in range(REFERENCE_ROWS)]
    + ["property_class", "exemption_claimed", "document", "document_digest"]
)
#: the box to focus for an error shown beside a group rather than one box
FOCUS_OF = {"parcels": "municipality_0", "document": "document_digest",
            **{f"reference_{i}": f"ref_instrument_number_{i}" for i in range(REFERENCE_ROWS)}}  # fmt: skip


def _first_wrong(errors: dict[str, str]) -> str:
    """The form box that takes the focus: the first wrong one, or with none the first box of the form."""
    wrong = [name for name in FORM_ORDER if name in errors]
    return FOCUS_OF.get(wrong[0], wrong[0]) if wrong else "doc_type"


def _typed_consideration(typed: str) -> str | None:
    """``$412,500.00`` as the amount it is; anything else as typed, so a refusal quotes what the clerk
    typed ("'612,500 dollars' is not an amount"), not the desk's rewriting of it."""
    amount = typed.replace(",", "").replace("$", "").strip()
    return (amount if is_amount(amount) else typed.strip()) or None


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _inline(errors: list[FieldError]) -> dict[str, str]:
    """Map API field paths onto form inputs (``parcels[1].lot`` -> ``lot_1``)."""
    out: dict[str, str] = {}
    for e in errors:
        name = e.field
        if name.startswith("parcels[") and "]." in name:
            index, _, sub = name[len("parcels[") :].partition("].")
            name = f"{'municipality' if sub == 'municipality_code' else sub}_{index}"
        elif name.startswith("references[") and "]" in name:
            name = f"reference_{name[len('references[') :].partition(']')[0]}"
        elif "[" in name:
            name = name.split("[")[0]
        elif name == "(instrument)":
            name = "parcels"
        out.setdefault(name, e.message)
    return out


async def _sha256_of(upload: FormFile) -> str:  # a form part (FastAPI's UploadFile derives from it)
    digest = hashlib.sha256()
    size = 0
    while chunk := await upload.read(1 << 16):
        size += len(chunk)
        if size > MAX_DOCUMENT_BYTES:
            raise InvalidInstrument([FieldError("document", "too_large", DOCUMENT_TOO_LARGE)])
        digest.update(chunk)
    return digest.hexdigest()


# --- the day's fees ------------------------------------------------------------------------------------
def _report_day(request: Request, day: str) -> date:
    if not day:
        return fees.day_of_receipt(datetime.now(UTC), request.app.state.settings.profile.timezone)
    try:
        return date.fromisoformat(day) if len(day) == 10 else date.fromisoformat("bad")
    except ValueError:
        raise InvalidInstrument(
            [FieldError("day", "date_format", "write the day as YYYY-MM-DD, e.g. 2026-03-02")]
        ) from None


@router.get("/fees")
def fee_report_page(request: Request, who: Caller, filing: FilingDep, day: str = "") -> Response:
    """The recorder's day's fees, to reconcile with the till (clerks; printable, and as CSV)."""
    actor = require(who, Permission.FILE)
    try:
        the_day = _report_day(request, day)
    except InvalidInstrument as exc:
        return _page(request, "fees.html", status=422, actor=actor, report=None, day=day, error=exc.errors[0].message)
    return _page(request, "fees.html", actor=actor, report=filing.fee_report(the_day), day=the_day.isoformat())


@router.get("/fees.csv")
def fee_report_csv(request: Request, who: Caller, filing: FilingDep, day: str = "") -> Response:
    require(who, Permission.FILE)
    try:
        the_day = _report_day(request, day)
    except InvalidInstrument as exc:
        return _error_page(request, exc, 422)
    out = io.StringIO()
    csv.writer(out).writerows(fee_book.report_csv_rows(filing.fee_report(the_day)))
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="fees-{the_day.isoformat()}.csv"'})  # fmt: skip


# --- submissions ---------------------------------------------------------------------------------------
@router.get("/submissions")
def submissions_queue(request: Request, actor: Reader, submissions: SubmissionsDep) -> Response:
    """The waiting submissions, oldest first (the order they are recorded in), with their clocks."""
    return _page(request, "submissions.html", actor=actor, waiting=submissions.listing(State.WAITING))


# --- queues --------------------------------------------------------------------------------------------
@router.get("/queues/today")
def queue_today(request: Request, actor: Reader, queues: QueuesDep) -> Response:
    return _page(request, "queue.html", actor=actor, heading="Today's filings", queue="today",
                 rows=queues.today(), empty="Nothing has been filed today yet.")  # fmt: skip


@router.get("/queues/mine")
def queue_mine(request: Request, actor: Reader, queues: QueuesDep) -> Response:
    return _page(request, "queue.html", actor=actor, heading="My filings", queue="mine",
                 rows=queues.mine(actor), empty="You have filed nothing with this key yet.")  # fmt: skip


@router.get("/queues/review")
def queue_review(request: Request, actor: Reader, queues: QueuesDep, submissions: SubmissionsDep) -> Response:
    """What waits for a clerk: submissions to confirm or reject, title flags to resolve by recording."""
    return _page(request, "review.html", actor=actor, waiting=submissions.listing(State.WAITING),
                 flags=queues.open_flags())  # fmt: skip


@router.get("/submissions/{submission_id}")
def submission_page(request: Request, submission_id: int, actor: Reader, submissions: SubmissionsDep) -> Response:
    try:
        result = submissions.get(submission_id)
    except NotFound as exc:
        return _error_page(request, exc, 404)
    return _page(request, "submission.html", actor=actor, sub=result["submission"], result=result,
                 can_examine=actor.can(Permission.EXAMINE))  # fmt: skip


@router.post("/submissions/{submission_id}/{verb}")
async def submission_decide(request: Request, submission_id: WholeNumber, verb: str, who: Caller,
                            submissions: SubmissionsDep) -> Response:  # fmt: skip
    """A clerk confirms a waiting submission's findings, or rejects it, with a reason (audit-logged)."""
    actor = require(who, Permission.EXAMINE)
    form = await read_form(request, _small_form(request))
    reason = form.values.get("reason", "")
    back = f"/desk/submissions/{submission_id}"
    if form.problem or len(reason) > MAX_REASON_CHARS:
        problem = form.problem or f"The reason is longer than {MAX_REASON_CHARS} characters: shorten it."
        return _page(request, "error.html", status=form.status if form.problem else 422, message=problem,
                     kept=reason, back=back)  # fmt: skip
    _check_csrf(request, form.values.get("csrf", ""))
    if verb not in ("confirm", "reject"):
        return _error_page(request, NotFound("a submission is confirmed or rejected, nothing else"), 404)
    try:
        decide = submissions.confirm if verb == "confirm" else submissions.reject
        result = await run_in_threadpool(decide, actor, submission_id, reason)
    except NotFound as exc:
        return _error_page(request, exc, 404)
    except ReasonRequired as exc:
        return _error_page(request, exc, 422)
    except Conflict as exc:
        return _error_page(request, exc, 409)
    number = (result.get("receipt") or {}).get("instrumentNumber")
    request.session["flash"] = (f"Confirmed and recorded as instrument {number}." if number
                                else f"Submission {submission_id} rejected.")  # fmt: skip
    return RedirectResponse(f"/desk/submissions/{submission_id}", status_code=303)


# --- instruments and receipts -------------------------------------------------------------------------
@router.get("/instruments/{number}")
def instrument_page(request: Request, number: str, actor: Reader, queries: QueriesDep, filing: FilingDep) -> Response:
    try:
        instrument = queries.instrument(number, personal=actor.can(Permission.FILE))
        receipt = filing.receipt(number) if actor.can(Permission.PROOF) else None
    except NotFound as exc:
        return _error_page(request, exc, 404)
    return _page(request, "instrument.html", actor=actor, inst=instrument, receipt=receipt,
                 receipt_json=json.dumps(receipt, indent=2, ensure_ascii=False) if receipt else "")  # fmt: skip


@router.get("/instruments/{number}/receipt.json")
def receipt_download(request: Request, number: str, actor: ProofReader, filing: FilingDep) -> Response:
    """The bare signed receipt, the file `landreg receipt verify`, the API and the audit page take."""
    try:
        receipt = filing.receipt(number)
    except NotFound as exc:
        return _error_page(request, exc, 404)
    return Response(
        json.dumps(receipt, indent=2, ensure_ascii=False) + "\n", media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="landreg-receipt-{number}.json"'},
    )  # fmt: skip


def verify_url(settings: Settings, number: str) -> str:
    """The public verify page of a record, at the registry's public address."""
    return f"{settings.service.base_url}{VERIFY_PATH}/{quote(number, safe='')}"


@router.get("/instruments/{number}/certificate")
def certificate_page(request: Request, number: str, actor: Reader, queries: QueriesDep, filing: FilingDep) -> Response:
    """The certificate of recording, printable on one page; whoever may read the instrument may print
    it (it shows what the instrument page shows, never the return-to address)."""
    try:
        instrument = queries.instrument(number)
        recording = filing.recording_of(number)
    except NotFound as exc:
        return _error_page(request, exc, 404)
    settings = request.app.state.settings
    url = verify_url(settings, number)
    # error correction M (15 %): survives a crease or a stamp over a corner and stays small
    qr = segno.make(url, error="m").svg_inline(scale=3, border=4, svgclass="qr", title=f"QR code: {url}")
    return _page(request, "certificate.html", actor=actor, inst=instrument, recording=recording, verify_url=url,
                 zone=settings.profile.timezone,
                 qr=qr, registry=settings.service.registry_name)  # fmt: skip


@router.get("/instruments/{number}/bundle.json")
def bundle_download(request: Request, number: str, actor: ProofReader, proofs: ProofsDep, redact: str = "") -> Response:
    fields = [f for f in redact.split(",") if f in FIELDS]
    try:
        bundle = proofs.bundle(number, fields, full=True)
    except NotFound as exc:
        return _error_page(request, exc, 404)
    return Response(
        json.dumps(bundle.to_json(), indent=2, ensure_ascii=False) + "\n", media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="landreg-proof-{number}.json"'},
    )  # fmt: skip


@router.post("/mirror-flags/{flag_id}/ack")
async def acknowledge_flag(request: Request, flag_id: WholeNumber, who: Caller) -> Response:
    """An operator acknowledges a parallel-run flag, with the reason (audit-logged)."""
    actor = require(who, Permission.ACKNOWLEDGE)
    form = await read_form(request, _small_form(request))
    reason, next = form.values.get("reason", ""), form.values.get("next", "/desk/")
    if form.problem or len(reason) > MAX_REASON_CHARS:
        problem = form.problem or f"The reason is longer than {MAX_REASON_CHARS} characters: shorten it."
        return _page(request, "error.html", status=form.status if form.problem else 422, message=problem,
                     kept=reason, back=next if next.startswith("/desk/") else "/desk/")  # fmt: skip
    _check_csrf(request, form.values.get("csrf", ""))
    if len(" ".join(reason.split())) < mirror.MIN_REASON:
        return _error_page(request, Conflict("say why the flag is acknowledged (the reason is audit-logged)"), 422)
    try:
        view = await run_in_threadpool(
            request.app.state.services.filing.acknowledge, actor, flags.Source.MIRROR, flag_id, reason
        )
    except NotFound as exc:
        return _error_page(request, exc, 404)
    except Conflict as exc:
        return _error_page(request, exc, 409)
    request.session["flash"] = f"Flag on {view.instrument_number} acknowledged."
    return RedirectResponse(next if next.startswith("/desk/") else "/desk/", status_code=303)


# --- auditors -----------------------------------------------------------------------------------------
@router.get("/audit")
def audit_page(request: Request, actor: ProofReader, proofs: ProofsDep, number: str = "") -> Response:
    verdict = bundle = None
    error = None
    if number:
        try:
            bundle = proofs.bundle(number.strip(), full=True)
            verdict = proofs.verify(bundle.to_json())
        except NotFound as exc:
            error = str(exc)
    return _page(request, "audit.html", actor=actor, number=number, verdict=verdict, bundle=bundle, error=error)


def _audit_form(request: Request, files: int) -> FormLimits:
    return FormLimits(files=files, fields=SMALL_FORM_FIELDS, file_label="JSON file",
                      body_bytes=request.app.state.settings.service.max_body_bytes)  # fmt: skip


def _upload_refused(request: Request, actor: Actor, form: DeskForm, names: tuple[str, ...]) -> HTMLResponse | None:
    """The audit page again when the upload broke a limit or left out a file (the files must be chosen again)."""
    if form.problem is not None:
        problem = f"{form.problem} Choose the file{'s' if len(names) > 1 else ''} again (a page cannot keep a file)."
    elif not all(name in form.files for name in names):
        problem, form.status = "Choose the JSON file for each box, then send the form again.", 422
    else:
        return None
    return _page(request, "audit.html", actor=actor, number="", verdict=None, status=form.status, upload_error=problem,
                 upload_form="receipt" if "receipt_file" in names else "verify")  # fmt: skip


@router.post("/audit/verify")
async def audit_verify(request: Request, actor: ProofReader, proofs: ProofsDep) -> Response:
    form = await read_form(request, _audit_form(request, 1))
    try:
        return await _audit_verify(request, actor, proofs, form)
    finally:
        await form.close()


async def _audit_verify(request: Request, actor: Actor, proofs: ProofsDep, form: DeskForm) -> Response:
    refused = _upload_refused(request, actor, form, ("bundle_file",))
    if refused is not None:
        return refused
    _check_csrf(request, form.values.get("csrf", ""))
    bundle_file = form.files["bundle_file"]
    limit = request.app.state.settings.service.max_body_bytes
    raw = await bundle_file.read(limit + 1)
    problem = _not_json(bundle_file.filename, raw, "proof bundle or title abstract", limit)
    if problem is not None:
        return _page(request, "audit.html", actor=actor, number="", verdict=None, status=422, upload_error=problem,
                     upload_form="verify")  # fmt: skip
    if b'"landreg-title-abstract/' in raw:  # a parcel's title abstract (the form's size limit bounds it)
        found = abstracts.verify_bytes(raw)  # size, JSON, math and history first; the anchors only when they hold
        if found.status == abstracts.UNCHECKED:
            found = proofs.verify(strict_json.loads(raw, max_bytes=limit))  # type: ignore[assignment]
        return _page(request, "audit.html", actor=actor, number="", abstract=found, uploaded=bundle_file.filename,
                     limits=ABSTRACT_LIMITS, status=200 if found.valid else 422)  # fmt: skip
    verdict = verify_bytes(raw[:1_000_001])  # size, JSON and math first; the anchor only when they hold
    if verdict.unchecked:
        checked = proofs.verify(strict_json.loads(raw))
        assert isinstance(checked, Verdict)
        verdict = checked
    return _page(request, "audit.html", actor=actor, number="", verdict=verdict, uploaded=bundle_file.filename,
                 status=200 if verdict.valid else 422)  # fmt: skip


@router.post("/audit/receipt")
async def audit_receipt(request: Request, actor: ProofReader, proofs: ProofsDep) -> Response:
    """A receipt proves something only with its record's anchor: both files are checked together."""
    form = await read_form(request, _audit_form(request, 2))
    try:
        return await _audit_receipt(request, actor, proofs, form)
    finally:
        await form.close()


async def _audit_receipt(request: Request, actor: Actor, proofs: ProofsDep, form: DeskForm) -> Response:
    refused = _upload_refused(request, actor, form, ("receipt_file", "bundle_file"))
    if refused is not None:
        return refused
    _check_csrf(request, form.values.get("csrf", ""))
    receipt_file, bundle_file = form.files["receipt_file"], form.files["bundle_file"]
    documents = []
    for upload in (receipt_file, bundle_file):
        raw = await upload.read(1_000_001)
        problem = _not_json(upload.filename, raw, "receipt" if upload is receipt_file else "proof bundle", 1_000_000)
        if problem is not None:
            return _page(request, "audit.html", actor=actor, number="", verdict=None, status=422,
                         upload_error=problem, upload_form="receipt")  # fmt: skip
        check = verify_bytes(raw) if upload is bundle_file else None
        if check is not None and not check.unchecked:  # size, JSON and math first
            return _page(request, "audit.html", actor=actor, number="", verdict=check, uploaded=upload.filename,
                         status=422)  # fmt: skip
        try:
            documents.append(strict_json.loads(raw))
        except strict_json.InvalidJSON as exc:
            verdict = Verdict(False, f"{upload.filename}: {exc}")
            return _page(request, "audit.html", actor=actor, number="", verdict=verdict, uploaded=upload.filename,
                         status=422)  # fmt: skip
    receipt = documents[0].get("receipt", documents[0]) if isinstance(documents[0], dict) else documents[0]
    verdict = proofs.verify_receipt(receipt, documents[1])
    return _page(request, "audit.html", actor=actor, number="", verdict=verdict, uploaded=receipt_file.filename,
                 status=200 if verdict.valid else 422)  # fmt: skip


def _not_json(name: str | None, raw: bytes, what: str, limit: int) -> str | None:
    """Why an uploaded file is not the JSON file the form asks for, in words; None when it is JSON."""
    try:
        strict_json.loads(raw, max_bytes=limit)
    except strict_json.InvalidJSON as exc:
        reason = str(exc).removeprefix("not JSON: ")
        return (f"{name or 'The file'} is not the {what} the form asks for ({reason}): choose the JSON file the "
                "desk or `landreg proof` saved, and send the form again.")  # fmt: skip
    return None


# --- the public verify page ----------------------------------------------------------------------------
def _public_page(request: Request, status: int, **context: Any) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(request, "verify.html", {"registry": request.app.state.settings.service.registry_name,
                                      **context}, status_code=status)  # fmt: skip


@public.get(VERIFY_PATH + "/{number}")
def public_verify(request: Request, number: str, proofs: ProofsDep) -> Response:
    """What anyone who scans a certificate sees, signed in or not: the verdict on the record's proof
    (the auditors' machinery, pinned to the registry's trust root), its anchor, and only the record
    fields the registry publishes (``service.public_fields``: none by default). Nobody's name, price
    or address unless the registry chose to publish that field."""
    if not NUMBER_FORM.fullmatch(number):
        return _public_page(request, 404, number=number[:40], problem=(
            "This is not an instrument number: they look like 2026-0000123. Check the address against the "
            "certificate, or scan its QR code again."))  # fmt: skip
    try:
        bundle = proofs.bundle(number, full=False)
    except NotFound:
        return _public_page(request, 404, number=number, problem=(
            f"No instrument numbered {number} is recorded in this registry. Check the number on the certificate; "
            "if it is right, ask the county clerk's office about it."))  # fmt: skip
    if not bundle.is_anchored:
        return _public_page(request, 200, number=number, pending=True)
    shown = set(request.app.state.settings.service.public_fields)
    fields = [(name, bundle.disclosed(name)) for name in FIELDS if name in shown]
    verdict = proofs.verify(bundle.to_json())
    return _public_page(
        request, 200, number=number, verdict=verdict, fields=[(n, v) for n, v in fields if v is not None]
    )


# --- status -------------------------------------------------------------------------------------------
@router.get("/status")
def status_page(request: Request, actor: Reader, status: StatusDep) -> Response:
    return _page(
        request,
        "status.html",
        actor=actor,
        view=status.anchoring(recent=15, chain=status.chain()),
        migration=status.migration(recent=5),
    )
