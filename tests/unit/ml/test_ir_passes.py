"""The IR rewrite at export: RGB -> BGR as one Gather, the same answers, only where it matches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.ml.ir_passes import gather_channel_selections

pytest.importorskip("openvino")


def _types(model: Any) -> list[str]:
    return [node.get_type_name() for node in model.get_ordered_ops()]


def _run(model: Any, image: np.ndarray) -> np.ndarray:
    import openvino

    compiled = openvino.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return np.asarray(compiled(image)[0])


def _selection(
    channels: list[int], stride: int = 1, second_source: bool = False, axis: int = 1
) -> Any:
    """image (1, 5, 6, 3) -> Concat(Unsqueeze(image[..., c], axis) for c in channels), axis):
    what TensorFlow's converter writes for x[..., ::-1] as single-channel slices."""
    import openvino
    import openvino.opset13 as ops

    image = ops.parameter([1, 5, 6, 3], np.float32, name="image")
    other = ops.multiply(image, ops.constant(np.float32(2)))
    parts = []
    for index, channel in enumerate(channels):
        source = other if second_source and index == 1 else image
        sliced = ops.strided_slice(
            source,
            ops.constant(np.array([0, channel], np.int32)),
            ops.constant(np.array([0, channel + 1], np.int32)),
            ops.constant(np.array([1, stride], np.int32)),
            begin_mask=[0, 0],
            end_mask=[0, 0],
            ellipsis_mask=[1, 0],
            shrink_axis_mask=[0, 1],
        )
        parts.append(ops.unsqueeze(sliced, ops.constant(np.array([axis], np.int64))))
    stacked = ops.concat(parts, axis)
    return openvino.Model([ops.result(ops.add(stacked, ops.constant(np.float32(1))))], [image])


@pytest.mark.parametrize(("channels", "axis"), [([2, 1, 0], 1), ([0, 2], 1), ([2, 1, 0], 3)])
def test_single_channel_slices_become_one_gather_with_the_same_values(
    channels: list[int], axis: int
) -> None:
    image = np.random.default_rng(0).normal(size=(1, 5, 6, 3)).astype(np.float32)
    model = _selection(channels, axis=axis)
    before = _run(model, image)
    assert gather_channel_selections(model) == 1
    assert "StridedSlice" not in _types(model) and "Gather" in _types(model)
    after = _run(model, image)
    assert after.shape == before.shape
    np.testing.assert_array_equal(after, before)


@pytest.mark.parametrize(
    "model",
    [
        pytest.param(lambda: _selection([2, 1, 0], stride=2), id="a stride other than 1"),
        pytest.param(lambda: _selection([2, 1, 0], second_source=True), id="two tensors"),
    ],
)
def test_anything_else_is_left_as_it_is(model: Any) -> None:
    built = model()
    before = _types(built)
    assert gather_channel_selections(built) == 0
    assert _types(built) == before


def test_the_exported_ir_of_a_caffe_preprocessed_model_gathers_and_agrees_with_keras(
    tmp_path: Path,
) -> None:
    """Through the exporter, on the upscale and the ResNet preprocessing the classifier uses: one
    output, no slice left on the image's path, and the IR's probabilities are Keras's."""
    import openvino

    from app.ml import network
    from app.ml.devices import keras
    from app.training.export import write_openvino_ir

    inputs = keras.Input((180, 180, 3), dtype="float32", name="image")
    upscaled = keras.layers.Resizing(200, 200, interpolation="bilinear", name="upscale")(inputs)
    conv = keras.layers.Conv2D(4, 3, strides=4, name="conv")  # sees the channels' order
    pooled = keras.layers.GlobalAveragePooling2D()(conv(network._preprocess(upscaled)))
    outputs = keras.layers.Dense(3, activation="softmax", dtype="float32")(pooled)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(1)
    conv.set_weights([rng.normal(0, 0.05, (3, 3, 3, 4)).astype("f4"), np.zeros(4, "f4")])
    xml = tmp_path / "model.xml"
    write_openvino_ir(model, xml)
    ir = openvino.Core().read_model(str(xml))
    assert "StridedSlice" not in _types(ir) and "Gather" in _types(ir)
    assert len(ir.outputs) == 1  # not the upscale's shape slices beside the probabilities
    images = rng.integers(0, 256, (4, 180, 180, 3)).astype(np.float32)
    expected = np.asarray(model(images, training=False))
    np.testing.assert_allclose(_run(ir, images), expected, atol=1e-5)


def test_the_engine_rewrites_an_ir_exported_before_the_rewrite_existed(tmp_path: Path) -> None:
    """A version published earlier keeps its IR with the slices; the engine compiles it with the
    Gather, to the same values."""
    import openvino

    from app.ml.engines import compile_openvino

    xml = tmp_path / "model.xml"
    openvino.save_model(_selection([2, 1, 0]), str(xml))
    image = np.random.default_rng(2).normal(size=(1, 5, 6, 3)).astype(np.float32)
    plain = openvino.Core().compile_model(str(xml), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    _, served = compile_openvino(xml, "f32")

    def kernels(compiled: Any) -> set[str]:
        graph = compiled.get_runtime_model().get_ordered_ops()
        return {node.get_rt_info()["layerType"].astype(str) for node in graph}

    assert "StridedSlice" in kernels(plain)
    assert "StridedSlice" not in kernels(served) and "Gather" in kernels(served)
    np.testing.assert_array_equal(np.asarray(served(image)[0]), np.asarray(plain(image)[0]))


def test_an_ir_the_rewrite_fails_on_is_served_as_written_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import openvino

    from app.ml import engines, ir_passes

    xml = tmp_path / "model.xml"
    openvino.save_model(_selection([2, 1, 0]), str(xml))

    def half_done(model: Any) -> int:
        model.get_results()[0].input(0).replace_source_output(model.get_parameters()[0].output(0))
        raise RuntimeError("an unexpected graph")

    monkeypatch.setattr(ir_passes, "rewrite", half_done)
    image = np.random.default_rng(3).normal(size=(1, 5, 6, 3)).astype(np.float32)
    _, served = engines.compile_openvino(xml, "f32")
    expected = _run(openvino.Core().read_model(str(xml)), image)
    np.testing.assert_array_equal(np.asarray(served(image)[0]), expected)  # not the half-done graph
    assert "serving the IR as written; its rewrite failed: an unexpected graph" in caplog.text
