"""What a client is refused, and how: one table from exception to (status, reason, retry).

Protocol-neutral.  The HTTP handlers and the V2 REST error body (``app.http.errors``), the gRPC
status codes (``app.v2.grpc_server``), the OpenAPI document and the metrics all read this table.
Statuses are HTTP's numbers, the lingua franca of the three protocols; gRPC maps them to its
own codes at its edge.

The refusals of a request's form (its body, its token) are declared here, since no package owns
them; domain errors are declared beside the code that raises them and mapped here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final

from app import imaging
from app.dataset.flags import FlaggingOff, FlagNotFound, QueueFull, TooManyFlags, UnknownClass
from app.dataset.labelling import DatasetNotConfigured, InvalidClassName, StoredImageNotFound
from app.dataset.photos import PhotoGone, PhotosBusy
from app.inference.admission import UploadBudgetFull
from app.inference.batching import BatchFailed, Overloaded, ShuttingDown, TimedOut
from app.inference.decoding import DecodeBusy, RequestTooCostly
from app.inference.manager import ModelLoadError, NoModel
from app.inference.predictor import ImageRejected
from app.jobs.records import JobNotFound
from app.jobs.runner import JobConflict
from app.observability.metrics import Metrics
from app.store.notes import InvalidNote
from app.store.versions import ArtifactNotFound, StoreError, VersionInUse, VersionNotFound

logger = logging.getLogger(__name__)


class RequestError(ValueError):
    """The request's body is not one the service accepts."""


class MalformedUpload(RequestError):
    """The body cannot be parsed: malformed multipart, or a malformed V2 request (400)."""


class UploadTooLarge(RequestError):
    """An image or the whole body is over its byte limit (413)."""


class TooManyFiles(RequestError):
    """More images than allowed per request (413)."""


class UploadStalled(RequestError):
    """The client stopped sending the body (408)."""


class NotMultipart(RequestError):
    """Images were not sent as multipart/form-data (415)."""


class MissingImage(RequestError):
    """No image part in the form, or a part that is not a file (422)."""


class BodyTooLarge(RequestError):
    """A JSON body over its cap (413)."""


class NotJson(RequestError):
    """A body that is not application/json where JSON is read (415)."""


class Unauthorized(PermissionError):
    """A missing or wrong admin token (401 + WWW-Authenticate: Bearer)."""


class AdminDisabled(PermissionError):
    """No admin token is configured, so the admin API is off (403)."""


@dataclass(frozen=True)
class Refusal:
    """How one kind of error is answered, whatever the protocol."""

    status: int
    reason: str  # the metrics label (flowers_requests_rejected_total{reason=...})
    retry: bool = False  # try again shortly (HTTP: Retry-After)
    close: bool = False  # the connection is closed after the answer
    bearer: bool = False  # the answer names the authentication scheme (WWW-Authenticate)


TABLE: Final[dict[type[Exception], Refusal]] = {
    imaging.CorruptImage: Refusal(400, "corrupt_image"),
    imaging.ImageTooLarge: Refusal(413, "image_too_large"),
    imaging.UnsupportedImage: Refusal(415, "unsupported_image"),
    MalformedUpload: Refusal(400, "malformed_upload"),
    UploadTooLarge: Refusal(413, "upload_too_large"),
    UploadStalled: Refusal(408, "upload_stalled", close=True),
    TooManyFiles: Refusal(413, "too_many_files"),
    NotMultipart: Refusal(415, "not_multipart"),
    MissingImage: Refusal(422, "missing_image"),
    BodyTooLarge: Refusal(413, "body_too_large"),
    NotJson: Refusal(415, "not_json"),
    Unauthorized: Refusal(401, "unauthorized", bearer=True),
    AdminDisabled: Refusal(403, "admin_disabled"),
    VersionNotFound: Refusal(404, "not_found"),
    InvalidNote: Refusal(422, "invalid_note"),
    ArtifactNotFound: Refusal(404, "not_found"),
    VersionInUse: Refusal(409, "version_in_use"),
    StoreError: Refusal(409, "store_conflict"),
    JobNotFound: Refusal(404, "not_found"),
    JobConflict: Refusal(409, "conflict"),
    ModelLoadError: Refusal(409, "model_load_failed"),
    DatasetNotConfigured: Refusal(409, "no_dataset"),
    InvalidClassName: Refusal(422, "invalid_class_name"),
    StoredImageNotFound: Refusal(404, "not_found"),
    PhotoGone: Refusal(404, "not_found"),
    PhotosBusy: Refusal(503, "photos_busy", retry=True),
    FlagNotFound: Refusal(404, "not_found"),
    FlaggingOff: Refusal(409, "flagging_off"),
    UnknownClass: Refusal(422, "unknown_class"),
    QueueFull: Refusal(503, "review_queue_full", retry=True),
    TooManyFlags: Refusal(429, "too_many_flags", retry=True),
    NoModel: Refusal(503, "not_ready", retry=True),
    UploadBudgetFull: Refusal(503, "upload_budget_full", retry=True),
    DecodeBusy: Refusal(503, "decode_busy", retry=True),
    RequestTooCostly: Refusal(413, "too_many_pixels"),
    Overloaded: Refusal(503, "overloaded", retry=True),
    ShuttingDown: Refusal(503, "shutting_down", retry=True),
    TimedOut: Refusal(504, "timeout"),
    BatchFailed: Refusal(500, "inference_failed"),
}
INTERNAL: Final = Refusal(500, "internal")
# How much of a client's input an error message quotes, and how long a message can be.
SHOWN_CHARS: Final = 64
MAX_MESSAGE_CHARS: Final = 1000
# Every type a handler must catch: the table's, and an image refused by name (it carries one).
HANDLED: Final = (*TABLE, ImageRejected)


def refusal_of(error: Exception) -> Refusal:
    """The table's entry for an error (its nearest mapped base class), else INTERNAL."""
    cause = error.error if isinstance(error, ImageRejected) else error
    for kind in type(cause).__mro__:
        if kind in TABLE:
            return TABLE[kind]
    return INTERNAL


def refuse(error: Exception, metrics: Metrics) -> Refusal:
    """:func:`refusal_of`, with the refusal counted and server errors logged (every protocol)."""
    refusal = refusal_of(error)
    metrics.refused(refusal.reason)
    if refusal is INTERNAL:
        logger.error("request failed: %s", error, exc_info=error)
    elif refusal.status >= 500 and refusal.status not in (503, 504):
        logger.error("request failed: %s", error)
    return refusal


def message(error: Exception, refusal: Refusal) -> str:
    """What the client reads: the error's own words (cut to MAX_MESSAGE_CHARS), never an internal
    error's."""
    if refusal is INTERNAL:
        return "internal server error"
    text = str(error)
    return text if len(text) <= MAX_MESSAGE_CHARS else text[:MAX_MESSAGE_CHARS] + "..."


def shown(value: object, limit: int = SHOWN_CHARS) -> str:
    """A client's value as an error message quotes it: its repr, cut to ``limit`` characters (a
    100 KB model name or 10,000 input names are not sent back)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"
