"""How a recipe's accuracy is measured: k-fold cross-validation on cached features.

Each photo is predicted exactly once, by a head fitted on the other folds (its penalty, when
chosen, chosen inside those folds too): the out-of-fold predictions give the confusion matrix
and per-class scores, the folds' accuracies give the mean and its spread.  With ``folds = 0``, one
stratified holdout split is measured instead, as the tutorial did.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from app.options import TrainOptions
from app.training.dataset import Sample, stratified_split
from app.training.folds import stratified_folds
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


# Fits the recipe on the photos of a training mask and returns its probabilities for the photos
# of a test mask (rows aligned with ``samples``).
FitAndPredict = Callable[[np.ndarray, np.ndarray], np.ndarray]


def measure(
    options: TrainOptions,
    fit_and_predict: FitAndPredict,
    labels: np.ndarray,
    samples: Sequence[Sample],
    reporter: Reporter,
) -> Measured:
    """The recipe's out-of-sample accuracy on these photos (``samples`` aligned with rows)."""
    if options.folds == 0:
        return _holdout(options, fit_and_predict, labels, samples)
    folds = stratified_folds(samples, options.folds, options.seed)
    judged, probabilities, accuracies = [], [], []
    for fold in range(options.folds):
        test = folds == fold
        predicted = fit_and_predict(~test, test)
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
    fit_and_predict: FitAndPredict,
    labels: np.ndarray,
    samples: Sequence[Sample],
) -> Measured:
    train, validation = stratified_split(samples, options.validation_split, options.seed)
    rows = np.zeros(len(samples), bool)
    rows[train] = True
    predicted = fit_and_predict(rows, ~rows)
    accuracy = float((predicted.argmax(1) == labels[validation]).mean())
    return Measured("holdout", [accuracy], np.asarray(validation), predicted, options.seed)
