"""Decoder fuzzing: mutated real JPEG/PNG/GIF/WebP/TIFF bytes into the shared preprocessing.

Every input either becomes a (180, 180, 3) uint8 array or raises one of the typed image errors:
never another exception, never a hang (hypothesis's deadline bounds each input), never more than
a bounded amount of memory: the fuzzing runs in a child process whose address space is capped,
so an allocation beyond the bound fails the run (as a MemoryError, which is not a typed error).
"""

from __future__ import annotations

import io
import os
import re
import resource
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from app import imaging
from tests.conftest import FLOWERS_DEV

EXAMPLES = int(os.environ.get("FLOWERS_FUZZ_EXAMPLES", "400"))  # per format; CI profile
DEADLINE_MS = 3000
MAX_PIXELS = 8_000_000
MEMORY_CAP_MB = 1536
FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "TIFF")
IN_CHILD = os.environ.get("FLOWERS_FUZZ_CHILD") == "1"
if IN_CHILD:
    cap = MEMORY_CAP_MB * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


def _seed_image() -> Image.Image:
    photos = sorted(FLOWERS_DEV.glob("*/*.jpg")) if FLOWERS_DEV.is_dir() else []
    if photos:
        return Image.open(photos[len(photos) // 2]).convert("RGB").resize((96, 72))
    from tests.support.imagefactory import gradient

    return gradient(96, 72)


def _encode(image: Image.Image, image_format: str) -> bytes:
    buffer = io.BytesIO()
    source = image.convert("P") if image_format == "GIF" else image
    source.save(buffer, format=image_format)
    return buffer.getvalue()


SEEDS = {fmt: _encode(_seed_image(), fmt) for fmt in FORMATS}


def _huge_dimensions(data: bytes, image_format: str, width: int, height: int) -> bytes:
    """Rewrite the header's declared size (each format keeps it somewhere else)."""
    out = bytearray(data)
    if image_format == "PNG":
        out[16:24] = struct.pack(">II", width, height)
    elif image_format == "GIF":
        out[6:10] = struct.pack("<HH", width & 0xFFFF, height & 0xFFFF)
    elif image_format == "JPEG":
        marker = out.find(b"\xff\xc0")
        if marker > 0:
            out[marker + 5 : marker + 9] = struct.pack(">HH", height & 0xFFFF, width & 0xFFFF)
    elif image_format == "WEBP":
        vp8 = out.find(b"VP8 ")
        if vp8 > 0:
            out[vp8 + 14 : vp8 + 18] = struct.pack("<HH", width & 0x3FFF, height & 0x3FFF)
    elif image_format == "TIFF":
        for tag, value in ((256, width), (257, height)):  # ImageWidth, ImageLength
            for field_type, packing in ((3, "<H"), (4, "<I")):  # SHORT or LONG
                entry = out.find(struct.pack("<HH", tag, field_type))
                if entry > 0:
                    size = struct.calcsize(packing)
                    out[entry + 8 : entry + 8 + size] = struct.pack(packing, value % 256**size)
    return bytes(out)


def _zero_length_chunk(data: bytes, image_format: str, position: int) -> bytes:
    inserts = {
        "PNG": b"\x00\x00\x00\x00IDAT\x35\xaf\x06\x1e",
        "JPEG": b"\xff\xfe\x00\x02",  # an empty COM segment
        "GIF": b"\x21\xfe\x00",  # an empty comment extension
        "WEBP": b"JUNK\x00\x00\x00\x00",
        "TIFF": b"\x00\x00\x00\x00",
    }
    cut = 8 + position % max(1, len(data) - 8)
    return data[:cut] + inserts[image_format] + data[cut:]


@st.composite
def mutated(draw: st.DrawFn, image_format: str) -> bytes:
    data = SEEDS[image_format]
    kind = draw(st.sampled_from(["flip", "truncate", "huge", "zero_chunk", "splice", "combo"]))
    if kind in ("flip", "combo"):
        buffer = bytearray(data)
        for _ in range(draw(st.integers(1, 24))):
            index = draw(st.integers(0, len(buffer) - 1))
            buffer[index] ^= 1 << draw(st.integers(0, 7))
        data = bytes(buffer)
    if kind in ("truncate", "combo"):
        data = data[: draw(st.integers(0, len(data)))]
    if kind == "huge":
        side = st.sampled_from([0, 1, 65535, 16384, 100_000, 2**31 - 1, 2**32 - 1])
        data = _huge_dimensions(data, image_format, draw(side), draw(side))
    if kind == "zero_chunk":
        data = _zero_length_chunk(data, image_format, draw(st.integers(0, 10_000)))
    if kind == "splice":
        start = draw(st.integers(0, len(data)))
        end = draw(st.integers(start, len(data)))
        data = data[:start] + data[start:end] * draw(st.integers(0, 3)) + data[end:]
    return data


def _check(data: bytes, image_format: str) -> None:
    try:
        array = imaging.preprocess(data, max_pixels=MAX_PIXELS)
    except imaging.ImageError:
        return
    assert array.shape == (180, 180, 3)
    assert array.dtype == np.uint8


in_child = pytest.mark.skipif(
    not IN_CHILD, reason="runs inside test_fuzzing_in_a_memory_capped_process"
)


@in_child
@pytest.mark.parametrize("image_format", FORMATS)
def test_mutated_images_decode_or_raise_a_typed_error(image_format: str) -> None:
    tried = 0

    @settings(
        max_examples=EXAMPLES,
        deadline=DEADLINE_MS,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(data=mutated(image_format))
    def run(data: bytes) -> None:
        nonlocal tried
        tried += 1
        _check(data, image_format)

    run()
    print(f"FUZZED {image_format} {tried}")


def test_fuzzing_in_a_memory_capped_process() -> None:
    if IN_CHILD:
        pytest.skip("this is the child")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            __file__,
            "-q",
            "-s",
            "-p",
            "no:cacheprovider",
            "-k",
            "mutated",
        ],
        env={**os.environ, "FLOWERS_FUZZ_CHILD": "1"},
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=Path(__file__).resolve().parents[2],
    )
    counts = dict(re.findall(r"FUZZED (\w+) (\d+)", result.stdout))
    total = sum(int(n) for n in counts.values())
    print(f"\nmutated images tried: {counts} = {total}, address space capped at {MEMORY_CAP_MB} MB")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert set(counts) == set(FORMATS)


def test_every_seed_decodes() -> None:
    for image_format, data in SEEDS.items():
        assert imaging.preprocess(data).shape == (180, 180, 3), image_format


def test_header_mutations_hit_every_format() -> None:
    for image_format in FORMATS:
        huge = _huge_dimensions(SEEDS[image_format], image_format, 65535, 65535)
        assert huge != SEEDS[image_format]
