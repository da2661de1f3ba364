"""The linear head: fitted by L-BFGS, and the saved graph computes exactly what was fitted."""

from __future__ import annotations

import numpy as np

from app.ml import network as models
from app.training.linear import choose_l2, fit_linear, fit_views


def _blobs(seed: int = 0, per_class: int = 40, dim: int = 16) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (3, dim))
    labels = np.repeat(np.arange(3), per_class)
    features = centres[labels] + rng.normal(0, 1, (len(labels), dim)) + 50  # far from zero
    return features.astype(np.float32), labels


def test_a_linear_head_separates_separable_classes() -> None:
    features, labels = _blobs()
    head = fit_linear(features, labels, classes=3, l2=0.01)
    assert (head.predict(features).argmax(1) == labels).mean() == 1.0
    assert np.allclose(head.predict(features).sum(axis=1), 1.0, atol=1e-6)


def test_fitting_is_deterministic() -> None:
    features, labels = _blobs()
    first, second = (fit_linear(features, labels, 3, 0.1) for _ in range(2))
    assert np.array_equal(first.kernel, second.kernel) and np.array_equal(first.bias, second.bias)


def test_a_stronger_penalty_gives_smaller_weights() -> None:
    features, labels = _blobs()
    weak, strong = fit_linear(features, labels, 3, 0.001), fit_linear(features, labels, 3, 1.0)
    assert np.abs(strong.kernel).sum() < np.abs(weak.kernel).sum()


def test_the_keras_graph_computes_the_fitted_probabilities() -> None:
    features, labels = _blobs(seed=1)
    head = fit_linear(features, labels, 3, 0.1)
    graph = models.build_linear_head(head.mean, head.std, head.kernel, head.bias)
    assert np.allclose(np.asarray(graph(features)), head.predict(features), atol=1e-5)


def test_the_inner_cross_validation_picks_a_penalty_from_the_candidates() -> None:
    features, labels = _blobs(seed=2, per_class=30)
    mirrored = features + np.random.default_rng(3).normal(0, 0.1, features.shape).astype("f4")
    folds = np.arange(len(labels)) % 3
    l2, scores = choose_l2([features, mirrored], labels, folds, 3, [1.0, 0.1, 0.01])
    assert l2 in (1.0, 0.1, 0.01) and set(scores) == {1.0, 0.1, 0.01}
    assert scores[l2] == max(scores.values())
    both = fit_views([features, mirrored], labels, np.ones(len(labels), bool), 3, l2)
    assert both.mean.shape == (features.shape[1],)
