"""Raw engine throughput: the active version called through the service's own engine classes."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from app.config import load_settings
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
    streams = load_settings().engine_streams  # FLOWERS_ENGINE_STREAMS, as the servers read it
    choice = EngineChoice(engine_kind, max_batch_size, precision, tta, streams)  # type: ignore[arg-type]
    engine = load_engine(version, choice, configure_devices())
    engine.warm_up()
    return engine


def measure(engine: Engine, images: np.ndarray, batch_size: int, seconds: float) -> dict[str, Any]:
    """Throughput over ``seconds`` (at least 3 batches per caller) after one warm-up call, with
    as many callers at once as the engine runs batches (its streams: the service's batcher
    keeps that many in flight); ``ms_per_batch`` is the median time of one call."""
    batch = images[np.arange(batch_size) % len(images)]
    callers = max(1, engine.parallel_batches)
    timings: list[list[float]] = [[] for _ in range(callers)]

    def call(mine: list[float], deadline: float) -> None:
        engine.predict(batch)  # warm this caller's infer request
        while len(mine) < 3 or time.monotonic() < deadline:
            started = time.perf_counter()
            engine.predict(batch)
            mine.append(time.perf_counter() - started)

    deadline = time.monotonic() + seconds
    with ThreadPoolExecutor(callers) as pool:
        list(pool.map(call, timings, [deadline] * callers))
    median = statistics.median(t for mine in timings for t in mine)
    # each caller's calls back to back: images over the longest caller's busy time
    busy = max(sum(mine) for mine in timings)
    return {
        "batch_size": batch_size,
        "ms_per_batch": round(median * 1000, 2),
        "images_per_s": round(batch_size * sum(len(m) for m in timings) / busy, 2),
        "parallel_batches": callers,
    }


def seconds_per_call(call: Callable[[], object], seconds: float) -> float:
    """Mean seconds of ``call`` run back to back for ``seconds`` (at least 3 calls), after one
    warm-up call."""
    call()
    calls, started = 0, time.perf_counter()
    while calls < 3 or time.perf_counter() - started < seconds:
        call()
        calls += 1
    return (time.perf_counter() - started) / calls


def decode_ms(photos: list[bytes], seconds: float) -> float:
    """Milliseconds to turn one photo's bytes into the model's input (the service's own
    ``preprocess``, one thread), as the loads pay it: the photos in turn for ``seconds`` (each
    at least once), then ``mean_of_medians`` of their timings."""
    from app.imaging import preprocess

    timings: list[list[float]] = [[] for _ in photos]
    deadline = time.monotonic() + seconds
    calls = 0
    while calls < len(photos) or time.monotonic() < deadline:
        data = photos[calls % len(photos)]
        started = time.perf_counter()
        preprocess(data)
        timings[calls % len(photos)].append(time.perf_counter() - started)
        calls += 1
    return mean_of_medians(timings) * 1000


def mean_of_medians(timings: list[list[float]]) -> float:
    """The mean over photos of each photo's median time. The loads send every photo equally
    often, so each photo's cost counts once however skewed the sizes are (the median over all
    timings gives the typical photo, a fifth below the mean on the bench's 64 photos); each
    photo's own median drops the rare timing that a preemption stretched."""
    return statistics.fmean(statistics.median(mine) for mine in timings)


def pipeline_limit(raw_images_per_s: float, decode_ms_per_image: float) -> float:
    """Images/s of the raw engine at its best batch size plus one decode per image, one after
    the other: what a service that only decodes and batches could reach on these cores."""
    return 1 / (1 / raw_images_per_s + decode_ms_per_image / 1000)
