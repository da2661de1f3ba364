"""Build the network (preprocessing + frozen ResNet-50 + head); save/load it as one ``.keras``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from app.devices import keras
from app.imaging import IMAGE_SIZE

INPUT_SHAPE: Final = (IMAGE_SIZE, IMAGE_SIZE, 3)
FEATURE_DIM: Final = 2048
HEAD_UNITS: Final = 512
BACKBONE_NAME: Final = "resnet50"
HEAD_NAME: Final = "head"
# Layers of the last ResNet stage, unfrozen by the optional fine-tuning phase.
FINE_TUNE_PREFIX: Final = "conv5_"


def build_backbone(weights_path: Path | None) -> Any:
    """The frozen ImageNet ResNet-50 without its top, global-average-pooled to 2048 features."""
    backbone = keras.applications.ResNet50(
        include_top=False,
        weights=str(weights_path) if weights_path is not None else None,
        input_shape=INPUT_SHAPE,
        pooling="avg",
        name=BACKBONE_NAME,
    )
    backbone.trainable = False
    return backbone


def build_feature_extractor(backbone: Any) -> Any:
    """Raw RGB 0..255 -> 2048 features: ResNet-50's own preprocessing, then the backbone."""
    inputs = keras.Input(INPUT_SHAPE, dtype="float32", name="image")
    features = backbone(_preprocess(inputs), training=False)
    return keras.Model(inputs, features, name="feature_extractor")


def build_head(num_classes: int, dropout: float = 0.0) -> Any:
    """Dense(512, relu) -> Dense(num_classes, softmax), its output float32 under any policy."""
    features = keras.Input((FEATURE_DIM,), name="features")
    hidden = keras.layers.Dense(HEAD_UNITS, activation="relu", name="head_dense")(features)
    if dropout > 0:
        hidden = keras.layers.Dropout(dropout, name="head_dropout")(hidden)
    outputs = keras.layers.Dense(
        num_classes, activation="softmax", dtype="float32", name="probabilities"
    )(hidden)
    return keras.Model(features, outputs, name=HEAD_NAME)


def build_classifier(backbone: Any, head: Any, augmentation: Any | None = None) -> Any:
    """The model that is saved and served: raw RGB 0..255 float32 (N,180,180,3) -> softmax.

    ``augmentation`` (fine-tuning only) is applied to the raw pixels; the published model is
    always built without it.
    """
    inputs = keras.Input(INPUT_SHAPE, dtype="float32", name="image")
    pixels = augmentation(inputs) if augmentation is not None else inputs
    features = backbone(_preprocess(pixels), training=False)
    return keras.Model(inputs, head(features), name="flower_classifier")


def _preprocess(pixels: Any) -> Any:
    # Caffe mode (RGB->BGR, ImageNet mean subtraction) as graph ops, not a Lambda layer, so the
    # saved model loads with safe_mode=True and callers never see BGR or mean values.
    return keras.applications.resnet50.preprocess_input(pixels)


def build_augmentation(seed: int) -> Any:
    """Light augmentation for fine-tuning: horizontal flip, small rotation and zoom."""
    return keras.Sequential(
        [
            keras.layers.RandomFlip("horizontal", seed=seed),
            keras.layers.RandomRotation(0.05, seed=seed),
            keras.layers.RandomZoom(0.1, seed=seed),
        ],
        name="augmentation",
    )


def unfreeze_last_stage(backbone: Any) -> int:
    """Make conv5's convolutions trainable (BatchNorm stays frozen); returns how many layers."""
    backbone.trainable = True
    unfrozen = 0
    for layer in backbone.layers:
        trainable = layer.name.startswith(FINE_TUNE_PREFIX) and not isinstance(
            layer, keras.layers.BatchNormalization
        )
        layer.trainable = trainable
        unfrozen += int(trainable and bool(layer.weights))
    return unfrozen


def head_of(model: Any) -> Any:
    """The head sub-model of a saved classifier (maps cached features to probabilities)."""
    return model.get_layer(HEAD_NAME)


def backbone_of(model: Any) -> Any:
    """The ResNet-50 sub-model of a saved classifier."""
    return model.get_layer(BACKBONE_NAME)


def save(model: Any, path: Path) -> None:
    """Save the whole classifier as one ``.keras`` file."""
    model.save(path)


def load(path: Path) -> Any:
    """Load a ``.keras`` classifier with safe_mode on: no arbitrary code runs."""
    return keras.saving.load_model(path, compile=False, safe_mode=True)
