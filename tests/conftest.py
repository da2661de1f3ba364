"""Shared fixtures: generated image datasets, the real flower photos when present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests import imagefactory as make

REPO = Path(__file__).resolve().parents[1]
FLOWERS_DEV = Path(
    os.environ.get("FLOWERS_DEV_DATA", REPO.parent / "shared/datasets/flower_photos_dev")
)


def write_class_folders(
    root: Path, per_class: dict[str, int], size: tuple[int, int] = (48, 40)
) -> Path:
    """A dataset folder of generated JPEGs: each class its own colour family."""
    for class_index, (name, count) in enumerate(per_class.items()):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            data = make.jpeg(seed=1000 * class_index + i, size=size)
            (folder / f"{name}_{i:03d}.jpg").write_bytes(data)
    return root


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    return write_class_folders(tmp_path / "data", {"cats": 6, "dogs": 5, "owls": 5})


@pytest.fixture(scope="session")
def flowers_dev() -> Path:
    if not FLOWERS_DEV.is_dir():
        pytest.skip(f"the real flower photos are not at {FLOWERS_DEV}")
    return FLOWERS_DEV
