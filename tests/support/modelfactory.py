"""Tiny real Keras classifiers with the production model's interface, published into a store.

Input: raw RGB 0..255 float32 (N, 180, 180, 3); output: softmax over the classes.  The model
looks at each image's mean colour, so different images get different probabilities.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import numpy as np

from app.store.versions import MODEL_FILE, ModelStore, Version

COLOURS = {"blue": (20, 40, 220), "green": (30, 200, 40), "red": (210, 30, 30)}


def colour_kernel(classes: list[str], sign: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Dense weights that pick each class's dominant channel (sign -1: always wrong)."""
    kernel = np.zeros((3, len(classes)), "f4")
    for index, name in enumerate(classes):
        kernel[int(np.argmax(COLOURS[name])), index] = 20.0 * sign
    return kernel, np.zeros(len(classes), "f4")


def tiny_classifier(
    num_classes: int,
    seed: int = 0,
    weights: tuple[np.ndarray, np.ndarray] | None = None,
    conv: bool = False,
) -> Any:
    """``conv``: a 1x1 identity convolution before the pooling (the same answers), so that
    quantization has a layer to turn into INT8."""
    from app.ml.devices import keras

    inputs = keras.Input((180, 180, 3), dtype="float32", name="image")
    scaled = keras.layers.Rescaling(1 / 255.0)(inputs)
    if conv:
        identity = keras.layers.Conv2D(3, 1, activation="relu", name="identity")
        scaled = identity(scaled)
        identity.set_weights([np.eye(3, dtype="f4").reshape(1, 1, 3, 3), np.zeros(3, "f4")])
    pooled = keras.layers.GlobalAveragePooling2D()(scaled)
    rng = np.random.default_rng(seed)
    dense = keras.layers.Dense(
        num_classes, activation="softmax", dtype="float32", name="probabilities"
    )
    outputs = dense(pooled)
    if weights is None:
        weights = (
            rng.normal(0, 8, (3, num_classes)).astype("f4"),
            rng.normal(0, 1, num_classes).astype("f4"),
        )
    dense.set_weights(list(weights))
    return keras.Model(inputs, outputs, name="tiny_classifier")


def publish_tiny(
    store: ModelStore,
    classes: list[str],
    seed: int = 0,
    val_accuracy: float = 0.5,
    openvino: bool = False,
    activate: bool = True,
    weights: tuple[np.ndarray, np.ndarray] | None = None,
    job_id: str | None = None,
    plots: bool = False,
    metrics: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    examples: list[tuple[str, bytes, str]] | None = None,
    predictions: list[Any] | None = None,
    evaluation_set: dict[str, Any] | None = None,
    int8: bool = False,
    dataset: dict[str, Any] | None = None,
) -> Version:
    """A tiny real model published as a version; ``training`` is its recipe's metadata (a linear
    head's plots, then, are its folds alone, as the trainer draws them). ``int8``: with an
    OpenVINO IR and an INT8 IR quantized from it by NNCF on photos of the classes' colours,
    recorded as kept (as publishing records one that passed)."""
    model = tiny_classifier(len(classes), seed, weights, conv=int8)
    openvino = openvino or int8
    engines: dict[str, Any] = {}
    with store.staging() as folder:
        model.save(folder / MODEL_FILE)
        if plots:
            _plot(folder, classes, linear=(training or {}).get("head") == "linear")
        if openvino:
            from app.training.export import write_openvino_ir

            (folder / "openvino").mkdir()
            write_openvino_ir(model, folder / "openvino" / "model.xml")
        if int8:
            engines = {"engines": {"openvino": {"int8": _quantize(folder, classes)}}}
        shown = _examples(folder, examples) if examples else {}
        if predictions is not None:  # PhotoPrediction each, as the trainer records them
            from app.store import predictions as recorded

            judged = recorded.to_json(predictions, "5-fold cross-validation")
            (folder / recorded.PREDICTIONS_FILE).write_text(json.dumps(judged))
        metadata = {
            **shown,
            "classes": classes,
            "created_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "metrics": {"val_accuracy": val_accuracy, **(metrics or {})},
            "preprocessing_version": "test",
            **({"job": {"id": job_id}} if job_id else {}),
            **({"training": training} if training else {}),
            **({"evaluation_set": evaluation_set} if evaluation_set else {}),
            **({"dataset": dataset} if dataset else {}),
            **engines,
        }
        version = store.publish(folder, metadata)
    if activate:
        store.set_active(version.number)
    return version


