"""The training pipeline: data -> cached backbone features -> head -> (fine-tune) -> metrics.

Fast path (the default): the backbone is frozen, so its features are computed once per image
(cached on disk, see :mod:`app.features`) and only the small head trains, in seconds per epoch.
The optional fine-tuning phase unfreezes conv5 and trains end to end on the images.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from app import model as models
from app.devices import configure_devices, keras
from app.engine import Precision
from app.options import TrainOptions
from app.training import dataset as datasets
from app.training import evaluation, weights
from app.training.features import FeatureCache, featurize
from app.training.progress import Reporter


@dataclass(frozen=True)
class TrainConfig:
    """One training run: the recipe (options) and where its inputs and outputs live."""

    options: TrainOptions
    model_store: Path
    feature_cache: Path
    data_dir: Path | None = None
    weights: str = "imagenet"
    precision: Precision = "auto"  # the CPU engine's, for the exported IR's agreement check
    job_id: str | None = None  # the server's retrain job that started this run


@dataclass
class TrainedModel:
    """The outcome of training, before publishing."""

    config: TrainConfig
    data: datasets.Dataset
    classifier: Any
    head: Any
    backbone_info: dict[str, Any]
    history: dict[str, list[float]]
    report: dict[str, Any]
    val_indices: list[int]
    val_features: np.ndarray | None
    val_probabilities: np.ndarray
    feature_counts: dict[str, int]
    timings: dict[str, float] = field(default_factory=dict)


@contextmanager
def timed(timings: dict[str, float], phase: str) -> Iterator[None]:
    started = time.monotonic()
    try:
        yield
    finally:
        timings[phase] = round(time.monotonic() - started, 2)


def train(
    config: TrainConfig, data: datasets.Dataset, reporter: Reporter, timings: dict[str, float]
) -> TrainedModel:
    """Run every phase after the scan, up to (not including) publishing."""
    device = configure_devices()  # GPU memory growth; the CPU otherwise
    reporter.line(f"  training on {device.name} ({device.backend})")
    recipe = config.options
    keras.utils.set_random_seed(recipe.seed)  # also fixes random backbone weights (weights=none)
    if recipe.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    with timed(timings, "weights"):
        reporter.phase("weights", f"backbone weights: {config.weights}")
        weights_path = weights.resolve(config.weights)
        backbone = models.build_backbone(weights_path)
        backbone_info = {
            "name": models.BACKBONE_NAME,
            "weights": config.weights,
            "weights_file": weights_path.name if weights_path else None,
            "weights_digest": weights.weights_digest(backbone),
        }
    with timed(timings, "features"):
        features, kept, computed = _features(config, data, backbone, backbone_info, reporter)
    train_idx, val_idx = _split(config, data, kept)
    position = {index: row for row, index in enumerate(kept)}
    labels = np.array([s.label for s in data.samples])
    train_rows = [position[i] for i in train_idx]
    val_rows = [position[i] for i in val_idx]
    with timed(timings, "train_head"):
        reporter.phase("train_head", f"{recipe.epochs} epochs on {len(train_rows)} cached features")
        keras.utils.set_random_seed(recipe.seed)  # the head's start depends on the seed alone
        head = models.build_head(len(data.class_names), recipe.dropout)
        history = _fit_head(config, head, features, labels[kept], train_rows, val_rows, reporter)
    classifier = models.build_classifier(backbone, head)
    val_features: np.ndarray | None = features[val_rows]
    if recipe.fine_tune_epochs > 0:
        with timed(timings, "fine_tune"):
            _fine_tune(config, data, backbone, head, train_idx, val_idx, history, reporter)
        val_features = None  # the backbone changed: cached features no longer describe it
    with timed(timings, "evaluate"):
        probabilities = _evaluate(config, data, classifier, head, val_features, val_idx)
        predicted = probabilities.argmax(axis=1)
        report = evaluation.classification_report(labels[val_idx], predicted, data.class_names)
    return TrainedModel(
        config,
        data,
        classifier,
        head,
        backbone_info,
        history,
        report,
        val_idx,
        val_features,
        probabilities,
        {"computed": computed, "cached": len(kept) - computed},
        timings,
    )


def _features(
    config: TrainConfig,
    data: datasets.Dataset,
    backbone: Any,
    info: dict[str, Any],
    reporter: Reporter,
) -> tuple[np.ndarray, list[int], int]:
    cache = FeatureCache(config.feature_cache, info["weights_digest"], models.FEATURE_DIM)
    extractor = models.build_feature_extractor(backbone)
    reporter.phase("features", "loading images and computing backbone features (cached)")
    features, kept, computed = featurize(
        data, _batch_predictor(extractor), cache, config.options.batch_size, reporter.progress
    )
    reporter.line(f"  {computed} computed, {len(kept) - computed} from the cache ({cache.folder})")
    if data.skipped:
        reporter.line(f"  skipped {len(data.skipped)} unreadable image(s)")
    _require_every_class(data, kept)
    return features, kept, computed


def _batch_predictor(model: Any) -> Callable[[np.ndarray], np.ndarray]:
    def predict(images: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict_on_batch(images.astype(np.float32)), dtype=np.float32)

    return predict


def _require_every_class(data: datasets.Dataset, kept: list[int]) -> None:
    present = {data.samples[i].label for i in kept}
    empty = [name for label, name in enumerate(data.class_names) if label not in present]
    if empty:
        raise datasets.DatasetError(f"no readable images in class folder(s): {', '.join(empty)}")
    readable = np.bincount([data.samples[i].label for i in kept], minlength=len(data.class_names))
    datasets.require_class_sizes(dict(zip(data.class_names, map(int, readable), strict=True)))


def _split(
    config: TrainConfig, data: datasets.Dataset, kept: list[int]
) -> tuple[list[int], list[int]]:
    loadable = [data.samples[i] for i in kept]
    train_pos, val_pos = datasets.stratified_split(
        loadable, config.options.validation_split, config.options.seed
    )
    return [kept[p] for p in train_pos], [kept[p] for p in val_pos]


class _EpochLines(keras.callbacks.Callback):  # type: ignore[misc]
    def __init__(self, reporter: Reporter, phase: str, epochs: int) -> None:
        super().__init__()
        self.reporter, self.phase, self.epochs = reporter, phase, epochs

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        metrics = {k: float(v) for k, v in (logs or {}).items() if k != "learning_rate"}
        self.reporter.epoch(self.phase, epoch + 1, self.epochs, metrics)


def _fit_head(
    config: TrainConfig,
    head: Any,
    features: np.ndarray,
    labels: np.ndarray,
    train_rows: list[int],
    val_rows: list[int],
    reporter: Reporter,
) -> dict[str, list[float]]:
    head.compile(
        optimizer=keras.optimizers.Adam(config.options.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    fitted = head.fit(
        features[train_rows],
        labels[train_rows],
        validation_data=(features[val_rows], labels[val_rows]),
        epochs=config.options.epochs,
        batch_size=config.options.batch_size,
        shuffle=True,
        verbose=0,
        callbacks=[_EpochLines(reporter, "head", config.options.epochs)],
    )
    return {k: [float(v) for v in values] for k, values in fitted.history.items()}


def _fine_tune(
    config: TrainConfig,
    data: datasets.Dataset,
    backbone: Any,
    head: Any,
    train_idx: list[int],
    val_idx: list[int],
    history: dict[str, list[float]],
    reporter: Reporter,
) -> None:
    reporter.phase(
        "fine_tune", f"{config.options.fine_tune_epochs} epochs end to end, conv5 unfrozen"
    )
    train_images, train_kept = datasets.load_images(data, train_idx)
    val_images, val_kept = datasets.load_images(data, val_idx)
    unfrozen = models.unfreeze_last_stage(backbone)
    reporter.line(f"  {unfrozen} conv5 layers trainable; BatchNorm stays in inference mode")
    trainer = models.build_classifier(
        backbone, head, models.build_augmentation(config.options.seed)
    )
    trainer.compile(
        optimizer=keras.optimizers.Adam(config.options.fine_tune_learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    labels = np.array([s.label for s in data.samples])
    fitted = trainer.fit(
        train_images.astype(np.float32),
        labels[train_kept],
        validation_data=(val_images.astype(np.float32), labels[val_kept]),
        epochs=config.options.fine_tune_epochs,
        batch_size=config.options.batch_size,
        shuffle=True,
        verbose=0,
        callbacks=[_EpochLines(reporter, "fine_tune", config.options.fine_tune_epochs)],
    )
    for key, values in fitted.history.items():
        history.setdefault(key, []).extend(float(v) for v in values)
    backbone.trainable = False


def _evaluate(
    config: TrainConfig,
    data: datasets.Dataset,
    classifier: Any,
    head: Any,
    val_features: np.ndarray | None,
    val_idx: list[int],
) -> np.ndarray:
    if val_features is not None:
        return np.asarray(head.predict(val_features, batch_size=256, verbose=0))
    images, _ = datasets.load_images(data, val_idx)
    return np.asarray(classifier.predict(images.astype(np.float32), batch_size=32, verbose=0))
