"""A recipe fitted on some photos and judged on others: the head alone, or the head then conv5
fine-tuned on cached activations (whose weights are restored after each measurement).

With ``--no-fine-tune-in-folds`` a fine-tuning recipe is judged by its head alone: the folds
measure the frozen backbone's head (a lower bound), and only the published model is fine-tuned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from app.ml import network as models
from app.options import TrainOptions
from app.training import dataset as datasets
from app.training.finetune import FineTuner
from app.training.heads import FittedHead, fit_head
from app.training.progress import Reporter


def tunes_in_folds(options: TrainOptions) -> bool:
    """Whether each fold fine-tunes conv5, so that what is measured is the fine-tuned recipe."""
    return options.fine_tune_epochs > 0 and options.fine_tune_in_folds


def tunes_after_folds(options: TrainOptions) -> bool:
    """Whether only the published model is fine-tuned, so that the folds measure the head alone."""
    return options.fine_tune_epochs > 0 and not options.fine_tune_in_folds


def fine_tuning(options: TrainOptions) -> tuple[int, bool, float] | None:
    """How a recipe fine-tunes conv5 (epochs, in the folds or not, learning rate), or None."""
    if not options.fine_tune_epochs:
        return None
    return options.fine_tune_epochs, options.fine_tune_in_folds, options.fine_tune_learning_rate


@dataclass
class RecipeFitter:
    """The recipe fitted on some photos and judged on others: the head alone, or the head then
    conv5 fine-tuned (whose weights are restored after each measurement)."""

    options: TrainOptions
    backbone: Any
    features: models.FeatureSet
    views: list[np.ndarray]
    activations: list[np.ndarray]
    labels: np.ndarray
    samples: list[datasets.Sample]
    classes: int
    reporter: Reporter | None = None  # a holdout's head is the published one: show its epochs
    last_head: FittedHead | None = None
    last_rows: np.ndarray | None = None

    def fit_and_predict(self, train: np.ndarray, test: np.ndarray) -> np.ndarray:
        reporter = self.reporter if self.options.folds == 0 else None
        head = fit_head(
            self.options, self.views, self.labels, self.samples, train, self.classes, reporter
        )
        self.last_head, self.last_rows = head, train
        if not tunes_in_folds(self.options):
            return head.predict(self.views[0][test])
        tuner = FineTuner(self.backbone, self.features, head.graph())
        tuner.fit(self.options, self.activations, self.labels, train)
        predicted = tuner.predict(self.activations[0], test)
        tuner.restore()
        return predicted

    def published_head(self, rows: np.ndarray) -> FittedHead:
        """The head to publish, fitted on ``rows``: the last one measured when it was fitted on
        exactly these photos (a holdout's training part) and left unchanged."""
        same = self.last_rows is not None and np.array_equal(self.last_rows, rows)
        if same and self.last_head is not None and not tunes_in_folds(self.options):
            return self.last_head
        return fit_head(
            self.options, self.views, self.labels, self.samples, rows, self.classes, self.reporter
        )
