from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.ml import engines
from app.ml.devices import DeviceInfo, configure_devices
from app.store.versions import ModelStore
from tests.support import imagefactory as make
from tests.support.agreement import assert_within_tolerance, precisions_to_test
from tests.support.modelfactory import publish_tiny

CPU = DeviceInfo(kind="CPU", name="CPU", backend="tensorflow")
GPU = DeviceInfo(kind="GPU", name="GPU:0 (test)", backend="tensorflow")


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModelStore, int, int]:
    store = ModelStore(tmp_path_factory.mktemp("engine"))
    plain = publish_tiny(store, ["a", "b", "c"], seed=1)
    with_ir = publish_tiny(store, ["a", "b", "c"], seed=1, openvino=True)
    return store, plain.number, with_ir.number


def _images(count: int) -> np.ndarray:
    from app.imaging import preprocess

    return np.stack([preprocess(make.jpeg(seed=i)) for i in range(count)])


@pytest.mark.parametrize(
    ("maximum", "sizes"),
    [
        (1, (1,)),
        (4, (1, 2, 3, 4)),
        (10, (1, 2, 3, 4, 6, 8, 10)),
        (32, (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)),
    ],
)
def test_padded_sizes_waste_at_most_a_third(maximum: int, sizes: tuple[int, ...]) -> None:
    assert engines.batch_sizes(maximum) == sizes
    for count in range(1, maximum + 1):
        padded = next(s for s in sizes if s >= count)
        assert padded - count <= padded / 3 + 1e-9


def test_keras_engine_pads_slices_and_never_retraces(versions: tuple[ModelStore, int, int]) -> None:
    store, plain, _ = versions
    engine = engines.KerasEngine(store.get(plain), max_batch_size=8, device=configure_devices())
    run_sizes: list[int] = []
    original = engine._run
    engine._run = lambda batch: (run_sizes.append(len(batch)), original(batch))[1]  # type: ignore[method-assign]
    engine.warm_up()
    assert run_sizes == [1, 2, 3, 4, 6, 8]
    run_sizes.clear()
    for count in (1, 5, 7, 8, 11):
        assert engine.predict(_images(count)).shape == (count, 3)
    assert run_sizes == [1, 6, 8, 8, 8, 3]
    assert engine.tracing_count() == 1


def test_padding_does_not_change_a_rows_answer(versions: tuple[ModelStore, int, int]) -> None:
    store, plain, _ = versions
    engine = engines.KerasEngine(store.get(plain), max_batch_size=8, device=configure_devices())
    images = _images(5)
    together = engine.predict(images)
    alone = np.concatenate([engine.predict(images[i : i + 1]) for i in range(5)])
    assert np.allclose(together, alone, atol=1e-6)


@pytest.mark.parametrize("precision", precisions_to_test())
def test_openvino_engine_agrees_with_keras_within_its_precision_tolerance(
    versions: tuple[ModelStore, int, int], precision: engines.Precision
) -> None:
    store, _, with_ir = versions
    version = store.get(with_ir)
    keras_engine = engines.KerasEngine(version, 8, configure_devices())
    openvino_engine = engines.OpenVinoEngine.for_version(version, 8, precision)
    openvino_engine.warm_up()
    if precision != "auto":
        assert openvino_engine.precision == precision
    images = _images(7)
    served, expected = openvino_engine.predict(images), keras_engine.predict(images)
    assert_within_tolerance(served, expected, openvino_engine.precision)


def test_streams_run_batches_side_by_side_with_the_same_answers(
    versions: tuple[ModelStore, int, int],
) -> None:
    """FLOWERS_ENGINE_STREAMS: 1 is OpenVINO's latency mode (one batch at a time); 0 its
    throughput mode, as many batches at once as it has streams, each caller its own request."""
    from concurrent.futures import ThreadPoolExecutor

    store, _, with_ir = versions
    version = store.get(with_ir)
    latency = engines.OpenVinoEngine.for_version(version, 8, "f32", streams=1)
    throughput = engines.OpenVinoEngine.for_version(version, 8, "f32", streams=0)
    two = engines.OpenVinoEngine.for_version(version, 8, "f32", streams=2)
    assert latency.parallel_batches == 1
    assert throughput.parallel_batches >= 1 and two.parallel_batches == 2
    assert engines.FlipAveraged(two).parallel_batches == 2
    images = _images(7)
    expected = latency.predict(images)
    with ThreadPoolExecutor(4) as pool:  # callers at once, as the batcher's threads call it
        answers = list(pool.map(lambda _: two.predict(images), range(8)))
    for answer in answers:
        np.testing.assert_allclose(answer, expected, atol=1e-5)


