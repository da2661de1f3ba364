"""The local backend on its own: one version answers every image of a request, even across a hot
swap; activation swaps, then moves the store's pointer."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import numpy as np
import pytest

from app.inference.backend import LocalBackend
from app.inference.batching import Batcher
from app.inference.follower import StoreFollower
from app.inference.manager import ModelLoadError, ModelManager
from app.store.versions import ModelStore, Version
from tests.support.fakes import FakeEngine, FakeLoader, fake_version

CLASSES = ["a", "b"]


class GatedEngine(FakeEngine):
    """Version 1's engine holds its first batch until the gate opens."""

    def __init__(self, version: int, classes: list[str], gate: threading.Event) -> None:
        super().__init__(version, classes)
        self.gate = gate
        self.started = threading.Event()

    def predict(self, images: np.ndarray) -> np.ndarray:
        self.started.set()
        self.gate.wait(5)
        return super().predict(images)


class GatedLoader(FakeLoader):
    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.engines: dict[int, FakeEngine] = {}

    def load(self, version: Version) -> FakeEngine:
        engine = GatedEngine(version.number, version.classes, self.gate)
        if version.number != 1:
            engine = FakeEngine(version.number, version.classes)
        self.engines[version.number] = engine
        return engine


def _backend(tmp_path: Path, loader: FakeLoader) -> LocalBackend:
    store = ModelStore(tmp_path / "store")
    fake_version(store, CLASSES)
    fake_version(store, CLASSES, activate=False)
    store.set_active(1)
    models = ModelManager(store, loader)
    batcher = Batcher(models.run_batch, max_batch_size=8, max_delay_s=0.001, queue_limit=64)
    return LocalBackend(models, StoreFollower(models), batcher, poll_interval_s=0)


def test_a_request_that_spans_a_hot_swap_is_answered_by_the_new_version_alone(
    tmp_path: Path,
) -> None:
    loader = GatedLoader()
    backend = _backend(tmp_path, loader)

    async def scenario() -> None:
        await backend.load()
        await backend.start()
        images = [np.zeros((4, 4, 3), np.uint8)] * 3
        request = asyncio.create_task(backend.infer(images, timeout_s=10))
        engine = loader.engines[1]
        assert isinstance(engine, GatedEngine)
        await asyncio.to_thread(engine.started.wait, 5)  # version 1 computes the rows...
        await backend.activate(2)  # ...while version 2 is swapped in
        loader.gate.set()
        inference = await request
        await backend.stop(1)
        assert inference.version == 2
        expected = FakeEngine(2, CLASSES).predict(np.zeros((3, 4, 4, 3), np.uint8))
        np.testing.assert_allclose(inference.probabilities, expected)

    asyncio.run(scenario())


def test_activation_serves_the_version_then_points_the_store_at_it(tmp_path: Path) -> None:
    loader = FakeLoader()
    backend = _backend(tmp_path, loader)

    async def scenario() -> None:
        await backend.load()
        await backend.activate(2)

    asyncio.run(scenario())
    assert backend.serving().number == 2  # type: ignore[union-attr]
    assert backend.store.active_number() == 2
    assert backend.replicas() is None  # one process: no cluster replicas


def test_a_failed_activation_leaves_the_pointer_and_the_model_alone(tmp_path: Path) -> None:
    backend = _backend(tmp_path, FakeLoader(broken=[2]))

    async def scenario() -> None:
        await backend.load()
        await backend.activate(2)

    with pytest.raises(ModelLoadError, match="version 2 could not be loaded"):
        asyncio.run(scenario())
    assert backend.serving().number == 1  # type: ignore[union-attr]
    assert backend.store.active_number() == 1
