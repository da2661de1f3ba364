"""Which active versions' recipes can be re-measured on this run's folds, and what is compared."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.options import TrainOptions
from app.store.metadata import VersionMetadata
from app.store.versions import Version
from app.training.pairing import Paired, active_recipe, head_recipe, recipe, recorded_recipe

CLASSES = ["cats", "dogs"]


def _active(training: dict[str, Any] | None, digest: str = "d1", classes: Any = None) -> Version:
    metadata = {"version": 1, "classes": classes or CLASSES, "backbone": {"weights_digest": digest}}
    if training is not None:
        metadata["training"] = training
    return Version(1, Path("/nowhere"), VersionMetadata.model_validate(metadata))


def test_the_active_recipe_is_set_to_this_runs_folds() -> None:
    mine = TrainOptions(folds=5, seed=7, activate="if_better")
    theirs = active_recipe(_active({"l2": 0.5, "folds": 3, "seed": 123}), mine, "d1", CLASSES)
    assert isinstance(theirs, TrainOptions)
    assert (theirs.l2, theirs.folds, theirs.seed) == (0.5, 5, 7)


@pytest.mark.parametrize(
    ("training", "digest", "classes", "why"),
    [
        ({}, "other", None, "its backbone weights differ"),
        ({}, "d1", ["cats", "owls"], "its classes differ"),
        (None, "d1", None, "it recorded no recipe"),
        ({"head": "forest"}, "d1", None, "not one this trainer knows"),
        ({"features": "conv5-avg"}, "d1", None, "its features (conv5-avg at 224 px) differ"),
        ({"input_size": 180}, "d1", None, "at 180 px) differ"),
        ({"fine_tune_epochs": 2}, "d1", None, "fine-tuned conv5"),
    ],
)
def test_a_recipe_that_cannot_be_re_measured_here_says_why(
    training: dict[str, Any] | None, digest: str, classes: Any, why: str
) -> None:
    mine = TrainOptions(fine_tune_epochs=0)  # no conv4 activations at hand
    answer = active_recipe(_active(training, digest, classes), mine, "d1", CLASSES)
    assert isinstance(answer, str) and why in answer


def test_a_recipe_whose_folds_measured_its_head_alone_is_re_measured_without_activations() -> None:
    training = {"fine_tune_epochs": 2, "fine_tune_in_folds": False}
    theirs = active_recipe(_active(training), TrainOptions(), "d1", CLASSES)
    assert isinstance(theirs, TrainOptions)
    assert (theirs.fine_tune_epochs, theirs.fine_tune_in_folds) == (2, False)


def test_a_version_older_than_an_option_is_read_as_it_trained_not_as_todays_default() -> None:
    """Fine-tuning is now on by default and after the folds; a version that recorded neither
    option did not fine-tune, and one that recorded epochs alone fine-tuned in every fold."""
    untuned = recorded_recipe(_active({}))
    assert isinstance(untuned, TrainOptions) and untuned.fine_tune_epochs == 0
    in_folds = recorded_recipe(_active({"fine_tune_epochs": 2}))
    assert isinstance(in_folds, TrainOptions) and in_folds.fine_tune_in_folds is True
    assert TrainOptions().fine_tune_epochs > 0 and TrainOptions().fine_tune_in_folds is False


def test_mirror_images_this_run_lacks_prevent_a_re_measure() -> None:
    answer = active_recipe(_active({"flips": True}), TrainOptions(flips=False), "d1", CLASSES)
    assert answer == "it trained on mirror images, which this run did not compute"


def test_how_a_run_publishes_is_not_part_of_its_recipe() -> None:
    a = TrainOptions(activate="always", openvino=True, examples=2, batch_size=32)
    b = TrainOptions(activate="if_better", openvino=False, examples=0, batch_size=8)
    assert recipe(a) == recipe(b)
    assert recipe(a) != recipe(TrainOptions(l2=1.0))


def test_the_paired_figures_and_their_description() -> None:
    paired = Paired(3, False, [0.9, 0.92], [0.91, 0.9], 40, "2-fold cross-validation")
    assert paired.differences == [-0.01, 0.02] and paired.difference == 0.005
    assert paired.describe() == (
        "paired on the same 2-fold cross-validation of 40 photos: 0.9100 against 0.9050 (active "
        "version 3's recipe re-measured), difference +0.0050 (folds -0.010, +0.020)"
    )
    assert paired.as_metadata()["active_recipe_accuracy"] == 0.905


def test_recipes_that_differ_only_in_a_fine_tuning_after_the_folds_have_the_same_heads() -> None:
    plain = TrainOptions(fine_tune_epochs=0)
    after = TrainOptions(fine_tune_epochs=4, fine_tune_in_folds=False)
    assert recipe(plain) != recipe(after) and head_recipe(plain) == head_recipe(after)
    other = TrainOptions(l2=1.0, fine_tune_epochs=4, fine_tune_in_folds=False)
    assert head_recipe(other) != head_recipe(after)
    in_folds = TrainOptions(fine_tune_epochs=4, fine_tune_in_folds=True)
    assert head_recipe(in_folds) is None  # its folds measure the tuning
    paired = Paired(2, False, [0.9, 0.9], [0.9, 0.9], 40, "2-fold cross-validation", True)
    assert paired.describe() == (
        "paired on the same 2-fold cross-validation of 40 photos: 0.9000 against 0.9000 (the same "
        "heads as active version 2's: the recipes differ only in a fine-tuning after the folds), "
        "difference +0.0000 (folds +0.000, +0.000)"
    )
    assert paired.as_metadata()["same_heads"] is True
    assert "same_heads" not in Paired(2, False, [0.9], [0.8], 40, "x").as_metadata()
