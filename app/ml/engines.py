"""Run a loaded model version on a batch, fast: one interface, two engines.

- :class:`KerasEngine` calls the saved ``.keras`` model through a compiled function
  (``tf.function`` with a fixed input signature on TensorFlow, ``jax.jit`` on JAX), never
  ``model.predict`` per batch.  It is the engine for GPUs.
- :class:`OpenVinoEngine` runs the OpenVINO IR exported when the version was published; on CPUs
  it is the faster one (measured by ``bench/``), with bf16 inference where the CPU has it.

Both pad a batch up to the next of a few fixed sizes (see :func:`batch_sizes`) and slice the
output, so only those shapes ever run; ``warm_up`` runs every size once at load time.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, Protocol

import numpy as np

from app.imaging import IMAGE_SIZE
from app.ml import ir_passes
from app.ml.devices import DeviceInfo, device_scope
from app.store.versions import Version

logger = logging.getLogger(__name__)

OPENVINO_XML: Final = "openvino/model.xml"
INT8_XML: Final = "openvino/model-int8.xml"  # written at publishing when it keeps the accuracy
EngineKind = Literal["auto", "tensorflow", "openvino"]
# The CPU engine's arithmetic: auto is int8 where the version has a passing INT8 IR and the CPU
# runs INT8 fast (VNNI or AMX), else bf16 where the CPU has it (AVX512_BF16, AMX), else f32.
Precision = Literal["auto", "f32", "bf16", "int8"]
FloatPrecision = Literal["f32", "bf16"]
# /proc/cpuinfo flags of INT8 dot-product instructions: without them INT8 is no faster.
FAST_INT8_FLAGS: Final = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})
TestTimeAugmentation = Literal["off", "flip"]
# OpenVINO's streams: auto runs a batch alone in latency mode (every core on it) and batches that
# overlap in throughput mode (one per stream); 1 is latency mode only, 0 throughput mode with the
# streams OpenVINO picks for this CPU, n that many streams.
Streams = int | Literal["auto"]


@dataclass(frozen=True)
class Tolerance:
    """How far an engine at a precision may stray from the float32 Keras model: no probability
    moves by more than ``max_abs_diff``, so the predicted class is the same wherever the top two
    classes are more than twice that apart (only near-ties can flip)."""

    max_abs_diff: float

    @property
    def top1_margin(self) -> float:
        return 2 * self.max_abs_diff


# bf16 keeps 8 bits of mantissa: through ResNet-50 the probabilities move by up to ~0.04 with the
# ImageNet conv5 and 0.066 with a fine-tuned one (the default's; one dev photo of 1,238, whose
# class held, margin 0.21; 99% of them under 0.015), so it keeps the class of every clear-cut
# photo, not the digits.
TOLERANCES: Final[dict[str, Tolerance]] = {
    "f32": Tolerance(max_abs_diff=1e-5),
    "f16": Tolerance(max_abs_diff=1e-2),
    "bf16": Tolerance(max_abs_diff=0.08),
}
# INT8 has no such bound on the probabilities: its IR is checked at publishing on photos instead
# (accuracy drop and top-1 agreement, in the version's metadata; app.training.quantize).


class EngineError(RuntimeError):
    """A version cannot be loaded into the requested engine."""


class Engine(Protocol):
    name: str
    precision: str  # f32, f16, bf16 or int8: what the model computes in
    float_precision: str  # what its layers kept in float compute in: an INT8 IR's f32 or bf16
    version: int
    classes: list[str]
    batch_sizes: tuple[int, ...]
    parallel_batches: int  # batches it runs at once, each on its share of the cores

    def predict(self, images: np.ndarray) -> np.ndarray:
        """uint8 or float32 (N, 180, 180, 3) RGB 0..255 -> float32 (N, classes) probabilities."""
        ...

    def warm_up(self) -> None: ...


def batch_sizes(max_batch_size: int) -> tuple[int, ...]:
    """The padded sizes: 1, 2, 3, 4, then powers of two and their midpoints (6, 8, 12, 16, 24,
    ...), and ``max_batch_size`` itself; padding never wastes more than a third of a batch."""
    candidates = {1, 2, 3, 4, max_batch_size}
    power = 4
    while power < max_batch_size:
        candidates.update({power + power // 2, power * 2})
        power *= 2
    return tuple(sorted(size for size in candidates if size <= max_batch_size))


class _PaddedEngine:
    """Shared padding, chunking and warm-up; subclasses provide ``_run`` on exact sizes."""

    name = "abstract"
    precision = "f32"
    float_precision = "f32"
    parallel_batches = 1

    def __init__(self, number: int, classes: list[str], max_batch_size: int) -> None:
        self.version = number
        self.classes = classes
        self.batch_sizes = batch_sizes(max_batch_size)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def predict(self, images: np.ndarray) -> np.ndarray:
        if images.ndim != 4 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE, 3):
            raise ValueError(f"expected (N, {IMAGE_SIZE}, {IMAGE_SIZE}, 3), got {images.shape}")
        largest = self.batch_sizes[-1]
        parts = [
            self._predict_padded(images[i : i + largest]) for i in range(0, len(images), largest)
        ]
        if not parts:
            return np.zeros((0, len(self.classes)), np.float32)
        return np.concatenate(parts)

    def _predict_padded(self, images: np.ndarray) -> np.ndarray:
        count = len(images)
        size = next(s for s in self.batch_sizes if s >= count)
        batch = np.zeros((size, IMAGE_SIZE, IMAGE_SIZE, 3), np.float32)
        batch[:count] = images
        return np.asarray(self._run(batch), dtype=np.float32)[:count]

    def warm_up(self) -> None:
        self._warm(self._run)

    def _warm(self, run: Callable[[np.ndarray], np.ndarray]) -> None:
        """One batch of zeros of each padded size through ``run``."""
        for size in self.batch_sizes:
            run(np.zeros((size, IMAGE_SIZE, IMAGE_SIZE, 3), np.float32))


class KerasEngine(_PaddedEngine):
    """The saved Keras model behind a compiled call, on the configured device."""

    name = "tensorflow"

    def __init__(self, version: Version, max_batch_size: int, device: DeviceInfo) -> None:
        super().__init__(version.number, version.classes, max_batch_size)
        from app.ml import network as models

        self.device = device
        with device_scope(device):
            self.model = models.load(version.model_path)
        self.name = "tensorflow" if device.backend == "tensorflow" else device.backend
        self.precision = self.float_precision = _short_dtype(self.model.dtype_policy.compute_dtype)
        self._compiled = _compile(self.model, device)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        if self.device.backend == "jax":
            return np.asarray(self._compiled(batch))
        with device_scope(self.device):
            return np.asarray(self._compiled(batch))

    def tracing_count(self) -> int:
        """How many times the compiled call was traced (1 on TensorFlow: no retracing)."""
        count: int = self._compiled.experimental_get_tracing_count()
        return count


def _short_dtype(dtype: str) -> str:
    return {"float32": "f32", "float16": "f16", "bfloat16": "bf16"}.get(dtype, dtype)


def _compile(model: Any, device: DeviceInfo) -> Any:
    def infer(batch: Any) -> Any:
        return model(batch, training=False)

    if device.backend == "jax":
        import jax

        return jax.jit(infer)
    import tensorflow as tf

    signature = [tf.TensorSpec((None, IMAGE_SIZE, IMAGE_SIZE, 3), tf.float32)]
    return tf.function(infer, input_signature=signature)


class OpenVinoEngine(_PaddedEngine):
    """An OpenVINO IR (a version's exported artifact), compiled for the CPU."""

    name = "openvino"

    def __init__(
        self,
        xml: Path,
        number: int,
        classes: list[str],
        max_batch_size: int,
        precision: Precision = "auto",
        threads: int | None = None,
        streams: Streams = 1,
        int8_float: FloatPrecision = "f32",
    ) -> None:
        super().__init__(number, classes, max_batch_size)
        adaptive = streams == "auto"
        compile_ = functools.partial(
            compile_openvino, xml, precision, threads, int8_float=int8_float
        )
        self.precision, self._compiled = compile_(1 if adaptive else int(streams))
        # the arithmetic of what is not INT8: all of a float IR, an INT8 IR's layers kept in float
        self.float_precision = int8_float if self.precision == "int8" else self.precision
        # auto: the same IR compiled a second time in throughput mode, for overlapping batches
        self._overlapping = compile_(0)[1] if adaptive else None
        # one infer request per calling thread and compiled model (thread-local)
        widest = self._overlapping or self._compiled
        self.parallel_batches = int(widest.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        self._local = threading.local()
        self._lock = threading.Lock()
        self._running = 0  # batches computing now
        self.batches = {"alone": 0, "overlapping": 0}  # where auto ran them (both: latency/streams)

    @classmethod
    def for_version(
        cls,
        version: Version,
        max_batch_size: int,
        precision: Precision = "auto",
        streams: Streams = 1,
    ) -> OpenVinoEngine:
        """The version's IR at ``precision``: its INT8 IR for int8 (and for auto where
        :func:`int8_choice` says so; its float layers as :func:`int8_float_precision` says),
        falling back to the float IR with a warning when the INT8 IR fails to load under auto."""
        xml = version.path / OPENVINO_XML
        if not xml.is_file():
            raise EngineError(f"version {version.number} has no OpenVINO artifact ({xml})")
        args = (version.number, version.classes, max_batch_size)
        why_not = int8_choice(version, precision)
        if why_not is None:
            int8_float = int8_float_precision(version, cpu_capabilities())
            try:
                engine = cls(
                    version.path / INT8_XML, *args, "int8", streams=streams, int8_float=int8_float
                )
                logger.info(
                    "version %d: serving its INT8 IR, the layers kept in float in %s",
                    version.number,
                    int8_float,
                )
                return engine
            except Exception as error:  # a broken file must not keep the version from serving
                if precision == "int8":
                    raise EngineError(f"version {version.number}'s INT8 IR: {error}") from error
                logger.warning(
                    "version %d: its INT8 IR failed to load (%s); serving its float IR",
                    version.number,
                    error,
                )
        elif precision == "int8":
            raise EngineError(f"FLOWERS_ENGINE_PRECISION=int8: {why_not}")
        return cls(xml, *args, precision, streams=streams)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        with self.compiled_for_a_batch() as compiled:
            return self._infer(compiled, batch)

    @contextlib.contextmanager
    def compiled_for_a_batch(self) -> Iterator[Any]:
        """The compiled model for the batch about to run: with FLOWERS_ENGINE_STREAMS=auto, the
        latency-mode one (every core on this batch) when no other batch is computing, else the
        throughput-mode one (this batch on its stream's share of the cores, beside the other)."""
        with self._lock:
            alone = self._running == 0
            self._running += 1
            if self._overlapping is not None:
                self.batches["alone" if alone else "overlapping"] += 1
        try:
            yield self._compiled if alone or self._overlapping is None else self._overlapping
        finally:
            with self._lock:
                self._running -= 1

    def _infer(self, compiled: Any, batch: np.ndarray) -> np.ndarray:
        requests: dict[int, Any] = self._local.__dict__.setdefault("requests", {})
        request = requests.get(id(compiled))
        if request is None:
            request = requests[id(compiled)] = compiled.create_infer_request()
        return np.array(request.infer({0: batch})[0])

    def warm_up(self) -> None:
        super().warm_up()
        overlapping = self._overlapping
        if overlapping is not None:
            self._warm(lambda batch: self._infer(overlapping, batch))


def openvino_available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def cpu_capabilities() -> frozenset[str]:
    """OpenVINO's OPTIMIZATION_CAPABILITIES of this CPU (e.g. FP32, BF16, INT8)."""
    import openvino

    return frozenset(openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def cpu_flags() -> frozenset[str]:
    """This CPU's feature flags (Linux's /proc/cpuinfo; empty where it cannot be read)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            for line in info:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()


def int8_choice(version: Version, requested: Precision) -> str | None:
    """None when the version is to be served by its INT8 IR, else why not: auto and int8 take it
    only where publishing kept it (metadata ``engines.openvino.int8.kept``, the file present);
    auto also needs a CPU with VNNI or AMX (elsewhere INT8 is no faster than float)."""
    if requested not in ("auto", "int8"):
        return f"FLOWERS_ENGINE_PRECISION={requested}"
    record = version.metadata.int8
    if record is None or not record.kept:
        reason = record.reason if record is not None and record.reason else "none was made"
        return f"version {version.number} has no INT8 IR that kept the accuracy ({reason})"
    if not (version.path / INT8_XML).is_file():
        return f"version {version.number}'s INT8 IR is missing ({version.path / INT8_XML})"
    if requested == "auto" and not FAST_INT8_FLAGS & cpu_flags():
        return "this CPU has neither VNNI nor AMX"
    return None


def int8_float_precision(version: Version, capabilities: frozenset[str]) -> FloatPrecision:
    """The arithmetic of the INT8 IR's layers kept in float: bf16 where this CPU has it and
    publishing checked the IR in bf16 within both bounds (``int8.served.within_bounds``), else
    f32, the arithmetic accuracy control checked it in. Where bf16 did not hold, the answers it
    changed are why (on the 3,070-photo default: 2 of 614 held-out photos, a 0.33-point drop)."""
    record = version.metadata.int8
    served = record.served if record is not None else None
    checked_in_bf16 = served is not None and served.compiled_in == "bf16" and served.within_bounds
    return "bf16" if checked_in_bf16 and "BF16" in capabilities else "f32"


def choose_precision(requested: Precision, capabilities: frozenset[str]) -> str:
    """The float arithmetic the IR is compiled for: auto is bf16 where the CPU supports it, else
    f32; bf16 on a CPU without it is an error. (An INT8 IR runs its quantized layers in INT8
    and the layers kept in float as :func:`int8_float_precision` says.)"""
    has_bf16 = "BF16" in capabilities
    if requested in ("auto", "int8"):
        return "bf16" if has_bf16 else "f32"
    if requested == "bf16" and not has_bf16:
        raise EngineError(
            "FLOWERS_ENGINE_PRECISION=bf16, but this CPU has no bf16 support "
            f"(OpenVINO lists {', '.join(sorted(capabilities))}); use auto or f32"
        )
    return requested


def compile_openvino(
    xml: Path,
    precision: Precision = "auto",
    threads: int | None = None,
    streams: int = 1,
    *,
    int8_float: FloatPrecision = "f32",
) -> tuple[str, Any]:
    """Compile an IR for the CPU at the chosen precision; returns (precision, compiled model).

    ``streams`` 1: OpenVINO's latency mode, one batch at a time on every core (``threads``).
    Otherwise its throughput mode: that many streams (0: OpenVINO's choice for this CPU), each
    running its own batch on its share of the cores, without waiting for the others; under load,
    beside the threads that decode photos, that keeps the cores busier (on 2 cores: 2 streams)."""
    import openvino

    chosen = int8_float if precision == "int8" else choose_precision(precision, cpu_capabilities())
    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": chosen, "PERFORMANCE_HINT": "LATENCY"}
    if streams != 1:
        config["PERFORMANCE_HINT"] = "THROUGHPUT"
        if streams:
            config["NUM_STREAMS"] = streams
    elif threads:
        config["INFERENCE_NUM_THREADS"] = threads
    core = openvino.Core()
    compiled = core.compile_model(_rewritten(core, xml), "CPU", config)
    return ("int8" if precision == "int8" else chosen), compiled


def _rewritten(core: Any, xml: Path) -> Any:
    """The IR with :mod:`app.ml.ir_passes`' rewrites (versions exported before they were made at
    export gain them here); as written, with a warning, should a rewrite fail on it."""
    model = core.read_model(str(xml))
    try:
        ir_passes.rewrite(model)
    except Exception as error:  # a faster graph is not worth a version that does not load
        logger.warning("%s: serving the IR as written; its rewrite failed: %s", xml, error)
        return core.read_model(str(xml))
    return model


def computes_on_the_cpu(kind: EngineKind, device: DeviceInfo) -> bool:
    """Whether the engine's batches use this process's cores: OpenVINO always, TensorFlow
    where there is no GPU (``auto`` picks TensorFlow on a GPU)."""
    return kind == "openvino" or device.kind == "CPU"


def choose_kind(kind: EngineKind, version: Version, device: DeviceInfo) -> str:
    """``auto``: OpenVINO on CPU when installed and the version carries its artifact."""
    if kind != "auto":
        return kind
    has_ir = (version.path / OPENVINO_XML).is_file()
    if device.kind == "CPU" and has_ir and openvino_available():
        return "openvino"
    return "tensorflow"


@dataclass(frozen=True)
class EngineChoice:
    """How versions are run (from the settings FLOWERS_ENGINE, _MAX_BATCH_SIZE, _PRECISION,
    _STREAMS, FLOWERS_TTA)."""

    kind: EngineKind = "auto"
    max_batch_size: int = 16
    precision: Precision = "auto"
    tta: TestTimeAugmentation = "off"
    streams: Streams = 1  # OpenVINO: see Streams


class FlipAveraged:
    """Test-time flips: each photo's probabilities averaged with its mirror image's, both run in
    one batch (twice the compute; the gain is measured by each version's cross-validation,
    ``metrics.tta_flip``)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.name = f"{engine.name}+flip"
        self.precision = engine.precision
        self.float_precision = engine.float_precision
        self.version = engine.version
        self.classes = engine.classes
        self.batch_sizes = engine.batch_sizes
        self.parallel_batches = engine.parallel_batches

    def predict(self, images: np.ndarray) -> np.ndarray:
        both = self.engine.predict(np.concatenate([images, images[:, :, ::-1, :]]))
        count = len(images)
        return np.asarray((both[:count] + both[count:]) / 2, dtype=np.float32)

    def warm_up(self) -> None:
        self.engine.warm_up()


def load_engine(version: Version, choice: EngineChoice, device: DeviceInfo) -> Engine:
    """Load a version into the chosen engine (not yet warmed up)."""
    max_batch_size, precision = choice.max_batch_size, choice.precision
    chosen = choose_kind(choice.kind, version, device)
    logger.info("loading version %d into the %s engine on %s", version.number, chosen, device.name)
    engine: Engine
    if chosen == "openvino":
        engine = OpenVinoEngine.for_version(version, max_batch_size, precision, choice.streams)
    else:
        engine = KerasEngine(version, max_batch_size, device)
    return FlipAveraged(engine) if choice.tta == "flip" else engine
