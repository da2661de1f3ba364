"""Fine-tuning conv5 on cached conv4 activations: the cache, and the model it publishes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app import imaging
from app.ml import network as models
from app.options import TrainOptions
from app.training import dataset
from app.training.finetune import (
    MEASURED_ONCE,
    ActivationBatches,
    FineTuneError,
    FineTuner,
    HeldOut,
    activation_cache,
    check_taps,
    fine_tuning_record,
)
from app.training.pipeline import TrainConfig, train
from app.training.progress import Reporter
from tests.conftest import write_class_folders

DIGEST = "a" * 64


def _maps(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(12, 12, 1024)).astype(np.float16)


def test_activations_are_cached_in_float16_per_image(tmp_path: Path) -> None:
    cache = activation_cache(tmp_path, "backbone1", 180)
    assert cache.get(DIGEST) is None
    cache.put(DIGEST, _maps(0))
    stored = cache.get(DIGEST)
    assert stored is not None and stored.dtype == np.float16 and np.array_equal(stored, _maps(0))
    assert cache.get("b" * 64) is None  # another image's bytes: another key


def test_the_activation_cache_is_keyed_like_the_features(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    activation_cache(tmp_path, "backbone1", 180).put(DIGEST, _maps(0))
    assert activation_cache(tmp_path, "backbone2", 180).get(DIGEST) is None  # another backbone
    assert activation_cache(tmp_path, "backbone1", 224).get(DIGEST) is None  # another input size
    assert activation_cache(tmp_path, "backbone1", 180, of_mirror=True).get(DIGEST) is None
    monkeypatch.setattr(imaging, "PREPROCESSING_VERSION", "pil-bilinear-180-v2")
    assert activation_cache(tmp_path, "backbone1", 180).get(DIGEST) is None  # preprocessing


def test_a_damaged_activation_entry_is_a_miss(tmp_path: Path) -> None:
    cache = activation_cache(tmp_path, "backbone1", 180)
    cache.put(DIGEST, _maps(1))
    entry = next(cache.folder.rglob("*.npy"))
    entry.write_bytes(entry.read_bytes()[:1000])  # torn by a crash
    assert cache.get(DIGEST) is None
    np.save(entry, _maps(1).astype(np.float32))  # another type (or shape) is no hit either
    assert cache.get(DIGEST) is None


def test_feature_sets_tapping_before_conv4_cannot_be_fine_tuned_from_it() -> None:
    check_taps(models.FeatureSet((("conv4_block6_out", "gem"), ("conv5_block3_out", "avg"))))
    with pytest.raises(FineTuneError, match="conv3_block4_out"):
        check_taps(models.FeatureSet((("conv3_block4_out", "avg"), ("conv5_block3_out", "avg"))))


def _epoch(batches: ActivationBatches) -> tuple[np.ndarray, np.ndarray]:
    parts = [batches[index] for index in range(len(batches))]
    return np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts])


def test_fine_tuning_batches_hold_every_view_of_the_training_rows_once_an_epoch() -> None:
    random = np.random.default_rng(3)
    views = [random.normal(size=(10, 2, 2, 3)).astype(np.float16) for _ in range(2)]
    labels = np.arange(10) % 3
    rows = np.zeros(10, bool)
    rows[[0, 2, 3, 7, 9]] = True
    batches = ActivationBatches(views, labels, rows, batch_size=4, seed=5)
    assert len(batches) == 3  # 10 examples (5 photos, 2 views) in batches of 4
    inputs, targets = _epoch(batches)
    assert inputs.dtype == np.float32
    assert [len(batches[index][0]) for index in range(3)] == [4, 4, 2]
    expected = [views[v][r].astype(np.float32) for v in range(2) for r in np.flatnonzero(rows)]
    seen = sorted(map(bytes, inputs))
    assert seen == sorted(map(bytes, expected))  # each (view, photo) exactly once, nothing else
    for x, y in zip(inputs, targets, strict=True):  # each with its photo's label
        photo = next(r for v in range(2) for r in range(10) if np.array_equal(views[v][r], x))
        assert y == labels[photo]


def test_fine_tuning_batches_are_reshuffled_each_epoch_from_the_seed() -> None:
    views = [np.arange(40, dtype=np.float16).reshape(20, 2)]
    labels, rows = np.zeros(20, int), np.ones(20, bool)
    first, again = (ActivationBatches(views, labels, rows, 8, seed=1) for _ in range(2))
    order = _epoch(first)[0][:, 0]
    assert np.array_equal(order, _epoch(again)[0][:, 0])  # the same seed, the same order
    assert not np.array_equal(order, np.sort(order))  # shuffled
    first.on_epoch_end()
    assert not np.array_equal(_epoch(first)[0][:, 0], order)  # and again for the next epoch
    other = _epoch(ActivationBatches(views, labels, rows, 8, seed=2))[0][:, 0]
    assert not np.array_equal(other, order)


@pytest.mark.slow
def test_a_fine_tuned_model_reloads_with_the_probabilities_it_had_in_training(
    tmp_path: Path,
) -> None:
    data = dataset.scan(write_class_folders(tmp_path / "data", {"a": 4, "b": 4, "c": 4}))
    options = TrainOptions(folds=2, fine_tune_epochs=2, batch_size=8)
    config = TrainConfig(options, tmp_path / "store", tmp_path / "cache", weights="none")
    timings: dict[str, float] = {}
    with (tmp_path / "log").open("w") as log:
        trained = train(config, data, Reporter(stream=log), timings)
    assert len(trained.history["fine_tune_loss"]) == 2 and "fine_tune" in timings
    assert list((tmp_path / "cache").rglob("activations/*/*/*.npy"))  # cached
    models.save(trained.classifier, tmp_path / "model.keras")
    reloaded = models.load(tmp_path / "model.keras")
    images, _ = dataset.load_images(data, trained.reference_indices)
    again = np.asarray(reloaded(images.astype(np.float32)))
    assert np.allclose(again, trained.reference_probabilities, atol=1e-5)


@pytest.mark.slow
def test_without_fine_tuning_in_folds_the_folds_measure_the_head_and_the_published_model_is_tuned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = dataset.scan(write_class_folders(tmp_path / "data", {"a": 4, "b": 4, "c": 4}))
    fits: list[int] = []
    fit = FineTuner.fit

    def counted(self: FineTuner, *args: object, **kwargs: object) -> dict[str, list[float]]:
        fits.append(int(np.count_nonzero(args[3])))  # the rows it is fine-tuned on
        return fit(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(FineTuner, "fit", counted)

    def run(**options: object) -> Any:
        config = TrainConfig(
            TrainOptions(folds=2, batch_size=8, **options),  # type: ignore[arg-type]
            tmp_path / "store",
            tmp_path / "cache",
            weights="none",
        )
        with (tmp_path / "log").open("a") as log:
            return train(config, data, Reporter(stream=log), {})

    head = run(fine_tune_epochs=0)
    assert fits == []
    published_only = run(fine_tune_epochs=2, fine_tune_in_folds=False)
    assert fits == [6]  # once, the published model's, on every photo but the last fold's
    assert (head.trained_on, published_only.trained_on) == (12, 6)
    # what the folds measured is the head alone: the same as without fine-tuning
    assert published_only.measured.accuracies == head.measured.accuracies
    assert np.allclose(published_only.measured.probabilities, head.measured.probabilities)
    # the last fold judges the published model and the head it started from (the fold's own)
    held_out = published_only.held_out
    assert held_out is not None and held_out.photos == 6
    assert held_out.head_alone == published_only.measured.accuracies[-1]
    # ...and the INT8 check judges those photos by the published head, on the published features
    checked = published_only.fold_heads
    assert checked is not None and len(checked.heads) == 1
    last_fold = published_only.measured.judged[-6:]
    assert sorted(np.flatnonzero(checked.fold_of == 0)) == sorted(last_fold)
    assert (np.delete(checked.fold_of, last_fold) == -1).all()
    images, _ = dataset.load_images(data, published_only.reference_indices)
    classifier = published_only.classifier
    published = np.asarray(classifier(images.astype(np.float32)))
    extractor = classifier.layers[1]  # chain(extractor, head): the features the head reads
    features = np.asarray(extractor(images.astype(np.float32)))
    assert np.allclose(checked.heads[0].predict(features), published, atol=1e-5)
    assert np.allclose(published, published_only.reference_probabilities, atol=1e-5)
    # ...and the published model is fine-tuned: its conv5 and answers are not the head's
    assert len(published_only.history["fine_tune_loss"]) == 2
    assert not np.allclose(
        published_only.reference_probabilities, head.reference_probabilities, atol=1e-4
    )
    fits.clear()
    run(fine_tune_epochs=1, fine_tune_in_folds=True)
    assert fits == [6, 6, 12]  # in each of the 2 folds, then the published model


def test_the_metadata_says_whether_the_folds_measured_the_fine_tuning() -> None:
    assert fine_tuning_record(TrainOptions(fine_tune_epochs=0)) is None
    in_folds = fine_tuning_record(TrainOptions(fine_tune_epochs=3, fine_tune_in_folds=True))
    assert in_folds is not None and in_folds["epochs"] == 3
    assert "fine-tuned recipe's" in in_folds["measured"] and "measured_once" not in in_folds
    alone = fine_tuning_record(TrainOptions(fine_tune_epochs=3, fine_tune_in_folds=False))
    assert alone is not None and "the head's alone" in alone["measured"]
    assert fine_tuning_record(TrainOptions()) == {**alone, "epochs": 4}  # the default
    assert "held_out" not in alone  # only what was measured
    judged = fine_tuning_record(
        TrainOptions(fine_tune_epochs=3, fine_tune_in_folds=False), HeldOut(614, 0.92, 0.93)
    )
    assert judged is not None
    assert judged["held_out"] == {
        "photos": 614, "head_alone": 0.92, "fine_tuned": 0.93, "gain": 0.01
    }  # fmt: skip
    once = alone["measured_once"]
    assert once == MEASURED_ONCE
    assert round(once["fine_tuned"] - once["head_alone"], 4) == once["gain"]
