"""The files a command line names: files, folders (their images, recursively) and glob patterns,
in a stable order, each once."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Final

from app.scoring.results import Unreadable

IMAGE_SUFFIXES: Final = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
)
_GLOB_CHARACTERS: Final = frozenset("*?[")


class NoInputs(ValueError):
    """Nothing to classify: a name matches no file, or no name matches an image."""


def collect(names: Sequence[str]) -> list[Path]:
    """Every file ``names`` designate: a file as named (whatever its suffix), a folder's images
    (recursively, by suffix, hidden entries and linked folders skipped), a pattern's matches."""
    found: dict[Path, Path] = {}
    for name in names:
        for path in _expand(name):
            found.setdefault(path.resolve(), path)
    if not found:
        raise NoInputs(f"no image files in {' '.join(names)} (images: {_suffixes()})")
    return list(found.values())


def _expand(name: str) -> Iterator[Path]:
    path = Path(name)
    if path.is_dir():
        yield from _folder_images(path)
    elif path.is_file():
        yield path
    elif _GLOB_CHARACTERS & set(name):
        yield from _matches(sorted(glob.glob(name, recursive=True)))
    else:
        raise NoInputs(f"{name}: no such file or folder")


def _matches(matches: Iterable[str]) -> Iterator[Path]:
    for match in map(Path, matches):
        if match.is_dir():
            yield from _folder_images(match)
        elif match.is_file() and match.suffix.lower() in IMAGE_SUFFIXES:
            yield match


def _folder_images(folder: Path) -> Iterator[Path]:
    for root, folders, files in os.walk(folder):  # never follows linked folders: no cycles
        folders[:] = sorted(name for name in folders if not name.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES:
                yield Path(root, name)


def _suffixes() -> str:
    return ", ".join(sorted(IMAGE_SUFFIXES))


def read_capped(path: Path, max_bytes: int) -> bytes | Unreadable:
    """The file's bytes, read no further than ``max_bytes`` (FLOWERS_MAX_UPLOAD_BYTES, the
    server's limit on a file), or why it cannot be had."""
    try:
        with path.open("rb") as file:
            data = file.read(max_bytes + 1)
    except OSError as error:
        return Unreadable(path, error.strerror or str(error))
    if len(data) > max_bytes:
        return Unreadable(path, f"larger than {max_bytes:,} bytes (FLOWERS_MAX_UPLOAD_BYTES)")
    return data
