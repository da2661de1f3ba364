"""The training pipeline: data -> cached backbone features -> measured recipe -> final model.

The backbone is frozen, so each photo's features (of the photo and of its mirror image) are
computed once and cached on disk (:mod:`app.training.features`); heads train on them in seconds.
The recipe's accuracy is measured by k-fold cross-validation (:mod:`app.training.crossval`),
then the published head is fitted on every photo.  With ``fine_tune_epochs``, conv5 is then
fine-tuned on cached conv4 activations (:mod:`app.training.finetune`).
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
from app.options import FEATURE_SETS, TrainOptions
from app.training import dataset as datasets
from app.training import evaluation, weights
from app.training.crossval import Measured, measure
from app.training.features import FeatureCache, View, featurize_views, mirrored
from app.training.heads import fit_head
from app.training.progress import Reporter

AGREEMENT_PHOTOS = 64  # photos the exported OpenVINO model is checked against Keras on


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
    backbone_info: dict[str, Any]
    history: dict[str, list[float]]
    measured: Measured
    measured_samples: list[datasets.Sample]  # the photos measured, rows of measured.judged
    report: dict[str, Any]  # out-of-sample accuracy, per-class scores, confusion matrix
    reference_indices: list[int]  # samples whose final-model probabilities are known...
    reference_probabilities: np.ndarray  # ...from the features (for the OpenVINO check)
    feature_counts: dict[str, int]
    trained_on: int  # photos the published model was fitted on
    timings: dict[str, float] = field(default_factory=dict)


@contextmanager
def timed(timings: dict[str, float], phase: str) -> Iterator[None]:
    started = time.monotonic()
    try:
        yield
    finally:
        timings[phase] = round(time.monotonic() - started, 2)


def feature_set(options: TrainOptions) -> models.FeatureSet:
    return models.FeatureSet(FEATURE_SETS[options.features], options.input_size)


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
    features = feature_set(recipe)
    with timed(timings, "weights"):
        reporter.phase("weights", f"backbone weights: {config.weights}")
        weights_path = weights.resolve(config.weights)
        backbone = models.build_stage_backbone(weights_path, tuple(t for t, _ in features.taps))
        backbone_info = {
            "name": models.BACKBONE_NAME,
            "weights": config.weights,
            "weights_file": weights_path.name if weights_path else None,
            "weights_digest": weights.weights_digest(backbone),
        }
    extractor = models.build_set_extractor(backbone, features)
    with timed(timings, "features"):
        views, kept, computed = _features(
            config, data, extractor, features, backbone_info, reporter
        )
    samples = [data.samples[i] for i in kept]
    labels = np.array([s.label for s in samples])
    classes = len(data.class_names)
    with timed(timings, "evaluate"):
        reporter.phase("evaluate", _evaluating(recipe, len(samples)))
        measured = measure(recipe, views, labels, samples, classes, reporter)
        reporter.line(f"  {measured.describe()}")
        predicted = measured.probabilities.argmax(axis=1)
        report = evaluation.classification_report(
            labels[measured.judged], predicted, data.class_names
        )
        report["accuracy"] = measured.accuracy  # the mean over folds, as reported
    with timed(timings, "train_head"):
        rows = _final_rows(recipe, measured, len(samples))
        reporter.phase("train_head", f"the published head, on {int(rows.sum())} photos")
        head = fit_head(recipe, views, labels, samples, rows, classes, reporter)
    classifier = models.chain(extractor, head.graph())
    reference = list(range(min(AGREEMENT_PHOTOS, len(samples))))
    return TrainedModel(
        config,
        data,
        classifier,
        backbone_info,
        {**head.history, "fold_accuracy": measured.accuracies},
        measured,
        samples,
        report,
        [kept[i] for i in reference],
        head.predict(views[0][reference]),
        {"computed": computed, "cached": len(kept) - computed},
        int(rows.sum()),
        timings,
    )


def _evaluating(recipe: TrainOptions, photos: int) -> str:
    if recipe.folds == 0:
        return f"holdout of {recipe.validation_split:.0%} of {photos} photos per class"
    return f"{recipe.folds}-fold cross-validation over {photos} photos"


def _final_rows(recipe: TrainOptions, measured: Measured, count: int) -> np.ndarray:
    """Every photo after a cross-validation; only the training part of a holdout split."""
    rows = np.ones(count, bool)
    if recipe.folds == 0:
        rows[measured.judged] = False
    return rows


def _features(
    config: TrainConfig,
    data: datasets.Dataset,
    extractor: Any,
    features: models.FeatureSet,
    info: dict[str, Any],
    reporter: Reporter,
) -> tuple[list[np.ndarray], list[int], int]:
    """Every view of every readable photo, from the cache or computed once."""
    extract = _batch_predictor(extractor)
    digest, root = info["weights_digest"], config.feature_cache
    views = [View(extract, FeatureCache(root, digest, features.dim, features.key))]
    if config.options.flips:
        cache = FeatureCache(root, digest, features.dim, f"{features.key}/mirrored")
        views.append(View(mirrored(extract), cache))
    shown = "photos and their mirror images" if config.options.flips else "photos"
    reporter.phase("features", f"{features.key}: features of the {shown} (cached)")
    arrays, kept, computed = featurize_views(
        data, views, config.options.batch_size, reporter.progress
    )
    reporter.line(
        f"  {computed} computed, {len(kept) - computed} from the cache ({views[0].cache.folder})"
    )
    if data.skipped:
        reporter.line(f"  skipped {len(data.skipped)} unreadable image(s)")
    _require_every_class(data, kept, config.options.folds)
    return arrays, kept, computed


def _batch_predictor(model: Any) -> Callable[[np.ndarray], np.ndarray]:
    def predict(images: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict_on_batch(images.astype(np.float32)), dtype=np.float32)

    return predict


def _require_every_class(data: datasets.Dataset, kept: list[int], folds: int) -> None:
    present = {data.samples[i].label for i in kept}
    empty = [name for label, name in enumerate(data.class_names) if label not in present]
    if empty:
        raise datasets.DatasetError(f"no readable images in class folder(s): {', '.join(empty)}")
    readable = np.bincount([data.samples[i].label for i in kept], minlength=len(data.class_names))
    counts = dict(zip(data.class_names, map(int, readable), strict=True))
    datasets.require_class_sizes(counts, max(datasets.MIN_IMAGES_PER_CLASS, folds))
