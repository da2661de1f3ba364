"""Stream a multipart/form-data upload, enforcing every limit as the bytes arrive.

Nothing is buffered beyond one file part (at most ``max_file_bytes``): an oversized part, too
many parts, an oversized body or malformed multipart is refused as soon as it shows, without
reading the rest.  Each completed image part is handed to ``on_image`` right away, so decoding
starts while later parts are still uploading.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from python_multipart.exceptions import FormParserError, MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from app.errors import (
    SHOWN_CHARS,
    MalformedUpload,
    MissingImage,
    NotMultipart,
    TooManyFiles,
    UploadTooLarge,
    shown,
)
from app.http import bodies
from app.http.pacing import paced
from app.inference.admission import Meter
from app.inference.limits import UploadLimits, size_text

T = TypeVar("T")

IMAGE_FIELDS = frozenset({"file", "files"})
MAX_TEXT_FIELD_BYTES = 64 * 1024
MAX_PART_HEADER_BYTES = 4096
MAX_PART_HEADERS = 8


@dataclass
class _Part:
    name: str = ""
    filename: str | None = None
    chunks: list[bytes] = field(default_factory=list)
    size: int = 0


class _FormCollector(Generic[T]):
    """Callbacks for python-multipart's streaming parser."""

    def __init__(self, limits: UploadLimits, on_image: Callable[[str, bytes], T]) -> None:
        self.limits = limits
        self.on_image = on_image
        self.results: list[T] = []
        self.part = _Part()
        self.header_field = b""
        self.header_value = b""
        self.headers: dict[bytes, bytes] = {}
        self.text_bytes = 0
        self.ended = False

    def callbacks(self) -> dict[str, Callable[..., None]]:
        return {
            "on_part_begin": self.part_begin,
            "on_header_field": self.header_field_data,
            "on_header_value": self.header_value_data,
            "on_header_end": self.header_end,
            "on_headers_finished": self.headers_finished,
            "on_part_data": self.part_data,
            "on_part_end": self.part_end,
            "on_end": self.end,
        }

    def part_begin(self) -> None:
        self.part = _Part()
        self.headers = {}

    def header_field_data(self, data: bytes, start: int, end: int) -> None:
        self.header_field += data[start:end]

    def header_value_data(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def header_end(self) -> None:
        self.headers[self.header_field.strip().lower()] = self.header_value.strip()
        self.header_field = self.header_value = b""

    def headers_finished(self) -> None:
        disposition, options = parse_options_header(self.headers.get(b"content-disposition"))
        if disposition != b"form-data" or b"name" not in options:
            raise MalformedUpload("a multipart part has no Content-Disposition: form-data; name=")
        self.part.name = options[b"name"].decode("utf-8", errors="replace")
        filename = options.get(b"filename")
        self.part.filename = filename.decode("utf-8", errors="replace") if filename else None
        if self.is_image_part() and len(self.results) >= self.limits.max_files:
            raise TooManyFiles(f"at most {self.limits.max_files} images per request")
        if self.is_image_part() and not self.part.filename:
            raise MissingImage(
                f"the part {shown(self.part.name)} has no filename: send images as file uploads "
                f"(e.g. curl -F '{self.part.name}=@rose.jpg')"
            )
        if self.part.filename and not self.is_image_part():
            # A photo under another name (curl -F image=@rose.jpg) would otherwise be read past
            # as a text field and refused as an oversized form (413), a misleading answer.
            raise MissingImage(
                f"the file part {shown(self.part.name)} is not one the API reads: name image parts "
                f"'file' or 'files' (e.g. curl -F 'file=@{self.part.filename[:64]}')"
            )

    def is_image_part(self) -> bool:
        return self.part.name in IMAGE_FIELDS

    def part_data(self, data: bytes, start: int, end: int) -> None:
        self.part.size += end - start
        if self.is_image_part():
            if self.part.size > self.limits.max_file_bytes:
                raise UploadTooLarge(
                    f"{(self.part.filename or '')[:SHOWN_CHARS]}: the file is over the "
                    f"{size_text(self.limits.max_file_bytes)} limit"
                )
            self.part.chunks.append(data[start:end])
            return
        self.text_bytes += end - start  # other fields are read past, within a small budget
        if self.text_bytes > MAX_TEXT_FIELD_BYTES:
            raise UploadTooLarge(f"non-file form fields are over {MAX_TEXT_FIELD_BYTES:,} bytes")

    def end(self) -> None:
        self.ended = True

    def part_end(self) -> None:
        if self.is_image_part():
            data = b"".join(self.part.chunks)
            self.part.chunks.clear()
            self.results.append(self.on_image(self.part.filename or "", data))


# Marks an image upload body in the OpenAPI document until the app fills in its own file limit
# (fill_file_limits), so the limit follows the routes that read images, whatever their paths.
_UPLOAD_MARKER = "x-flowers-image-upload"


def multipart_images_body() -> dict[str, Any]:
    """A route's ``openapi_extra`` for an image upload: 1 or more parts named file/files.

    An empty ``files`` array encodes as no part at all, so the count lives in the ``anyOf``.
    """
    files = {"type": "array", "items": {"type": "string", "format": "binary"}}
    alone = {"required": ["files"], "properties": {"file": False, "files": {"minItems": 1}}}
    schema = {
        "type": "object",
        "properties": {"file": {"type": "string", "format": "binary"}, "files": files},
        "anyOf": [{"required": ["file"]}, alone],
    }
    encoding = {name: {"contentType": "image/*"} for name in IMAGE_FIELDS}
    content = {"multipart/form-data": {"schema": schema, "encoding": encoding}}
    return {"requestBody": {"required": True, "content": content, _UPLOAD_MARKER: True}}


def multipart_one_image_body() -> dict[str, Any]:
    """A route's ``openapi_extra`` for an upload of exactly one image, the part named ``file``."""
    schema = {
        "type": "object",
        "required": ["file"],
        "properties": {"file": {"type": "string", "format": "binary"}},
    }
    encoding = {"file": {"contentType": "image/*"}}
    content = {"multipart/form-data": {"schema": schema, "encoding": encoding}}
    return {"requestBody": {"required": True, "content": content}}


def fill_file_limits(openapi: dict[str, Any], max_files: int) -> None:
    """Write an app's file limit into every image upload body of its OpenAPI document."""
    for path_item in openapi.get("paths", {}).values():
        for operation in path_item.values():
            body = operation.get("requestBody", {}) if isinstance(operation, dict) else {}
            if body.pop(_UPLOAD_MARKER, False):
                with_file, alone = body["content"]["multipart/form-data"]["schema"]["anyOf"]
                alone["properties"]["files"]["maxItems"] = max_files
                with_file["properties"] = {"files": {"maxItems": max_files - 1}}


def boundary_of(content_type: str | None) -> bytes:
    """The multipart boundary, or NotMultipart/MalformedUpload."""
    media_type, options = parse_options_header(content_type)
    if media_type != b"multipart/form-data":
        shown = media_type.decode("latin-1") or "none"
        raise NotMultipart(
            f"send images as multipart/form-data (file parts named 'file' or 'files'), not {shown}"
        )
    boundary = options.get(b"boundary")
    if not boundary:
        raise MalformedUpload("the multipart/form-data content type has no boundary")
    return boundary


def declared_size(request: Request, limits: UploadLimits) -> int | None:
    """The body size a request declares (None: undeclared), or UploadTooLarge (413) before a byte
    of it is read when that is over the multipart body limit."""
    return bodies.declared_within(request.headers.get("content-length"), limits.max_body_bytes)


async def read_images(
    request: Request,
    limits: UploadLimits,
    on_image: Callable[[str, bytes], T],
    meter: Meter | None = None,
) -> list[T]:
    """:func:`receive_images` on a request's body; ``meter`` sees the body's chunks first (the
    memory budget's count)."""
    body = request.stream()
    return await receive_images(
        request.headers.get("content-type"),
        request.headers.get("content-length"),
        meter(body) if meter is not None else body,
        limits,
        on_image,
    )


async def receive_images(
    content_type: str | None,
    content_length: str | None,
    body: AsyncIterator[bytes],
    limits: UploadLimits,
    on_image: Callable[[str, bytes], T],
) -> list[T]:
    """Parse the body; return ``on_image(filename, bytes)`` for each image part, in order."""
    boundary = boundary_of(content_type)
    bodies.declared_within(content_length, limits.max_body_bytes)
    collector = _FormCollector(limits, on_image)
    received = 0
    try:
        parser = MultipartParser(  # refuses e.g. a boundary over 256 characters
            boundary,
            collector.callbacks(),  # type: ignore[arg-type]
            max_header_count=MAX_PART_HEADERS,
            max_header_size=MAX_PART_HEADER_BYTES,
        )
        async for chunk in paced(body, limits):
            received += len(chunk)
            if received > limits.max_body_bytes:
                raise UploadTooLarge(f"the request body is over {limits.max_body_bytes:,} bytes")
            parser.write(chunk)
        parser.finalize()
    except (MultipartParseError, FormParserError) as error:
        raise MalformedUpload(f"malformed multipart body: {error}") from None
    if not collector.ended:
        raise MalformedUpload("the multipart body ended before its closing boundary")
    if not collector.results:
        raise MissingImage("no image in the form: add file parts named 'file' or 'files'")
    return collector.results
