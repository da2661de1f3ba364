from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from app import imaging
from app.imaging import IMAGE_SIZE, CorruptImage, ImageTooLarge, UnsupportedImage, preprocess
from tests.support import imagefactory as make


def _rgba(alpha: int) -> Image.Image:
    return Image.new("RGBA", (40, 30), (10, 20, 30, alpha))


MODE_CASES = {
    "RGB jpeg": lambda: make.jpeg(),
    "progressive jpeg": lambda: make.jpeg(progressive=True),
    "CMYK jpeg": lambda: make.encode(make.gradient().convert("CMYK"), "JPEG"),
    "CMYK tiff": lambda: make.encode(make.gradient().convert("CMYK"), "TIFF"),
    "L png": lambda: make.encode(make.gradient().convert("L"), "PNG"),
    "1 (bilevel) png": lambda: make.encode(make.gradient().convert("1"), "PNG"),
    "LA png": lambda: make.encode(make.gradient().convert("LA"), "PNG"),
    "P png": lambda: make.encode(make.gradient().convert("P"), "PNG"),
    "P png with transparency": lambda: make.encode(
        make.gradient().convert("P"), "PNG", transparency=0
    ),
    "RGBA png": lambda: make.encode(_rgba(128), "PNG"),
    "RGBA webp": lambda: make.encode(_rgba(200), "WEBP", lossless=True),
    "I;16 png": lambda: make.encode(
        Image.fromarray(np.full((30, 40), 40000, dtype=np.uint16)), "PNG"
    ),
    "RGB webp": lambda: make.encode(make.gradient(), "WEBP"),
    "gif": lambda: make.encode(make.gradient(), "GIF"),
    "bmp": lambda: make.encode(make.gradient(), "BMP"),
    "tiff": lambda: make.encode(make.gradient(), "TIFF"),
    "YCbCr tiff (via jpeg compression)": lambda: make.encode(
        make.gradient(), "TIFF", compression="jpeg"
    ),
}


@pytest.mark.parametrize("case", MODE_CASES)
def test_every_accepted_mode_becomes_rgb_uint8_180(case: str) -> None:
    array = preprocess(MODE_CASES[case]())
    assert array.shape == (180, 180, 3)
    assert array.dtype == np.uint8
    assert array.flags["C_CONTIGUOUS"]


def test_same_bytes_give_identical_arrays() -> None:
    data = make.jpeg(seed=3)
    assert np.array_equal(preprocess(data), preprocess(data))


def test_resize_is_pillow_bilinear_of_the_rgb_image() -> None:
    image = make.gradient(300, 200, seed=1)
    expected = np.asarray(image.resize((180, 180), Image.Resampling.BILINEAR))
    assert np.array_equal(preprocess(make.encode(image, "PNG")), expected)


def test_transparent_pixels_are_composited_onto_white() -> None:
    array = preprocess(make.encode(_rgba(0), "PNG"))
    assert (array == 255).all()


def test_opaque_rgba_keeps_its_colour() -> None:
    array = preprocess(make.encode(_rgba(255), "PNG"))
    assert (array == (10, 20, 30)).all()


def test_half_transparent_pixels_blend_with_white() -> None:
    array = preprocess(make.encode(Image.new("RGBA", (8, 8), (0, 0, 0, 128)), "PNG"))
    assert abs(int(array[0, 0, 0]) - 127) <= 1


def test_palette_transparency_is_composited_onto_white() -> None:
    image = Image.new("P", (20, 20), 0)
    image.putpalette([0, 0, 0] * 256)
    array = preprocess(make.encode(image, "PNG", transparency=0))
    assert (array == 255).all()


def test_sixteen_bit_gray_is_scaled_not_clipped() -> None:
    values = np.zeros((10, 20), dtype=np.uint16)
    values[:, 10:] = 65535
    values[:, :10] = 32896  # 128 * 257
    array = preprocess(make.encode(Image.fromarray(values), "PNG"))
    assert array[90, 0].tolist() == [128, 128, 128]
    assert array[90, 179].tolist() == [255, 255, 255]


