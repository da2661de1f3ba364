"""Encoded image bytes -> the model's input: the ONE preprocessing path for training and serving.

Training (``app.training.dataset``) and serving (``app.inference.predictor``) both call
:func:`preprocess`, so a photo gives byte-identical model inputs in both places.  The pipeline,
in order:

1. identify the format from the bytes (Pillow, restricted to the accepted formats below, so
   risky decoders such as EPS/Ghostscript are never reached);
2. refuse decompression bombs from the header, before any pixel is decoded;
3. decode the first frame (JPEGs larger than twice the target are decoded at a reduced DCT scale);
4. apply the EXIF orientation;
5. convert any mode to RGB; transparency is composited onto a white background, 16-bit
   grayscale is scaled (not clipped) to 8 bits;
6. resize to 180x180 with Pillow's antialiased BILINEAR filter, ignoring the aspect ratio (as the
   original tutorial's ``image_dataset_from_directory`` did);
7. return a C-contiguous ``uint8`` array of shape (180, 180, 3) holding RGB values 0..255.

Bump :data:`PREPROCESSING_VERSION` whenever any step changes: it keys the feature cache and is
recorded in each model version's metadata.
"""

from __future__ import annotations

import io
import struct
from typing import Final

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_SIZE: Final = 180
PREPROCESSING_VERSION: Final = "pil-bilinear-180-v1"
DEFAULT_MAX_PIXELS: Final = 40_000_000
# Pixels per byte of file beyond which a PNG, WebP, GIF, BMP or TIFF is a decompression bomb: a
# 2 KB WebP of 40 million pixels (19,800 per byte) took 2.2 s to decode, a 128 KB one-colour PNG
# of as many (303 per byte) 2.45 s. Photos are far below (JPEGs, decoded at a reduced scale, are
# not limited).
MAX_PIXELS_PER_BYTE: Final = 256
_DRAFT_SCALES: Final = (8, 4, 2, 1)
BACKGROUND: Final = (255, 255, 255)
ACCEPTED_FORMATS: Final = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
# Pillow reports multi-picture JPEGs (common from phone cameras) as MPO.
_OPENED_FORMATS: Final = frozenset({*ACCEPTED_FORMATS, "MPO"})

# What Pillow's decoders raise on malformed input (found by tests/unit/test_imaging_fuzz.py).
# UserWarning is there because Pillow warns about corrupt metadata, and an application that
# turns warnings into errors must still get a typed CorruptImage.
_DECODER_ERRORS: Final = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    KeyError,
    IndexError,
    TypeError,
    ZeroDivisionError,
    struct.error,
    UserWarning,
)

