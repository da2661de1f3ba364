"""Request bodies read by the route itself, as they stream: each within its byte cap (a declared
size over it is refused before a byte is read) and an idle deadline between chunks.

JSON bodies are read after the route's dependencies (the admin token) have run, so an
unauthenticated client never gets a byte of its body read: FastAPI reads a declared body
parameter before it solves dependencies, and three 300 MB bodies sent with no token were read
whole (RSS +2.4 GB), each still answered 401.
"""

from __future__ import annotations

import json
from typing import Any, Final, TypeVar

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from app.errors import BodyTooLarge, NotJson, UploadTooLarge
from app.http.pacing import paced
from app.inference.admission import Meter
from app.inference.limits import UploadLimits

MAX_JSON_BODY_BYTES: Final = 64 * 1024

Model = TypeVar("Model", bound=BaseModel)


def declared_within(content_length: str | None, max_bytes: int) -> int | None:
    """The declared body size (None when undeclared); UploadTooLarge if over ``max_bytes``."""
    declared = int(content_length) if content_length and content_length.isdecimal() else None
    if declared is not None and declared > max_bytes:
        raise UploadTooLarge(f"the request body is over {max_bytes:,} bytes")
    return declared


async def read_body(
    request: Request, max_bytes: int, limits: UploadLimits, meter: Meter | None = None
) -> bytes:
    """A whole request body of at most ``max_bytes``, for bodies that are not multipart: one
    that grows past it is refused as soon as it does (UploadTooLarge), never buffered whole;
    one that stalls gets UploadStalled.  ``meter`` sees the chunks first."""
    declared_within(request.headers.get("content-length"), max_bytes)
    body = request.stream()
    chunks: list[bytes] = []
    received = 0
    async for chunk in paced(meter(body) if meter else body, limits):
        received += len(chunk)
        if received > max_bytes:
            raise UploadTooLarge(f"the request body is over {max_bytes:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """A route's ``openapi_extra`` documenting a JSON body of ``model``: optional when every
    field has a default (an empty body is then the defaults), else required."""
    schema = model.model_json_schema()
    required = any(field.is_required() for field in model.model_fields.values())
    content = {"application/json": {"schema": schema}}
    return {"requestBody": {"required": required, "content": content}}


async def read_model(request: Request, model: type[Model]) -> Model:
    """The body as ``model`` (an empty body: its defaults); 413, 415 or FastAPI's 422 shape."""
    data = await _read_capped(request)
    if not data.strip():
        return _validated(model, {})  # its defaults, or 422 naming the fields it requires
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise NotJson(f"send the body as application/json, not {media_type or 'no content type'}")
    try:
        value = json.loads(data, parse_constant=_not_json)
    except RecursionError:
        raise _invalid_json("the body is nested too deeply") from None
    except ValueError as error:
        raise _invalid_json(f"JSON decode error: {str(error)[:200]}") from None
    return _validated(model, value)


def _validated(model: type[Model], value: Any) -> Model:
    try:
        return model.model_validate(value)
    except ValidationError as error:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in error.errors()]
        ) from None


def _not_json(constant: str) -> None:
    """NaN, Infinity and -Infinity: Python's json reads them, but they are not JSON (RFC 8259)."""
    raise ValueError(f"{constant} is not a JSON value")


def _invalid_json(message: str) -> RequestValidationError:
    return RequestValidationError([{"type": "json_invalid", "loc": ("body",), "msg": message}])


async def _read_capped(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdecimal() and int(declared) > MAX_JSON_BODY_BYTES:
        raise BodyTooLarge(f"the JSON body is over {MAX_JSON_BODY_BYTES:,} bytes")
    received = bytearray()
    async for chunk in request.stream():
        received += chunk
        if len(received) > MAX_JSON_BODY_BYTES:
            raise BodyTooLarge(f"the JSON body is over {MAX_JSON_BODY_BYTES:,} bytes")
    return bytes(received)