def test_animated_gif_uses_the_first_frame() -> None:
    frames = [make.solid((255, 0, 0)), make.solid((0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    array = preprocess(buffer.getvalue())
    assert array[90, 90].tolist() == [255, 0, 0]


@pytest.mark.parametrize(
    ("orientation", "top_colour"),
    [(1, None), (6, (255, 0, 0)), (8, (0, 0, 255))],
)
def test_exif_orientation_is_applied(orientation: int, top_colour: tuple[int, ...] | None) -> None:
    array = preprocess(make.with_exif_orientation(make.half_and_half(), orientation))
    if top_colour is None:  # upright: left half red, right half blue
        assert array[90, 10].argmax() == 0
        assert array[90, 170].argmax() == 2
    else:  # rotated a quarter turn: the halves are now top and bottom
        assert array[10, 90].argmax() == int(np.argmax(top_colour))
        assert array[170, 90].argmax() != int(np.argmax(top_colour))


def test_large_jpeg_is_decoded_at_reduced_scale_consistently() -> None:
    data = make.jpeg(size=(1600, 1200))
    array = preprocess(data)
    assert array.shape == (180, 180, 3)
    assert np.array_equal(array, preprocess(data))


def test_decompression_bomb_is_refused_from_the_header() -> None:
    with pytest.raises(ImageTooLarge, match="pixels"):
        preprocess(make.png_with_header_size(60_000, 60_000))


def test_pixel_limit_is_configurable() -> None:
    data = make.png(size=(200, 100))
    preprocess(data, max_pixels=20_000)
    with pytest.raises(ImageTooLarge, match=r"20,000 pixels"):
        preprocess(data, max_pixels=19_999)


def test_truncated_jpeg_is_corrupt() -> None:
    data = make.jpeg(size=(256, 256))
    with pytest.raises(CorruptImage):
        preprocess(data[: len(data) // 2])


def test_text_file_named_jpg_is_corrupt() -> None:
    with pytest.raises(CorruptImage, match="not a decodable image"):
        preprocess(b"this is a text file, whatever its name says\n")


def test_empty_bytes_are_corrupt() -> None:
    with pytest.raises(CorruptImage, match="empty"):
        preprocess(b"")


def test_truncated_png_header_is_corrupt() -> None:
    with pytest.raises(CorruptImage):
        preprocess(make.png()[:30])


UNSUPPORTED = {
    "svg": b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"/>',
    "pdf": b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n",
    "heic": b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64,
    "avif": b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf" + b"\x00" * 64,
    "eps": b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n",
}


@pytest.mark.parametrize("kind", UNSUPPORTED)
def test_known_unsupported_formats_are_refused_by_name(kind: str) -> None:
    with pytest.raises(UnsupportedImage, match="not accepted"):
        preprocess(UNSUPPORTED[kind])


def test_image_formats_pillow_knows_but_we_do_not_accept_are_unsupported() -> None:
    with pytest.raises(UnsupportedImage, match="PPM"):
        preprocess(make.encode(make.gradient(), "PPM"))


def test_errors_share_one_base_class() -> None:
    for error in (UnsupportedImage, CorruptImage, ImageTooLarge):
        assert issubclass(error, imaging.ImageError)


def test_a_flat_png_of_40_megapixels_in_115_kb_is_refused_as_a_bomb() -> None:
    """It took 2.45 s to decode (0.65 s here) for 115 KB sent: 342 pixels a byte."""
    with pytest.raises(ImageTooLarge, match="342 pixels a byte: refused as a decompression bomb"):
        preprocess(make.flat_png(6300, 6300))


def test_the_same_pixels_padded_below_the_ratio_are_decoded_at_their_cost() -> None:
    padded = make.flat_png(6300, 6300, padding=160_000)
    assert imaging.decode_cost(padded) == 6300 * 6300
    assert preprocess(padded).shape == (IMAGE_SIZE, IMAGE_SIZE, 3)


def test_a_jpeg_costs_what_its_reduced_scale_decode_reads() -> None:
    assert imaging.decode_cost(make.jpeg(size=(4000, 3000))) == 500 * 375  # 1/8 scale
    assert imaging.decode_cost(make.jpeg(size=(640, 480))) == 640 * 480  # no reduction
