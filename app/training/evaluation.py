"""Validation metrics (accuracy, per-class precision/recall/F1, confusion matrix) and the plots
published with each version (``history.png``, ``confusion.png``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def classification_report(
    labels: np.ndarray, predicted: np.ndarray, class_names: list[str]
) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1/support and the confusion matrix (rows = truth)."""
    n = len(class_names)
    confusion = np.zeros((n, n), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    per_class = {}
    for index, name in enumerate(class_names):
        true_positive = int(confusion[index, index])
        predicted_count = int(confusion[:, index].sum())
        support = int(confusion[index, :].sum())
        precision = true_positive / predicted_count if predicted_count else 0.0
        recall = true_positive / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "f1": round(f1, 4),
            "support": support,
        }
    accuracy = float(np.trace(confusion) / confusion.sum()) if confusion.sum() else 0.0
    return {"accuracy": accuracy, "per_class": per_class, "confusion_matrix": confusion.tolist()}


def plot_history(history: dict[str, list[float]], path: Path) -> None:
    """How the recipe was measured and fitted: accuracy per cross-validation fold, beside the
    L2 penalty's inner cross-validation (linear head, l2 0) or the training curves (mlp head).
    A linear head with a set penalty has neither: its figure is the folds alone, with no empty
    axes beside them."""
    pyplot = _pyplot()
    curves = [m for m in ("accuracy", "loss") if history.get(m)]
    second = bool(history.get("inner_accuracy")) or bool(curves)
    figure, axes = pyplot.subplots(1, 2 if second else 1, figsize=(10 if second else 5, 4))
    left, right = (axes[0], axes[1]) if second else (axes, None)
    folds = history.get("fold_accuracy", [])
    left.bar(range(1, len(folds) + 1), folds, color="#4c78a8")
    if folds:
        mean = float(np.mean(folds))
        left.axhline(mean, color="#e45756", label=f"mean {mean:.3f}")
        left.set_ylim(max(0.0, min(folds) - 0.05), 1.0)
        left.legend(loc="lower right")
    left.set_xlabel("fold")
    left.set_title("Accuracy on photos the head never saw")
    if right is not None and history.get("inner_accuracy"):
        right.semilogx(history["l2"], history["inner_accuracy"], marker="o")
        right.set_xlabel("L2 penalty")
        right.set_title("Inner cross-validation of the penalty")
    elif right is not None:
        for metric in curves:
            values = history[metric]
            right.plot(range(1, len(values) + 1), values, marker="o", label=f"training {metric}")
        right.set_xlabel("epoch")
        right.set_title("Published head: training curves")
        right.legend()
    for axis in (left, right):
        if axis is not None:
            axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)


def plot_confusion(confusion: list[list[int]], class_names: list[str], path: Path) -> None:
    pyplot = _pyplot()
    matrix = np.asarray(confusion)
    figure, axis = pyplot.subplots(figsize=(1.2 * len(class_names) + 2, 1.1 * len(class_names) + 1))
    axis.imshow(matrix, cmap="Blues")
    ticks = range(len(class_names))
    axis.set_xticks(ticks, class_names, rotation=45, ha="right")
    axis.set_yticks(ticks, class_names)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    threshold = matrix.max() / 2 if matrix.size else 0
    for (row, column), count in np.ndenumerate(matrix):
        color = "white" if count > threshold else "black"
        axis.text(column, row, str(count), ha="center", va="center", color=color)
    axis.set_title("Confusion matrix (out-of-sample predictions)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only; never a display
    from matplotlib import pyplot

    return pyplot
