"""Errors answered over HTTP: every refusal of the table in :mod:`app.errors` as a JSON body with
its status and headers, and each route's OpenAPI ``responses`` from the same table.

Bodies are ``{"detail": "...", "request_id": "..."}`` (422s keep FastAPI's validation-error
shape, ``{"detail": [{"msg": ...}]}``).  On the Open Inference Protocol's routes (those of
:class:`V2Route`) they are the protocol's ``{"error": "..."}``, the key clients such as
tritonclient read, with the same statuses.  Overload and not-ready answers carry ``Retry-After``.
"""

from __future__ import annotations

import json
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import Scope

from app import errors
from app.errors import Refusal
from app.http.schemas import Error, ValidationErrors
from app.observability.metrics import Metrics

RETRY_AFTER_S: Final = "1"
MAX_ECHOED_CHARS: Final = 256  # a 422 shows the offending input only when it is this small


class V2Route(APIRoute):
    """A route of the Open Inference Protocol: its refusals are answered as ``{"error": ...}``."""


def speaks_v2(scope: Scope) -> bool:
    return isinstance(scope.get("route"), V2Route)


DESCRIPTIONS: Final = {
    401: "Missing or wrong admin token (send Authorization: Bearer <token>)",
    403: "The admin API is disabled: set FLOWERS_ADMIN_TOKEN to enable it",
    404: "No such job, model version or plot",
    408: "The upload stalled: no body bytes for longer than the upload timeout",
    409: "Conflict: a job is already running, the job is not running (or already published), "
    "the version cannot be loaded or activated, the version to delete is active or serving, "
    "no dataset folder is configured, or flagging is off",
    400: "Not a decodable image (e.g. a text file named .jpg, a truncated JPEG, zero bytes), "
    "or a malformed multipart body",
    413: "A file over the upload limit, an image over the pixel limit (decompression bomb), "
    "more files than allowed per request, or a JSON body over 64 KiB",
    422: "The body, a path or a query parameter is not valid (the list says which and why)",
    429: "Too many requests from this client (flags: FLOWERS_FLAGS_PER_MINUTE); see Retry-After",
    415: "A well-formed file of a format that is not accepted (SVG, PDF, HEIC, ...), "
    "a request that is not multipart/form-data, or a body that is not JSON where JSON is read",
    500: "Inference failed for the batch this request was in",
    503: "No model is loaded yet, the server is at capacity, or the review queue is full "
    "(see Retry-After)",
    504: "The request waited longer than the request timeout",
}


def responses(
    *statuses: int, descriptions: dict[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for a route, from the same descriptions the handlers use."""
    described = {status: DESCRIPTIONS[status] for status in statuses} | (descriptions or {})
    return {
        status: {"model": ValidationErrors if status == 422 else Error, "description": text}
        for status, text in described.items()
    }


def headers_of(refusal: Refusal) -> dict[str, str]:
    headers = {"Retry-After": RETRY_AFTER_S} if refusal.retry else {}
    if refusal.close:
        headers["Connection"] = "close"
    if refusal.bearer:
        headers["WWW-Authenticate"] = "Bearer"
    return headers


def refusal_response(request: Request, error: Exception, metrics: Metrics) -> JSONResponse:
    """The answer to any error raised while serving a request: counted, logged if ours, in
    the body of the route's protocol."""
    refusal = errors.refuse(error, metrics)
    headers = headers_of(refusal) or None
    if speaks_v2(request.scope):
        return JSONResponse({"error": errors.message(error, refusal)}, refusal.status, headers)
    return error_response(
        request, refusal.status, errors.message(error, refusal), headers, refusal.reason
    )


def error_response(
    request: Request,
    status: int,
    detail: str,
    headers: dict[str, str] | None = None,
    reason: str = "error",
) -> JSONResponse:
    request_id = getattr(request.state, "request_id", None)
    if status == 422:  # the shape of FastAPI's own validation errors: one schema for every 422
        body = {
            "detail": [{"type": reason, "loc": ["body"], "msg": detail, "input": None}],
            "request_id": request_id,
        }
    else:
        body = Error(detail=detail, request_id=request_id).model_dump()
    return JSONResponse(body, status_code=status, headers=headers or None)


def install(app: FastAPI, metrics: Metrics) -> None:
    """Register one handler for every error type of the table (the rest: the middleware's)."""

    async def handle(request: Request, error: Exception) -> JSONResponse:
        return refusal_response(request, error, metrics)

    for kind in errors.HANDLED:
        app.add_exception_handler(kind, handle)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)


async def _http_error(request: Request, error: Exception) -> Response:
    """Starlette's own HTTP errors (404, 405, ...) in our body shape, with a complete ``Allow``.

    Starlette answers 405 from the first route whose path matches, so ``Allow`` would list only
    that route's methods (GET for /admin/jobs/{id}, missing DELETE).
    """
    assert isinstance(error, StarletteHTTPException)
    headers = dict(error.headers or {})
    if error.status_code == 405:
        headers["Allow"] = ", ".join(_allowed_methods(request))
    return error_response(request, error.status_code, str(error.detail), headers)


async def _validation_error(request: Request, error: Exception) -> Response:
    """FastAPI's 422 (query, path and JSON body checks) with the request id, never echoing a
    large input back."""
    assert isinstance(error, RequestValidationError)
    details = [_shown(entry) for entry in jsonable_encoder(error.errors())]
    body = {"detail": details, "request_id": getattr(request.state, "request_id", None)}
    return JSONResponse(body, status_code=422)


def _shown(entry: dict[str, Any]) -> dict[str, Any]:
    for key in ("input", "ctx"):
        size = len(json.dumps(entry.get(key), default=str))
        if size > MAX_ECHOED_CHARS:
            entry[key] = f"<{size:,} characters omitted>"
    return entry


def _allowed_methods(request: Request) -> list[str]:
    candidates = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
    return [
        method
        for method in candidates
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL
            for route in request.app.routes
        )
    ]
