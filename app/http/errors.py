"""Every domain error mapped to its HTTP status, in one place.

Bodies are ``{"detail": "...", "request_id": "..."}`` (422s keep FastAPI's validation-error
shape, ``{"detail": [{"msg": ...}]}``); overload and not-ready answers carry ``Retry-After``.
The OpenAPI ``responses`` of each route are built from the same table.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from app import imaging
from app.dataset.labelling import DatasetNotConfigured, InvalidClassName
from app.http import bodies, multipart
from app.http.auth import AdminDisabled, Unauthorized
from app.http.schemas import Error, ValidationErrors
from app.inference.admission import UploadBudgetFull
from app.inference.batching import BatchFailed, Overloaded, ShuttingDown, TimedOut
from app.inference.manager import ModelLoadError, NoModel
from app.inference.predictor import ImageRejected
from app.jobs.records import JobNotFound
from app.jobs.runner import JobConflict
from app.observability.metrics import Metrics
from app.store.versions import ArtifactNotFound, StoreError, VersionInUse, VersionNotFound

logger = logging.getLogger(__name__)

RETRY_AFTER_S: Final = "1"
MAX_ECHOED_CHARS: Final = 256  # a 422 shows the offending input only when it is this small

_RETRY: Final = {"Retry-After": RETRY_AFTER_S}
_BEARER: Final = {"WWW-Authenticate": "Bearer"}

# exception type -> (status, metrics reason, extra response headers)
_STATUS: Final[dict[type[Exception], tuple[int, str, dict[str, str]]]] = {
    imaging.CorruptImage: (400, "corrupt_image", {}),
    imaging.ImageTooLarge: (413, "image_too_large", {}),
    imaging.UnsupportedImage: (415, "unsupported_image", {}),
    multipart.MalformedUpload: (400, "malformed_upload", {}),
    multipart.UploadTooLarge: (413, "upload_too_large", {}),
    multipart.UploadStalled: (408, "upload_stalled", {"Connection": "close"}),
    multipart.TooManyFiles: (413, "too_many_files", {}),
    multipart.NotMultipart: (415, "not_multipart", {}),
    multipart.MissingImage: (422, "missing_image", {}),
    bodies.BodyTooLarge: (413, "body_too_large", {}),
    bodies.NotJson: (415, "not_json", {}),
    Unauthorized: (401, "unauthorized", _BEARER),
    AdminDisabled: (403, "admin_disabled", {}),
    VersionNotFound: (404, "not_found", {}),
    ArtifactNotFound: (404, "not_found", {}),
    VersionInUse: (409, "version_in_use", {}),
    StoreError: (409, "store_conflict", {}),
    JobNotFound: (404, "not_found", {}),
    JobConflict: (409, "conflict", {}),
    ModelLoadError: (409, "model_load_failed", {}),
    DatasetNotConfigured: (409, "no_dataset", {}),
    InvalidClassName: (422, "invalid_class_name", {}),
    NoModel: (503, "not_ready", _RETRY),
    UploadBudgetFull: (503, "upload_budget_full", _RETRY),
    Overloaded: (503, "overloaded", _RETRY),
    ShuttingDown: (503, "shutting_down", _RETRY),
    TimedOut: (504, "timeout", {}),
    BatchFailed: (500, "inference_failed", {}),
}

DESCRIPTIONS: Final = {
    401: "Missing or wrong admin token (send Authorization: Bearer <token>)",
    403: "The admin API is disabled: set FLOWERS_ADMIN_TOKEN to enable it",
    404: "No such job, model version or plot",
    408: "The upload stalled: no body bytes for longer than the upload timeout",
    409: "Conflict: a job is already running, the job is not running (or already published), "
    "the version cannot be loaded or activated, the version to delete is active or serving, "
    "or no dataset folder is configured",
    400: "Not a decodable image (e.g. a text file named .jpg, a truncated JPEG, zero bytes), "
    "or a malformed multipart body",
    413: "A file over the upload limit, an image over the pixel limit (decompression bomb), "
    "more files than allowed per request, or a JSON body over 64 KiB",
    422: "The body, a path or a query parameter is not valid (the list says which and why)",
    415: "A well-formed file of a format that is not accepted (SVG, PDF, HEIC, ...), "
    "a request that is not multipart/form-data, or a body that is not JSON where JSON is read",
    500: "Inference failed for the batch this request was in",
    503: "No model is loaded yet, or the server is at capacity (see Retry-After)",
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


def status_of(error: Exception) -> tuple[int, str, dict[str, str]]:
    """The HTTP status, metrics reason and extra headers an exception is answered with."""
    cause = error.error if isinstance(error, ImageRejected) else error
    for kind in type(cause).__mro__:
        if kind in _STATUS:
            return _STATUS[kind]
    return 500, "internal", {}


def record(error: Exception, metrics: Metrics) -> tuple[int, str, dict[str, str]]:
    """:func:`status_of`, with the refusal counted and server errors logged (every protocol)."""
    status, reason, headers = status_of(error)
    metrics.rejected.labels(reason=reason).inc()
    if reason == "internal":
        logger.error("request failed: %s", error, exc_info=error)
    elif status >= 500 and status not in (503, 504):
        logger.error("request failed: %s", error)
    return status, reason, headers


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
    """Register one handler for every mapped error type."""

    async def handle(request: Request, error: Exception) -> JSONResponse:
        status, reason, headers = record(error, metrics)
        return error_response(request, status, str(error), headers, reason)

    for kind in (*_STATUS, ImageRejected):
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
