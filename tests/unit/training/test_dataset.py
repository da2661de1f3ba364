from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app import imaging
from app.training import dataset
from tests.conftest import write_class_folders
from tests.support import imagefactory as make


def test_scan_lists_sorted_classes_and_images(tiny_dataset: Path) -> None:
    data = dataset.scan(tiny_dataset)
    assert data.class_names == ["cats", "dogs", "owls"]
    assert data.counts() == {"cats": 6, "dogs": 5, "owls": 5}
    assert all(len(s.digest) == 64 for s in data.samples)


def test_scan_ignores_hidden_entries_and_counts_non_images(tiny_dataset: Path) -> None:
    (tiny_dataset / ".git").mkdir()
    (tiny_dataset / "cats" / ".DS_Store").write_bytes(b"x")
    (tiny_dataset / "cats" / "notes.txt").write_text("not an image")
    data = dataset.scan(tiny_dataset)
    assert data.class_names == ["cats", "dogs", "owls"]
    assert data.ignored_files == 1


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(dataset.DatasetError, match="does not exist"):
        dataset.scan(tmp_path / "nope")


def test_one_class_is_not_enough(tmp_path: Path) -> None:
    write_class_folders(tmp_path, {"only": 3})
    with pytest.raises(dataset.DatasetError, match="at least 2"):
        dataset.scan(tmp_path)


def test_an_empty_class_is_a_clear_error(tiny_dataset: Path) -> None:
    (tiny_dataset / "zebras").mkdir()
    with pytest.raises(dataset.DatasetError, match="zebras holds no images"):
        dataset.scan(tiny_dataset)


def test_content_hash_depends_on_content_not_file_names(tiny_dataset: Path) -> None:
    before = dataset.scan(tiny_dataset).content_hash()
    (tiny_dataset / "cats" / "cats_000.jpg").rename(tiny_dataset / "cats" / "renamed.jpg")
    assert dataset.scan(tiny_dataset).content_hash() == before
    (tiny_dataset / "cats" / "new.jpg").write_bytes(make.jpeg(seed=77))
    assert dataset.scan(tiny_dataset).content_hash() != before


def _split(root: Path, seed: int, fraction: float = 0.2) -> tuple[set[str], set[str]]:
    data = dataset.scan(root)
    train, val = dataset.stratified_split(data.samples, fraction, seed)
    return {data.samples[i].digest for i in train}, {data.samples[i].digest for i in val}


def test_split_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    root = write_class_folders(tmp_path, {"a": 20, "b": 30})
    assert _split(root, 123) == _split(root, 123)
    assert _split(root, 123) != _split(root, 7)


def test_split_is_stratified_per_class(tmp_path: Path) -> None:
    root = write_class_folders(tmp_path, {"a": 20, "b": 30, "c": 7})
    data = dataset.scan(root)
    _, val = dataset.stratified_split(data.samples, 0.2, 1)
    per_class = np.bincount([data.samples[i].label for i in val], minlength=3)
    assert per_class.tolist() == [4, 6, 1]


def test_split_is_disjoint_and_complete(tmp_path: Path) -> None:
    root = write_class_folders(tmp_path, {"a": 11, "b": 9})
    data = dataset.scan(root)
    train, val = dataset.stratified_split(data.samples, 0.3, 5)
    assert set(train).isdisjoint(val)
    assert sorted(train + val) == list(range(len(data.samples)))


def test_split_keeps_at_least_one_image_each_side(tmp_path: Path) -> None:
    root = write_class_folders(tmp_path, {"a": 2, "b": 2})
    data = dataset.scan(root)
    train, val = dataset.stratified_split(data.samples, 0.1, 0)
    assert len(train) == 2 and len(val) == 2


def test_split_does_not_depend_on_file_names(tmp_path: Path) -> None:
    root = write_class_folders(tmp_path, {"a": 15, "b": 15})
    before = _split(root, 3)
    for path in (root / "a").iterdir():
        path.rename(path.with_name("z_" + path.name))
    assert _split(root, 3) == before


def test_adding_images_moves_few_existing_ones(tmp_path: Path) -> None:
    root = write_class_folders(tmp_path, {"a": 50, "b": 50})
    _, val_before = _split(root, 9)
    for i in range(5):
        (root / "a" / f"extra_{i}.jpg").write_bytes(make.jpeg(seed=5000 + i))
    _, val_after = _split(root, 9)
    assert len(val_before - val_after) <= 2


def test_invalid_split_fraction_is_refused(tiny_dataset: Path) -> None:
    data = dataset.scan(tiny_dataset)
    with pytest.raises(dataset.DatasetError, match="between 0 and 1"):
        dataset.stratified_split(data.samples, 1.5, 0)


def test_training_loader_and_serving_path_give_identical_arrays(tmp_path: Path) -> None:
    rotated = make.with_exif_orientation(make.half_and_half((120, 60)), 6)
    cases = {
        "rot.jpg": rotated,
        "rgba.png": make.encode(make.gradient().convert("RGBA"), "PNG"),
        "cmyk.jpg": make.encode(make.gradient().convert("CMYK"), "JPEG"),
        "big.jpg": make.jpeg(size=(1000, 800)),
    }
    folder = tmp_path / "x"
    folder.mkdir()
    write_class_folders(tmp_path, {"y": 1})
    for name, data in cases.items():
        (folder / name).write_bytes(data)
    data = dataset.scan(tmp_path)
    indices = [i for i, s in enumerate(data.samples) if s.path.parent == folder]
    loaded, kept = dataset.load_images(data, indices)
    assert kept == indices
    for row, index in enumerate(kept):
        served = imaging.preprocess(data.samples[index].path.read_bytes())
        assert loaded[row].tobytes() == served.tobytes()


def test_unreadable_training_files_are_skipped_and_named(
    tiny_dataset: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broken = tiny_dataset / "cats" / "broken.jpg"
    broken.write_text("not really a jpeg")
    data = dataset.scan(tiny_dataset)
    images, kept = dataset.load_images(data, range(len(data.samples)))
    assert len(kept) == len(data.samples) - 1
    assert images.shape == (len(kept), 180, 180, 3)
    assert [path for path, _ in data.skipped] == [broken]
    assert "broken.jpg" in caplog.text


def test_default_data_dir_honours_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWERS_DATA_DIR", str(tmp_path))
    assert dataset.default_data_dir() == tmp_path


def test_unreachable_download_says_how_to_use_a_local_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLOWERS_DATA_DIR", raising=False)
    monkeypatch.setattr(dataset, "FLOWERS_URL", "http://127.0.0.1:9/flower_photos.tgz")
    with pytest.raises(dataset.DatasetUnavailable, match="FLOWERS_DATA_DIR"):
        dataset.default_data_dir()
