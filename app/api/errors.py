"""Every domain error mapped to its HTTP status, in one place.

Bodies are ``{"detail": "...", "request_id": "..."}``; overload and not-ready answers carry
``Retry-After``.  The OpenAPI ``responses`` of each route are built from the same table.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from app import imaging
from app.api import uploads
from app.api.schemas import Error
from app.batching import BatchFailed, Overloaded, ShuttingDown, TimedOut
from app.metrics import Metrics
from app.prediction import ImageRejected
from app.serving import ModelLoadError, NoModel

logger = logging.getLogger(__name__)

RETRY_AFTER_S: Final = "1"

# exception type -> (status, metrics reason, retry-after?)
_STATUS: Final[dict[type[Exception], tuple[int, str, bool]]] = {
    imaging.CorruptImage: (400, "corrupt_image", False),
    imaging.ImageTooLarge: (413, "image_too_large", False),
    imaging.UnsupportedImage: (415, "unsupported_image", False),
    uploads.MalformedUpload: (400, "malformed_upload", False),
    uploads.UploadTooLarge: (413, "upload_too_large", False),
    uploads.TooManyFiles: (413, "too_many_files", False),
    uploads.NotMultipart: (415, "not_multipart", False),
    uploads.MissingImage: (422, "missing_image", False),
    NoModel: (503, "not_ready", True),
    Overloaded: (503, "overloaded", True),
    ShuttingDown: (503, "shutting_down", True),
    TimedOut: (504, "timeout", False),
    BatchFailed: (500, "inference_failed", False),
    ModelLoadError: (409, "model_load_failed", False),
}

DESCRIPTIONS: Final = {
    400: "Not a decodable image (e.g. a text file named .jpg, a truncated JPEG, zero bytes), "
    "or a malformed multipart body",
    413: "A file over the upload limit, an image over the pixel limit (decompression bomb), "
    "or more files than allowed per request",
    415: "A well-formed file of a format that is not accepted (SVG, PDF, HEIC, ...), "
    "or a request that is not multipart/form-data",
    422: "No image part in the form, a part without a filename, or an invalid parameter",
    500: "Inference failed for the batch this request was in",
    503: "No model is loaded yet, or the server is at capacity (see Retry-After)",
    504: "The request waited longer than the request timeout",
}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for a route, from the same descriptions the handlers use."""
    return {status: {"model": Error, "description": DESCRIPTIONS[status]} for status in statuses}


def classify(error: Exception) -> tuple[int, str, bool]:
    cause = error.error if isinstance(error, ImageRejected) else error
    for kind in type(cause).__mro__:
        if kind in _STATUS:
            return _STATUS[kind]
    return 500, "internal", False


def error_response(request: Request, status: int, detail: str, retry: bool = False) -> JSONResponse:
    request_id = getattr(request.state, "request_id", None)
    headers = {"Retry-After": RETRY_AFTER_S} if retry else None
    body = Error(detail=detail, request_id=request_id).model_dump()
    return JSONResponse(body, status_code=status, headers=headers)


def install(app: FastAPI, metrics: Metrics) -> None:
    """Register one handler for every mapped error type."""

    async def handle(request: Request, error: Exception) -> JSONResponse:
        status, reason, retry = classify(error)
        metrics.rejected.labels(reason=reason).inc()
        if status >= 500 and status not in (503, 504):
            logger.error("request failed: %s", error)
        return error_response(request, status, str(error), retry)

    for kind in (*_STATUS, ImageRejected):
        app.add_exception_handler(kind, handle)
