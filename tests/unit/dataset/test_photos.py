"""A measured photo is read back only from inside the dataset, and only while unchanged."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from app.dataset import photos
from app.dataset.photos import PhotoGone, PhotosBusy
from tests.support import imagefactory as make


@pytest.fixture
def dataset(tmp_path: Path) -> tuple[Path, str]:
    root = tmp_path / "data"
    (root / "roses").mkdir(parents=True)
    data = make.jpeg(seed=4)
    (root / "roses" / "r.jpg").write_bytes(data)
    return root, hashlib.sha256(data).hexdigest()


def test_an_unchanged_photo_is_read_with_its_type(dataset: tuple[Path, str]) -> None:
    root, digest = dataset
    data, media_type = photos.read_measured(root, "roses/r.jpg", digest)
    assert hashlib.sha256(data).hexdigest() == digest and media_type == "image/jpeg"


def test_a_changed_moved_or_outside_photo_is_gone(
    dataset: tuple[Path, str], tmp_path: Path
) -> None:
    root, digest = dataset
    outside = tmp_path / "secret.jpg"
    outside.write_bytes((root / "roses" / "r.jpg").read_bytes())  # same bytes, same digest
    (root / "roses" / "link.jpg").symlink_to(outside)
    for source in ("../secret.jpg", str(outside), "roses/link.jpg", "roses/missing.jpg", "roses"):
        with pytest.raises(PhotoGone):
            photos.read_measured(root, source, digest)
    (root / "roses" / "r.jpg").write_bytes(make.jpeg(seed=5))  # replaced since it was measured
    with pytest.raises(PhotoGone, match="no longer in the dataset"):
        photos.read_measured(root, "roses/r.jpg", digest)


def test_reads_beyond_the_limit_are_refused_not_queued(dataset: tuple[Path, str]) -> None:
    root, digest = dataset
    held = [photos._reading.acquire(blocking=False) for _ in range(photos.READERS)]
    try:
        assert all(held)
        with pytest.raises(PhotosBusy, match="retry shortly"):
            photos.read_measured(root, "roses/r.jpg", digest)
    finally:
        for _ in held:
            photos._reading.release()
    assert photos.read_measured(root, "roses/r.jpg", digest)[1] == "image/jpeg"
