"""Shared fixtures: generated image datasets, the real flower photos when present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support import imagefactory as make

REPO = Path(__file__).resolve().parents[1]
FLOWERS_DEV = Path(
    os.environ.get("FLOWERS_DEV_DATA", REPO.parent / "shared/datasets/flower_photos_dev")
)
# The real backbone's features of real photos, kept between runs: the Docker smoke test lends the
# same folder to its container. Entries are keyed by the photo's bytes, the preprocessing version,
# the backbone weights' digest and the feature layers, as in a user's store.
FEATURE_CACHE = Path(
    os.environ.get("FLOWERS_TEST_FEATURE_CACHE", Path.home() / ".cache/flower-classifier/features")
)
# pytest-timeout for a test using the real model: its setup may train it (pyproject's 600 s
# covered the 3 minutes that took before INT8 accuracy control, not 4.5 beside a slower CPU)
FLOWERS_STORE_TIMEOUT_S = 1200


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


@pytest.fixture(scope="session")
def flowers_store(flowers_dev: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding one real model: ImageNet ResNet-50 + head trained on the dev photos.

    Trained once per session with the real CLI and the default recipe, but for one epoch of
    conv5's fine-tuning instead of 4: each epoch takes about 45 s on 2 cores, and no test of this
    store is about how well fine-tuning converges (the recipe's own tests are in
    tests/unit/training/test_finetune.py). About 2.5 minutes with the features and conv4
    activations in :data:`FEATURE_CACHE` (4 to fill it), INT8 accuracy control included; the
    tests that need a real flower model share it.
    """
    import subprocess
    import sys

    store = tmp_path_factory.mktemp("flowers") / "store"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "app.train",
            "--data-dir",
            str(flowers_dev),
            "--model-store",
            str(store),
            "--feature-cache",
            str(FEATURE_CACHE),
            "--fine-tune-epochs",
            "1",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1800,  # ~2.5 minutes alone on 2 cores (INT8 included); far longer beside other work
    )
    if result.returncode != 0:
        if "could not obtain the ImageNet ResNet-50 weights" in result.stderr:
            pytest.skip(f"no ImageNet weights here: {result.stderr.strip()}")
        raise AssertionError(f"training failed:\n{result.stdout}\n{result.stderr}")
    return store


def write_colour_dataset(root: Path, per_class: int = 6) -> Path:
    """Noisy solid-colour JPEGs in blue/green/red folders: trivially separable by mean colour."""
    import numpy as np
    from PIL import Image

    from tests.support.modelfactory import COLOURS

    rng = np.random.default_rng(7)
    for name, colour in COLOURS.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = np.clip(np.array(colour) + rng.normal(0, 25, (40, 48, 3)), 0, 255)
            image = Image.fromarray(pixels.astype(np.uint8))
            image.save(folder / f"{name}_{i}.jpg", quality=90)
    return root


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`long` tests (soak, long fuzzing) run only when asked for: `pytest -m long`. A test that
    uses the real model may be the one whose setup trains it (``flowers_store``, about 4.5
    minutes alone on 2 cores): its timeout covers that beside the test's own."""
    for item in items:
        if "flowers_store" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.timeout(FLOWERS_STORE_TIMEOUT_S))
    if "long" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="long profile: run with `pytest -m long`")
    for item in items:
        if "long" in item.keywords:
            item.add_marker(skip)
