"""``if_better``, fairly: the active version's recipe re-measured on this run's photos and folds.

Comparing the new recipe's cross-validated accuracy with the figure the active version recorded
on the photos of *its* run is close to a coin flip: a fold spread of 1-2 points, and one added
photo moves every fold. Here both recipes are measured on the same folds of the same photos and
compared fold by fold (paired), so what differs is the recipe and nothing else:

- the same recipe as the active version's (a retrain after new photos): the difference is zero
  by construction, and nothing is re-measured;
- another recipe over the same features and backbone weights: the active version's recipe is
  fitted again on this run's folds, from the cached features (a few seconds a fold);
- anything else (other features, weights or classes, a recipe this run lacks the views for): no
  paired figure, and :func:`app.training.publishing.decide_activation` compares the recorded
  figures, saying why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import ValidationError

from app.options import PUBLISHING, TrainOptions
from app.store.versions import ModelStore, StoreError, Version
from app.training.crossval import Measured, measure
from app.training.progress import Reporter
from app.training.recipe import RecipeFitter, tunes_in_folds

DECIMALS = 4  # as every accuracy in the metadata
# What a recipe is: the options that change the measured accuracy (not how a run publishes).
NOT_RECIPE = PUBLISHING | {"examples", "batch_size", "mixed_precision"}


@dataclass(frozen=True)
class Paired:
    """Both recipes on the same folds of this run's photos."""

    version: int  # the active version whose recipe was re-measured
    same_recipe: bool
    accuracies: list[float]  # this run's recipe, per fold
    active_accuracies: list[float]  # the active version's recipe, per fold
    photos: int
    method: str

    @property
    def differences(self) -> list[float]:
        return [
            round(n - a, DECIMALS)
            for n, a in zip(self.accuracies, self.active_accuracies, strict=True)
        ]

    @property
    def difference(self) -> float:
        return round(float(np.mean(self.accuracies) - np.mean(self.active_accuracies)), DECIMALS)

    def describe(self) -> str:
        new, old = float(np.mean(self.accuracies)), float(np.mean(self.active_accuracies))
        recipe = (
            "the same recipe as active version {v}'s"
            if self.same_recipe
            else "active version {v}'s recipe re-measured"
        ).format(v=self.version)
        folds = ", ".join(f"{d:+.3f}" for d in self.differences)
        return (
            f"paired on the same {self.method} of {self.photos} photos: {new:.4f} against "
            f"{old:.4f} ({recipe}), difference {self.difference:+.4f} (folds {folds})"
        )

    def as_metadata(self) -> dict[str, Any]:
        return {
            "compared_with": self.version,
            "same_recipe": self.same_recipe,
            "method": self.method,
            "photos": self.photos,
            "accuracy": round(float(np.mean(self.accuracies)), DECIMALS),
            "active_recipe_accuracy": round(float(np.mean(self.active_accuracies)), DECIMALS),
            "fold_differences": self.differences,
            "difference": self.difference,
        }


def recipe(options: TrainOptions) -> dict[str, Any]:
    return {k: v for k, v in options.model_dump().items() if k not in NOT_RECIPE}


def active_recipe(
    active: Version, options: TrainOptions, digest: str | None, classes: list[str]
) -> TrainOptions | str:
    """The active version's recipe on this run's folds, or why it cannot be re-measured here."""
    if active.metadata.backbone_digest != digest:
        return "its backbone weights differ from this run's"
    if active.classes != classes:
        return "its classes differ from this run's"
    training = active.metadata.as_dict().get("training")
    if not isinstance(training, dict):
        return "it recorded no recipe"
    known = {k: v for k, v in training.items() if k in TrainOptions.model_fields}
    try:
        theirs = TrainOptions.model_validate(known)
    except ValidationError:
        return "its recipe is not one this trainer knows"
    same_partition = {"folds": options.folds, "seed": options.seed}
    theirs = theirs.model_copy(
        update={**same_partition, "validation_split": options.validation_split}
    )
    if (theirs.features, theirs.input_size) != (options.features, options.input_size):
        return f"its features ({theirs.features} at {theirs.input_size} px) differ from this run's"
    if theirs.flips and not options.flips:
        return "it trained on mirror images, which this run did not compute"
    if tunes_in_folds(theirs) and not options.fine_tune_epochs:
        return "it fine-tuned conv5, and this run did not cache the activations to"
    return theirs


def compare_with_active(
    fitter: RecipeFitter,
    options: TrainOptions,
    measured: Measured,
    store_root: Any,
    digest: str | None,
    classes: list[str],
    reporter: Reporter,
) -> Paired | str:
    """This run's measurement paired with the active version's recipe's, or why there is none."""
    try:
        active = ModelStore(store_root).active()
    except StoreError as error:
        return f"the active version is unusable ({error})"
    if active is None:
        return "no version is active"
    theirs = active_recipe(active, options, digest, classes)
    if isinstance(theirs, str):
        return f"active version {active.number}: {theirs}"
    photos = len(fitter.labels)
    if recipe(theirs) == recipe(options):
        accuracies = list(measured.accuracies)
        return Paired(active.number, True, accuracies, accuracies, photos, measured.method)
    reporter.line(f"  active version {active.number}'s recipe, on the same folds:")
    views = fitter.views if theirs.flips else fitter.views[:1]
    again = RecipeFitter(
        theirs,
        fitter.backbone,
        fitter.features,
        views,
        fitter.activations,
        fitter.labels,
        fitter.samples,
        fitter.classes,
    )
    remeasured = measure(theirs, again.fit_and_predict, fitter.labels, fitter.samples, reporter)
    return Paired(
        active.number,
        False,
        list(measured.accuracies),
        list(remeasured.accuracies),
        photos,
        measured.method,
    )
