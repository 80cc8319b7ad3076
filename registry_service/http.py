"""The HTTP edge: typed errors become status codes and one error body shape; request bodies are
parsed strictly (a member given twice is an error, not "last one wins") and bounded in size."""

from __future__ import annotations

import json
import logging
import types
import typing
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hybrid_store.errors import (
    ChainError,
    ChainUnavailable,
    Conflict,
    InvalidInstrument,
    LandregError,
    MalformedBundle,
    NotFound,
)
from registry_service.auth import Forbidden, Unauthenticated
from registry_service.registry import IdempotencyMismatch

log = logging.getLogger(__name__)

STATUS: list[tuple[type[Exception], int, str]] = [
    (InvalidInstrument, 422, "invalid_instrument"),
    (MalformedBundle, 422, "malformed_bundle"),
    (IdempotencyMismatch, 422, "idempotency_key_reused"),
    (NotFound, 404, "not_found"),
    (Conflict, 409, "conflict"),
    (Unauthenticated, 401, "unauthenticated"),
    (Forbidden, 403, "forbidden"),
    (ChainUnavailable, 503, "chain_unavailable"),
    (ChainError, 503, "chain_error"),
]


def error_response(status: int, code: str, message: str, *, hint: str = "", fields: list | None = None) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if hint:
        body["hint"] = hint
    if fields is not None:
        body["fields"] = fields
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": body}, status_code=status, headers=headers)


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
                fields = None
                if isinstance(exc, InvalidInstrument):
                    fields = [{"field": e.field, "rule": e.rule, "message": e.message} for e in exc.errors]
                if isinstance(exc, MalformedBundle):
                    fields = [{"field": exc.field, "rule": "malformed", "message": str(exc)}]
                return error_response(status, code, str(exc), hint=exc.hint, fields=fields)
        log.error("unmapped error: %r", exc)
        return error_response(500, "internal_error", str(exc))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        fields = []
        for err in exc.errors():
            if err["type"] == "json_invalid":
                detail = (err.get("ctx") or {}).get("error", err["msg"])
                fields.append({"field": "(body)", "rule": "json_invalid", "message": f"invalid JSON: {detail}"})
                continue
            fields.append({"field": _field_path(tuple(err["loc"])), "rule": err["type"], "message": err["msg"]})
        first = fields[0] if fields else {"field": "(request)", "message": "invalid request"}
        message = f"{first['field']}: {first['message']}" + (
            f" (and {len(fields) - 1} more)" if len(fields) > 1 else ""
        )
        html = getattr(request.app.state, "html_error", None)
        if html is not None and request.url.path.startswith("/desk/"):
            return html(request, InvalidInstrument([]) if not fields else _Plain(message), 422)
        return error_response(422, "invalid_request", message, fields=fields)


def install_http_error_handler(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        codes = {404: "not_found", 405: "method_not_allowed", 400: "bad_request", 413: "body_too_large"}
        return error_response(exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail))


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"member {key!r} appears twice")
        out[key] = value
    return out


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


class StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                self._json = json.loads(body, object_pairs_hook=_unique_members, parse_constant=_no_constants)
            except json.JSONDecodeError:
                raise
            except ValueError as exc:  # FastAPI turns a JSONDecodeError into a 422 naming the problem
                raise json.JSONDecodeError(str(exc), body.decode("utf-8", "replace"), 0) from None
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


class BodySizeLimit:
    """Refuse request bodies over ``limit`` bytes with 413, declared or streamed."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send)
            return
        seen = 0
        too_big = False

        async def counting() -> Message:
            nonlocal seen, too_big
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    too_big = True
                    raise _TooLarge
            return message

        try:
            await self.app(scope, counting, send)
        except _TooLarge:
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        response = error_response(413, "body_too_large", f"the request body is larger than {self.limit} bytes")
        await send({"type": "http.response.start", "status": 413, "headers": response.raw_headers})
        await send({"type": "http.response.body", "body": response.body})


class _TooLarge(Exception):
    pass


class _Plain(LandregError):
    """A message for the web desk's error page."""
