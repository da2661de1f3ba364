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

from app.ml import network as models
from app.ml.devices import configure_devices, keras
from app.ml.engines import Precision
from app.options import FEATURE_SETS, TrainOptions
from app.training import dataset as datasets
from app.training import evaluation, pairing, weights
from app.training.crossval import FitAndPredict, Measured, measure
from app.training.features import FeatureCache, View, featurize_views, mirrored, shared_outputs
from app.training.finetune import ENTRY, FineTuner, HeldOut, TunedHead, activation_views
from app.training.heads import FittedHead
from app.training.progress import Reporter
from app.training.quantize import FoldHeads
from app.training.recipe import RecipeFitter, tunes_after_folds, tunes_in_folds

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
    eval_dir: Path | None = None  # labelled photos never trained on (app.training.evalset)


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
    # if_better: this run's recipe and the active version's on the same folds, or why not
    paired: pairing.Paired | str | None = None
    # the heads that judge held-out photos, each with the photos it held out (INT8's check): the
    # measured ones, or the fine-tuned published head with the photos its fine-tuning kept out
    fold_heads: FoldHeads | None = None
    held_out: HeldOut | None = None  # the fine-tuned published model on the photos kept out


@contextmanager
def timed(timings: dict[str, float], phase: str) -> Iterator[None]:
    started = time.monotonic()
    try:
        yield
    finally:
        timings[phase] = round(time.monotonic() - started, 2)


def feature_set(options: TrainOptions) -> models.FeatureSet:
    return models.FeatureSet(FEATURE_SETS[options.features], options.input_size)


@dataclass
class Prepared:
    """Everything a recipe is fitted from: the backbone, and every readable photo's views."""

    backbone: Any
    features: models.FeatureSet
    extractor: Any
    backbone_info: dict[str, Any]
    kept: list[int]  # indices into the dataset's samples
    samples: list[datasets.Sample]
    labels: np.ndarray
    computed: int
    fitter: RecipeFitter


def prepare(
    config: TrainConfig, data: datasets.Dataset, reporter: Reporter, timings: dict[str, float]
) -> Prepared:
    """The backbone and every photo's features (and activations), from the cache or computed."""
    device = configure_devices()  # GPU memory growth; the CPU otherwise
    reporter.line(f"  training on {device.name} ({device.backend})")
    options = config.options
    keras.utils.set_random_seed(options.seed)  # also fixes random backbone weights (weights=none)
    if options.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    features = feature_set(options)
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
        views, activations, kept, computed = _features(
            config, data, backbone, extractor, features, backbone_info, reporter
        )
    samples = [data.samples[i] for i in kept]
    labels = np.array([s.label for s in samples])
    classes = len(data.class_names)
    fitter = RecipeFitter(
        options, backbone, features, views, activations, labels, samples, classes, reporter
    )
    return Prepared(
        backbone, features, extractor, backbone_info, kept, samples, labels, computed, fitter
    )


def evaluate(
    prepared: Prepared,
    options: TrainOptions,
    data: datasets.Dataset,
    reporter: Reporter,
    timings: dict[str, float],
    kept_heads: list[tuple[np.ndarray, FittedHead]] | None = None,
) -> tuple[Measured, dict[str, Any]]:
    """The recipe's out-of-sample accuracy (``options`` may differ from the prepared run's in
    anything that keeps the features: folds, seed, head, penalty, fine-tuning). ``kept_heads``
    receives each measured head with the photos it held out (the head alone: not fine-tuned)."""
    prepared.fitter.options = options
    flipped: list[float] = []  # each fold's accuracy with test-time flips (FLOWERS_TTA=flip)
    fit_and_predict: FitAndPredict = prepared.fitter.fit_and_predict
    if options.flips and not tunes_in_folds(options):
        fit_and_predict = _also_flip_averaged(prepared.fitter, flipped)
    if kept_heads is not None and not tunes_in_folds(options):
        fit_and_predict = _keeping_heads(prepared.fitter, fit_and_predict, kept_heads)
    with timed(timings, "evaluate"):
        reporter.phase("evaluate", _evaluating(options, len(prepared.samples)))
        measured = measure(options, fit_and_predict, prepared.labels, prepared.samples, reporter)
        reporter.line(f"  {measured.describe()}")
        predicted = measured.probabilities.argmax(axis=1)
        truth = prepared.labels[measured.judged]
        report = evaluation.classification_report(truth, predicted, data.class_names)
        report["accuracy"] = measured.accuracy  # the mean over folds, as reported
        if flipped:
            report["tta_flip"] = _flip_gain(flipped, measured)
            gain = report["tta_flip"]
            reporter.line(
                f"  with test-time flips (FLOWERS_TTA=flip): {gain['accuracy']:.4f} "
                f"({gain['gain']:+.4f}; folds {', '.join(f'{a:.3f}' for a in flipped)})"
            )
    return measured, report


