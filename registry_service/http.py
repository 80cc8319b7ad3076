"""The HTTP edge: typed errors become status codes and one error body shape; request bodies are
parsed strictly (a member given twice is an error, not "last one wins") and bounded in size."""

from __future__ import annotations

import json
import logging
import types
import typing
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hybrid_store import strict_json
from hybrid_store.errors import (
    ChainError,
    ChainUnavailable,
    Conflict,
    DamagedRecord,
    InvalidInstrument,
    LandregError,
    MalformedBundle,
    NotFound,
)
from hybrid_store.plain_errors import plain_message
from hybrid_store.plain_numbers import is_digits, not_a_number
from registry_service.auth import Forbidden, TooManyFailures, Unauthenticated
from registry_service.services.filing import IdempotencyMismatch
from registry_service.services.submissions import ReasonRequired

log = logging.getLogger(__name__)

STATUS: list[tuple[type[Exception], int, str]] = [
    (TooManyFailures, 429, "too_many_failures"),
    (InvalidInstrument, 422, "invalid_instrument"),
    (MalformedBundle, 422, "malformed_bundle"),
    (IdempotencyMismatch, 422, "idempotency_key_reused"),
    (ReasonRequired, 422, "reason_required"),
    (NotFound, 404, "not_found"),
    (Conflict, 409, "conflict"),
    (Unauthenticated, 401, "unauthenticated"),
    (Forbidden, 403, "forbidden"),
    (ChainUnavailable, 503, "chain_unavailable"),
    (ChainError, 503, "chain_error"),
    (DamagedRecord, 500, "damaged_record"),
]


def _typed_whole_number(value: object) -> object:
    # pydantic's int() would also read '1_0', ' 10', '10\n', '+10' and '10.0' in a query or a path
    if isinstance(value, str) and not is_digits(value):
        raise PydanticCustomError("number_format", "{problem}: type digits 0-9 only, e.g. 25",
                                  {"problem": not_a_number(value)})  # fmt: skip
    return value


#: a whole number in a query or a path, in ASCII digits as the legacy readers take them
WholeNumber = Annotated[int, BeforeValidator(_typed_whole_number)]


def error_response(status: int, code: str, message: str, *, hint: str = "", fields: list | None = None) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if hint:
        body["hint"] = hint
    if fields is not None:
        body["fields"] = fields
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def client_address(request: Request) -> str:
    """The client's address for rate limiting: the peer, or, when the peer is a configured proxy,
    the nearest address in X-Forwarded-For that is not one of ours."""
    peer = request.client.host if request.client else "unknown"
    proxies = request.app.state.trusted_proxies
    if not proxies or not _in(peer, proxies):
        return peer
    forwarded = [a.strip() for a in request.headers.get("x-forwarded-for", "").split(",") if a.strip()]
    for address in reversed(forwarded):
        if not _in(address, proxies):
            return address
    return peer


def _in(address: str, networks: list[Any]) -> bool:
    import ipaddress

    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def _field_path(loc: tuple[Any, ...]) -> str:
    parts = [p for p in loc if p not in ("body", "query", "path", "header")] or list(loc[-1:])
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(request)"


def install_error_handlers(app: FastAPI) -> None:
    install_http_error_handler(app)

    @app.exception_handler(LandregError)
    async def landreg_error(request: Request, exc: LandregError) -> Response:
        for kind, status, code in STATUS:
            if isinstance(exc, kind):
                html = getattr(request.app.state, "html_error", None)
                if html is not None and request.url.path.startswith("/desk/"):
                    return html(request, exc, status)
                message, fields = _message_and_fields(exc)
                response = error_response(status, code, message, hint=exc.hint, fields=fields)
                if isinstance(exc, TooManyFailures):
                    response.headers["Retry-After"] = str(exc.retry_after_s)
                return response
        log.error("unmapped error: %r", exc)
        return error_response(500, "internal_error", str(exc))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        fields = []
        for err in exc.errors():
            if err["type"] == "json_invalid":
                detail = (err.get("ctx") or {}).get("error", "")
                fields.append({"field": "(body)", "rule": "json_invalid", "message": _not_json(detail)})
                continue
            fields.append({"field": _field_path(tuple(err["loc"])), "rule": err["type"], "message": plain_message(err)})
        unread = {"field": "(request)", "message": "The request could not be read: send it again."}
        first = fields[0] if fields else unread
        message = f"{first['field']}: {first['message']}" + (
            f" (and {len(fields) - 1} more)" if len(fields) > 1 else ""
        )
        html = getattr(request.app.state, "html_error", None)
        if html is not None and request.url.path.startswith("/desk/"):
            return html(request, InvalidInstrument([]) if not fields else _Plain(message), 422)
        return error_response(422, "invalid_request", message, fields=fields)


def _message_and_fields(exc: LandregError) -> tuple[str, list[dict[str, str]] | None]:
    if isinstance(exc, InvalidInstrument):
        fields = [{"field": e.field, "rule": e.rule, "message": e.message} for e in exc.errors]
        # the words, without the rule codes (those are in ``fields``, for programs)
        return (" ".join(f"{e.field}: {e.message}" for e in exc.errors) or str(exc)), fields
    if isinstance(exc, MalformedBundle):
        return str(exc), [{"field": exc.field, "rule": "malformed", "message": str(exc)}]
    return str(exc), None


