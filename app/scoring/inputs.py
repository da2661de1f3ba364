"""The files a command line names: files, folders (their images, recursively) and glob patterns,
in a stable order, each once."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Final

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