def train(
    config: TrainConfig, data: datasets.Dataset, reporter: Reporter, timings: dict[str, float]
) -> TrainedModel:
    """Run every phase after the scan, up to (not including) publishing."""
    options = config.options
    prepared = prepare(config, data, reporter, timings)
    kept_heads: list[tuple[np.ndarray, FittedHead]] = []
    measured, report = evaluate(prepared, options, data, reporter, timings, kept_heads)
    fitter, samples, labels = prepared.fitter, prepared.samples, prepared.labels
    paired = None
    if options.activate == "if_better":
        with timed(timings, "compare"):
            digest = prepared.backbone_info["weights_digest"]
            paired = pairing.compare_with_active(
                fitter, options, measured, config.model_store, digest, data.class_names, reporter
            )
    rows = _final_rows(options, measured, len(samples))
    # Fine-tuning the published model only: the last fold stays out of it, to judge it
    kept_out = _kept_out(options, kept_heads, len(samples))
    if kept_out is not None:
        rows &= ~kept_out
    with timed(timings, "train_head"):
        reporter.phase("train_head", f"the published head, on {int(rows.sum())} photos")
        head = fitter.published_head(rows)
    head_graph, history = head.graph(), {**head.history, "fold_accuracy": measured.accuracies}
    held_out, fold_heads = None, _fold_heads(kept_heads, len(samples))
    if options.fine_tune_epochs:
        with timed(timings, "fine_tune"):
            alone = "" if kept_out is None else ", the published model only"
            reporter.phase(
                "fine_tune",
                f"conv5 and the head, {options.fine_tune_epochs} epochs, on "
                f"{int(rows.sum())} photos{alone}",
            )
            tuner = FineTuner(prepared.backbone, prepared.features, head_graph)
            history |= tuner.fit(options, fitter.activations, labels, rows, reporter)
            if kept_out is not None:
                held_out = _judge_kept_out(tuner, head, fitter, kept_out, reporter)
                # the INT8 check judges those photos by the published head: it never saw them
                fold_heads = FoldHeads([TunedHead(head_graph)], np.where(kept_out, 0, -1))
    classifier = models.chain(prepared.extractor, head_graph)
    kept = prepared.kept
    reference = [kept[i] for i in range(min(AGREEMENT_PHOTOS, len(samples)))]
    return TrainedModel(
        config,
        data,
        classifier,
        prepared.backbone_info,
        history,
        measured,
        samples,
        report,
        reference,
        _reference_probabilities(classifier, data, reference),
        {"computed": prepared.computed, "cached": len(kept) - prepared.computed},
        int(rows.sum()),
        timings,
        paired,
        fold_heads,
        held_out,
    )


def _kept_out(
    options: TrainOptions, kept_heads: list[tuple[np.ndarray, FittedHead]], count: int
) -> np.ndarray | None:
    """The photos the published model's fine-tuning keeps out when the folds measured the head
    alone: the last fold's (whose measured head is then the published model's first head)."""
    if not tunes_after_folds(options) or not kept_heads:
        return None
    kept_out = np.zeros(count, bool)
    kept_out[kept_heads[-1][0]] = True
    return kept_out


def _judge_kept_out(
    tuner: FineTuner,
    head: FittedHead,
    fitter: RecipeFitter,
    kept_out: np.ndarray,
    reporter: Reporter,
) -> HeldOut:
    """The fine-tuned model and the head it started from on the photos kept out of both."""
    truth = fitter.labels[kept_out]
    tuned = tuner.predict(fitter.activations[0], kept_out).argmax(axis=1)
    alone = head.predict(fitter.views[0][kept_out]).argmax(axis=1)
    held_out = HeldOut(
        int(kept_out.sum()), float((alone == truth).mean()), float((tuned == truth).mean())
    )
    reporter.line(
        f"  on the {held_out.photos} photos kept out: {held_out.fine_tuned:.4f} fine-tuned, "
        f"{held_out.head_alone:.4f} the head alone ({held_out.gain:+.4f})"
    )
    return held_out


def _reference_probabilities(classifier: Any, data: datasets.Dataset, reference: list[int]) -> Any:
    """The published model's probabilities on the reference photos (the OpenVINO check's)."""
    images, _ = datasets.load_images(data, reference)
    return np.asarray(classifier.predict(images.astype(np.float32), batch_size=16, verbose=0))


