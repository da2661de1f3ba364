"""Small generated images for tests: every format and mode the service must accept."""

from __future__ import annotations

import io
import os
import struct
import zlib
from typing import Any

import numpy as np
from PIL import Image


def encode(image: Image.Image, format: str, **params: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **params)
    return buffer.getvalue()


def gradient(width: int = 64, height: int = 48, seed: int = 0) -> Image.Image:
    """A smooth colour image; different seeds give visibly different images."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=3)
    y, x = np.mgrid[0:height, 0:width]
    red = (x * 255 // max(width - 1, 1) + base[0]) % 256
    green = (y * 255 // max(height - 1, 1) + base[1]) % 256
    blue = ((x + y) * 2 + base[2]) % 256
    return Image.fromarray(np.stack([red, green, blue], axis=-1).astype(np.uint8))


def solid(color: tuple[int, int, int], size: tuple[int, int] = (32, 32)) -> Image.Image:
    return Image.new("RGB", size, color)


def jpeg(seed: int = 0, size: tuple[int, int] = (64, 48), **params: Any) -> bytes:
    return encode(gradient(*size, seed=seed), "JPEG", quality=90, **params)


def png(seed: int = 0, size: tuple[int, int] = (64, 48)) -> bytes:
    return encode(gradient(*size, seed=seed), "PNG")


def png_with_header_size(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares width x height (valid CRC) but holds one tiny row of data."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = zlib.compress(b"\x00" + b"\x00" * 3)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )


def with_exif_orientation(image: Image.Image, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(image, "JPEG", quality=95, exif=exif.tobytes())


def half_and_half(size: tuple[int, int] = (80, 40)) -> Image.Image:
    """Left half red, right half blue: shows which way an image was rotated."""
    image = Image.new("RGB", size, (255, 0, 0))
    image.paste((0, 0, 255), (size[0] // 2, 0, size[0], size[1]))
    return image


def flat_png(width: int, height: int, padding: int = 0) -> bytes:
    """A one-colour 8-bit RGB PNG, written chunk by chunk (fast at tens of megapixels):
    a decompression bomb; ``padding`` bytes of text in a tEXt chunk lower its compression
    ratio without changing its pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compressobj(9)
    compressed = b"".join(rows.compress(b"\0" * (3 * width + 1)) for _ in range(height))
    compressed += rows.flush()
    text = os.urandom(padding // 2 + 1).hex()[:padding].encode()
    chunks = [chunk(b"IHDR", header), chunk(b"tEXt", b"padding\0" + text) if padding else b""]
    chunks += [chunk(b"IDAT", compressed), chunk(b"IEND", b"")]
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunks)
