"""Bodies read by the routes themselves: within a byte cap (a declared size over it refused
before reading), an idle deadline between chunks, metered as they pass; JSON after the token."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.requests import Request
from starlette.types import Message

from app.errors import BodyTooLarge, NotJson, UploadStalled, UploadTooLarge
from app.http import bodies


def _request(chunks: list[bytes], headers: dict[str, str], pause_s: float = 0) -> Request:
    pending = list(chunks)

    async def receive() -> Message:
        await asyncio.sleep(pause_s)
        chunk = pending.pop(0) if pending else b""
        return {"type": "http.request", "body": chunk, "more_body": bool(pending)}

    raw = [(name.lower().encode(), value.encode()) for name, value in headers.items()]
    return Request({"type": "http", "method": "POST", "headers": raw}, receive)


def _read(request: Request, max_bytes: int = 100, idle_s: float = 1.0) -> bytes:
    return asyncio.run(bodies.read_body(request, max_bytes, idle_s))


def test_a_body_within_its_cap_is_read_whole_and_metered() -> None:
    metered: list[int] = []

    async def meter(body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        async for chunk in body:
            metered.append(len(chunk))
            yield chunk

    request = _request([b"abc", b"defg"], {})
    assert asyncio.run(bodies.read_body(request, 100, 1.0, meter)) == b"abcdefg"
    assert sum(metered) == 7 and 3 in metered  # every chunk passed through the meter


def test_a_declared_size_over_the_cap_is_refused_before_reading() -> None:
    with pytest.raises(UploadTooLarge, match="over 100 bytes"):
        _read(_request([b"x"], {"Content-Length": "101"}))


def test_a_body_that_grows_past_the_cap_is_refused_as_it_does() -> None:
    with pytest.raises(UploadTooLarge):
        _read(_request([b"x" * 60, b"x" * 60, b"never read"], {"Content-Length": "10"}))


def test_a_body_that_stalls_is_refused() -> None:
    with pytest.raises(UploadStalled):
        _read(_request([b"x", b"y"], {}, pause_s=0.3), idle_s=0.1)


class Options(BaseModel):
    epochs: int = 1


def _model(body: bytes, content_type: str = "application/json") -> Options:
    headers = {"Content-Type": content_type, "Content-Length": str(len(body))}
    return asyncio.run(bodies.read_model(_request([body], headers), Options))


def test_json_is_read_into_the_model_and_an_empty_body_gives_its_defaults() -> None:
    assert _model(b'{"epochs": 3}').epochs == 3
    assert _model(b"", "text/plain").epochs == 1


@pytest.mark.parametrize(
    ("body", "content_type", "refused"),
    [
        (b'{"epochs": 3}', "text/plain", NotJson),
        (b"{", "application/json", RequestValidationError),
        (b'{"epochs": "many"}', "application/json", RequestValidationError),
        (b" " * (bodies.MAX_JSON_BODY_BYTES + 1), "application/json", BodyTooLarge),
    ],
    ids=["not json", "bad json", "invalid", "too large"],
)
def test_a_json_body_that_cannot_be_read_is_refused(
    body: bytes, content_type: str, refused: type[Exception]
) -> None:
    with pytest.raises(refused):
        _model(body, content_type)
