"""Build the network (preprocessing + frozen ResNet-50 + head); save/load it as one ``.keras``.

Two families of classifiers share the same input (raw RGB 0..255, float32, (N, 180, 180, 3)) and
output (softmax over the classes):

- the tutorial's: conv5 average-pooled -> Dense(512) -> Dropout -> Dense(classes);
- the feature-set recipes: several stages of the backbone tapped and pooled (average or
  generalised-mean), optionally on the photo upscaled inside the graph, concatenated,
  standardised with fixed training statistics, then one softmax layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from app.imaging import IMAGE_SIZE
from app.ml.devices import keras

INPUT_SHAPE: Final = (IMAGE_SIZE, IMAGE_SIZE, 3)
FEATURE_DIM: Final = 2048
GEM_P: Final = 3.0
TAP_DIMS: Final = {"conv3_block4_out": 512, "conv4_block6_out": 1024, "conv5_block3_out": 2048}
HEAD_UNITS: Final = 512
BACKBONE_NAME: Final = "resnet50"
HEAD_NAME: Final = "head"


def build_head(num_classes: int, dropout: float = 0.0, dim: int = FEATURE_DIM) -> Any:
    """Dense(512, relu) -> Dense(num_classes, softmax), its output float32 under any policy."""
    features = keras.Input((dim,), name="features")
    hidden = keras.layers.Dense(HEAD_UNITS, activation="relu", name="head_dense")(features)
    if dropout > 0:
        hidden = keras.layers.Dropout(dropout, name="head_dropout")(hidden)
    outputs = keras.layers.Dense(
        num_classes, activation="softmax", dtype="float32", name="probabilities"
    )(hidden)
    return keras.Model(features, outputs, name=HEAD_NAME)


@dataclass(frozen=True)
class FeatureSet:
    """Which backbone outputs become features: (layer, pooling) taps, at an input size."""

    taps: tuple[tuple[str, str], ...]
    input_size: int = IMAGE_SIZE

    @property
    def dim(self) -> int:
        return sum(TAP_DIMS[layer] for layer, _ in self.taps)

    @property
    def key(self) -> str:
        """Names the features in the cache: changes whenever the features would."""
        taps = "+".join(f"{layer}-{pooling}" for layer, pooling in self.taps)
        return f"{taps}@{self.input_size}"


@keras.saving.register_keras_serializable(package="flowers")
class GeneralizedMeanPooling2D(keras.layers.Layer):  # type: ignore[misc]
    """GeM pooling: (mean of x^p over the map)^(1/p), between average (p=1) and max (p=inf)."""

    def __init__(self, p: float = GEM_P, epsilon: float = 1e-6, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.p, self.epsilon = float(p), float(epsilon)

    def call(self, maps: Any) -> Any:
        clipped = keras.ops.maximum(maps, self.epsilon)
        mean = keras.ops.mean(keras.ops.power(clipped, self.p), axis=(1, 2))
        return keras.ops.power(mean, 1.0 / self.p)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "p": self.p, "epsilon": self.epsilon}


def build_stage_backbone(weights_path: Path | None, taps: tuple[str, ...]) -> Any:
    """The frozen ResNet-50 (any input size) returning the named stages' feature maps."""
    resnet = keras.applications.ResNet50(
        include_top=False,
        weights=str(weights_path) if weights_path is not None else None,
        input_shape=(None, None, 3),
        name=BACKBONE_NAME,
    )
    resnet.trainable = False
    outputs = [resnet.get_layer(name).output for name in taps]
    return keras.Model(resnet.input, outputs, name=f"{BACKBONE_NAME}_stages")


def build_set_extractor(backbone: Any, features: FeatureSet, also_tap: str | None = None) -> Any:
    """Raw RGB 0..255 -> the feature set's pooled, concatenated vector; with ``also_tap``,
    ``[vector, that stage's feature maps]`` from the same pass through the backbone (fine-tuning
    caches conv4's maps beside the features: a second extractor would run conv1-4 again)."""
    inputs = keras.Input(INPUT_SHAPE, dtype="float32", name="image")
    pixels = inputs
    if features.input_size != IMAGE_SIZE:
        size = features.input_size
        pixels = keras.layers.Resizing(size, size, interpolation="bilinear", name="upscale")(pixels)
    stages, taps = backbone, [layer for layer, _ in features.taps]
    if also_tap is not None and also_tap not in taps:
        stages = keras.Model(
            backbone.input, [*backbone.outputs, backbone.get_layer(also_tap).output]
        )
    maps = stages(_preprocess(pixels), training=False)
    maps = maps if isinstance(maps, list) else [maps]
    tap_maps = zip(maps[: len(taps)], features.taps, strict=True)
    pooled = [
        pooling_layer(pooling, f"pool_{index}")(stage)
        for index, (stage, (_, pooling)) in enumerate(tap_maps)
    ]
    vector = pooled[0] if len(pooled) == 1 else keras.layers.Concatenate(name="features")(pooled)
    if also_tap is None:
        return keras.Model(inputs, vector, name="feature_extractor")
    tapped = maps[taps.index(also_tap)] if also_tap in taps else maps[-1]
    return keras.Model(inputs, [vector, tapped], name="feature_and_tap_extractor")


def build_stage_tail(backbone: Any, start: str, end: str) -> Any:
    """The backbone's layers from ``start``'s output to ``end``'s, sharing their weights."""
    return keras.Model(backbone.get_layer(start).output, backbone.get_layer(end).output)


def pooling_layer(pooling: str, name: str) -> Any:
    if pooling == "avg":
        return keras.layers.GlobalAveragePooling2D(name=name)
    if pooling == "gem":
        return GeneralizedMeanPooling2D(name=name)
    raise ValueError(f"unknown pooling {pooling!r}: use avg or gem")


def build_linear_head(
    mean: np.ndarray, std: np.ndarray, kernel: np.ndarray, bias: np.ndarray
) -> Any:
    """Standardise with fixed training statistics, then one softmax layer (weights given)."""
    dim, classes = kernel.shape
    features = keras.Input((dim,), name="features")
    scaled = keras.layers.Normalization(mean=mean, variance=np.square(std), name="standardise")(
        features
    )
    dense = keras.layers.Dense(classes, activation="softmax", dtype="float32", name="probabilities")
    outputs = dense(scaled)
    dense.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
    return keras.Model(features, outputs, name=HEAD_NAME)


def chain(extractor: Any, head: Any) -> Any:
    """The published classifier: the extractor's image input to the head's probabilities."""
    inputs = keras.Input(INPUT_SHAPE, dtype="float32", name="image")
    return keras.Model(inputs, head(extractor(inputs)), name="flower_classifier")


def _preprocess(pixels: Any) -> Any:
    # Caffe mode (RGB->BGR, ImageNet mean subtraction) as graph ops, not a Lambda layer, so the
    # saved model loads with safe_mode=True and callers never see BGR or mean values.
    return keras.applications.resnet50.preprocess_input(pixels)


def save(model: Any, path: Path) -> None:
    """Save the whole classifier as one ``.keras`` file."""
    model.save(path)


def load(path: Path) -> Any:
    """Load a ``.keras`` classifier with safe_mode on: no arbitrary code runs."""
    return keras.saving.load_model(path, compile=False, safe_mode=True)
