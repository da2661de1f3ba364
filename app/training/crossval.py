"""How a recipe's accuracy is measured: k-fold cross-validation on cached features.

Each photo is predicted exactly once, by a head fitted on the other folds (its penalty, when
chosen, chosen inside those folds too): the out-of-fold predictions give the confusion matrix
and per-class scores, the folds' accuracies give the mean and its spread.  With ``folds = 0``, one
stratified holdout split is measured instead, as the tutorial did.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from app.options import TrainOptions
from app.training.dataset import Sample, stratified_split
from app.training.folds import stratified_folds
from app.training.heads import fit_head
from app.training.progress import Reporter


@dataclass(frozen=True)
class Measured:
    """Out-of-sample predictions of a recipe, and how they were obtained."""

    method: str  # "5-fold cross-validation" or "holdout"
    accuracies: list[float]  # one per fold (one for a holdout)
    judged: np.ndarray  # indices (rows of the views) that were predicted
    probabilities: np.ndarray  # their out-of-sample probabilities, in that order
    seed: int

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.accuracies))

    @property
    def spread(self) -> float:
        return float(np.std(self.accuracies))

    def describe(self) -> str:
        if len(self.accuracies) == 1:
            return f"holdout: {self.accuracy:.4f} on {len(self.judged)} photos (seed {self.seed})"
        folds = ", ".join(f"{a:.3f}" for a in self.accuracies)
        return (
            f"{self.method} (seed {self.seed}): {self.accuracy:.4f} +- {self.spread:.4f} over "
            f"{len(self.judged)} photos (folds {folds})"
        )


def measure(
    options: TrainOptions,
    views: Sequence[np.ndarray],
    labels: np.ndarray,
    samples: Sequence[Sample],
    classes: int,
    reporter: Reporter,
) -> Measured:
    """The recipe's out-of-sample accuracy on these photos (``samples`` aligned with rows)."""
    if options.folds == 0:
        return _holdout(options, views, labels, samples, classes)
    folds = stratified_folds(samples, options.folds, options.seed)
    judged, probabilities, accuracies = [], [], []
    for fold in range(options.folds):
        test = folds == fold
        head = fit_head(options, views, labels, samples, ~test, classes)
        predicted = head.predict(views[0][test])
        accuracies.append(float((predicted.argmax(1) == labels[test]).mean()))
        judged.append(np.flatnonzero(test))
        probabilities.append(predicted)
        reporter.progress(fold + 1, options.folds, unit="folds")
        reporter.line(f"  fold {fold + 1}/{options.folds}  accuracy {accuracies[-1]:.4f}")
    order = np.concatenate(judged)
    return Measured(
        f"{options.folds}-fold cross-validation",
        accuracies,
        order,
        np.concatenate(probabilities),
        options.seed,
    )


def _holdout(
    options: TrainOptions,
    views: Sequence[np.ndarray],
    labels: np.ndarray,
    samples: Sequence[Sample],
    classes: int,
) -> Measured:
    train, validation = stratified_split(samples, options.validation_split, options.seed)
    rows = np.zeros(len(samples), bool)
    rows[train] = True
    head = fit_head(options, views, labels, samples, rows, classes)
    predicted = head.predict(views[0][validation])
    accuracy = float((predicted.argmax(1) == labels[validation]).mean())
    return Measured("holdout", [accuracy], np.asarray(validation), predicted, options.seed)
