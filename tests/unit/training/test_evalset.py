"""The evaluation folder: photos never trained on, checked, de-duplicated and scored."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.store.metadata import VersionMetadata
from app.store.versions import Version
from app.training import evalset
from app.training.dataset import DatasetError, scan
from tests.conftest import write_class_folders

CLASSES = ["cats", "dogs", "owls"]


@pytest.fixture
def training(tmp_path: Path) -> Path:
    return write_class_folders(tmp_path / "train", {"cats": 4, "dogs": 4, "owls": 4})


def test_a_photo_that_is_also_a_training_photo_is_left_out_and_named(
    tmp_path: Path, training: Path
) -> None:
    # The same generator: these dogs have the bytes of two training cats, these cats of two
    # training dogs (a duplicate under another class is still a training photo).
    folder = write_class_folders(tmp_path / "eval", {"dogs": 2, "cats": 2})
    (folder / "cats" / "cats_000.jpg").write_bytes(b"")  # no longer a training photo
    train = scan(training)
    loaded = evalset.load(folder, CLASSES, train.samples)
    assert sorted(loaded.duplicates) == [
        "cats/cats_001.jpg",
        "dogs/dogs_000.jpg",
        "dogs/dogs_001.jpg",
    ]
    assert [s.path.name for s in loaded.data.samples] == ["cats_000.jpg"]
    assert loaded.data.samples[0].label == CLASSES.index("cats")  # the model's class indices
    assert "3 left out as training photos" in loaded.describe()


def test_the_folder_is_checked_before_training(tmp_path: Path) -> None:
    with pytest.raises(
        DatasetError, match=r"evaluation folder: the dataset folder .* does not exist"
    ):
        evalset.check(tmp_path / "missing", CLASSES)
    odd = write_class_folders(tmp_path / "odd", {"cats": 1, "bats": 1})
    with pytest.raises(DatasetError, match="has classes the dataset does not: bats"):
        evalset.check(odd, CLASSES)


def test_nothing_left_to_score_is_an_error(tmp_path: Path, training: Path) -> None:
    same = write_class_folders(tmp_path / "eval", {"cats": 2, "dogs": 2})
    with pytest.raises(DatasetError, match="no photo to score"):
        evalset.load(same, CLASSES, scan(training).samples)


def test_scoring_counts_right_answers_per_class(tmp_path: Path) -> None:
    folder = write_class_folders(tmp_path / "eval", {"cats": 3, "owls": 2}, size=(30, 30))
    loaded = evalset.load(folder, CLASSES, [])
    labels = [s.label for s in loaded.data.samples]

    def always_cats(images: np.ndarray) -> np.ndarray:
        assert images.dtype == np.float32 and images.shape[1:] == (180, 180, 3)
        return np.tile(np.array([[0.8, 0.1, 0.1]], np.float32), (len(images), 1))

    scored = evalset.score(loaded, always_cats, batch_size=2)
    assert labels.count(0) == 3 and scored.photos == 5
    assert (scored.accuracy, scored.per_class) == (0.6, {"cats": 1.0, "owls": 0.0})


def test_a_recorded_figure_is_used_only_for_the_same_photos(tmp_path: Path) -> None:
    folder = write_class_folders(tmp_path / "eval", {"cats": 2, "owls": 2})
    loaded = evalset.load(folder, CLASSES, [])

    def active(entry: dict) -> Version:
        metadata = {"version": 1, "classes": CLASSES, "evaluation_set": entry}
        return Version(1, tmp_path, VersionMetadata.model_validate(metadata))

    same = {"content_hash": loaded.content_hash, "accuracy": 0.75}
    assert evalset.recorded(active(same), loaded) == 0.75
    assert evalset.recorded(active({**same, "content_hash": "other"}), loaded) is None
    (folder / "owls" / "owls_000.jpg").unlink()
    assert evalset.recorded(active(same), evalset.load(folder, CLASSES, [])) is None
