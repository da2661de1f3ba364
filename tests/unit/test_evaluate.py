"""python -m app.evaluate: cross-validation of a recipe on cached features, nothing published."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, write_class_folders

pytestmark = pytest.mark.slow


def test_a_recipe_is_measured_on_several_partitions_and_nothing_is_published(
    tmp_path: Path,
) -> None:
    data = write_class_folders(tmp_path / "data", {"a": 6, "b": 6, "c": 6})
    command = [
        sys.executable, "-m", "app.evaluate", "--data-dir", str(data),
        "--model-store", str(tmp_path / "store"), "--weights", "none",
        "--folds", "3", "--seeds", "0,1",
    ]  # fmt: skip
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "seed 0    3-fold cross-validation (seed 0): " in result.stdout
    assert "seed 1    3-fold cross-validation (seed 1): " in result.stdout
    assert "over 2 partitions: " in result.stdout
    # The default fine-tunes the published model only: nothing is published, so the folds
    # measure the head alone, say so, and spend nothing on conv4's activations
    assert "the folds measure the head alone" in result.stdout
    assert "'fine_tune_epochs': 0" in result.stdout and "conv4 activations" not in result.stdout
    store = tmp_path / "store"
    assert list(store.glob("[0-9]*")) == [] and not (store / "active").exists()
    assert list((store / ".cache" / "features").rglob("*.npy"))  # the features were cached
    again = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert "0 computed, 18 from the cache" in again.stdout
