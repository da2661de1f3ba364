"""The dataset folder's layout, shared by training (reads it) and serving (adds labelled photos):
one sub-folder per class, holding image files; hidden entries are not part of it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

IMAGE_EXTENSIONS: Final = frozenset(
    {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff"}
)


def class_folders(root: Path) -> list[Path]:
    """The class sub-folders of ``root``, sorted by name (the model's class order)."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def class_files(folder: Path) -> tuple[list[Path], int]:
    """A class folder's image files (sorted) and how many other files it holds."""
    entries = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    images = [p for p in entries if p.suffix.lower() in IMAGE_EXTENSIONS]
    return images, len(entries) - len(images)


def image_files(folder: Path) -> list[Path]:
    return class_files(folder)[0]