# Formats that are real images we choose not to decode: 415, not 400.
_UNSUPPORTED_SIGNATURES: Final = (
    (b"%PDF", "PDF"),
    (b"%!PS", "PostScript/EPS"),
    (b"8BPS", "PSD"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
    (b"qoif", "QOI"),
)
_ISOBMFF_BRANDS: Final = {
    b"heic": "HEIC",
    b"heix": "HEIC",
    b"hevc": "HEIC",
    b"mif1": "HEIF",
    b"msf1": "HEIF",
    b"avif": "AVIF",
    b"avis": "AVIF",
}


class ImageError(ValueError):
    """Base class: the bytes cannot become a model input."""


class UnsupportedImage(ImageError):
    """A well-formed file of a format the service does not accept (SVG, PDF, HEIC, ...)."""


class CorruptImage(ImageError):
    """Bytes that do not decode as an image of an accepted format."""


class ImageTooLarge(ImageError):
    """The header declares more pixels than allowed (a decompression bomb, or just too big)."""


def preprocess(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Turn encoded image bytes into a (180, 180, 3) uint8 RGB array, or raise an ImageError."""
    image = _open(data, max_pixels)
    try:
        return _to_model_input(image)
    finally:
        image.close()


def decode_cost(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> int:
    """What decoding the bytes will cost, in pixels, read from the header alone (a JPEG is decoded
    at the reduced scale :func:`preprocess` uses); the ImageError :func:`preprocess` would raise
    for a bad header, too many pixels or a bomb's compression ratio."""
    with _open(data, max_pixels) as image:
        width, height = image.size
        if image.format not in ("JPEG", "MPO"):
            return width * height
        scale = next(
            s for s in _DRAFT_SCALES if min(width, height) // s >= 2 * IMAGE_SIZE or s == 1
        )
        return (width // scale) * (height // scale)


def image_format(data: bytes) -> str:
    """The accepted format of bytes that :func:`preprocess` accepts (JPEG, PNG, ...)."""
    with _open(data, max_pixels=2**62) as image:
        return str(image.format)


def _open(data: bytes, max_pixels: int) -> Image.Image:
    if not data:
        raise CorruptImage("the file is empty")
    try:
        image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except UnidentifiedImageError:
        raise _unidentified(data) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageTooLarge(
            f"the image is too large to decode ({error}); the limit is {max_pixels:,} pixels"
        ) from None
    except _DECODER_ERRORS as error:
        raise CorruptImage(f"the image header is corrupt: {error}") from None
    if image.format not in _OPENED_FORMATS:
        image.close()
        raise UnsupportedImage(f"{image.format} images are not accepted")
    _check_pixel_count(image, max_pixels)
    _check_compression(image, len(data))
    return image


def _check_pixel_count(image: Image.Image, max_pixels: int) -> None:
    width, height = image.size
    if width <= 0 or height <= 0:
        image.close()
        raise CorruptImage(f"the image header declares an empty size {width}x{height}")
    if width * height > max_pixels:
        image.close()
        raise ImageTooLarge(
            f"the image is {width}x{height} = {width * height:,} pixels; "
            f"the limit is {max_pixels:,} pixels"
        )


def _check_compression(image: Image.Image, size: int) -> None:
    width, height = image.size
    if image.format in ("JPEG", "MPO") or width * height <= MAX_PIXELS_PER_BYTE * size:
        return
    image.close()
    raise ImageTooLarge(
        f"the image is {width}x{height} = {width * height:,} pixels in {size:,} bytes, "
        f"{width * height // size:,} pixels a byte: refused as a decompression bomb (at most "
        f"{MAX_PIXELS_PER_BYTE} a byte, except for JPEG)"
    )


def _unidentified(data: bytes) -> ImageError:
    head = data[:1024]
    for signature, name in _UNSUPPORTED_SIGNATURES:
        if head.startswith(signature):
            return UnsupportedImage(f"{name} files are not accepted; send {_accepted_list()}")
    if head[4:8] == b"ftyp" and head[8:12] in _ISOBMFF_BRANDS:
        name = _ISOBMFF_BRANDS[head[8:12]]
        return UnsupportedImage(f"{name} images are not accepted; send {_accepted_list()}")
    if b"<svg" in head.lower():
        return UnsupportedImage(f"SVG images are not accepted; send {_accepted_list()}")
    other = _identify_other_format(data)
    if other is not None:
        return UnsupportedImage(f"{other} images are not accepted; send {_accepted_list()}")
    return CorruptImage(f"the bytes are not a decodable image ({_accepted_list()})")


def _identify_other_format(data: bytes) -> str | None:
    """The name of another format Pillow recognises from the header alone (never decoded)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.format
    except Exception:  # any failure to parse a header simply means "not an image we know"
        return None


def _accepted_list() -> str:
    return ", ".join(ACCEPTED_FORMATS)


def _to_model_input(image: Image.Image) -> np.ndarray:
    if image.format in ("JPEG", "MPO"):
        # Decode at a reduced DCT scale when the photo is far larger than the target: several
        # times faster for camera photos, and deterministic, so training sees the same pixels.
        image.draft(None, (2 * IMAGE_SIZE, 2 * IMAGE_SIZE))
    try:
        image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageTooLarge(f"the image is too large to decode: {error}") from None
    except _DECODER_ERRORS as error:
        raise CorruptImage(f"the image data is corrupt or truncated: {error}") from None
    oriented = _apply_exif_orientation(image)
    rgb = _to_rgb(oriented)
    resized = rgb.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR)
    array = np.asarray(resized, dtype=np.uint8)
    if array.shape != (IMAGE_SIZE, IMAGE_SIZE, 3):
        raise CorruptImage(f"the image decoded to an unexpected shape {array.shape}")
    return np.ascontiguousarray(array)


def _apply_exif_orientation(image: Image.Image) -> Image.Image:
    try:
        oriented = ImageOps.exif_transpose(image)
    except _DECODER_ERRORS:
        # Unreadable EXIF is treated as "no orientation": the pixels themselves are fine.
        return image
    return oriented if oriented is not None else image


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode == "RGB" and "transparency" not in image.info:
        return image
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        return _high_depth_gray_to_rgb(image)
    if _has_transparency(image):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _has_transparency(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in image.info


def _high_depth_gray_to_rgb(image: Image.Image) -> Image.Image:
    """16-bit (and 32-bit) grayscale: scale 0..65535 to 0..255 instead of Pillow's clipping."""
    values = np.asarray(image, dtype=np.float64)
    if image.mode == "F" and values.size and float(np.nanmax(values)) <= 1.0:
        values = values * 255.0
    elif image.mode != "F":
        values = values / 257.0
    gray = np.clip(np.nan_to_num(np.rint(values)), 0, 255).astype(np.uint8)
    return Image.fromarray(gray).convert("RGB")
