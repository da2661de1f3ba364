"""Import Keras (and its TensorFlow backend) quietly, and place work on the GPU when there is one.

TensorFlow's native code prints CUDA probing noise straight to file descriptor 2 when it is
imported on a machine without a GPU ("Could not find cuda drivers", "failed call to cuInit").
That is not an error for a CPU deployment, so the import runs with fd 2 captured: known probe
noise goes to this module's logger at DEBUG, anything else at WARNING, nothing is lost.

Import ``keras`` from here (``from app.ml.devices import keras``) in modules that need it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

logger = logging.getLogger(__name__)

_PROBE_NOISE = (
    "All log messages before absl::InitializeLog",
    "cudart_stub.cc",
    "Could not find cuda drivers",
    "failed call to cuInit",
    "cpu_feature_guard.cc",
    "To enable the following instructions",
    "Unable to register cu",
    "computation placer already registered",
)


@contextlib.contextmanager
def _native_stderr_to_log() -> Iterator[None]:
    """Route what native code writes to fd 2 into the logger while the block runs."""
    with tempfile.TemporaryFile(mode="w+b") as capture:
        saved = os.dup(2)
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            _replay(capture.read().decode("utf-8", errors="replace"))


# absl's line prefix: the severity letter, then MMDD (e.g. "I0000 00:00:17958.. port.cc:153]").
_ABSL_LINE = re.compile(r"^([IWEF])\d{4} ")
_ABSL_LEVELS = {"I": logging.DEBUG, "W": logging.WARNING, "E": logging.ERROR, "F": logging.ERROR}


def _replay(text: str) -> None:
    """Known probe noise and TensorFlow's own info lines (oneDNN, ...) at DEBUG; the rest at the
    severity native code gave it, WARNING when it gave none."""
    for line in filter(None, (line.strip() for line in text.splitlines())):
        if any(marker in line for marker in _PROBE_NOISE):
            logger.debug("native: %s", line)
            continue
        severity = _ABSL_LINE.match(line)
        level = _ABSL_LEVELS[severity.group(1)] if severity else logging.WARNING
        logger.log(level, "native: %s", line)


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
# JAX (KERAS_BACKEND=jax) grabs 75% of the GPU's memory in each process by default; like
# TensorFlow's memory growth, allocate on demand so a server, a retrain job and another replica
# can share one GPU (seen on an H200: a second JAX process never loaded its model otherwise).
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
with _native_stderr_to_log():
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        _GPUS = tf.config.list_physical_devices("GPU")
    else:
        _GPUS = []


@dataclass(frozen=True)
class DeviceInfo:
    """Where models run: ``kind`` is "GPU" or "CPU"; ``name`` is what a person reads."""

    kind: str
    name: str
    backend: str


def configure_devices() -> DeviceInfo:
    """Turn on GPU memory growth when a GPU is visible; otherwise report the CPU. Idempotent."""
    backend = keras.backend.backend()
    if backend == "jax":
        return _jax_device()
    if not _GPUS:
        return DeviceInfo(kind="CPU", name="CPU", backend=backend)
    for gpu in _GPUS:
        with contextlib.suppress(RuntimeError):  # already initialised: growth is set for good
            tf.config.experimental.set_memory_growth(gpu, True)
    details = tf.config.experimental.get_device_details(_GPUS[0])
    name = f"GPU:0 ({details.get('device_name', 'unknown')})"
    logger.info("TensorFlow sees %d GPU(s); serving on %s with memory growth", len(_GPUS), name)
    return DeviceInfo(kind="GPU", name=name, backend=backend)


def _jax_device() -> DeviceInfo:
    import jax

    device = jax.devices()[0]
    kind = "GPU" if device.platform in ("gpu", "cuda", "rocm") else "CPU"
    return DeviceInfo(kind=kind, name=f"{kind}:0 ({device.device_kind})", backend="jax")


def device_scope(device: DeviceInfo) -> contextlib.AbstractContextManager[object]:
    """A context placing TensorFlow work on the chosen device (a no-op on other backends)."""
    if device.backend != "tensorflow":
        return contextlib.nullcontext()
    scope: contextlib.AbstractContextManager[object] = tf.device(
        "/GPU:0" if device.kind == "GPU" else "/CPU:0"
    )
    return scope


__all__ = ["DeviceInfo", "configure_devices", "device_scope", "keras"]