def _not_json(detail: str) -> str:
    # ``detail`` is strict_json's reason, already in plain words ("not JSON: it is empty"); FastAPI's
    # own parser error (a body read before ours) says nothing a caller can act on, so it is not shown
    if detail.startswith(("not JSON", "larger than", "nested deeper", "not UTF-8", "has a dotted key")):
        return f"The request body is {detail}. Send one JSON object."
    return "The request body is not JSON: send one JSON object."


def install_http_error_handler(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        html = getattr(request.app.state, "html_error", None)
        if html is not None and request.url.path.startswith("/desk/"):  # a person is reading: a page, not JSON
            return html(request, _Plain(str(exc.detail)), exc.status_code)
        codes = {404: "not_found", 405: "method_not_allowed", 400: "bad_request", 413: "body_too_large"}
        return error_response(exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail))


class StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:  # bounded in size and depth before the parser runs (hybrid_store.strict_json)
                self._json = strict_json.loads(body, max_bytes=self.app.state.settings.service.max_body_bytes)
            except strict_json.InvalidJSON as exc:  # FastAPI turns a JSONDecodeError into a 422 naming it
                raise json.JSONDecodeError(str(exc), "", 0) from None
        return self._json


async def reject_unknown_query(request: Request) -> None:
    """A misspelt filter (``?partyy=SMITH``) must not silently widen a search: unknown query
    parameters are a 422, like unknown body members."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    params = {p.alias: p for p in _all_query_params(dependant)}
    unknown = sorted(k for k in request.query_params if k not in params)
    if unknown:
        raise RequestValidationError(
            [{"type": "extra_forbidden", "loc": ("query", unknown[0]), "msg": "is not a parameter of this operation",
              "input": request.query_params.get(unknown[0])}]
        )  # fmt: skip
    # ?party=A&party=B would otherwise quietly search for B only
    repeated = sorted(
        k for k in set(request.query_params) if len(request.query_params.getlist(k)) > 1 and not _many(params[k])
    )
    if repeated:
        raise RequestValidationError(
            [{"type": "repeated", "loc": ("query", repeated[0]), "msg": "is given more than once; give it once",
              "input": request.query_params.getlist(repeated[0])}]
        )  # fmt: skip


def _many(param: Any) -> bool:
    """Does the parameter take a list (``?x=1&x=2``)?"""
    annotation = getattr(getattr(param, "field_info", None), "annotation", None)
    options = (
        typing.get_args(annotation)
        if typing.get_origin(annotation) in (typing.Union, types.UnionType)
        else (annotation,)
    )
    return any(typing.get_origin(a) in (list, tuple, set, frozenset) or a in (list, tuple, set) for a in options)


def _all_query_params(dependant: Any) -> list[Any]:
    params = list(dependant.query_params)
    for sub in dependant.dependencies:
        params.extend(_all_query_params(sub))
    return params


async def read_json(request: Request) -> Any:
    """The request's JSON body, strictly parsed; a 422 naming the problem otherwise."""
    try:
        return await request.json()
    except json.JSONDecodeError as exc:
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ("body",), "msg": "JSON decode error", "ctx": {"error": exc.msg}}]
        ) from None


class StrictJSONRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Any]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict


#: set in a desk request's scope when its body was cut short at the size limit
BODY_CUT = "landreg.body_cut"


class BodySizeLimit:
    """Refuse request bodies over ``limit`` bytes with 413, declared or streamed. ``larger`` gives
    the paths that take bigger bodies (the desk's filing form carries the scanned deed).

    On the desk a body is never read past its limit either, but the refusal is the desk's: its
    forms are read by ``web.forms``, which keeps the fields that came before the limit and shows
    the form again with them. So a desk body over the limit is cut short there, not refused here."""

    def __init__(self, app: ASGIApp, limit: int, larger: dict[str, int] | None = None):
        self.app = app
        self.limit = limit
        self.larger = larger or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.larger.get(scope["path"], self.limit)
        desk = scope["path"].startswith("/desk/")
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if not desk and declared is not None and declared.isdigit() and int(declared) > limit:
            await self._refuse(scope, send, limit)
            return
        seen = 0

        async def counting() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                body = message.get("body", b"")
                seen += len(body)
                if seen > limit and desk:
                    scope[BODY_CUT] = True
                    return {"type": "http.request", "body": body[: len(body) - (seen - limit)], "more_body": False}
                if seen > limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, counting, send)
        except _TooLarge:
            await self._refuse(scope, send, limit)

    async def _refuse(self, scope: Scope, send: Send, limit: int) -> None:
        response = error_response(413, "body_too_large", f"the request body is larger than {limit:,} bytes")
        body, headers = bytes(response.body), response.raw_headers
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


class _Plain(LandregError):
    """A message for the web desk's error page."""


#: the desk and the API need nothing from elsewhere: no inline script, no other origin, no framing
CSP = "default-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
#: Swagger UI and ReDoc (/docs, /redoc) load their scripts and styles from a CDN
DOCS_CSP = "frame-ancestors 'none'; object-src 'none'; base-uri 'none'"


class SecurityHeaders:
    """Security headers on every response (a pure ASGI middleware)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        docs = scope["path"] in ("/docs", "/redoc", "/docs/oauth2-redirect")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"content-security-policy", (DOCS_CSP if docs else CSP).encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)
