"""The feature-set classifier: its graph saves and reloads in safe mode with the same output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.ml import network as models
from app.ml.devices import keras


@pytest.mark.slow
def test_a_feature_set_classifier_survives_save_and_safe_load(tmp_path: Path) -> None:
    features = models.FeatureSet((("conv4_block6_out", "gem"), ("conv5_block3_out", "avg")), 200)
    backbone = models.build_stage_backbone(None, tuple(layer for layer, _ in features.taps))
    extractor = models.build_set_extractor(backbone, features)
    rng = np.random.default_rng(0)
    dim = features.dim
    head = models.build_linear_head(
        rng.normal(size=dim), np.full(dim, 2.0), rng.normal(0, 0.01, (dim, 4)), np.zeros(4)
    )
    classifier = models.chain(extractor, head)
    images = rng.integers(0, 256, (3, 180, 180, 3)).astype(np.float32)
    models.save(classifier, tmp_path / "model.keras")
    reloaded = models.load(tmp_path / "model.keras")
    assert np.asarray(extractor(images)).shape == (3, 3072)
    assert np.allclose(np.asarray(reloaded(images)), np.asarray(classifier(images)), atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize(
    "taps",
    [
        (("conv4_block6_out", "gem"), ("conv5_block3_out", "gem")),  # conv4 among the taps
        (("conv5_block3_out", "avg"),),  # conv4 an output of its own
    ],
)
def test_the_features_and_a_stages_maps_come_from_one_pass_as_from_two(
    taps: tuple[tuple[str, str], ...],
) -> None:
    features = models.FeatureSet(taps, 200)
    backbone = models.build_stage_backbone(None, tuple(layer for layer, _ in taps))
    both = models.build_set_extractor(backbone, features, also_tap="conv4_block6_out")
    images = np.random.default_rng(2).integers(0, 256, (2, 180, 180, 3)).astype(np.float32)
    vector, maps = (np.asarray(output) for output in both(images))
    alone = np.asarray(models.build_set_extractor(backbone, features)(images))
    stage = keras.Model(backbone.input, backbone.get_layer("conv4_block6_out").output)
    upscaled = keras.layers.Resizing(200, 200, interpolation="bilinear")(images)
    expected_maps = np.asarray(stage(keras.applications.resnet50.preprocess_input(upscaled)))
    assert vector.shape == alone.shape and maps.shape == (2, 13, 13, 1024)
    assert np.allclose(vector, alone, rtol=1e-4, atol=1e-4)
    assert np.allclose(maps, expected_maps, rtol=1e-4, atol=1e-4)


def test_gem_pooling_lies_between_average_and_max() -> None:
    maps = np.random.default_rng(1).uniform(0, 4, (2, 5, 5, 3)).astype(np.float32)
    gem = np.asarray(models.GeneralizedMeanPooling2D()(maps))
    assert (gem >= maps.mean(axis=(1, 2)) - 1e-5).all() and (gem <= maps.max(axis=(1, 2))).all()


def test_a_feature_sets_cache_key_names_everything_that_changes_its_features() -> None:
    base = models.FeatureSet((("conv5_block3_out", "avg"),))
    assert base.key == "conv5_block3_out-avg@180" and base.dim == 2048
    assert models.FeatureSet((("conv5_block3_out", "gem"),)).key != base.key
    assert models.FeatureSet((("conv5_block3_out", "avg"),), 224).key != base.key
