"""The linear head: multinomial logistic regression with an L2 penalty on standardised features,
fitted by L-BFGS (deterministic, seconds on a few thousand photos).

The features' mean and standard deviation are those of the photos it is fitted on, and travel
with the head into the saved graph (``app.ml.network.build_linear_head``): a photo's probabilities
depend on the training photos only, never on the batch it is served in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import logsumexp, softmax

MAX_ITERATIONS = 300
_STD_FLOOR = 1e-6


@dataclass(frozen=True)
class LinearHead:
    mean: np.ndarray  # (dim,)
    std: np.ndarray  # (dim,)
    kernel: np.ndarray  # (dim, classes), on standardised features
    bias: np.ndarray  # (classes,)
    l2: float

    def predict(self, features: np.ndarray) -> np.ndarray:
        """(n, dim) features -> (n, classes) probabilities, as the saved graph computes them."""
        scaled = (features.astype(np.float64) - self.mean) / self.std
        return np.asarray(softmax(scaled @ self.kernel + self.bias, axis=1), dtype=np.float32)


def fit_linear(
    features: np.ndarray,
    labels: np.ndarray,
    classes: int,
    l2: float,
    start: LinearHead | None = None,
) -> LinearHead:
    """argmin mean cross-entropy + l2/2 |W|^2 (the bias is not penalised)."""
    mean = features.mean(axis=0, dtype=np.float64)
    std = features.std(axis=0, dtype=np.float64) + _STD_FLOOR
    scaled = (features.astype(np.float64) - mean) / std
    weights0 = None if start is None else np.concatenate([start.kernel.ravel(), start.bias])
    kernel, bias = _minimise(scaled, labels, classes, l2, weights0)
    return LinearHead(mean, std, kernel, bias, l2)


def _minimise(
    scaled: np.ndarray, labels: np.ndarray, classes: int, l2: float, start: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    count, dim = scaled.shape
    onehot = np.eye(classes)[labels]

    def loss_and_gradient(weights: np.ndarray) -> tuple[float, np.ndarray]:
        kernel, bias = weights[: dim * classes].reshape(dim, classes), weights[dim * classes :]
        logits = scaled @ kernel + bias
        normaliser = logsumexp(logits, axis=1)
        loss = float((normaliser - (logits * onehot).sum(axis=1)).mean())
        loss += 0.5 * l2 * float((kernel * kernel).sum())
        residual = (np.exp(logits - normaliser[:, None]) - onehot) / count
        gradient = np.concatenate([(scaled.T @ residual + l2 * kernel).ravel(), residual.sum(0)])
        return loss, gradient

    start = np.zeros(dim * classes + classes) if start is None else start
    result = minimize(
        loss_and_gradient,
        start,
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": MAX_ITERATIONS, "gtol": 1e-6},
    )
    weights = np.asarray(result.x)
    return weights[: dim * classes].reshape(dim, classes), weights[dim * classes :]


def fit_views(
    views: Sequence[np.ndarray], labels: np.ndarray, rows: np.ndarray, classes: int, l2: float
) -> LinearHead:
    """Fit on every view (original, mirrored, ...) of the photos selected by ``rows``."""
    features = np.concatenate([view[rows] for view in views])
    return fit_linear(features, np.concatenate([labels[rows]] * len(views)), classes, l2)


def choose_l2(
    views: Sequence[np.ndarray],
    labels: np.ndarray,
    folds: np.ndarray,
    classes: int,
    candidates: Sequence[float],
) -> tuple[float, dict[float, float]]:
    """The L2 strength with the best accuracy over ``folds``: an inner cross-validation on the
    photos it is given, trained on every view and judged on the original (``views[0]``).
    Ties go to the stronger penalty."""
    scores = {}
    for l2 in sorted(candidates, reverse=True):
        correct = 0
        for fold in np.unique(folds):
            head = fit_views(views, labels, folds != fold, classes, l2)
            test = folds == fold
            correct += int((head.predict(views[0][test]).argmax(1) == labels[test]).sum())
        scores[l2] = correct / len(labels)
    best = max(scores.values())
    return max(l2 for l2, score in scores.items() if score == best), scores