def _keeping_heads(
    fitter: RecipeFitter,
    fit_and_predict: FitAndPredict,
    kept: list[tuple[np.ndarray, FittedHead]],
) -> FitAndPredict:
    def keeping(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        predicted = fit_and_predict(train, test)
        assert fitter.last_head is not None
        kept.append((np.flatnonzero(test), fitter.last_head))
        return predicted

    return keeping


def _fold_heads(kept: list[tuple[np.ndarray, FittedHead]], rows: int) -> FoldHeads | None:
    if not kept:
        return None
    fold_of = np.full(rows, -1)
    for fold, (held_out, _) in enumerate(kept):
        fold_of[held_out] = fold
    return FoldHeads([head for _, head in kept], fold_of)


def _also_flip_averaged(fitter: RecipeFitter, accuracies: list[float]) -> FitAndPredict:
    """The recipe's fit_and_predict, also noting each fold's accuracy when the head's answers on
    a photo and on its mirror image (cached features both) are averaged, as FLOWERS_TTA=flip
    serves. What it returns, and so what is measured and published, is unchanged."""

    def fit_and_predict(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        predicted = fitter.fit_and_predict(train, test)
        assert fitter.last_head is not None
        averaged = (predicted + fitter.last_head.predict(fitter.views[1][test])) / 2
        accuracies.append(float((averaged.argmax(1) == fitter.labels[test]).mean()))
        return predicted

    return fit_and_predict


def _flip_gain(accuracies: list[float], measured: Measured) -> dict[str, Any]:
    accuracy = float(np.mean(accuracies))
    return {
        "fold_accuracies": [round(a, 4) for a in accuracies],
        "accuracy": round(accuracy, 4),
        "gain": round(accuracy - measured.accuracy, 4),
    }


def _evaluating(options: TrainOptions, photos: int) -> str:
    head_alone = ""
    if options.fine_tune_epochs and not tunes_in_folds(options):
        head_alone = ", the head alone (conv5 is fine-tuned for the published model only)"
    if options.folds == 0:
        return f"holdout of {options.validation_split:.0%} of {photos} photos per class{head_alone}"
    return f"{options.folds}-fold cross-validation over {photos} photos{head_alone}"


def _final_rows(options: TrainOptions, measured: Measured, count: int) -> np.ndarray:
    """Every photo after a cross-validation; only the training part of a holdout split."""
    rows = np.ones(count, bool)
    if options.folds == 0:
        rows[measured.judged] = False
    return rows


def _features(
    config: TrainConfig,
    data: datasets.Dataset,
    backbone: Any,
    extractor: Any,
    features: models.FeatureSet,
    info: dict[str, Any],
    reporter: Reporter,
) -> tuple[list[np.ndarray], list[np.ndarray], list[int], int]:
    """Every view of every readable photo, from the cache or computed from one decode: the
    features, and (to fine-tune) conv4's activations."""
    options, digest, root = config.options, info["weights_digest"], config.feature_cache
    extract = _batch_predictor(extractor)
    extract_mirrored = mirrored(extract)
    tuning = []
    if options.fine_tune_epochs:  # conv4's maps too, from the features' pass
        both = _batch_outputs(models.build_set_extractor(backbone, features, also_tap=ENTRY))
        extract, tapped = shared_outputs(both, 2)
        extract_mirrored, tapped_mirrored = shared_outputs(mirrored(both), 2)
        tuning = activation_views(options, features, root, digest, tapped, tapped_mirrored)
    views = [View(extract, FeatureCache(root, digest, features.dim, features.key))]
    if options.flips:
        cache = FeatureCache(root, digest, features.dim, f"{features.key}/mirrored")
        views.append(View(extract_mirrored, cache))
    shown = "photos and their mirror images" if options.flips else "photos"
    kinds = "features and conv4 activations" if tuning else "features"
    reporter.phase("features", f"{features.key}: {kinds} of the {shown} (cached)")
    arrays, kept, computed = featurize_views(
        data, [*views, *tuning], options.batch_size, reporter.progress
    )
    reporter.line(
        f"  {computed} computed, {len(kept) - computed} from the cache ({views[0].cache.folder})"
    )
    if data.skipped:
        reporter.line(f"  skipped {len(data.skipped)} unreadable image(s)")
    _require_every_class(data, kept, options.folds)
    return arrays[: len(views)], arrays[len(views) :], kept, computed


def _batch_predictor(model: Any) -> Callable[[np.ndarray], np.ndarray]:
    def predict(images: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict_on_batch(images.astype(np.float32)), dtype=np.float32)

    return predict


def _batch_outputs(model: Any) -> Callable[[np.ndarray], list[np.ndarray]]:
    def predict(images: np.ndarray) -> list[np.ndarray]:
        outputs = model.predict_on_batch(images.astype(np.float32))
        return [np.asarray(output, dtype=np.float32) for output in outputs]

    return predict


def _require_every_class(data: datasets.Dataset, kept: list[int], folds: int) -> None:
    present = {data.samples[i].label for i in kept}
    empty = [name for label, name in enumerate(data.class_names) if label not in present]
    if empty:
        raise datasets.DatasetError(f"no readable images in class folder(s): {', '.join(empty)}")
    readable = np.bincount([data.samples[i].label for i in kept], minlength=len(data.class_names))
    counts = dict(zip(data.class_names, map(int, readable), strict=True))
    datasets.require_class_sizes(counts, max(datasets.MIN_IMAGES_PER_CLASS, folds))
