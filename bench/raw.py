"""Raw engine throughput: the active version called through the service's own engine classes."""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np

from app.ml.devices import configure_devices
from app.ml.engines import Engine, EngineChoice, load_engine
from app.store.versions import ModelStore


def load(
    store: ModelStore,
    engine_kind: str,
    max_batch_size: int,
    precision: str = "auto",
    tta: str = "off",
) -> Engine:
    """The active version in the chosen engine, warmed up: the service's exact call path."""
    version = store.active()
    if version is None:
        raise SystemExit(f"no model in {store.root}: train one first (python -m app.train)")
    choice = EngineChoice(engine_kind, max_batch_size, precision, tta)  # type: ignore[arg-type]
    engine = load_engine(version, choice, configure_devices())
    engine.warm_up()
    return engine


def measure(engine: Engine, images: np.ndarray, batch_size: int, seconds: float) -> dict[str, Any]:
    """Median time per batch over ``seconds`` (at least 3 batches) after one warm-up call."""
    batch = images[np.arange(batch_size) % len(images)]
    engine.predict(batch)
    timings: list[float] = []
    deadline = time.monotonic() + seconds
    while len(timings) < 3 or time.monotonic() < deadline:
        started = time.perf_counter()
        engine.predict(batch)
        timings.append(time.perf_counter() - started)
    median = statistics.median(timings)
    return {
        "batch_size": batch_size,
        "ms_per_batch": round(median * 1000, 2),
        "images_per_s": round(batch_size / median, 2),
    }
