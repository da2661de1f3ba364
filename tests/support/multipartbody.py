"""multipart/form-data bodies written byte by byte, for tests of the streaming parser."""

from __future__ import annotations

BOUNDARY = "test-boundary-7MA4YWxk"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def part(name: str, filename: str | None, data: bytes, boundary: str = BOUNDARY) -> bytes:
    """One part: a file when ``filename`` is given, else a text field."""
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    head = f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
    if filename:
        head += "Content-Type: application/octet-stream\r\n"
    return head.encode() + b"\r\n" + data + b"\r\n"


def multipart_body(parts: list[tuple[str, str | None, bytes]], boundary: str = BOUNDARY) -> bytes:
    """The parts (name, filename or None, data) and the closing boundary."""
    written = b"".join(part(name, filename, data, boundary) for name, filename, data in parts)
    return written + f"--{boundary}--\r\n".encode()
