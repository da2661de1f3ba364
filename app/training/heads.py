"""The trained part of a recipe: a head fitted on cached features, and the graph it becomes.

- ``linear``: softmax regression with L2 on standardised features (:mod:`app.training.linear`);
  its penalty is the recipe's, or (``l2 = 0``) chosen by a 3-fold cross-validation inside the
  photos it is fitted on.
- ``mlp``: the tutorial's Dense(512) -> Dropout -> Dense, trained with Adam for some epochs.

Every view of a photo (original, mirrored) is a training row; photos are judged on the original.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from app.ml import network as models
from app.ml.devices import keras
from app.options import TrainOptions
from app.training.dataset import Sample
from app.training.folds import stratified_folds
from app.training.linear import LinearHead, choose_l2, fit_views
from app.training.progress import Reporter

L2_CANDIDATES = (1.0, 0.3, 0.1, 0.03, 0.01, 0.003)
INNER_FOLDS = 3


class FittedHead(Protocol):
    history: dict[str, list[float]]

    def predict(self, features: np.ndarray) -> np.ndarray: ...

    def graph(self) -> Any: ...


@dataclass
class LinearFit:
    head: LinearHead
    history: dict[str, list[float]] = field(default_factory=dict)

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.head.predict(features)

    def graph(self) -> Any:
        head = self.head
        return models.build_linear_head(head.mean, head.std, head.kernel, head.bias)


@dataclass
class MlpFit:
    model: Any
    history: dict[str, list[float]] = field(default_factory=dict)

    def predict(self, features: np.ndarray) -> np.ndarray:
        return predict_in_batches(self.model, features)

    def graph(self) -> Any:
        return self.model


def fit_head(
    options: TrainOptions,
    views: Sequence[np.ndarray],
    labels: np.ndarray,
    samples: Sequence[Sample],
    rows: np.ndarray,
    classes: int,
    reporter: Reporter | None = None,
) -> FittedHead:
    """Fit the recipe's head on the photos selected by ``rows`` (a boolean mask)."""
    if options.head == "linear":
        return _fit_linear(options, views, labels, samples, rows, classes)
    return _fit_mlp(options, views, labels, rows, classes, reporter)


def _fit_linear(
    options: TrainOptions,
    views: Sequence[np.ndarray],
    labels: np.ndarray,
    samples: Sequence[Sample],
    rows: np.ndarray,
    classes: int,
) -> LinearFit:
    history: dict[str, list[float]] = {}
    l2 = options.l2
    if l2 == 0:
        chosen = [samples[int(i)] for i in np.flatnonzero(rows)]
        inner = stratified_folds(chosen, INNER_FOLDS, options.seed + 1)
        subset = [view[rows] for view in views]
        l2, scores = choose_l2(subset, labels[rows], inner, classes, L2_CANDIDATES)
        history = {"l2": list(scores), "inner_accuracy": list(scores.values())}
    return LinearFit(fit_views(views, labels, rows, classes, l2), history)


def _fit_mlp(
    options: TrainOptions,
    views: Sequence[np.ndarray],
    labels: np.ndarray,
    rows: np.ndarray,
    classes: int,
    reporter: Reporter | None,
) -> MlpFit:
    keras.utils.set_random_seed(options.seed)  # the head's start depends on the seed alone
    model = models.build_head(classes, options.dropout, views[0].shape[1])
    model.compile(
        optimizer=keras.optimizers.Adam(options.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    callbacks = [epoch_lines(reporter, "head", options.epochs)] if reporter else []
    fitted = model.fit(
        np.concatenate([view[rows] for view in views]),
        np.concatenate([labels[rows]] * len(views)),
        epochs=options.epochs,
        batch_size=options.batch_size,
        shuffle=True,
        verbose=0,
        callbacks=callbacks,
    )
    history = {k: [float(v) for v in values] for k, values in fitted.history.items()}
    return MlpFit(model, history)


def predict_in_batches(
    model: Any, inputs: np.ndarray, rows: np.ndarray | None = None, batch_size: int = 64
) -> np.ndarray:
    """The model called on ``inputs`` (or on the rows of them that ``rows`` lists) batch by batch:
    model.predict would build a new traced function for every model, and folds make many; and
    the rows are read a batch at a time, never copied all at once."""
    chosen = np.arange(len(inputs)) if rows is None else rows
    parts = [
        np.asarray(model(inputs[chosen[start : start + batch_size]], training=False), np.float32)
        for start in range(0, len(chosen), batch_size)
    ]
    return np.concatenate(parts) if parts else np.zeros((0, model.output_shape[-1]), np.float32)


def epoch_lines(reporter: Reporter, phase: str, epochs: int) -> Any:
    """A Keras callback printing (and reporting as events) one line per epoch."""
    return _EpochLines(reporter, phase, epochs)


class _EpochLines(keras.callbacks.Callback):  # type: ignore[misc]
    def __init__(self, reporter: Reporter, phase: str, epochs: int) -> None:
        super().__init__()
        self.reporter, self.phase, self.epochs = reporter, phase, epochs

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        metrics = {k: float(v) for k, v in (logs or {}).items() if k != "learning_rate"}
        self.reporter.epoch(self.phase, epoch + 1, self.epochs, metrics)
