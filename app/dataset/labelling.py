"""Add labelled images to the dataset folder: the feedback loop that makes retraining useful.

Each file is validated by the same function that serves predictions, stored as
``<class>/<sha256>.<ext>`` by an atomic write (a crash never leaves a visible partial file), and
recognised as a duplicate when the same bytes already sit anywhere in the dataset.
"""

from __future__ import annotations

import hashlib
import re
import threading
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from app import imaging
from app.dataset import layout
from app.store import atomic

CLASS_NAME: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# The names ``add`` gives (its sha256, its format's extension): the only files ``remove`` takes, so
# an undo can never delete a photo the dataset came with.
STORED_NAME: Final = re.compile(r"^[0-9a-f]{64}\.(jpg|png|webp|gif|bmp|tiff)$")
EXTENSIONS: Final = {
    "JPEG": "jpg",
    "MPO": "jpg",
    "PNG": "png",
    "WEBP": "webp",
    "GIF": "gif",
    "BMP": "bmp",
    "TIFF": "tiff",
}


class DatasetNotConfigured(RuntimeError):
    """No dataset folder is configured (FLOWERS_DATA_DIR) (409)."""


class InvalidClassName(ValueError):
    """A class name outside letters, digits, ``_`` and ``-`` (1-64 characters) (422)."""


class StoredImageNotFound(LookupError):
    """No image of that stored name in that class (404)."""


@dataclass(frozen=True)
class Added:
    stored_as: str | None  # "<class>/<file>" when stored
    duplicate_of: str | None  # "<class>/<file>" already holding the same bytes


@dataclass(frozen=True)
class ClassSummary:
    name: str
    images: int
    bytes: int


def check_class_name(name: str) -> str:
    if not CLASS_NAME.match(name):
        raise InvalidClassName(f"invalid class name {name!r}: use 1-64 letters, digits, '_' or '-'")
    return name


def _folded(name: str) -> str:
    return unicodedata.normalize("NFKC", name).casefold()


class DatasetWriter:
    """Adds images under ``root``; keeps an index of content digests to find duplicates."""

    def __init__(self, root: Path, max_pixels: int) -> None:
        self.root = root
        self.max_pixels = max_pixels
        self._lock = threading.Lock()
        self._files: dict[Path, tuple[tuple[int, float], str]] = {}  # path -> (stat, sha256)

    def summary(self) -> list[ClassSummary]:
        classes = []
        for folder in layout.class_folders(self.root):
            sizes = [f.stat().st_size for f in layout.image_files(folder)]
            classes.append(ClassSummary(folder.name, len(sizes), sum(sizes)))
        return classes

    def check_new_class(self, class_name: str) -> None:
        """A valid name that is not a near-twin of an existing class (``Roses`` beside ``roses``
        would silently become a sixth class with a handful of photos)."""
        check_class_name(class_name)
        for folder in layout.class_folders(self.root):
            if folder.name != class_name and _folded(folder.name) == _folded(class_name):
                raise InvalidClassName(
                    f"class {class_name!r} differs from the existing class {folder.name!r} only "
                    f"by case or Unicode form: use {folder.name!r}"
                )

    def add(self, class_name: str, data: bytes) -> Added:
        """Validate (raises imaging.ImageError) and store one image; blocking: run it off-loop."""
        self.check_new_class(class_name)
        imaging.preprocess(data, max_pixels=self.max_pixels)
        digest = hashlib.sha256(data).hexdigest()
        with self._lock:
            existing = self._refresh_index().get(digest)
            if existing is not None:
                return Added(stored_as=None, duplicate_of=existing)
            target = self._target(class_name, digest, imaging.image_format(data))
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic.write_bytes(target, data)
            self._files[target] = (_signature(target), digest)
            return Added(stored_as=f"{class_name}/{target.name}", duplicate_of=None)

    def remove(self, class_name: str, stored_name: str) -> str:
        """Delete one image ``add`` stored (the undo of a label), by its stored name; returns
        "<class>/<file>".  Blocking: run it off-loop."""
        check_class_name(class_name)
        if not STORED_NAME.match(stored_name):
            raise StoredImageNotFound(
                f"{stored_name!r} is not the name of an added photo (<sha256>.<ext>): only photos "
                "added through the API can be removed through it"
            )
        with self._lock:
            target = self.root / class_name / stored_name
            try:
                target.unlink()
            except FileNotFoundError:
                raise StoredImageNotFound(
                    f"no photo {class_name}/{stored_name} in the dataset"
                ) from None
            self._files.pop(target.resolve(), None)
            return f"{class_name}/{stored_name}"

    def _target(self, class_name: str, digest: str, image_format: str) -> Path:
        root = self.root.resolve()
        target = (root / class_name / f"{digest}.{EXTENSIONS[image_format]}").resolve()
        if target.parent.parent != root:  # defence in depth: the name check already ensures it
            raise InvalidClassName(f"class {class_name!r} resolves outside the dataset folder")
        return target

    def _refresh_index(self) -> dict[str, str]:
        """sha256 -> "<class>/<file>" for every image; only new or changed files are hashed."""
        present = [
            file
            for folder in layout.class_folders(self.root)
            for file in layout.image_files(folder)
        ]
        known = self._files
        self._files = {}
        for path in present:
            signature = _signature(path)
            cached = known.get(path)
            if cached is None or cached[0] != signature:
                cached = (signature, hashlib.sha256(path.read_bytes()).hexdigest())
            self._files[path] = cached
        return {digest: f"{p.parent.name}/{p.name}" for p, (_, digest) in self._files.items()}


def _signature(path: Path) -> tuple[int, float]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime
