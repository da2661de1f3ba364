from __future__ import annotations

from pathlib import Path

import numpy as np

from app import imaging
from app.training import dataset
from app.training.features import (
    FeatureCache,
    View,
    featurize,
    featurize_views,
    mirrored,
    shared_outputs,
)
from tests.support import imagefactory as make


class CountingExtractor:
    """A fake backbone: the mean colour of each image, repeated; counts the images it sees."""

    def __init__(self) -> None:
        self.seen = 0

    def __call__(self, images: np.ndarray) -> np.ndarray:
        self.seen += len(images)
        means = images.reshape(len(images), -1, 3).mean(axis=1).astype(np.float32)
        return np.tile(means, (1, 2))


def _cache(tmp_path: Path, backbone: str = "b1") -> FeatureCache:
    return FeatureCache(tmp_path / "cache", backbone, dim=6)


def test_features_are_computed_once_then_read_from_the_cache(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    extractor = CountingExtractor()
    first, kept, computed = featurize(dataset.scan(tiny_dataset), extractor, _cache(tmp_path))
    assert computed == 16 and extractor.seen == 16
    second, kept_again, computed_again = featurize(
        dataset.scan(tiny_dataset), extractor, _cache(tmp_path)
    )
    assert computed_again == 0 and extractor.seen == 16
    assert kept == kept_again
    assert np.array_equal(first, second)


def test_only_new_images_are_computed_after_adding_some(tiny_dataset: Path, tmp_path: Path) -> None:
    extractor = CountingExtractor()
    featurize(dataset.scan(tiny_dataset), extractor, _cache(tmp_path))
    for i in range(3):
        (tiny_dataset / "dogs" / f"new_{i}.png").write_bytes(make.png(seed=900 + i))
    _, kept, computed = featurize(dataset.scan(tiny_dataset), extractor, _cache(tmp_path))
    assert computed == 3
    assert len(kept) == 19


def test_cache_is_keyed_by_backbone_and_preprocessing(tiny_dataset: Path, tmp_path: Path) -> None:
    extractor = CountingExtractor()
    featurize(dataset.scan(tiny_dataset), extractor, _cache(tmp_path, "b1"))
    _, _, computed = featurize(dataset.scan(tiny_dataset), extractor, _cache(tmp_path, "b2"))
    assert computed == 16
    assert _cache(tmp_path).folder.parts[-2:] == (imaging.PREPROCESSING_VERSION, "b1")


def test_a_damaged_cache_entry_is_recomputed(tiny_dataset: Path, tmp_path: Path) -> None:
    data = dataset.scan(tiny_dataset)
    cache = _cache(tmp_path)
    featurize(data, CountingExtractor(), cache)
    entry = next(cache.folder.rglob("*.npy"))
    entry.write_bytes(b"torn write")
    extractor = CountingExtractor()
    _, _, computed = featurize(dataset.scan(tiny_dataset), extractor, cache)
    assert computed == 1 and extractor.seen == 1


def test_cached_features_match_the_images(tiny_dataset: Path, tmp_path: Path) -> None:
    data = dataset.scan(tiny_dataset)
    features, kept, _ = featurize(data, CountingExtractor(), _cache(tmp_path), batch_size=4)
    images, _ = dataset.load_images(data, kept)
    assert np.allclose(features, CountingExtractor()(images))


def test_unreadable_images_are_skipped_not_fatal(tiny_dataset: Path, tmp_path: Path) -> None:
    (tiny_dataset / "owls" / "bad.jpg").write_bytes(b"\xff\xd8\xff garbage")
    data = dataset.scan(tiny_dataset)
    _, kept, _ = featurize(data, CountingExtractor(), _cache(tmp_path))
    assert len(kept) == 16
    assert [p.name for p, _ in data.skipped] == ["bad.jpg"]


def test_progress_reaches_the_total(tiny_dataset: Path, tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    featurize(
        dataset.scan(tiny_dataset),
        CountingExtractor(),
        _cache(tmp_path),
        5,
        lambda d, t: calls.append((d, t)),
    )
    assert calls[0] == (0, 16)
    assert calls[-1] == (16, 16)


def test_a_cold_run_gives_what_a_warm_run_reads_from_a_float16_cache(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    # conv4's activations are cached in float16: a cold run used to hand the float32 maps it had
    # just computed to fine-tuning, a warm run the float16 ones it read back, so the same run's
    # accuracy depended on the cache's state (and the cold run held twice the memory).
    cache = FeatureCache(tmp_path / "cache", "b1", dim=6, name="activations", dtype="float16")
    extractor = CountingExtractor()
    cold, kept, computed = featurize(dataset.scan(tiny_dataset), extractor, cache)
    warm, kept_again, computed_again = featurize(dataset.scan(tiny_dataset), extractor, cache)
    assert computed == 16 and computed_again == 0 and kept == kept_again
    assert cold.dtype == warm.dtype == np.float16
    assert np.array_equal(cold, warm)


def test_the_rows_match_the_kept_images_around_an_unreadable_one(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    # the arrays are filled in place and compacted over the skipped rows: row i is kept[i]'s
    (tiny_dataset / "dogs" / "0_bad.jpg").write_bytes(b"\xff\xd8\xff garbage")  # sorts first
    data = dataset.scan(tiny_dataset)
    cold, kept, _ = featurize(data, CountingExtractor(), _cache(tmp_path), batch_size=3)
    warm, kept_again, computed = featurize(
        dataset.scan(tiny_dataset), CountingExtractor(), _cache(tmp_path)
    )
    assert len(kept) == 16 and kept == kept_again and computed == 0
    images, _ = dataset.load_images(data, kept)
    assert np.allclose(cold, CountingExtractor()(images))
    assert np.array_equal(cold, warm)


class TwoOutputs:
    """A fake backbone pass with two outputs (the features and a stage's maps), both of the
    images' left halves (so a mirror image's differ); counts passes."""

    def __init__(self) -> None:
        self.passes = 0

    def __call__(self, images: np.ndarray) -> list[np.ndarray]:
        self.passes += 1
        left = images[:, :, : images.shape[2] // 2, :].reshape(len(images), -1, 3)
        means = left.mean(axis=1).astype(np.float32)
        return [np.tile(means, (1, 2)), means / 255]


def test_views_of_one_pass_compute_it_once_a_batch_and_give_what_separate_passes_give(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    # fine-tuning caches conv4's maps beside the features: each decoded batch used to go through
    # the backbone twice (the feature extractor, then the conv4 extractor), four times with the
    # mirror images; now once for the photos and once for their mirror images
    both = TwoOutputs()
    extract, tapped = shared_outputs(both, 2)
    extract_mirrored, tapped_mirrored = shared_outputs(mirrored(both), 2)
    root = tmp_path / "cache"
    caches = [
        FeatureCache(root, "b1", 6, "features"),
        FeatureCache(root, "b1", 6, "features/mirrored"),
        FeatureCache(root, "b1", 3, "maps", "float16"),
        FeatureCache(root, "b1", 3, "maps/mirrored", "float16"),
    ]
    extractors = [extract, extract_mirrored, tapped, tapped_mirrored]
    views = [View(e, c) for e, c in zip(extractors, caches, strict=True)]
    data = dataset.scan(tiny_dataset)
    arrays, kept, computed = featurize_views(data, views, batch_size=5)
    assert computed == 16 and both.passes == 2 * 4  # 4 batches of up to 5: photos, mirror images
    images, _ = dataset.load_images(data, kept)
    flipped = np.ascontiguousarray(images[:, :, ::-1, :])
    separate = [*TwoOutputs()(images), *TwoOutputs()(flipped)]
    for array, wanted in zip(
        arrays, [separate[0], separate[2], separate[1], separate[3]], strict=True
    ):
        assert np.allclose(array, wanted, atol=1e-3)
    assert not np.allclose(arrays[0], arrays[1])  # the mirror images' own
    warm, _, computed_again = featurize_views(dataset.scan(tiny_dataset), views, batch_size=5)
    assert computed_again == 0 and both.passes == 8
    assert all(np.array_equal(a, b) for a, b in zip(arrays, warm, strict=True))
