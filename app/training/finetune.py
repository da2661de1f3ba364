"""Fine-tuning the last ResNet stage (conv5) on cached conv4 activations.

Unfreezing conv5 used to mean running all of ResNet-50 at every step.  The layers before conv5
stay frozen, so what enters conv5 (conv4's output: 12x12x1024 for a 180-pixel photo) only
changes with the photo, the preprocessing, the backbone and the input size: it is computed once
and cached beside the features (float16, about 295 KB a photo and as much for its mirror image),
keyed like them, and a fine-tuning epoch runs conv5 and the head only.

BatchNorm stays in inference mode (its statistics frozen); the head starts from the fitted one.
The fine-tuned conv5 layers are the backbone's own (shared weights), so the published model is
the same one graph taking raw RGB, with nothing new for the service.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from app.ml import network as models
from app.ml.devices import keras
from app.options import TrainOptions
from app.training.features import Extractor, FeatureCache, View
from app.training.heads import epoch_lines, predict_in_batches
from app.training.progress import Reporter

ENTRY: Final = "conv4_block6_out"  # what conv5 is fed: cached
LAST: Final = "conv5_block3_out"
_STRIDE: Final = 16  # conv4's maps are the input's side / 16
# What fine-tuning adds, measured once (docs/training.md's lever table): recorded in a version's
# metadata when its folds measured the head alone (--no-fine-tune-in-folds).
MEASURED_ONCE: Final = {
    "recipe": "the default's features and head (conv4-conv5-gem at 224 px, linear head, "
    "mirror images), conv5 fine-tuned 4 epochs in every fold",
    "photos": "3,070 of flower_photos",
    "method": "5-fold cross-validation, fold seeds 1 and 2",
    "head_alone": 0.9230,
    "fine_tuned": 0.9329,
    "gain": 0.0099,
    "source": "docs/training.md, the lever table",
}


@dataclass(frozen=True)
class HeldOut:
    """The published fine-tuned model, and the head it started from, on the photos its
    fine-tuning kept out (``--no-fine-tune-in-folds``: the last fold's)."""

    photos: int
    head_alone: float
    fine_tuned: float

    @property
    def gain(self) -> float:
        return self.fine_tuned - self.head_alone

    def as_metadata(self) -> dict[str, Any]:
        return {
            "photos": self.photos,
            "head_alone": round(self.head_alone, 4),
            "fine_tuned": round(self.fine_tuned, 4),
            "gain": round(self.gain, 4),
        }


def fine_tuning_record(
    options: TrainOptions, held_out: HeldOut | None = None
) -> dict[str, Any] | None:
    """What a version's metadata says of its fine-tuning: whether the accuracy measured is the
    fine-tuned recipe's, and, where it is not, what fine-tuning added on the fold the published
    model's fine-tuning kept out, and when it was measured once by cross-validation."""
    if not options.fine_tune_epochs:
        return None
    record: dict[str, Any] = {"published": True, "epochs": options.fine_tune_epochs}
    if options.fine_tune_in_folds:
        return {**record, "measured": "in every fold: the accuracy is the fine-tuned recipe's"}
    return {
        **record,
        "measured": "not in the folds (--no-fine-tune-in-folds): the accuracy is the head's "
        "alone on the frozen backbone, a lower bound; conv5 was fine-tuned for the published "
        "model only, on every photo but the last fold's, which judge it (held_out)",
        **({"held_out": held_out.as_metadata()} if held_out is not None else {}),
        "measured_once": MEASURED_ONCE,
    }


@dataclass(frozen=True)
class TunedHead:
    """The fine-tuned head, read on the features (the INT8 check's judge of the photos that the
    fine-tuning kept out)."""

    graph: Any

    def predict(self, features: np.ndarray) -> np.ndarray:
        return predict_in_batches(self.graph, features)


class FineTuneError(ValueError):
    """The recipe's feature set cannot be fine-tuned from conv4's activations."""


def activation_views(
    options: TrainOptions,
    features: models.FeatureSet,
    root: Path,
    digest: str,
    extract: Extractor,
    extract_mirrored: Extractor,
) -> list[View]:
    """conv4's activations of each photo (and of its mirror image), cached in float16; the
    extractors are the features' own pass's second output (``build_set_extractor(...,
    also_tap=ENTRY)``)."""
    check_taps(features)
    views = [View(extract, activation_cache(root, digest, features.input_size))]
    if options.flips:
        views.append(
            View(extract_mirrored, activation_cache(root, digest, features.input_size, True))
        )
    return views


def activation_cache(
    root: Path, digest: str, input_size: int, of_mirror: bool = False
) -> FeatureCache:
    """Where conv4's activations are cached: keyed like the features (preprocessing, backbone,
    image digest), by the input size, and apart for mirror images."""
    side = -(-input_size // _STRIDE)
    name = f"activations/{ENTRY}@{input_size}" + ("/mirrored" if of_mirror else "")
    return FeatureCache(root, digest, (side, side, models.TAP_DIMS[ENTRY]), name, "float16")


def check_taps(features: models.FeatureSet) -> None:
    unknown = [layer for layer, _ in features.taps if layer not in (ENTRY, LAST)]
    if unknown:
        raise FineTuneError(
            f"fine-tuning starts from {ENTRY}: the feature set's taps {unknown} come before it"
        )


class FineTuner:
    """conv4 activations -> (conv4 pooled, conv5 -> pooled) -> the head, conv5 and head trained."""

    def __init__(self, backbone: Any, features: models.FeatureSet, head_graph: Any) -> None:
        tail = models.build_stage_tail(backbone, ENTRY, LAST)
        self._convolutions = _unfrozen_convolutions(tail)
        side = -(-features.input_size // _STRIDE)
        inputs = keras.Input((side, side, models.TAP_DIMS[ENTRY]), name="conv4_activations")
        maps = {ENTRY: inputs, LAST: tail(inputs, training=False)}
        pooled = [
            models.pooling_layer(pooling, f"tune_pool_{index}")(maps[layer])
            for index, (layer, pooling) in enumerate(features.taps)
        ]
        vector = pooled[0] if len(pooled) == 1 else keras.layers.Concatenate()(pooled)
        for layer in head_graph.layers:  # the standardisation stays fixed
            layer.trainable = not isinstance(layer, keras.layers.Normalization)
        self.model = keras.Model(inputs, head_graph(vector), name="fine_tuner")
        self._start = [layer.get_weights() for layer in self._trained_layers(head_graph)]
        self._head_graph = head_graph

    def _trained_layers(self, head_graph: Any) -> list[Any]:
        return [*self._convolutions, *(layer for layer in head_graph.layers if layer.weights)]

    def fit(
        self,
        options: TrainOptions,
        activations: Sequence[np.ndarray],
        labels: np.ndarray,
        rows: np.ndarray,
        reporter: Reporter | None = None,
    ) -> dict[str, list[float]]:
        """Fine-tune on every view of the photos selected by ``rows``; the epochs' history."""
        keras.utils.set_random_seed(options.seed)
        self.model.compile(
            optimizer=keras.optimizers.Adam(options.fine_tune_learning_rate),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        epochs = options.fine_tune_epochs
        batches = ActivationBatches(activations, labels, rows, options.batch_size, options.seed)
        fitted = self.model.fit(
            batches,
            epochs=epochs,
            verbose=0,
            callbacks=[epoch_lines(reporter, "fine_tune", epochs)] if reporter else [],
        )
        return {
            f"fine_tune_{k}": [float(v) for v in values] for k, values in fitted.history.items()
        }

    def predict(self, activations: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """The probabilities of the photos selected by ``rows``, read batch by batch."""
        return predict_in_batches(self.model, activations, np.arange(len(activations))[rows])

    def restore(self) -> None:
        """Back to the weights it started from (the frozen conv5 and the fitted head)."""
        for layer, weights in zip(self._trained_layers(self._head_graph), self._start, strict=True):
            layer.set_weights(weights)


class ActivationBatches(keras.utils.PyDataset):  # type: ignore[misc]
    """Every view of the photos selected by ``rows``, one shuffled batch at a time.

    Each batch is read from the cached arrays by index and made float32 on its own, so an epoch
    holds one batch beside the cache instead of copies of every training row (handed to Keras as
    arrays, the training rows of both views were concatenated, then copied again into a tensor:
    at 224 pixels and 3,070 photos, gigabytes per fold).  The order is drawn from the recipe's
    seed, anew each epoch.
    """

    def __init__(
        self,
        views: Sequence[np.ndarray],
        labels: np.ndarray,
        rows: np.ndarray,
        batch_size: int,
        seed: int,
    ) -> None:
        super().__init__()
        self._views, self._labels, self._batch_size = views, labels, batch_size
        chosen = np.arange(len(labels))[rows]
        # (view, photo) for every training example: each view is a photo seen another way
        self._examples = np.stack(
            [np.repeat(np.arange(len(views)), len(chosen)), np.tile(chosen, len(views))], axis=1
        )
        self._random = np.random.default_rng(seed)
        self._order = self._random.permutation(len(self._examples))

    @property
    def num_batches(self) -> int:
        return -(-len(self._examples) // self._batch_size)

    def __len__(self) -> int:
        return self.num_batches

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        start = index * self._batch_size
        examples = self._examples[self._order[start : start + self._batch_size]]
        first = self._views[0]
        inputs = np.empty((len(examples), *first.shape[1:]), np.float32)
        for view_index, view in enumerate(self._views):
            mine = examples[:, 0] == view_index
            inputs[mine] = view[examples[mine, 1]]
        return inputs, self._labels[examples[:, 1]]

    def on_epoch_end(self) -> None:
        self._order = self._random.permutation(len(self._examples))


def _unfrozen_convolutions(tail: Any) -> list[Any]:
    """conv5's convolutions become trainable; its BatchNorm layers stay frozen."""
    convolutions = []
    for layer in tail.layers:
        layer.trainable = isinstance(layer, keras.layers.Conv2D)
        if layer.trainable:
            convolutions.append(layer)
    return convolutions
