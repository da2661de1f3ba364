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

A fine-tuning done after the folds (``--no-fine-tune-in-folds``) is one thing the folds cannot
see: they measure the heads alone. When the two recipes do not fine-tune alike, what each such
fine-tuning added on the fold it kept out (:func:`added_after_folds`) is added to its side of
the difference; an active version that recorded no such figure is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from pydantic import ValidationError

from app.options import PUBLISHING, TrainOptions
from app.store.versions import ModelStore, StoreError, Version
from app.training.crossval import Measured, measure
from app.training.finetune import HeldOut
from app.training.progress import Reporter
from app.training.recipe import RecipeFitter, fine_tuning, tunes_after_folds, tunes_in_folds

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
    # the recipes differ only in a fine-tuning after the folds, which measure the heads alone
    same_heads: bool = False

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
        if self.same_recipe:
            recipe = f"the same recipe as active version {self.version}'s"
        elif self.same_heads:
            recipe = (
                f"the same heads as active version {self.version}'s: the recipes differ only in "
                "a fine-tuning after the folds"
            )
        else:
            recipe = f"active version {self.version}'s recipe re-measured"
        folds = ", ".join(f"{d:+.3f}" for d in self.differences)
        return (
            f"paired on the same {self.method} of {self.photos} photos: {new:.4f} against "
            f"{old:.4f} ({recipe}), difference {self.difference:+.4f} (folds {folds})"
        )

    def as_metadata(self) -> dict[str, Any]:
        return {
            "compared_with": self.version,
            "same_recipe": self.same_recipe,
            **({"same_heads": True} if self.same_heads else {}),
            "method": self.method,
            "photos": self.photos,
            "accuracy": round(float(np.mean(self.accuracies)), DECIMALS),
            "active_recipe_accuracy": round(float(np.mean(self.active_accuracies)), DECIMALS),
            "fold_differences": self.differences,
            "difference": self.difference,
        }


def recipe(options: TrainOptions) -> dict[str, Any]:
    return {k: v for k, v in options.model_dump().items() if k not in NOT_RECIPE}


def head_recipe(options: TrainOptions) -> dict[str, Any] | None:
    """What the folds measure of a recipe that fine-tunes after them (or none): its head's."""
    if tunes_in_folds(options):
        return None
    return {k: v for k, v in recipe(options).items() if not k.startswith("fine_tune_")}


def active_recipe(
    active: Version, options: TrainOptions, digest: str | None, classes: list[str]
) -> TrainOptions | str:
    """The active version's recipe on this run's folds, or why it cannot be re-measured here."""
    if active.metadata.backbone_digest != digest:
        return "its backbone weights differ from this run's"
    if active.classes != classes:
        return "its classes differ from this run's"
    theirs = recorded_recipe(active)
    if isinstance(theirs, str):
        return theirs
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


# A version that recorded no value for an option trained as it then behaved, not as today's
# default says: before --no-fine-tune-in-folds its fine-tuning was in every fold, and before
# fine-tuning became the default it was off.
_BEFORE_THE_OPTION: Final = {"fine_tune_epochs": 0, "fine_tune_in_folds": True}


def recorded_recipe(version: Version) -> TrainOptions | str:
    """The options a version was trained with, or why they cannot be read."""
    training = version.metadata.as_dict().get("training")
    if not isinstance(training, dict):
        return "it recorded no recipe"
    known = {k: v for k, v in training.items() if k in TrainOptions.model_fields}
    known = {**_BEFORE_THE_OPTION, **known}
    try:
        return TrainOptions.model_validate(known)
    except ValidationError:
        return "its recipe is not one this trainer knows"


@dataclass(frozen=True)
class AddedAfterFolds:
    """What a fine-tuning after the folds added on the photos it kept out, which the folds (the
    heads alone) cannot see: added to this run's side of the comparison, or the active's."""

    whose: str  # "this run's" or "active version 2's"
    gain: float
    photos: int
    of_this_run: bool

    @property
    def signed(self) -> float:
        return self.gain if self.of_this_run else -self.gain

    def describe(self) -> str:
        return (
            f"{self.whose} conv5 fine-tuned after the folds added {self.gain:+.4f} on the "
            f"{self.photos} photos it kept out"
        )


def added_after_folds(
    active: Version, options: TrainOptions, held_out: HeldOut | None
) -> list[AddedAfterFolds] | str:
    """The fine-tunings after the folds that a comparison of the heads misses, each with what it
    added on the fold it kept out (none when both recipes fine-tune alike), or why the versions
    cannot be compared: the active version's was not measured."""
    theirs = recorded_recipe(active)
    if isinstance(theirs, str) or fine_tuning(theirs) == fine_tuning(options):
        return []
    added = []
    if held_out is not None:
        added.append(AddedAfterFolds("this run's", held_out.gain, held_out.photos, True))
    if tunes_after_folds(theirs):
        kept_out = active.metadata.as_dict().get("metrics", {}).get("fine_tuning", {})
        recorded = kept_out.get("held_out")
        if not isinstance(recorded, dict) or not {"gain", "photos"} <= recorded.keys():
            return (
                f"active version {active.number}'s conv5 was fine-tuned after its folds, which "
                "no fold measured and it recorded no figure of, and this run fine-tunes "
                "otherwise: it is kept (an evaluation folder, FLOWERS_EVAL_DIR, compares the "
                "published models themselves; or activate=always)"
            )
        whose = f"active version {active.number}'s"
        added.append(AddedAfterFolds(whose, recorded["gain"], recorded["photos"], False))
    return added


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
    heads = head_recipe(theirs)
    same_heads = heads is not None and heads == head_recipe(options)
    same = recipe(theirs) == recipe(options)
    if same or same_heads:
        accuracies = list(measured.accuracies)
        return Paired(
            active.number, same, accuracies, accuracies, photos, measured.method, not same
        )
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