def colour_photos(
    classes: list[str], per_class: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Noisy photos of each class's colour, (N, 180, 180, 3) float32 RGB 0..255, and labels."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label, name in enumerate(classes):
        for _ in range(per_class):
            noise = rng.normal(0, 40, (180, 180, 3))
            images.append(np.clip(np.array(COLOURS[name]) + noise, 0, 255).astype("f4"))
            labels.append(label)
    return np.stack(images), np.array(labels)


class ColourHead:
    """The tiny model's head on its features (each photo's mean colour, 0..1): what a measured
    head is to the real model, for INT8's held-out check."""

    def __init__(self, classes: list[str]) -> None:
        self.kernel, self.bias = colour_kernel(classes)

    def predict(self, features: np.ndarray) -> np.ndarray:
        logits = features @ self.kernel + self.bias
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        return exp / exp.sum(axis=1, keepdims=True)


def _quantize(folder: Path, classes: list[str]) -> dict[str, Any]:
    from app.ml.engines import INT8_XML, OPENVINO_XML
    from app.options import TrainOptions
    from app.training import quantize

    calibration, _ = colour_photos(classes, 4, seed=1)
    images, labels = colour_photos(classes, 4, seed=2)
    heads, folds = [ColourHead(classes)], np.zeros(len(labels), np.int64)
    checked = quantize.quantize(
        folder / OPENVINO_XML,
        folder / INT8_XML,
        calibration,
        images,
        labels,
        heads,
        folds,
        max_drop=TrainOptions().int8_max_drop,
    )
    return {"kept": True, **checked.as_record()}


def _examples(folder: Path, examples: list[tuple[str, bytes, str]]) -> dict[str, Any]:
    """Example photos as the trainer ships them: (class, JPEG bytes, credit line) each."""
    (folder / "examples").mkdir()
    photos = []
    for index, (class_name, data, credit) in enumerate(examples):
        (folder / "examples" / f"{index}.jpg").write_bytes(data)
        source = f"{class_name}/{index}.jpg"
        photos.append(
            {
                "file": f"examples/{index}.jpg",
                "class_name": class_name,
                "source": source,
                "credit": credit,
            }
        )
    license_url = "https://creativecommons.org/licenses/by/2.0/"
    return {"examples": {"photos": photos, "license": license_url}}


def _plot(folder: Path, classes: list[str], linear: bool = False) -> None:
    """The training plots a published version holds, drawn by the trainer's own functions from
    five folds' accuracies (and, for an mlp head, a two-epoch history) and a diagonal confusion
    matrix."""
    from app.store.versions import CONFUSION_PLOT, HISTORY_PLOT
    from app.training import evaluation

    folds = {"fold_accuracy": [0.9, 0.88, 0.91, 0.9, 0.89]}
    curves = {"accuracy": [0.5, 0.8], "val_accuracy": [0.4, 0.7], "loss": [1.0, 0.5]}
    history = folds if linear else {**folds, **curves, "val_loss": [1.1, 0.6]}
    evaluation.plot_history(history, folder / HISTORY_PLOT)
    size = len(classes)
    confusion = [[2 if row == column else 0 for column in range(size)] for row in range(size)]
    evaluation.plot_confusion(confusion, classes, folder / CONFUSION_PLOT)


def store_with_versions(root: Path, *class_lists: list[str], openvino: bool = False) -> ModelStore:
    store = ModelStore(root)
    for seed, classes in enumerate(class_lists):
        publish_tiny(store, classes, seed=seed, openvino=openvino)
    return store
