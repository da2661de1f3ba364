"""Bodies read by the routes themselves: within a byte cap (a declared size over it refused
before reading), an idle deadline between chunks, metered as they pass; JSON after the token."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.requests import Request
from starlette.types import Message

from app.errors import BodyTooLarge, NotJson, UploadStalled, UploadTooLarge
from app.http import bodies
from app.inference.limits import UploadLimits


def _request(chunks: list[bytes], headers: dict[str, str], pause_s: float = 0) -> Request:
    pending = list(chunks)

    async def receive() -> Message:
        await asyncio.sleep(pause_s)
        chunk = pending.pop(0) if pending else b""
        return {"type": "http.request", "body": chunk, "more_body": bool(pending)}

    raw = [(name.lower().encode(), value.encode()) for name, value in headers.items()]
    return Request({"type": "http", "method": "POST", "headers": raw}, receive)


def _read(request: Request, max_bytes: int = 100, idle_s: float = 1.0, rate: int = 0) -> bytes:
    limits = UploadLimits(1000, 1, idle_timeout_s=idle_s, min_rate_bytes_s=rate)
    return asyncio.run(bodies.read_body(request, max_bytes, limits))


def test_a_body_within_its_cap_is_read_whole_and_metered() -> None:
    metered: list[int] = []

    async def meter(body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        async for chunk in body:
            metered.append(len(chunk))
            yield chunk

    request = _request([b"abc", b"defg"], {})
    assert asyncio.run(bodies.read_body(request, 100, UploadLimits(100, 1), meter)) == b"abcdefg"
    assert sum(metered) == 7 and 3 in metered  # every chunk passed through the meter


def test_a_declared_size_over_the_cap_is_refused_before_reading() -> None:
    with pytest.raises(UploadTooLarge, match="over 100 bytes"):
        _read(_request([b"x"], {"Content-Length": "101"}))


def test_a_body_that_grows_past_the_cap_is_refused_as_it_does() -> None:
    with pytest.raises(UploadTooLarge):
        _read(_request([b"x" * 60, b"x" * 60, b"never read"], {"Content-Length": "10"}))


def test_a_body_that_stalls_is_refused() -> None:
    with pytest.raises(UploadStalled, match="stalled for more than"):
        _read(_request([b"x", b"y"], {}, pause_s=0.3), idle_s=0.1)


def test_a_body_that_trickles_below_the_minimum_rate_is_cut_after_its_first_seconds() -> None:
    """A byte every 0.05 s never pauses long enough to stall: it is cut for its rate, once the
    first idle timeout (the grace) has passed, not before."""
    started = time.monotonic()
    with pytest.raises(UploadStalled, match="slower than 1,000 bytes/s"):
        _read(_request([b"x"] * 100, {}, pause_s=0.05), max_bytes=1000, idle_s=0.3, rate=1000)
    assert 0.3 <= time.monotonic() - started < 1.5


def test_a_body_that_starts_fast_then_trickles_is_cut_in_the_first_slow_window() -> None:
    """An average since the start would let 5,000 fast bytes buy 5 s of trickling."""
    started = time.monotonic()
    with pytest.raises(UploadStalled, match="slower than 1,000 bytes/s"):
        _read(
            _request([b"x" * 5000] + [b"x"] * 100, {}, pause_s=0.05),
            max_bytes=10_000,
            idle_s=0.3,
            rate=1000,
        )
    assert time.monotonic() - started < 1.5


def test_a_body_at_the_minimum_rate_is_read_whole() -> None:
    chunks = [b"x" * 100] * 8  # 100 bytes every 0.05 s: 2,000 bytes/s
    assert (
        len(_read(_request(chunks, {}, pause_s=0.05), max_bytes=1000, idle_s=0.1, rate=1000)) == 800
    )


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
