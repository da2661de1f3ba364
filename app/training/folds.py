"""Stratified k-fold cross-validation folds, deterministic for a seed.

Within each class, photos are ordered by a seeded hash of their content (like the holdout split
in :mod:`app.training.dataset`), then dealt round-robin into the k folds, each class starting
where the previous one stopped so that fold sizes stay within one photo of each other.  The
folds depend on the seed and the photos, never on file names or listing order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from app.training.dataset import DatasetError, Sample


def stratified_folds(samples: Sequence[Sample], k: int, seed: int) -> np.ndarray:
    """The fold (0..k-1) of every sample, in sample order."""
    if k < 2:
        raise DatasetError(f"cross-validation needs at least 2 folds, got {k}")
    by_class: dict[int, list[int]] = {}
    for index, sample in enumerate(samples):
        by_class.setdefault(sample.label, []).append(index)
    small = {label: len(indices) for label, indices in by_class.items() if len(indices) < k}
    if small:
        raise DatasetError(
            f"{k}-fold cross-validation needs at least {k} photos per class; "
            f"too few in class(es) {sorted(small)}"
        )
    fold = np.empty(len(samples), dtype=np.int64)
    start = 0
    for label in sorted(by_class):
        ranked = sorted(by_class[label], key=lambda i: _rank(seed, samples[i]))
        fold[ranked] = (np.arange(len(ranked)) + start) % k
        start += len(ranked)
    return fold


def _rank(seed: int, sample: Sample) -> str:
    return hashlib.sha256(f"fold:{seed}:{sample.digest}".encode()).hexdigest()
