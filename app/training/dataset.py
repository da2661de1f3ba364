"""Training data: a folder of class sub-folders of images, the default flower_photos download, a
deterministic stratified split, and image loading through :func:`app.imaging.preprocess`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np

from app import imaging
from app.dataset import layout
from app.training import downloads

logger = logging.getLogger(__name__)

FLOWERS_URL: Final = (
    "https://storage.googleapis.com/download.tensorflow.org/example_images/flower_photos.tgz"
)
ENV_DATA_DIR: Final = "FLOWERS_DATA_DIR"
MIN_IMAGES_PER_CLASS: Final = 2  # one to train on, one to validate


class DatasetError(ValueError):
    """The dataset folder cannot be trained on (missing, fewer than 2 classes, empty class)."""


class DatasetUnavailable(RuntimeError):
    """The default dataset could not be downloaded."""


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int
    digest: str  # SHA-256 of the file bytes: keys the feature cache and the split


@dataclass
class Dataset:
    root: Path
    class_names: list[str]
    samples: list[Sample]
    ignored_files: int = 0
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        per_class = np.bincount([s.label for s in self.samples], minlength=len(self.class_names))
        return dict(zip(self.class_names, (int(c) for c in per_class), strict=True))

    def content_hash(self) -> str:
        """One hash over every (class, image digest): identical data, identical hash."""
        digest = hashlib.sha256()
        for sample in sorted(self.samples, key=lambda s: (s.label, s.digest)):
            digest.update(f"{self.class_names[sample.label]}/{sample.digest}\n".encode())
        return digest.hexdigest()[:16]


def default_data_dir() -> Path:
    """FLOWERS_DATA_DIR if set, else the TensorFlow flower_photos dataset (downloaded, cached)."""
    configured = os.environ.get(ENV_DATA_DIR)
    return Path(configured) if configured else download_flower_photos()


def download_flower_photos() -> Path:
    """Fetch and extract flower_photos.tgz with Keras's cached downloader."""
    try:
        downloads.probe(FLOWERS_URL)
        from app.ml.devices import keras

        extracted = Path(keras.utils.get_file("flower_photos.tgz", FLOWERS_URL, extract=True))
    except Exception as error:  # urllib and Keras raise many types; all mean "not available"
        raise DatasetUnavailable(
            f"could not download the flower_photos dataset from {FLOWERS_URL} ({error}). "
            f"Point at a local copy with --data-dir PATH or {ENV_DATA_DIR}=PATH "
            "(a folder of class sub-folders of images)"
        ) from None
    nested = extracted / "flower_photos"
    return nested if nested.is_dir() else extracted


def has_classes(root: Path) -> bool:
    """Whether ``root`` holds at least one (non-hidden) class folder."""
    return bool(layout.class_folders(root))


def seed_with_flower_photos(target: Path) -> Path:
    """Fill an empty dataset folder with the flower_photos classes (downloaded, cached)."""
    source = download_flower_photos()
    target.mkdir(parents=True, exist_ok=True)
    for class_dir in sorted(p for p in source.iterdir() if p.is_dir()):
        shutil.copytree(class_dir, target / class_dir.name, dirs_exist_ok=True)
    return target


def scan(root: Path, hash_files: bool = True) -> Dataset:
    """List class folders (sorted names) and their image files; validate the layout."""
    if not root.is_dir():
        raise DatasetError(f"the dataset folder {root} does not exist")
    class_dirs = layout.class_folders(root)
    if len(class_dirs) < 2:
        raise DatasetError(
            f"{root} has {len(class_dirs)} class folder(s); training needs at least 2 "
            "(one sub-folder of images per class)"
        )
    samples: list[Sample] = []
    ignored = 0
    for label, class_dir in enumerate(class_dirs):
        files, other = layout.class_files(class_dir)
        ignored += other
        if not files:
            raise DatasetError(f"the class folder {class_dir} holds no images")
        samples.extend(Sample(f, label, _digest(f) if hash_files else "") for f in files)
    return Dataset(root, [p.name for p in class_dirs], samples, ignored_files=ignored)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def require_class_sizes(counts: dict[str, int], minimum: int = MIN_IMAGES_PER_CLASS) -> None:
    """Refuse classes too small to be both trained and validated on, naming each."""
    small = {name: count for name, count in counts.items() if count < minimum}
    if small:
        listed = ", ".join(f"{name!r} has {count}" for name, count in small.items())
        raise DatasetError(
            f"too few images to train and validate: {listed}; each class needs at least "
            f"{minimum} (add photos, or remove or merge the class folder)"
        )


def stratified_split(
    samples: Sequence[Sample], validation_split: float, seed: int
) -> tuple[list[int], list[int]]:
    """Indices (train, validation): per class, round(n * split) images (at least one, at most
    n - 1) go to validation.

    The order within a class is a seeded hash of each image's content, so the split depends on
    the seed and the images, not on file names or listing order, and adding images moves few.
    """
    if not 0.0 < validation_split < 1.0:
        raise DatasetError(f"validation split must be between 0 and 1, got {validation_split}")
    by_class: dict[int, list[int]] = {}
    for index, sample in enumerate(samples):
        by_class.setdefault(sample.label, []).append(index)
    train: list[int] = []
    validation: list[int] = []
    for indices in by_class.values():
        ranked = sorted(indices, key=lambda i: _rank(seed, samples[i]))
        n_val = min(len(ranked) - 1, max(1, round(len(ranked) * validation_split)))
        validation.extend(ranked[:n_val])
        train.extend(ranked[n_val:])
    return sorted(train), sorted(validation)


def _rank(seed: int, sample: Sample) -> str:
    return hashlib.sha256(f"{seed}:{sample.digest}".encode()).hexdigest()


def load_image(path: Path, max_pixels: int = imaging.DEFAULT_MAX_PIXELS) -> np.ndarray:
    """One training image, through the same function the service uses on uploads."""
    return imaging.preprocess(path.read_bytes(), max_pixels=max_pixels)


def load_images(
    dataset: Dataset,
    indices: Sequence[int],
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, list[int]]:
    """Decode the given samples; unreadable files are recorded in ``dataset.skipped``.

    Returns the (N, 180, 180, 3) uint8 array and the indices that loaded, in order.
    """
    arrays: list[np.ndarray] = []
    kept: list[int] = []
    for done, index in enumerate(indices, start=1):
        path = dataset.samples[index].path
        try:
            arrays.append(load_image(path))
            kept.append(index)
        except (imaging.ImageError, OSError) as error:
            record_skip(dataset, path, str(error))
        if on_progress is not None:
            on_progress(done, len(indices))
    shape = (0, imaging.IMAGE_SIZE, imaging.IMAGE_SIZE, 3)
    return (np.stack(arrays) if arrays else np.zeros(shape, np.uint8)), kept


def record_skip(dataset: Dataset, path: Path, reason: str) -> None:
    logger.warning("skipping unreadable image %s: %s", path, reason)
    dataset.skipped.append((path, reason))
