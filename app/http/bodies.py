"""JSON request bodies, read by the route itself: after its dependencies (the admin token) have
run, so an unauthenticated client never gets a byte of its body read, and within a small cap.

FastAPI reads a declared body parameter before it solves dependencies: three 300 MB bodies sent
with no token were read whole (RSS +2.4 GB), each still answered 401.
"""

from __future__ import annotations

import json
from typing import Any, Final, TypeVar

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.requests import Request

MAX_JSON_BODY_BYTES: Final = 64 * 1024

Model = TypeVar("Model", bound=BaseModel)


class BodyTooLarge(ValueError):
    """A JSON body over MAX_JSON_BODY_BYTES (413)."""


class NotJson(ValueError):
    """A body that is not application/json (415)."""


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """A route's ``openapi_extra`` documenting an optional JSON body of ``model``."""
    schema = model.model_json_schema()
    return {"requestBody": {"required": False, "content": {"application/json": {"schema": schema}}}}


async def read_model(request: Request, model: type[Model]) -> Model:
    """The body as ``model`` (an empty body: its defaults); 413, 415 or FastAPI's 422 shape."""
    data = await _read_capped(request)
    if not data.strip():
        return model()
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise NotJson(f"send the body as application/json, not {media_type or 'no content type'}")
    try:
        value = json.loads(data)
    except ValueError as error:
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ("body",), "msg": f"JSON decode error: {error}"}]
        ) from None
    try:
        return model.model_validate(value)
    except ValidationError as error:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in error.errors()]
        ) from None


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