def test_auto_streams_run_a_lone_batch_on_every_core_and_overlapping_ones_on_streams(
    versions: tuple[ModelStore, int, int],
) -> None:
    """FLOWERS_ENGINE_STREAMS=auto: the IR compiled in latency mode for a batch that runs alone,
    and in throughput mode for batches that overlap it; the same answers from both."""
    from concurrent.futures import ThreadPoolExecutor

    store, _, with_ir = versions
    version = store.get(with_ir)
    auto = engines.OpenVinoEngine.for_version(version, 8, "f32", streams="auto")
    latency = engines.OpenVinoEngine.for_version(version, 8, "f32", streams=1)
    assert auto.parallel_batches >= 1  # throughput mode's streams (2 on 2 cores)
    with (
        auto.compiled_for_a_batch() as first,
        auto.compiled_for_a_batch() as second,
        auto.compiled_for_a_batch() as third,
    ):
        assert first is not second and second is third  # alone: latency; beside it: streams
    hints = [str(compiled.get_property("PERFORMANCE_HINT")) for compiled in (first, second)]
    assert hints == ["LATENCY", "THROUGHPUT"]
    with auto.compiled_for_a_batch() as again:
        assert again is first  # nothing else computing: alone again
    assert auto.batches == {"alone": 2, "overlapping": 2}
    images = _images(7)
    expected = latency.predict(images)
    np.testing.assert_allclose(auto.predict(images), expected, atol=1e-5)  # alone
    with auto.compiled_for_a_batch():  # another batch computing: this one on a stream
        np.testing.assert_allclose(auto.predict(images), expected, atol=1e-5)
    assert auto.batches == {"alone": 4, "overlapping": 3}  # the holder counts as one alone
    with ThreadPoolExecutor(4) as pool:  # as the batcher's threads call it
        answers = list(pool.map(lambda _: auto.predict(images), range(8)))
    for answer in answers:
        np.testing.assert_allclose(answer, expected, atol=1e-5)
    assert latency.batches == {"alone": 0, "overlapping": 0}  # counted only where auto chooses


def test_auto_streams_warm_up_runs_every_padded_size_through_both_compiled_models(
    versions: tuple[ModelStore, int, int],
) -> None:
    """A first request must not pay for either compiled model's first inference."""
    store, _, with_ir = versions
    auto = engines.OpenVinoEngine.for_version(store.get(with_ir), 8, "f32", streams="auto")
    auto.warm_up()
    # each padded size once through the latency-mode model, as a batch alone...
    assert auto.batches == {"alone": len(auto.batch_sizes), "overlapping": 0}
    # ...and once through the throughput-mode one: this thread holds a request for each
    assert len(auto._local.requests) == 2


@pytest.mark.parametrize(
    ("capabilities", "requested", "chosen"),
    [
        ({"FP32", "BF16", "INT8"}, "auto", "bf16"),
        ({"FP32", "INT8"}, "auto", "f32"),
        ({"FP32", "BF16"}, "f32", "f32"),
        ({"FP32", "BF16"}, "bf16", "bf16"),
    ],
)
def test_auto_precision_follows_the_cpus_capabilities(
    capabilities: set[str], requested: engines.Precision, chosen: str
) -> None:
    assert engines.choose_precision(requested, frozenset(capabilities)) == chosen


def test_bf16_on_a_cpu_without_it_is_refused_with_the_way_out() -> None:
    with pytest.raises(engines.EngineError, match="use auto or f32"):
        engines.choose_precision("bf16", frozenset({"FP32", "INT8"}))


