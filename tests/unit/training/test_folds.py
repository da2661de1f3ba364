"""Cross-validation folds: deterministic, disjoint, covering, stratified."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.training.dataset import DatasetError, Sample
from app.training.folds import stratified_folds


def _samples(per_class: dict[int, int]) -> list[Sample]:
    return [
        Sample(Path(f"{label}/{i}.jpg"), label, f"{label:02d}{i:062d}")
        for label, count in per_class.items()
        for i in range(count)
    ]


SAMPLES = _samples({0: 211, 1: 324, 2: 198, 3: 228, 4: 277})  # the dev photos' class sizes


def test_the_folds_are_deterministic_for_a_seed_and_change_with_it() -> None:
    first = stratified_folds(SAMPLES, 5, seed=0)
    assert np.array_equal(first, stratified_folds(SAMPLES, 5, seed=0))
    assert not np.array_equal(first, stratified_folds(SAMPLES, 5, seed=1))


def test_the_folds_do_not_depend_on_listing_order() -> None:
    shuffled = list(reversed(SAMPLES))
    folds = dict(zip((s.digest for s in SAMPLES), stratified_folds(SAMPLES, 5, 0), strict=True))
    again = dict(zip((s.digest for s in shuffled), stratified_folds(shuffled, 5, 0), strict=True))
    assert folds == again


def test_every_photo_is_in_exactly_one_fold_and_folds_are_disjoint() -> None:
    folds = stratified_folds(SAMPLES, 5, seed=3)
    assert folds.shape == (len(SAMPLES),) and set(folds.tolist()) == {0, 1, 2, 3, 4}
    members = [set(np.flatnonzero(folds == f).tolist()) for f in range(5)]
    assert sum(len(m) for m in members) == len(SAMPLES)
    assert all(a.isdisjoint(b) for i, a in enumerate(members) for b in members[i + 1 :])


def test_each_class_is_spread_evenly_over_the_folds() -> None:
    folds = stratified_folds(SAMPLES, 5, seed=0)
    labels = np.array([s.label for s in SAMPLES])
    for label in range(5):
        counts = np.bincount(folds[labels == label], minlength=5)
        assert counts.max() - counts.min() <= 1
    sizes = np.bincount(folds, minlength=5)
    assert sizes.max() - sizes.min() <= 1


def test_too_few_photos_in_a_class_is_a_clear_error() -> None:
    with pytest.raises(DatasetError, match="at least 5 photos per class"):
        stratified_folds(_samples({0: 10, 1: 4}), 5, seed=0)
