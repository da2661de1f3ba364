"""The streaming multipart parser on its own: images handed on as each part completes, every
limit enforced as the bytes arrive, every malformed body named."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from app.errors import (
    MalformedUpload,
    MissingImage,
    NotMultipart,
    TooManyFiles,
    UploadStalled,
    UploadTooLarge,
)
from app.http.multipart import receive_images
from app.inference.limits import UploadLimits
from tests.support.multipartbody import BOUNDARY, CONTENT_TYPE, multipart_body, part

LIMITS = UploadLimits(max_file_bytes=1000, max_files=3, idle_timeout_s=0.2)


async def _chunks(body: bytes, size: int = 7) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def _receive(
    body: bytes, content_type: str = CONTENT_TYPE, limits: UploadLimits = LIMITS
) -> list[tuple[str, bytes]]:
    async def scenario() -> list[tuple[str, bytes]]:
        return await receive_images(
            content_type, str(len(body)), _chunks(body), limits, lambda name, data: (name, data)
        )

    return asyncio.run(scenario())


def test_every_image_part_is_handed_on_in_order_and_text_fields_are_read_past() -> None:
    body = multipart_body(
        [("file", "a.jpg", b"A" * 10), ("note", None, b"ignored"), ("files", "b.png", b"B" * 20)]
    )
    assert _receive(body) == [("a.jpg", b"A" * 10), ("b.png", b"B" * 20)]


def test_an_image_is_handed_on_as_soon_as_its_part_ends() -> None:
    second = part("files", "b.jpg", b"B") + f"--{BOUNDARY}--\r\n".encode()
    delimiter = len(f"--{BOUNDARY}\r\n")  # the next part's boundary ends the first one
    seen: list[str] = []

    async def body() -> AsyncIterator[bytes]:
        yield part("files", "a.jpg", b"A" * 10) + second[:delimiter]
        await asyncio.sleep(0.05)
        assert seen == ["a.jpg"]  # before the rest has arrived
        yield second[delimiter:]

    async def scenario() -> None:
        await receive_images(CONTENT_TYPE, None, body(), LIMITS, lambda n, d: seen.append(n))

    asyncio.run(scenario())
    assert seen == ["a.jpg", "b.jpg"]


@pytest.mark.parametrize(
    ("parts", "refused", "message"),
    [
        ([("files", f"{i}.jpg", b"x") for i in range(4)], TooManyFiles, "at most 3 images"),
        ([("file", "big.jpg", b"x" * 1001)], UploadTooLarge, "big.jpg: the file is over"),
        ([("file", None, b"x")], MissingImage, "has no filename"),
        ([("image", "rose.jpg", b"x")], MissingImage, "name image parts 'file' or 'files'"),
        ([("note", None, b"x" * 66_000)], UploadTooLarge, "non-file form fields"),
        ([("note", None, b"text")], MissingImage, "no image in the form"),
    ],
    ids=["too many", "file too large", "no filename", "wrong name", "text too large", "none"],
)
def test_a_form_outside_the_limits_is_refused_with_its_reason(
    parts: list[tuple[str, str | None, bytes]], refused: type[Exception], message: str
) -> None:
    with pytest.raises(refused, match=message):
        _receive(multipart_body(parts))


def test_a_body_over_the_limit_is_refused_as_it_grows_whatever_it_declared() -> None:
    limits = UploadLimits(max_file_bytes=1000, max_files=1)
    seen = 0

    async def endless() -> AsyncIterator[bytes]:  # a whole form, then an endless epilogue
        nonlocal seen
        yield multipart_body([("file", "a.jpg", b"x")])
        while True:
            seen += 4096
            yield b"-" * 4096

    async def scenario() -> None:
        await receive_images(CONTENT_TYPE, "10", endless(), limits, lambda n, d: n)

    with pytest.raises(UploadTooLarge, match="request body is over"):
        asyncio.run(scenario())
    assert seen <= limits.max_body_bytes + 4096


def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    async def never() -> AsyncIterator[bytes]:
        raise AssertionError("the body was read")
        yield b""  # pragma: no cover

    async def scenario() -> None:
        declared = str(LIMITS.max_body_bytes + 1)
        await receive_images(CONTENT_TYPE, declared, never(), LIMITS, lambda n, d: n)

    with pytest.raises(UploadTooLarge):
        asyncio.run(scenario())


@pytest.mark.parametrize(
    ("content_type", "refused", "message"),
    [
        ("application/json", NotMultipart, "not application/json"),
        (None, NotMultipart, "not none"),
        ("multipart/form-data", MalformedUpload, "has no boundary"),
    ],
)
def test_a_body_that_is_not_multipart_is_refused(
    content_type: str | None, refused: type[Exception], message: str
) -> None:
    body = multipart_body([("file", "a.jpg", b"x")])
    with pytest.raises(refused, match=message):
        _receive(body, content_type)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (part("file", "a.jpg", b"x"), "ended before its closing boundary"),
        (f"--{BOUNDARY}\r\nContent-Type: x\r\n\r\nx\r\n--{BOUNDARY}--\r\n".encode(), "no Content"),
        (b"garbage without a boundary", "malformed multipart body|ended before"),
    ],
    ids=["cut short", "no disposition", "garbage"],
)
def test_a_malformed_body_is_named(body: bytes, message: str) -> None:
    with pytest.raises(MalformedUpload, match=message):
        _receive(body)


def test_a_body_that_stalls_is_refused_after_the_idle_timeout() -> None:
    async def stalling() -> AsyncIterator[bytes]:
        yield part("file", "a.jpg", b"x")[:20]
        await asyncio.sleep(5)
        yield b""

    async def scenario() -> None:
        await receive_images(CONTENT_TYPE, None, stalling(), LIMITS, lambda n, d: n)

    with pytest.raises(UploadStalled, match=r"stalled for more than 0\.2s"):
        asyncio.run(scenario())