@pytest.mark.parametrize("forced", [{"FP32", "BF16"}, {"FP32"}])
def test_the_engine_takes_the_branch_the_capabilities_pick(
    versions: tuple[ModelStore, int, int], monkeypatch: pytest.MonkeyPatch, forced: set[str]
) -> None:
    """The capability check forced both ways: the branch runs on any CPU (not the arithmetic:
    OpenVINO computes in f32 where the CPU has no bf16)."""
    store, _, with_ir = versions
    monkeypatch.setattr(engines, "cpu_capabilities", lambda: frozenset(forced))
    engine = engines.OpenVinoEngine.for_version(store.get(with_ir), 4, "auto")
    assert engine.precision == ("bf16" if "BF16" in forced else "f32")
    reference = engines.KerasEngine(store.get(with_ir), 4, configure_devices()).predict(_images(3))
    assert_within_tolerance(engine.predict(_images(3)), reference, engine.precision)


def test_openvino_engine_needs_the_artifact(versions: tuple[ModelStore, int, int]) -> None:
    store, plain, _ = versions
    with pytest.raises(engines.EngineError, match="no OpenVINO artifact"):
        engines.OpenVinoEngine.for_version(store.get(plain), 8)


def test_auto_picks_openvino_on_cpu_with_the_artifact_only(
    versions: tuple[ModelStore, int, int],
) -> None:
    store, plain, with_ir = versions
    assert engines.choose_kind("auto", store.get(with_ir), CPU) == "openvino"
    assert engines.choose_kind("auto", store.get(plain), CPU) == "tensorflow"
    assert engines.choose_kind("auto", store.get(with_ir), GPU) == "tensorflow"
    assert engines.choose_kind("tensorflow", store.get(with_ir), CPU) == "tensorflow"


def test_wrong_input_shapes_are_refused(versions: tuple[ModelStore, int, int]) -> None:
    store, plain, _ = versions
    engine = engines.KerasEngine(store.get(plain), 4, configure_devices())
    with pytest.raises(ValueError, match="expected"):
        engine.predict(np.zeros((2, 100, 100, 3), np.uint8))


def test_empty_batches_return_no_rows(
    versions: tuple[ModelStore, int, int], tmp_path: Path
) -> None:
    store, plain, _ = versions
    engine = engines.KerasEngine(store.get(plain), 4, configure_devices())
    assert engine.predict(np.zeros((0, 180, 180, 3), np.uint8)).shape == (0, 3)


class _LeftHalf:
    """An engine that looks at a photo's left half only: its mirror gets another answer."""

    name, precision, version, classes, batch_sizes = "fake", "f32", 1, ["dark", "bright"], (8,)
    float_precision, parallel_batches = "f32", 1

    def __init__(self) -> None:
        self.calls: list[int] = []

    def predict(self, images: np.ndarray) -> np.ndarray:
        self.calls.append(len(images))
        bright = images[:, :, :90].mean(axis=(1, 2, 3)) / 255
        return np.stack([1 - bright, bright], axis=1).astype(np.float32)

    def warm_up(self) -> None:
        pass


def test_test_time_flips_average_a_photo_and_its_mirror_in_one_batch() -> None:
    inner = _LeftHalf()
    flipped = engines.FlipAveraged(inner)
    images = np.zeros((3, 180, 180, 3), np.float32)
    images[:, :, :90] = 200  # bright on the left, dark on the right: 0.784 / 0.0 by half
    answer = flipped.predict(images)
    np.testing.assert_allclose(answer, [[0.6078, 0.3922]] * 3, atol=1e-4)  # the two halves' mean
    assert answer.dtype == np.float32
    assert inner.calls == [6]  # the photos and their mirrors, in one call
    assert (flipped.name, flipped.classes) == ("fake+flip", ["dark", "bright"])


def test_flipping_is_a_setting_of_every_engine(versions: tuple[ModelStore, int, int]) -> None:
    store, plain, with_ir = versions
    for number, kind in ((plain, "tensorflow"), (with_ir, "openvino")):
        choice = engines.EngineChoice(kind, tta="flip")  # type: ignore[arg-type]
        engine = engines.load_engine(store.get(number), choice, CPU)
        assert isinstance(engine, engines.FlipAveraged) and engine.name == f"{kind}+flip"
        unflipped = engines.load_engine(store.get(number), engines.EngineChoice(kind), CPU)  # type: ignore[arg-type]
        images = _images(2).astype(np.float32)
        # the tiny model averages colours: a mirror changes nothing, nor does averaging
        np.testing.assert_allclose(engine.predict(images), unflipped.predict(images), atol=1e-2)
