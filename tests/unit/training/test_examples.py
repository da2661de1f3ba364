"""Example photos: only credited ones, shrunk and re-encoded, chosen by content hash."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from app.training import examples
from app.training.dataset import scan

LICENSE = """Photos licensed under https://creativecommons.org/licenses/by/2.0/ (CC-BY).

a/big.jpg CC-BY by Ann - https://example.org/1
a/small.png CC-BY by Bob - https://example.org/2
b/one.jpg CC-BY by Cy - https://example.org/3
b/nowhere.jpg CC-BY by Nobody - https://example.org/4
"""


def _photo(path: Path, size: tuple[int, int], orientation: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(len(path.name)).integers(0, 255, (size[1], size[0], 3), "u1")
    image = Image.fromarray(pixels)
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    exif[0x010F] = "SecretCam"  # Make: must not survive the copy
    image.save(path, exif=exif.tobytes()) if path.suffix == ".jpg" else image.save(path)


def _dataset(root: Path, license_text: str | None = LICENSE) -> Path:
    _photo(root / "a" / "big.jpg", (1600, 900), orientation=6)  # shown rotated: 900 x 1600
    _photo(root / "a" / "small.png", (60, 40))
    _photo(root / "a" / "uncredited.jpg", (60, 40))
    _photo(root / "b" / "one.jpg", (60, 40))
    _photo(root / "b" / "two.jpg", (60, 40))
    if license_text is not None:
        (root / "LICENSE.txt").write_text(license_text)
    return root


def _write(root: Path, folder: Path, per_class: int = 2) -> dict:
    data = scan(root)
    folder.mkdir()
    return examples.write(data.samples, data.class_names, root, per_class, folder)


def test_credits_are_read_line_by_line(tmp_path: Path) -> None:
    credits = examples.read_credits(_dataset(tmp_path / "d"))
    assert credits is not None
    assert credits.license_url == "https://creativecommons.org/licenses/by/2.0/"
    assert credits.per_photo["b/one.jpg"] == "CC-BY by Cy - https://example.org/3"
    assert len(credits.per_photo) == 4


def test_only_credited_photos_are_shrunk_re_encoded_and_listed(tmp_path: Path) -> None:
    shown = _write(_dataset(tmp_path / "d"), tmp_path / "v")
    photos = shown["photos"]
    assert sorted(p["source"] for p in photos) == ["a/big.jpg", "a/small.png", "b/one.jpg"]
    assert shown["license"] == "https://creativecommons.org/licenses/by/2.0/"
    for index, photo in enumerate(photos):
        assert photo["file"] == f"examples/{index}.jpg"
        data = (tmp_path / "v" / photo["file"]).read_bytes()
        with Image.open(io.BytesIO(data)) as image:
            assert image.format == "JPEG" and max(image.size) <= examples.MAX_SIDE
            assert b"SecretCam" not in data and not image.getexif()
            if photo["source"] == "a/big.jpg":  # turned upright as the camera meant, then shrunk
                assert image.size == (180, 320)


def test_per_class_bounds_each_class_and_the_choice_is_stable(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "d")
    first = _write(root, tmp_path / "v1", per_class=1)["photos"]
    again = _write(root, tmp_path / "v2", per_class=1)["photos"]
    assert [p["class_name"] for p in first] == ["a", "b"]
    assert first == again


def test_without_a_license_file_or_with_zero_there_are_none(tmp_path: Path) -> None:
    unlicensed = _write(_dataset(tmp_path / "d", None), tmp_path / "v1")
    assert unlicensed["photos"] == [] and "LICENSE.txt" in unlicensed["reason"]
    assert not (tmp_path / "v1" / "examples").exists()
    zero = _write(_dataset(tmp_path / "e"), tmp_path / "v2", per_class=0)
    assert zero == {"photos": [], "reason": "examples=0"}


def test_a_license_without_per_photo_credits_gives_none(tmp_path: Path) -> None:
    shown = _write(_dataset(tmp_path / "d", "All photos: CC-BY, ask the team.\n"), tmp_path / "v")
    assert shown["photos"] == [] and "crediting its photos one by one" in shown["reason"]


def test_a_credited_photo_that_cannot_be_read_is_skipped(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "d")
    (root / "b" / "one.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    shown = _write(root, tmp_path / "v")
    assert sorted(p["source"] for p in shown["photos"]) == ["a/big.jpg", "a/small.png"]
