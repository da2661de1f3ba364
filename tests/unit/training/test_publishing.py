"""The activation decision of a published version (if_better against the active version)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from app.options import TrainOptions
from app.store.versions import ModelStore
from app.training.pairing import Paired
from app.training.publishing import decide_activation
from tests.support.modelfactory import publish_tiny

CLASSES = ["blue", "green", "red"]


def _trained(accuracy: float, paired: Paired | str | None = None) -> Any:
    measured = SimpleNamespace(accuracy=accuracy, method="5-fold cross-validation")
    config = SimpleNamespace(options=TrainOptions(activate="if_better"))
    return cast(Any, SimpleNamespace(measured=measured, config=config, paired=paired))


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
