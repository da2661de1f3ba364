"""The activation decision of a published version (if_better against the active version)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
import pytest

from app.options import TrainOptions
from app.store.versions import ModelStore
from app.training.finetune import HeldOut
from app.training.pairing import Paired
from app.training.publishing import decide_activation
from tests.support.modelfactory import publish_tiny

CLASSES = ["blue", "green", "red"]


def _trained(
    accuracy: float,
    paired: Paired | str | None = None,
    held_out: HeldOut | None = None,
    **options: Any,
) -> Any:
    measured = SimpleNamespace(accuracy=accuracy, method="5-fold cross-validation")
    # a run that fine-tunes nothing, unless the test says how it fine-tunes
    recipe = {"fine_tune_epochs": 0, **options}
    config = SimpleNamespace(options=TrainOptions(activate="if_better", **recipe))
    trained = SimpleNamespace(measured=measured, config=config, paired=paired, held_out=held_out)
    return cast(Any, trained)


def _paired(new: list[float], active: list[float], version: int = 1) -> Paired:
    return Paired(version, new == active, new, active, 1239, "5-fold cross-validation")


@pytest.mark.parametrize(
    ("new", "active", "activated"),
    [
        ([0.90, 0.88, 0.92], [0.90, 0.88, 0.92], True),  # the same recipe: a difference of 0
        ([0.91, 0.88, 0.92], [0.90, 0.88, 0.92], True),
        ([0.90, 0.87, 0.92], [0.90, 0.88, 0.92], False),
    ],
)
def test_if_better_decides_on_the_paired_difference_when_there_is_one(
    tmp_path: Path, new: list[float], active: list[float], activated: bool
) -> None:
    store = ModelStore(tmp_path / "store")
    publish_tiny(store, CLASSES, val_accuracy=0.99)  # a recorded figure no longer decides
    decision = decide_activation(_trained(0.5, _paired(new, active)), store)
    assert decision.activate is activated, decision.reason
    assert decision.reason.startswith("paired on the same 5-fold cross-validation of 1239 photos")
    assert decision.compared_with == 1


def test_a_pairing_with_a_version_no_longer_active_is_not_used(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    publish_tiny(store, CLASSES, val_accuracy=0.80)
    publish_tiny(store, CLASSES, val_accuracy=0.95)  # an operator activated 2 meanwhile
    decision = decide_activation(_trained(0.9, _paired([0.9], [0.8], version=1)), store)
    assert decision.activate is False
    assert "accuracy 0.9000 < active version 2's 0.9500" in decision.reason


def test_why_there_is_no_pairing_is_said(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    publish_tiny(store, CLASSES, val_accuracy=0.8)
    why = "active version 1: its features (conv5-avg at 180 px) differ from this run's"
    decision = decide_activation(_trained(0.9, why), store)
    assert decision.activate is True
    assert decision.reason.endswith(f"; not paired: {why}")


@pytest.mark.parametrize(
    ("new", "activated"), [(0.89818, True), (0.8982, True), (0.8983, True), (0.89814, False)]
)
def test_if_better_compares_accuracies_as_the_metadata_records_them(
    tmp_path: Path, new: float, activated: bool
) -> None:
    store = ModelStore(tmp_path / "store")
    publish_tiny(store, CLASSES, val_accuracy=0.8982)  # recorded with 4 decimals
    decision = decide_activation(_trained(new), store)
    assert decision.activate is activated, decision.reason
    verdict = ">=" if activated else "<"
    assert f"accuracy {new:.4f} {verdict} active version 1's 0.8982" in decision.reason


AFTER_FOLDS = {"fine_tune_epochs": 4, "fine_tune_in_folds": False}
KEPT_OUT = {"photos": 614, "head_alone": 0.9104, "fine_tuned": 0.9348, "gain": 0.0244}


def _fine_tuned_after_its_folds(store: ModelStore, held_out: dict[str, Any] | None) -> None:
    record = {} if held_out is None else {"held_out": held_out}
    training = {"head": "linear", **AFTER_FOLDS}
    publish_tiny(
        store, CLASSES, val_accuracy=0.9, training=training, metrics={"fine_tuning": record}
    )


@pytest.mark.parametrize(
    ("mine", "held_out", "activated", "total"),
    [
        ({}, None, False, -0.0144),  # heads +0.01, the active's fine-tuning +0.0244
        # this run's folds measured its own fine-tuning
        ({"fine_tune_epochs": 4, "fine_tune_in_folds": True}, None, False, -0.0144),
        ({"fine_tune_epochs": 2, "fine_tune_in_folds": False}, 0.0150, True, 0.0006),
        (AFTER_FOLDS, 0.0, True, None),  # alike: the heads' comparison is fair as it is
    ],
)
def test_each_fine_tuning_after_the_folds_adds_what_it_added_on_its_kept_out_fold(
    tmp_path: Path, mine: dict[str, Any], held_out: float | None, activated: bool, total: Any
) -> None:
    store = ModelStore(tmp_path / "store")
    _fine_tuned_after_its_folds(store, KEPT_OUT)
    paired = _paired([0.91, 0.92], [0.90, 0.91])  # this run's heads: +0.01
    tuned = None if held_out is None else HeldOut(600, 0.91, round(0.91 + held_out, 4))
    decision = decide_activation(_trained(0.915, paired, tuned, **mine), store)
    assert decision.activate is activated, decision.reason
    assert decision.reason.startswith("paired on the same 5-fold cross-validation")
    if total is None:
        assert "fine-tuned after the folds" not in decision.reason
        return
    added = "; {} conv5 fine-tuned after the folds added {:+.4f} on the {} photos it kept out"
    ours = "" if tuned is None else added.format("this run's", tuned.gain, 600)
    theirs = added.format("active version 1's", 0.0244, 614)
    assert f"{ours}{theirs}: {total:+.4f} in all: " in decision.reason


def test_a_version_fine_tuned_after_its_folds_with_no_figure_of_it_is_kept(
    tmp_path: Path,
) -> None:
    store = ModelStore(tmp_path / "store")
    _fine_tuned_after_its_folds(store, None)  # published before the kept-out fold was recorded
    decision = decide_activation(_trained(0.95, _paired([0.95], [0.90])), store)
    assert decision.activate is False
    assert decision.reason.startswith(
        "active version 1's conv5 was fine-tuned after its folds, which no fold measured and it "
        "recorded no figure of, and this run fine-tunes otherwise: it is kept"
    )


@pytest.mark.parametrize(
    ("heads", "gain", "activated"),
    [([0.90, 0.90], 0.0244, True), ([0.89, 0.89], 0.0244, True), ([0.91, 0.91], -0.02, False)],
)
def test_a_run_fine_tuned_after_its_folds_adds_what_that_added_on_the_fold_it_kept_out(
    tmp_path: Path, heads: list[float], gain: float, activated: bool
) -> None:
    store = ModelStore(tmp_path / "store")
    publish_tiny(store, CLASSES, val_accuracy=0.9, training={"head": "linear"})
    held_out = HeldOut(614, 0.9104, round(0.9104 + gain, 4))
    paired = _paired(heads, [0.90, 0.90])  # heads alone: the active recipe's and this run's
    decision = decide_activation(_trained(0.9, paired, held_out, **AFTER_FOLDS), store)
    assert decision.activate is activated, decision.reason
    total = round(float(np.mean(heads)) - 0.90 + held_out.gain, 4)
    assert (
        f"; this run's conv5 fine-tuned after the folds added {held_out.gain:+.4f} on the 614 "
        f"photos it kept out: {total:+.4f} in all: "
    ) in decision.reason


def test_without_a_pairing_the_recorded_figures_take_the_fine_tuning_after_the_folds_too(
    tmp_path: Path,
) -> None:
    store = ModelStore(tmp_path / "store")
    _fine_tuned_after_its_folds(store, KEPT_OUT)
    why = "active version 1: its features (conv5-avg at 180 px) differ from this run's"
    decision = decide_activation(_trained(0.91, why), store)
    assert decision.activate is False  # 0.9100 - 0.9000 - 0.0244
    assert decision.reason == (
        "5-fold cross-validation accuracy 0.9100 < active version 1's 0.9000 (its validation "
        "split); active version 1's conv5 fine-tuned after the folds added +0.0244 on the 614 "
        f"photos it kept out: -0.0144 in all; not paired: {why}"
    )
