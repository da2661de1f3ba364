"""Labelled photos written into the dataset folder: validated by the serving decoder, stored by
content digest, duplicates found anywhere in the dataset, class names kept safe and distinct."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from app import imaging
from app.dataset.labelling import DatasetWriter, InvalidClassName
from tests.support import imagefactory as make


def _writer(tmp_path: Path) -> DatasetWriter:
    return DatasetWriter(tmp_path / "data", imaging.DEFAULT_MAX_PIXELS)


def test_a_photo_is_stored_under_its_class_by_digest_and_format(tmp_path: Path) -> None:
    writer = _writer(tmp_path)
    photo = make.png(seed=1)
    added = writer.add("roses", photo)
    name = f"{hashlib.sha256(photo).hexdigest()}.png"
    assert added.stored_as == f"roses/{name}" and added.duplicate_of is None
    assert (writer.root / "roses" / name).read_bytes() == photo


def test_the_same_bytes_anywhere_in_the_dataset_are_a_duplicate(tmp_path: Path) -> None:
    writer = _writer(tmp_path)
    (writer.root / "tulips").mkdir(parents=True)
    photo = make.jpeg(seed=2)
    (writer.root / "tulips" / "mine.jpg").write_bytes(photo)  # put there by hand
    added = writer.add("roses", photo)
    assert added.stored_as is None and added.duplicate_of == "tulips/mine.jpg"
    assert not (writer.root / "roses").exists()


def test_a_file_that_is_not_an_image_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    writer = _writer(tmp_path)
    with pytest.raises(imaging.CorruptImage):
        writer.add("roses", b"just text")
    assert not writer.root.exists() or not any(writer.root.rglob("*.*"))


@pytest.mark.parametrize("name", ["", "../etc", "a/b", "ro ses", "x" * 65, ".hidden", "é"])
def test_an_unsafe_class_name_is_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidClassName):
        _writer(tmp_path).add(name, make.png())


def test_a_class_that_differs_from_another_only_by_case_is_refused(tmp_path: Path) -> None:
    writer = _writer(tmp_path)
    writer.add("roses", make.png(seed=1))
    with pytest.raises(InvalidClassName, match="use 'roses'"):
        writer.check_new_class("Roses")
    writer.check_new_class("roses")  # the class itself is fine
    writer.check_new_class("tulips")  # and so is a new one


def test_the_summary_counts_images_and_bytes_per_class(tmp_path: Path) -> None:
    writer = _writer(tmp_path)
    photos = [make.png(seed=i) for i in range(3)]
    for photo in photos[:2]:
        writer.add("roses", photo)
    writer.add("tulips", photos[2])
    summary = {c.name: (c.images, c.bytes) for c in writer.summary()}
    assert summary == {
        "roses": (2, len(photos[0]) + len(photos[1])),
        "tulips": (1, len(photos[2])),
    }


def test_a_file_changed_on_disk_is_hashed_again(tmp_path: Path) -> None:
    writer = _writer(tmp_path)
    first = writer.add("roses", make.png(seed=1))
    stored = writer.root / str(first.stored_as)
    replacement = make.png(seed=9)
    stored.write_bytes(replacement)  # same path, new content: the digest index must notice
    assert writer.add("tulips", replacement).duplicate_of == first.stored_as
