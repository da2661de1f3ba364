"""The model manager on its own: load beside the serving model, swap, keep serving on failure."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import numpy as np
import pytest

from app.inference.manager import ModelLoadError, ModelManager, NoModel
from app.store.versions import ModelStore, Version, VersionNotFound
from tests.support.fakes import FakeEngine, FakeLoader, fake_version

CLASSES = ["cats", "dogs", "owls"]


class Observer:
    def __init__(self) -> None:
        self.loaded: list[tuple[int, str, str, str, str]] = []

    def model_loaded(
        self, version: int, engine: str, device: str, precision: str, float_precision: str
    ) -> None:
        self.loaded.append((version, engine, device, precision, float_precision))


def _store(tmp_path: Path, versions: int = 2) -> ModelStore:
    store = ModelStore(tmp_path / "store")
    for _ in range(versions):
        fake_version(store, CLASSES)
    return store


def test_nothing_serves_until_a_version_is_loaded(tmp_path: Path) -> None:
    manager = ModelManager(_store(tmp_path), FakeLoader())
    assert manager.current is None
    with pytest.raises(NoModel, match="no model is loaded"):
        manager.ready_model()
    with pytest.raises(NoModel):
        manager.run_batch(np.zeros((1, 4, 4, 3), np.uint8))


def test_switching_loads_the_version_and_tells_the_observer(tmp_path: Path) -> None:
    observer = Observer()
    manager = ModelManager(_store(tmp_path), FakeLoader(), observer)
    model = asyncio.run(manager.switch_to(2))
    assert manager.ready_model() == model
    assert (model.number, model.classes, model.engine, model.device) == (
        2,
        CLASSES,
        "fake",
        "CPU (fake)",
    )
    assert observer.loaded == [(2, "fake", "CPU (fake)", "f32", "f32")]


def test_a_batch_is_tagged_with_the_version_that_computed_it(tmp_path: Path) -> None:
    manager = ModelManager(_store(tmp_path), FakeLoader())
    asyncio.run(manager.switch_to(1))
    scored = manager.run_batch(np.zeros((3, 4, 4, 3), np.uint8))
    assert scored.tag.number == 1 and scored.probabilities.shape == (3, 3)


def test_switching_to_the_serving_version_loads_nothing(tmp_path: Path) -> None:
    loader = FakeLoader()
    manager = ModelManager(_store(tmp_path), loader)

    async def scenario() -> None:
        await manager.switch_to(1)
        await manager.switch_to(1)

    asyncio.run(scenario())
    assert loader.loaded == [1]


def test_a_version_that_fails_to_load_leaves_the_old_one_serving(tmp_path: Path) -> None:
    manager = ModelManager(_store(tmp_path), FakeLoader(broken=[2]))

    async def scenario() -> None:
        await manager.switch_to(1)
        with pytest.raises(ModelLoadError, match="version 2 could not be loaded"):
            await manager.switch_to(2)

    asyncio.run(scenario())
    assert manager.ready_model().number == 1


def test_a_missing_version_is_not_found_not_a_load_failure(tmp_path: Path) -> None:
    manager = ModelManager(_store(tmp_path), FakeLoader())
    with pytest.raises(VersionNotFound):
        asyncio.run(manager.switch_to(9))


def test_concurrent_switches_load_one_version_at_a_time(tmp_path: Path) -> None:
    loader = FakeLoader()
    manager = ModelManager(_store(tmp_path, versions=3), loader)

    async def scenario() -> None:
        await asyncio.gather(manager.switch_to(1), manager.switch_to(2), manager.switch_to(3))

    asyncio.run(scenario())
    assert sorted(loader.loaded) == [1, 2, 3]
    assert manager.ready_model().number == loader.loaded[-1]


def test_the_loading_and_then_the_serving_version_is_held_in_the_store(tmp_path: Path) -> None:
    manager = ModelManager(_store(tmp_path), FakeLoader())

    async def scenario() -> None:
        await manager.switch_to(1)
        assert manager.store.holds.held() == {1}
        await manager.switch_to(2)
        assert manager.store.holds.held() == {2}  # the old one released once replaced

    asyncio.run(scenario())
    manager.release()
    assert manager.store.holds.held() == set()


class VanishingLoader(FakeLoader):
    """Its version's folder disappears while it loads (an operator's rm -rf)."""

    def load(self, version: Version) -> FakeEngine:
        engine = super().load(version)
        shutil.rmtree(version.path)
        return engine


def test_a_version_that_vanished_while_it_loaded_is_never_swapped_in(tmp_path: Path) -> None:
    manager = ModelManager(_store(tmp_path), FakeLoader())
    asyncio.run(manager.switch_to(1))
    manager.loader = VanishingLoader()
    with pytest.raises(VersionNotFound):
        asyncio.run(manager.switch_to(2))
    assert manager.ready_model().number == 1
    assert manager.store.holds.held() == {1}


def test_the_batches_run_at_once_follow_the_serving_engine(tmp_path: Path) -> None:
    """The batcher asks before each batch: a swapped-in engine's streams apply at once."""

    class StreamsLoader(FakeLoader):
        def load(self, version: Version) -> FakeEngine:
            engine = super().load(version)
            engine.parallel_batches = version.number  # version n: n streams
            return engine

    manager = ModelManager(_store(tmp_path), StreamsLoader())
    assert manager.parallel_batches() == 1  # nothing loaded: one at a time
    asyncio.run(manager.switch_to(2))
    assert manager.parallel_batches() == 2
    asyncio.run(manager.switch_to(1))
    assert manager.parallel_batches() == 1
