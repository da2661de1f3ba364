"""The activation decision of a published version (if_better against the active version)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from app.options import TrainOptions
from app.store.versions import ModelStore
from app.training.publishing import decide_activation
from tests.support.modelfactory import publish_tiny

CLASSES = ["blue", "green", "red"]


def _trained(accuracy: float) -> Any:
    measured = SimpleNamespace(accuracy=accuracy, method="5-fold cross-validation")
    config = SimpleNamespace(options=TrainOptions(activate="if_better"))
    return cast(Any, SimpleNamespace(measured=measured, config=config))


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
